// `itool demo --quick` end to end through the CLI: it completes and writes results.json
// with every category for the warm-up model, iTool (with its per-iteration rows) and the
// equal-compute SFT baseline, each with the headroom measures (pass@8, copy rate) for every
// category and each iteration's pairs by kind and depth, and a self-contained report.html.
// A second demo into the same directory with another seed, or into a directory of the
// previous layout, is refused before any work; bad --seeds lists are refused likewise.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const CATEGORIES = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'multi_turn'];

type Table = Record<string, { correct: number; total: number; accuracy: number }>;

type Extra = {
  passAtK: Record<string, { hits: number; total: number; rate: number }>;
  copy: Record<string, { values: number; copied: number; rate: number; truthValues: number; truthCopied: number; truthRate: number }>;
};

/** pass@8 and copy rate for every category, consistent with the arm's pass@1 table */
function checkExtra(x: Extra, pass1: Table, where: string): void {
  for (const c of CATEGORIES) {
    const k = x.passAtK[c];
    expect(k, `${where}.passAtK.${c}`).toBeDefined();
    expect(k.total).toBe(pass1[c].total);
    // 8 answers with n = k: a count of samples with a correct one
    expect(Number.isInteger(k.hits) && k.hits >= 0 && k.hits <= k.total, `${where}.passAtK.${c}.hits`).toBe(true);
    expect(k.rate).toBeCloseTo(k.hits / k.total, 12);
    const cp = x.copy[c];
    expect(cp, `${where}.copy.${c}`).toBeDefined();
    expect(cp.copied).toBeLessThanOrEqual(cp.values);
    expect(cp.truthCopied).toBeLessThanOrEqual(cp.truthValues);
    // every call category's ground truth has values, all taken from the query; irrelevance has none
    if (c === 'irrelevance') expect(cp.truthValues).toBe(0);
    else expect(cp.truthValues, `${where}.copy.${c}.truthValues`).toBeGreaterThan(0);
  }
}

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
      expect(r.stdout).toContain('pass@8');
      expect(r.stdout).toContain('Copy rate');
      const res = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as {
        version: number;
        seed: number;
        seconds: number;
        phases: Record<string, number>;
        passK: { k: number; temperature: number };
        warmup: { categories: Table } & Extra;
        itool: { categories: Table; iterations: Array<{ iteration: number; categories: Table; pairs: number; pairCounts: { total: number; byDepth: Record<string, number>; byKind: Record<string, number> } } & Extra> };
        baseline: { categories: Table } & Extra;
      };
      expect(Object.keys(res).sort()).toEqual(['baseline', 'itool', 'loadAverage', 'passK', 'phases', 'quick', 'seconds', 'seed', 'version', 'warmup']);
      expect(res.version).toBe(2);
      expect(res.passK.k).toBe(8);
      expect(res.seconds).toBeGreaterThan(0);
      for (const p of ['warmup', 'eval-0', 'iteration-1/search', 'iteration-2/optimize', 'baseline/train', 'measures']) expect(res.phases[p], p).toBeGreaterThanOrEqual(0);
      checkTable(res.warmup.categories, 'warmup');
      checkTable(res.itool.categories, 'itool');
      checkTable(res.baseline.categories, 'baseline');
      checkExtra(res.warmup, res.warmup.categories, 'warmup');
      checkExtra(res.baseline, res.baseline.categories, 'baseline');
      expect(res.itool.iterations.map((i) => i.iteration)).toEqual([1, 2]);
      for (const it of res.itool.iterations) {
        checkTable(it.categories, `iteration ${it.iteration}`);
        checkExtra(it, it.categories, `iteration ${it.iteration}`);
        // the kinds and the depths each partition the iteration's pairs
        const pc = it.pairCounts;
        expect(pc.total).toBe(it.pairs);
        expect(Object.values(pc.byKind).reduce((a, b) => a + b, 0)).toBe(pc.total);
        expect(Object.values(pc.byDepth).reduce((a, b) => a + b, 0)).toBe(pc.total);
      }
      expect(res.itool.iterations[1].categories).toEqual(res.itool.categories);
      const html = readFileSync(join(out, 'report.html'), 'utf8');
      expect(html).toContain('<svg');
      expect(html).not.toMatch(/<script|\bsrc=|\bhref=/i);
      for (const f of ['demo.json', 'run/state.json', 'run/iteration-1/pairs.jsonl', 'run/iteration-2/evaluate/eval.json', 'run/eval-0/measures.json', 'tokenizer/tokenizer.json', 'init-model/config.json'])
        expect(existsSync(join(out, f)), f).toBe(true);
      // the same directory with another seed is refused before any work (nothing is mixed)
      const again = spawnSync(process.execPath, [join(root, 'bin', 'itool.js'), 'demo', '--quick', '--out', out, '--seed', '2', '--no-progress'], { encoding: 'utf8', env: process.env, timeout: 60_000 });
      expect(again.status).toBe(1);
      expect(again.stderr).toMatch(/holds a demo of seed 1 \(--quick\), not of seed 2/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 600_000);

  it('refuses bad --seeds lists and a directory of the previous layout before any work', () => {
    const out = mkdtempSync(join(tmpdir(), 'itool-demo-'));
    try {
      const run = (...args: string[]) => spawnSync(process.execPath, [join(root, 'bin', 'itool.js'), 'demo', '--quick', '--no-progress', ...args], { encoding: 'utf8', env: process.env, timeout: 60_000 });
      for (const [list, msg] of [
        ['1,2.5', /'2.5' is not a non-negative integer/],
        ['1,2,1', /seed 1 is given twice/],
        ['', /comma-separated list/],
        ['a', /'a' is not/],
      ] as const) {
        const r = run('--out', join(out, 'new'), '--seeds', list);
        expect(r.status, list).toBe(1);
        expect(r.stderr).toMatch(msg);
        expect(existsSync(join(out, 'new')), 'nothing written').toBe(false);
      }
      // an older demo's directory: results.json and run/ without demo.json
      mkdirSync(join(out, 'old', 'run'), { recursive: true });
      writeFileSync(join(out, 'old', 'results.json'), JSON.stringify({ seconds: 1, warmup: {}, itool: {}, baseline: {} }));
      const r = run('--out', join(out, 'old'));
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/holds no demo.json/);
      expect(existsSync(join(out, 'old', 'data')), 'nothing written').toBe(false);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
