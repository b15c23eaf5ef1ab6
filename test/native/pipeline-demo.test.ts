// `itool demo --quick` end to end through the CLI: it completes and writes results.json
// with every category for the warm-up model, iTool (with its per-iteration rows) and the
// equal-compute SFT baseline, and a self-contained report.html.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const CATEGORIES = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'multi_turn'];

type Table = Record<string, { correct: number; total: number; accuracy: number }>;

function checkTable(t: Table, where: string): void {
  for (const c of CATEGORIES) {
    const s = t[c];
    expect(s, `${where}.${c}`).toBeDefined();
    expect(Number.isInteger(s.correct) && Number.isInteger(s.total), `${where}.${c} counts`).toBe(true);
    expect(s.total, `${where}.${c}.total`).toBeGreaterThan(0);
    expect(s.correct).toBeLessThanOrEqual(s.total);
    expect(s.accuracy).toBeCloseTo(s.correct / s.total, 12);
  }
}

describe('itool demo --quick', () => {
  it.skipIf(!!process.env.ITOOL_ASAN)('completes and writes results.json with every category and report.html (skipped under ASan: minutes of compute, the plain run covers it)', () => {
    const out = mkdtempSync(join(tmpdir(), 'itool-demo-'));
    try {
      const r = spawnSync(process.execPath, [join(root, 'bin', 'itool.js'), 'demo', '--quick', '--out', out, '--seed', '1', '--no-progress'], { encoding: 'utf8', env: process.env, timeout: 600_000 });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain('Accuracy by category');
      const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
        seconds: number;
        warmup: { categories: Table };
        itool: { categories: Table; iterations: Array<{ iteration: number; categories: Table; pairs: number }> };
        baseline: { categories: Table };
      };
      expect(Object.keys(res).sort()).toEqual(['baseline', 'itool', 'seconds', 'warmup']);
      expect(res.seconds).toBeGreaterThan(0);
      checkTable(res.warmup.categories, 'warmup');
      checkTable(res.itool.categories, 'itool');
      checkTable(res.baseline.categories, 'baseline');
      expect(res.itool.iterations.map((i) => i.iteration)).toEqual([1, 2]);
      for (const it of res.itool.iterations) checkTable(it.categories, `iteration ${it.iteration}`);
      expect(res.itool.iterations[1].categories).toEqual(res.itool.categories);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      expect(html).toContain('<svg');
      expect(html).not.toMatch(/<script|\bsrc=|\bhref=/i);
      for (const f of ['run/state.json', 'run/iteration-1/pairs.jsonl', 'run/iteration-2/evaluate/eval.json', 'tokenizer/tokenizer.json', 'init-model/config.json'])
        expect(existsSync(join(out, f)), f).toBe(true);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 600_000);
});
