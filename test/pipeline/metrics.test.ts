// The demo's headroom measures on hand-built predictions whose answers are known: pass@k
// (against the closed form counted by hand and a brute-force enumeration of k-subsets),
// copy rate (values counted by hand), pair kinds (hand-labelled pairs), and the --seeds parser
// and the demo directory guard.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../src/data/sample.js';
import { claimDemoDir, parseSeeds } from '../../src/pipeline/demo-dir.js';
import { spread, summarizeSeeds } from '../../src/pipeline/demo-seeds.js';
import { phaseModel } from '../../src/pipeline/demo-measures.js';
import type { DemoResults } from '../../src/pipeline/demo.js';
import { argumentValues, copyRateTable, occursIn, pairCounts, pairKind, passAtK, passAtKTable } from '../../src/pipeline/metrics.js';

/** pass@k by enumerating every k-subset of n answers (c correct ones first) */
function bruteForce(n: number, c: number, k: number): number {
  let hit = 0;
  let all = 0;
  const rec = (start: number, left: number, any: boolean) => {
    if (left === 0) {
      all++;
      if (any) hit++;
      return;
    }
    for (let i = start; i <= n - left; i++) rec(i + 1, left - 1, any || i < c);
  };
  rec(0, k, false);
  return hit / all;
}

describe('passAtK', () => {
  it('is any-correct when n = k, and the mean of correct answers when k = 1', () => {
    expect(passAtK(8, 0, 8)).toBe(0);
    expect(passAtK(8, 1, 8)).toBe(1);
    expect(passAtK(8, 8, 8)).toBe(1);
    expect(passAtK(10, 3, 1)).toBeCloseTo(0.3, 12);
    expect(passAtK(5, 0, 1)).toBe(0);
  });
  it('matches the hand count 1 - C(n-c,k)/C(n,k) and a brute-force enumeration of subsets', () => {
    // n 4, c 1, k 2: 3 of the 6 pairs hold the correct answer
    expect(passAtK(4, 1, 2)).toBeCloseTo(0.5, 12);
    // n 5, c 2, k 2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    expect(passAtK(5, 2, 2)).toBeCloseTo(0.7, 12);
    for (const [n, c, k] of [
      [6, 1, 3],
      [7, 2, 4],
      [9, 3, 2],
      [8, 0, 3],
      [10, 5, 8],
    ])
      expect(passAtK(n, c, k), `n ${n} c ${c} k ${k}`).toBeCloseTo(bruteForce(n, c, k), 12);
  });
  it('rejects impossible counts with a message naming them', () => {
    expect(() => passAtK(4, 5, 2)).toThrow(/c <= n|0 <= c/);
    expect(() => passAtK(4, 1, 5)).toThrow(/k <= n/);
    expect(() => passAtK(4, 1, 0)).toThrow(/1 <= k/);
    expect(() => passAtK(4.5, 1, 2)).toThrow(/integers/);
  });
  it('sums per category', () => {
    const t = passAtKTable(
      [
        { category: 'simple', correct: [false, false, true, false] },
        { category: 'simple', correct: [false, false, false, false] },
        { category: 'parallel', correct: [true, true, true, true] },
      ],
      4,
    );
    expect(t.simple).toEqual({ hits: 1, total: 2, rate: 0.5 });
    expect(t.parallel).toEqual({ hits: 1, total: 1, rate: 1 });
  });
});

function sample(id: string, category: string, user: string, calls: Array<{ name: string; arguments: Record<string, unknown> }>): Sample {
  return {
    id,
    category,
    tools: [],
    messages: [
      { role: 'user', content: user },
      { role: 'assistant', toolCalls: calls },
    ],
    groundTruth: [],
  } as unknown as Sample;
}

const hermes = (calls: Array<{ name: string; arguments: Record<string, unknown> }>) => calls.map((c) => `<tool_call>\n${JSON.stringify(c)}\n</tool_call>`).join('\n');

describe('copy rate', () => {
  it('collects string and number values through lists and objects, not booleans or null', () => {
    expect(argumentValues([{ name: 'f', arguments: { a: 'x', b: 2, c: true, d: null, e: ['y', 3.5], f: { g: 'z', h: [4] } } }])).toEqual(['x', 2, 'y', 3.5, 'z', 4]);
  });
  it('finds values verbatim (numbers as written)', () => {
    expect(occursIn('Tontidbam', 'weather in Tontidbam today')).toBe(true);
    expect(occursIn('tontidbam', 'weather in Tontidbam today')).toBe(false);
    expect(occursIn(12.5, 'a 12.5 km run')).toBe(true);
    expect(occursIn(3, 'three')).toBe(false);
    expect(occursIn('', 'anything')).toBe(false);
  });
  it('counts copied values of the answers and of the ground truth per category', () => {
    const s1 = sample('a', 'simple', 'Weather in Tontidbam for 3 days?', [{ name: 'weather', arguments: { city: 'Tontidbam', days: 3, unit: 'celsius' } }]);
    const s2 = sample('b', 'parallel', 'Book Pitose and Kaleru at 18:30', [
      { name: 'book', arguments: { place: 'Pitose', time: '18:30' } },
      { name: 'book', arguments: { place: 'Kaleru', time: '18:30' } },
    ]);
    const t = copyRateTable([
      // invented city, copied days, an enum value not in the query: 1 of 3
      { sample: s1, answer: hermes([{ name: 'weather', arguments: { city: 'Pitose', days: 3, unit: 'celsius' } }]) },
      // both calls copied, the second one's time invented: 3 of 4
      { sample: s2, answer: hermes([{ name: 'book', arguments: { place: 'Pitose', time: '18:30' } }, { name: 'book', arguments: { place: 'Kaleru', time: '19:00' } }]) },
    ]);
    expect(t.simple).toEqual({ values: 3, copied: 1, rate: 1 / 3, truthValues: 3, truthCopied: 2, truthRate: 2 / 3 });
    expect(t.parallel).toEqual({ values: 4, copied: 3, rate: 0.75, truthValues: 4, truthCopied: 4, truthRate: 1 });
  });
  it('counts no values for prose or malformed answers, but still the ground truth', () => {
    const s1 = sample('a', 'simple', 'Weather in Tontidbam?', [{ name: 'weather', arguments: { city: 'Tontidbam' } }]);
    const t = copyRateTable([
      { sample: s1, answer: 'I cannot help with that.' },
      { sample: s1, answer: '<tool_call>\n{"name": "weather", "arguments": {"city": "Tont' },
    ]);
    expect(t.simple).toEqual({ values: 0, copied: 0, rate: 0, truthValues: 2, truthCopied: 2, truthRate: 1 });
  });
});

describe('pair kinds', () => {
  const open = '<tool_call>\n{"name": "get_weather", "arguments": {';
  it('labels hand-made pairs by where their texts first differ', () => {
    expect(pairKind({ prefix: '', chosen: '<tool_call>\n{"name": "get', rejected: 'None of the tools can help.' })).toBe('decision');
    expect(pairKind({ prefix: '', chosen: 'No tool fits.', rejected: '<tool' })).toBe('decision');
    expect(pairKind({ prefix: '<tool_call>\n{"name": "', chosen: 'get_weather", ', rejected: 'book_table", ' })).toBe('function');
    expect(pairKind({ prefix: '<tool_call>\n{"name": ', chosen: '"get_weather"', rejected: '"book_table"' })).toBe('function');
    expect(pairKind({ prefix: '<tool_call>\n{"name": "get_', chosen: 'weather"', rejected: 'time"' })).toBe('function');
    expect(pairKind({ prefix: open + '"city": "', chosen: 'Tontidbam"', rejected: 'Pitose"' })).toBe('value');
    expect(pairKind({ prefix: open + '"city": ', chosen: '"Tontidbam"', rejected: '"Pitose"' })).toBe('value');
    expect(pairKind({ prefix: open + '"city": "Tontidbam", "days": ', chosen: '3}', rejected: '5}' })).toBe('value');
    expect(pairKind({ prefix: open + '"cities": ["Pitose", "', chosen: 'Kaleru"]', rejected: 'Tontidbam"]' })).toBe('value');
    expect(pairKind({ prefix: open + '"cities": ["Pitose"', chosen: ', "Kaleru"]', rejected: ']' })).toBe('value');
    expect(pairKind({ prefix: open + '"when": {"date": "', chosen: '2025-01-02"', rejected: '2025-03-04"' })).toBe('value');
    expect(pairKind({ prefix: open, chosen: '"city": "X"', rejected: '"town": "X"' })).toBe('key');
    expect(pairKind({ prefix: open + '"city": "Tontidbam"', chosen: ', "days": 3', rejected: '}}' })).toBe('key');
    expect(pairKind({ prefix: '<tool_call>\n{"name": "get_weather"', chosen: ', "arguments"', rejected: '}' })).toBe('structure');
    expect(pairKind({ prefix: '<tool_call>\n{"name": "get_weather", "', chosen: 'arguments": {', rejected: 'args": {' })).toBe('structure');
    expect(pairKind({ prefix: hermes([{ name: 'f', arguments: { a: 1 } }]), chosen: '\n<tool_call>', rejected: '' })).toBe('structure');
  });
  it('counts pairs by depth and kind', () => {
    const c = pairCounts([
      { depth: 0, prefix: '', chosen: '<tool_call>', rejected: 'No.' },
      { depth: 2, prefix: open + '"city": "', chosen: 'A"', rejected: 'B"' },
      { depth: 2, prefix: open + '"city": "', chosen: 'C"', rejected: 'D"' },
      { depth: 1, prefix: '<tool_call>\n{"name": "', chosen: 'f"', rejected: 'g"' },
    ]);
    expect(c).toEqual({ total: 4, byDepth: { '0': 1, '1': 1, '2': 2 }, byKind: { value: 2, function: 1, decision: 1, key: 0, structure: 0 } });
  });
});

describe('--seeds and the demo directory', () => {
  it('parses a list of distinct non-negative integers', () => {
    expect(parseSeeds('1,2,3')).toEqual([1, 2, 3]);
    expect(parseSeeds(' 7 , 0 ')).toEqual([7, 0]);
  });
  it('refuses an empty list, a non-integer and a duplicate, naming the problem', () => {
    expect(() => parseSeeds('')).toThrow(/comma-separated list/);
    expect(() => parseSeeds(' , ')).toThrow(/not a non-negative integer|comma-separated/);
    expect(() => parseSeeds('1,2.5')).toThrow(/'2.5' is not a non-negative integer/);
    expect(() => parseSeeds('1,x')).toThrow(/'x' is not/);
    expect(() => parseSeeds('1,-2')).toThrow(/'-2' is not/);
    expect(() => parseSeeds('1,2,1')).toThrow(/seed 1 is given twice/);
    expect(() => parseSeeds('1,,2')).toThrow(/'' is not/);
  });
  it('claims a new directory, resumes the same one, refuses an older version or other settings', () => {
    const root = mkdtempSync(join(tmpdir(), 'itool-demo-dir-'));
    try {
      const m = { version: 2, kind: 'run' as const, quick: true, seeds: [1], settings: 'abc' };
      claimDemoDir(join(root, 'a'), m);
      expect(() => claimDemoDir(join(root, 'a'), m)).not.toThrow();
      expect(() => claimDemoDir(join(root, 'a'), { ...m, seeds: [2] })).toThrow(/of seed 1.*not of seed 2/);
      expect(() => claimDemoDir(join(root, 'a'), { ...m, settings: 'xyz' })).toThrow(/other sizes or settings/);
      expect(() => claimDemoDir(join(root, 'a'), { ...m, version: 3 })).toThrow(/demo version 2 \(this is version 3\)/);
      // a directory of the previous layout: results.json without demo.json
      mkdirSync(join(root, 'old'));
      writeFileSync(join(root, 'old', 'results.json'), '{"seconds": 1}');
      expect(() => claimDemoDir(join(root, 'old'), m)).toThrow(/not empty and holds no demo.json/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  it('spread: mean, sample standard deviation, range', () => {
    const s = spread([0.2, 0.4, 0.9]);
    expect(s.mean).toBeCloseTo(0.5, 12);
    expect(s.sd).toBeCloseTo(Math.sqrt(((0.3 ** 2 + 0.1 ** 2 + 0.4 ** 2) / 2)), 12);
    expect([s.min, s.max]).toEqual([0.2, 0.9]);
    expect(spread([3]).sd).toBe(0);
  });
});

/** a results.json with the given (correct, total) per category for each arm */
function fakeResults(seed: number, arms: { warm: Record<string, [number, number]>; it: Array<Record<string, [number, number]>>; base: Record<string, [number, number]> }): DemoResults {
  const table = (t: Record<string, [number, number]>) => Object.fromEntries(Object.entries(t).map(([c, [k, n]]) => [c, { correct: k, total: n, accuracy: k / n }]));
  const extra = (t: Record<string, [number, number]>) => ({
    passAtK: Object.fromEntries(Object.entries(t).map(([c, [k, n]]) => [c, { hits: Math.min(n, k + 1), total: n, rate: Math.min(n, k + 1) / n }])),
    copy: Object.fromEntries(Object.keys(t).map((c) => [c, { values: 10, copied: 5, rate: 0.5, truthValues: 10, truthCopied: 10, truthRate: 1 }])),
  });
  const pc = { total: 10, byDepth: { '0': 10 }, byKind: { value: 6, function: 1, decision: 1, key: 1, structure: 1 } };
  return {
    version: 2,
    seed,
    quick: false,
    seconds: 100 + seed,
    phases: { warmup: 10 * seed },
    loadAverage: { start: [1, 1, 1], end: [2, 2, 2] },
    passK: { k: 8, temperature: 1 },
    warmup: { categories: table(arms.warm), ...extra(arms.warm) },
    itool: { categories: table(arms.it[arms.it.length - 1]), iterations: arms.it.map((t, i) => ({ iteration: i + 1, categories: table(t), selected: 1, nodes: 1, pairs: 10, steps: 1, tokens: 1, seconds: 1, pairCounts: pc, ...extra(t) })) },
    baseline: { categories: table(arms.base), steps: 1, tokens: 1, ...extra(arms.base) },
  } as DemoResults;
}

describe('summarizeSeeds', () => {
  it('gives mean and spread per category and arm, and the claim pooled over parallel and parallel_multiple', () => {
    const r1 = fakeResults(1, {
      warm: { simple: [5, 10], parallel: [0, 10], parallel_multiple: [0, 10] },
      it: [{ simple: [6, 10], parallel: [2, 10], parallel_multiple: [1, 10] }],
      base: { simple: [6, 10], parallel: [1, 10], parallel_multiple: [0, 10] },
    });
    const r2 = fakeResults(2, {
      warm: { simple: [7, 10], parallel: [1, 10], parallel_multiple: [0, 10] },
      it: [{ simple: [7, 10], parallel: [3, 10], parallel_multiple: [3, 10] }],
      base: { simple: [8, 10], parallel: [1, 10], parallel_multiple: [1, 10] },
    });
    const s = summarizeSeeds([1, 2], [r1, r2]);
    expect(s.table['pass@1'].simple['warm-up'].mean).toBeCloseTo(0.6, 12);
    expect(s.table['pass@1'].simple['warm-up'].sd).toBeCloseTo(Math.sqrt(0.02), 12);
    expect(s.table['pass@1'].parallel['iTool it 1'].values).toEqual([0.2, 0.3]);
    expect(s.table['pass@k'].simple['SFT baseline'].values).toEqual([0.7, 0.9]);
    // seed 1: (2+1)/20 - (1+0)/20 = +10 points; seed 2: (3+3)/20 - (1+1)/20 = +20 points
    expect(s.claim.hardDelta.values.map((x) => Math.round(x * 1e9) / 1e9)).toEqual([10, 20]);
    expect(s.claim.hardDelta.mean).toBeCloseTo(15, 9);
    // simple: 0 and -10 points
    expect(s.claim.simpleDelta.values.map((x) => Math.round(x * 1e9) / 1e9)).toEqual([0, -10]);
    expect(s.pairs[0].value.mean).toBe(6);
    expect(s.phases.warmup.values).toEqual([10, 20]);
    expect(s.phases.total.values).toEqual([101, 102]);
    expect(s.text).toContain('parallel + parallel_multiple +15.0');
    expect(s.text).toMatch(/simple\s+60\.0 ± 14\.1/);
  });
});

describe('phaseModel', () => {
  it('reads the model a phase recorded: an iteration without pairs records the model it started from', () => {
    const root = mkdtempSync(join(tmpdir(), 'itool-demo-state-'));
    try {
      const phases = [
        { name: 'warmup', seconds: 1, result: { model: '/r/warmup/model' } },
        { name: 'iteration-1/optimize', seconds: 1, result: { steps: 0, model: '/r/warmup/model' } },
        { name: 'eval-0', seconds: 1, result: { tokens: 3 } },
      ];
      writeFileSync(join(root, 'state.json'), JSON.stringify({ version: 1, fingerprint: 'x', phases, model: null }));
      expect(phaseModel(root, 'warmup')).toBe('/r/warmup/model');
      expect(phaseModel(root, 'iteration-1/optimize')).toBe('/r/warmup/model');
      expect(() => phaseModel(root, 'eval-0')).toThrow(/phase 'eval-0' recorded no model directory/);
      expect(() => phaseModel(root, 'baseline/train')).toThrow(/phase 'baseline\/train' recorded no model/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
