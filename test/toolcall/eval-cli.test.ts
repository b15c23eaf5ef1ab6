// `itool eval --predictions` on the small hand-written BFCL folder (runs without ../shared).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { itool } from '../helpers/cli.js';

const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data');
const tmp = mkdtempSync(path.join(tmpdir(), 'itool-eval-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('itool eval --predictions', () => {
  const pred = path.join(tmp, 'pred.jsonl');
  writeFileSync(
    pred,
    [
      { id: 'parallel_0', result: '[spotify.play(artist="Maroon 5", duration=15), spotify.play(artist="Taylor Swift", duration=20)]' },
      { id: 'parallel_1', result: '<tool_call>\n{"name": "circle.area", "arguments": {"radius": 3.5}}\n</tool_call>' },
      { id: 'irrelevance_0', result: 'Sorry, no joke function.' },
      { id: 'unknown_9', result: '[]' },
    ]
      .map((r) => JSON.stringify(r))
      .join('\n') + '\n',
  );

  it('prints the category table, --json, --explain and --details', async () => {
    const details = path.join(tmp, 'details.jsonl');
    const t = await itool(['eval', '--predictions', pred, '--data', path.join(fixtures, 'bfcl'), '--explain', '--details', details]);
    expect(t.code).toBe(0);
    expect(t.err).toMatch(/1 prediction id\(s\) match no sample \(first: unknown_9\)/);
    expect(t.out).toMatch(/parallel_1 \[parallel\] parallel_function_checker_no_order:wrong_count: Wrong number of functions\./);
    expect(t.out).toMatch(/parallel\s+50\.00%\s+1\/2/);
    expect(t.out).toMatch(/irrelevance\s+100\.00%\s+1\/1/);
    const rows = readFileSync(details, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as unknown);
    expect(rows).toEqual([
      { id: 'irrelevance_0', category: 'irrelevance', valid: true, error_type: null },
      { id: 'parallel_0', category: 'parallel', valid: true, error_type: null },
      { id: 'parallel_1', category: 'parallel', valid: false, error_type: 'parallel_function_checker_no_order:wrong_count' },
    ]);
    const j = await itool(['eval', '--predictions', pred, '--data', path.join(fixtures, 'bfcl'), '--json']);
    const report = JSON.parse(j.out) as { categories: Record<string, unknown>; summary: Record<string, { accuracy: number }> };
    expect(report.categories).toEqual({ parallel: { correct: 1, total: 2, accuracy: 0.5 }, irrelevance: { correct: 1, total: 1, accuracy: 1 } });
    expect(report.summary.non_live!.accuracy).toBe(0.5);
    expect(report.summary.irrelevance!.accuracy).toBe(1);
    expect(report.summary.overall!.accuracy).toBeCloseTo(2 / 3, 12);
  });

  it('bad input gives a clear error and exit code 1', async () => {
    const bad = path.join(tmp, 'bad.jsonl');
    writeFileSync(bad, '{"id": "a", "result": "x"}\n{"id": "b"}\n');
    let r = await itool(['eval', '--predictions', bad, '--data', path.join(fixtures, 'bfcl')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/bad\.jsonl:2: each line needs a 'result'/);
    r = await itool(['eval', '--predictions', pred]);
    expect(r.err).toMatch(/--data is required/);
    r = await itool(['eval', '--data', path.join(fixtures, 'bfcl')]);
    expect(r.err).toMatch(/exactly one of --predictions FILE or --model DIR/);
    r = await itool(['eval', '--model', path.join(tmp, 'nope'), '--data', path.join(fixtures, 'bfcl')]);
    expect(r.err).toMatch(/no such directory/);
  });
});
