// itool eval --limit spreads over the categories (the first N of a BFCL folder are all one
// category: random output scored 100% on irrelevance), --per-category N, and a warning naming
// how many predictions are missing.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { itool } from '../helpers/cli.js';
import { stratifiedLimit } from '../../src/cli/commands/eval.js';
import { saveSamples } from '../../src/data/formats.js';
import { synthesize } from '../../src/data/synth.js';
import { referenceAnswer } from '../../src/toolcall/reward.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'itool-eval-limit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// a data file laid out as a BFCL folder is: one category after another
const all = synthesize({ n: 200, seed: 2, split: 'test' });
const order = ['irrelevance', 'simple', 'parallel'];
const samples = order.flatMap((c) => all.filter((s) => s.category === c).slice(0, 6));
const data = path.join(tmp, 'data.jsonl');
saveSamples(data, samples, 'sample');

describe('itool eval --limit / --per-category', () => {
  it('stratifiedLimit takes round-robin over the categories, file order within each', () => {
    expect(samples.map((s) => s.category)).toEqual(order.flatMap((c) => new Array(6).fill(c)));
    const k = stratifiedLimit(samples, 7);
    expect(k.map((s) => s.category)).toEqual(['irrelevance', 'irrelevance', 'irrelevance', 'simple', 'simple', 'parallel', 'parallel']);
    expect(k.map((s) => s.id)).toEqual([...samples.slice(0, 3), ...samples.slice(6, 8), ...samples.slice(12, 14)].map((s) => s.id));
    expect(stratifiedLimit(samples, 100)).toEqual(samples);
  });

  it('--limit 6 scores two samples of each category; --per-category 1 one of each', async () => {
    const preds = path.join(tmp, 'preds.jsonl');
    writeFileSync(preds, samples.map((s) => JSON.stringify({ id: s.id, result: referenceAnswer(s) })).join('\n') + '\n');
    const r = await itool(['eval', '--predictions', preds, '--data', data, '--limit', '6', '--json']);
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out) as { categories: Record<string, { correct: number; total: number }> };
    expect(Object.fromEntries(Object.entries(rep.categories).map(([k, v]) => [k, v.total]))).toEqual({ simple: 2, parallel: 2, irrelevance: 2 });
    const p = await itool(['eval', '--predictions', preds, '--data', data, '--per-category', '1', '--json']);
    const rp = JSON.parse(p.out) as { categories: Record<string, { correct: number; total: number }> };
    expect(Object.values(rp.categories).map((v) => v.total)).toEqual([1, 1, 1]);
    expect((await itool(['eval', '--predictions', preds, '--data', data, '--limit', '0'])).err).toMatch(/--limit must be >= 1/);
  });

  it('warns how many predictions are missing, and which categories have none', async () => {
    const preds = path.join(tmp, 'few.jsonl');
    const simple = samples.filter((s) => s.category === 'simple');
    writeFileSync(preds, JSON.stringify({ id: simple[0]!.id, result: referenceAnswer(simple[0]!) }) + '\n');
    const r = await itool(['eval', '--predictions', preds, '--data', data]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(new RegExp(`warning: 5 of 6 scored samples have no prediction and count as wrong \\(first: ${simple[1]!.id}, `));
    expect(r.err).toMatch(/2 categories with no prediction at all left out: irrelevance, parallel/);
  });
});
