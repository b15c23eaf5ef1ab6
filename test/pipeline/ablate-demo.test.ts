// itool ablate --demo: the arms' configs, the table of mean and spread (against a recomputation
// from the seeds' own numbers), and a tiny run end to end: one shared warm-up, every arm, resume,
// refusal of another version's directory.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { synthesize } from '../../src/data/synth.js';
import { createModel, loadModel } from '../../src/engine/model.js';
import { DEFAULT_PIPELINE, mergeConfig, type PipelineConfig } from '../../src/pipeline/config.js';
import { ABLATE_VERSION, DEMO_ARMS, demoArmConfigs, runDemoAblation, summarizeAblation, type SeedAblation } from '../../src/pipeline/demo-ablate.js';
import { DEMO_VERSION } from '../../src/pipeline/demo-dir.js';
import { fnv1a } from '../../src/pipeline/state.js';
import { demoSize, type DemoDeps } from '../../src/pipeline/demo.js';
import { itool } from '../helpers/cli.js';

const table = (xs: Record<string, [number, number]>) => Object.fromEntries(Object.entries(xs).map(([k, [c, t]]) => [k, { correct: c, total: t, accuracy: c / t }]));

describe('ablation arms', () => {
  const demo: PipelineConfig = mergeConfig(DEFAULT_PIPELINE, demoSize(false).pipeline);
  const arms = demoArmConfigs(demo);
  it('each arm differs from itool only in what it names; all start after the warm-up, no baseline', () => {
    for (const a of DEMO_ARMS) expect([arms[a].warmup, arms[a].baseline]).toEqual([false, false]);
    expect(arms['no-warmup']).toEqual(arms.itool);
    expect(arms.dpo).toEqual({ ...arms.itool, preference: { ...arms.itool.preference, loss: 'dpo', beta: 0.1 } });
    // one round over the samples of both iterations
    expect([arms['no-iteration'].iterations, arms['no-iteration'].maxSelected, arms['no-iteration'].selectRatio]).toEqual([1, 2 * demo.maxSelected, 2 * demo.selectRatio]);
    // whole answers: numActions x simulations of them per sample, one level
    const s = arms['no-search'].search;
    expect([s.maxDepth, s.simulations, s.numActions, s.stepPattern, s.maxTokens]).toEqual([1, 1, demo.search.numActions * demo.search.simulations, '(?!)', demo.search.rolloutMaxTokens]);
  });
  it("reference: the preset's method at the demo's scale", () => {
    const r = arms.reference;
    expect(r.preset).toBe('reference');
    // method from the preset
    expect(r.search).toMatchObject({ expansion: 'chain', selection: 'widen', initialValue: 'heuristic', rollout: 'tree', judge: 'grades', judgeWeight: 1, stepLimit: 2, maxTokens: 50, maxDepth: 3, temperature: 1.5, pairValue: 'sum', overlap: 'words', pairCoverage: 'partial-answer', acceptValue: -0.3, valueThreshold: 0.1 });
    expect(r.preference).toMatchObject({ loss: 'simpo', beta: 2.5, gamma: 0.5, schedule: 'cosine', warmupRatio: 0.1 });
    expect(r.balanceDecisionPairs).toBe(false);
    // the authors' selection scope (every assistant turn); the itool arms keep the answer's
    expect(r.perplexityScope).toBe('assistant');
    expect(arms.itool.perplexityScope).toBeUndefined();
    // scale from the demo
    expect([r.iterations, r.maxSelected, r.search.numActions, r.search.simulations, r.preference.lr, r.preference.batchPairs, r.lora, r.maxPairs]).toEqual([demo.iterations, demo.maxSelected, demo.search.numActions, demo.search.simulations, demo.preference.lr, demo.preference.batchPairs, undefined, undefined]);
  });
});

describe('the ablation table', () => {
  it('mean and sample sd per category and arm, hard pooled over parallel and parallel_multiple', () => {
    const arm = (a: 'itool' | 'dpo', seed: number, cats: Record<string, [number, number]>) => ({ arm: a, seed, start: {}, categories: table(cats), pairs: [10 * seed, 5], steps: 3 * seed, tokens: 0, searchTokens: 100 * seed, seconds: 20 + seed, load: a === 'dpo' && seed === 2 ? null : { start: seed + 0.25, end: seed + 0.5 } });
    const data: SeedAblation[] = [
      { seed: 1, warmup: { categories: table({ simple: [1, 4], parallel: [0, 4], parallel_multiple: [0, 4] }), seconds: 50, copySeconds: null, load: { start: 7.5, end: 10 } }, arms: [arm('itool', 1, { simple: [2, 4], parallel: [1, 4], parallel_multiple: [0, 4] }), arm('dpo', 1, { simple: [1, 4], parallel: [0, 4], parallel_multiple: [0, 4] })] },
      { seed: 2, warmup: { categories: table({ simple: [3, 4], parallel: [1, 4], parallel_multiple: [1, 4] }), seconds: 70, copySeconds: null, load: null }, arms: [arm('itool', 2, { simple: [4, 4], parallel: [3, 4], parallel_multiple: [2, 4] }), arm('dpo', 2, { simple: [3, 4], parallel: [1, 4], parallel_multiple: [1, 4] })] },
    ];
    const s = summarizeAblation(false, [1, 2], ['itool', 'dpo'], data);
    // itool hard: seed 1 (1 + 0)/8 = 0.125, seed 2 (3 + 2)/8 = 0.625: mean 0.375, sd = sqrt(2 · 0.25² / 1)
    expect(s.table.hard.itool.mean).toBeCloseTo(0.375, 12);
    expect(s.table.hard.itool.sd).toBeCloseTo(Math.sqrt(2 * 0.0625), 12);
    // all: seed 1 3/12, seed 2 9/12
    expect(s.table.all.itool.mean).toBeCloseTo(0.5, 12);
    expect(s.table.simple['warm-up'].mean).toBeCloseTo(0.5, 12);
    expect(s.table.parallel.dpo.values).toEqual([0, 0.25]);
    expect(s.cost.itool.pairs.values).toEqual([15, 25]);
    expect(s.cost.dpo.seconds.mean).toBeCloseTo(21.5, 12);
    expect(s.warmupSeconds.mean).toBe(60);
    expect(s.text).toContain('hard');
    // the hard row: warm-up (0 and 2/8) then itool
    expect(s.text).toMatch(/hard\s+12\.5 ± 17\.7\s+37\.5 ± 35\.4/);
    // the load each run was measured under, '?' where none was recorded
    expect(s.text).toContain('seed 1: warm-up 7.5/10.0, itool 1.3/1.5, dpo 1.3/1.5; seed 2: warm-up ?, itool 2.3/2.5, dpo ?');
  });
});

describe('itool ablate --demo end to end (tiny sizes)', () => {
  const deps: DemoDeps = {
    synthesize: (o) => synthesize(o),
    createModel: async (config, o) => createModel(config, { seed: o.seed, device: 'cpu' }),
    loadModel: (dir) => loadModel(dir, { device: 'cpu' }),
  };
  const override = {
    trainSamples: 90,
    testSamples: 12,
    copyStage: undefined,
    vocabSize: 512,
    model: { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1 },
    pipeline: {
      iterations: 2,
      selectRatio: 0.3,
      maxSelected: 4,
      sft: { lr: 5e-3, epochs: 1, batchTokens: 2048, saveEvery: 0, maxLength: 512 },
      preference: { loss: 'simpo', lr: 2e-4, epochs: 1, beta: 2.5, gamma: 0.5, batchPairs: 4, saveEvery: 0 },
      search: { numActions: 2, temperature: 1.0, maxTokens: 12, maxDepth: 2, simulations: 2, rolloutMaxTokens: 16 },
      eval: { maxTokens: 16, batchSize: 12 },
      baseline: true,
    },
  };
  it.skipIf(!!process.env.ITOOL_ASAN)('one warm-up shared by the arms, every arm run, the table written; a second run resumes without redoing a phase (skipped under ASan: compute-heavy)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'itool-ablate-'));
    const old = mkdtempSync(join(tmpdir(), 'itool-ablate-old-'));
    try {
      const lines: string[] = [];
      const s = await runDemoAblation(deps, { out, seeds: [3], quick: true, override, log: (l) => lines.push(l) });
      expect(s.arms).toEqual([...DEMO_ARMS]);
      for (const f of ['ablate.json', 'ablate.txt', 'report.html']) expect(existsSync(join(out, f)), f).toBe(true);
      const seedDir = join(out, 'seed-3');
      expect(readdirSync(seedDir).filter((d) => d.startsWith('arm-')).sort()).toEqual(DEMO_ARMS.map((a) => `arm-${a}`).sort());
      // the warm-up trained once, in seed-3/warmup; no arm trained one
      expect(lines.filter((l) => l.endsWith('warmup: start')).length).toBe(1);
      for (const a of DEMO_ARMS) expect(existsSync(join(seedDir, `arm-${a}`, 'warmup'))).toBe(false);
      const d = s.seedsData[0];
      for (const a of d.arms) {
        const n = Object.values(a.categories).reduce((x, c) => x + c.total, 0);
        expect(n, a.arm).toBe(12);
        expect(a.pairs.length, a.arm).toBe(a.arm === 'no-iteration' ? 1 : 2);
        // the table's numbers are the arm's own
        expect(s.table.all[a.arm].mean).toBeCloseTo(Object.values(a.categories).reduce((x, c) => x + c.correct, 0) / 12, 12);
      }
      // the arms from the warm-up start where the warm-up's evaluation ended; no-warmup from the model before it
      const warm = d.warmup.categories;
      for (const a of d.arms.filter((x) => x.arm !== 'no-warmup')) expect(a.start).toEqual(warm);
      // the reference arm's pairs, when its tiny model finds any, hold whole partial answers (no
      // prefix; the coverage itself is tested in test/search/preset-search.test.ts)
      const refPairs = ['1', '2'].flatMap((i) => readFileSync(join(seedDir, 'arm-reference', `iteration-${i}`, 'pairs.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      for (const p of refPairs) expect(p.prefixIds).toEqual([]);
      const json = JSON.parse(readFileSync(join(out, 'ablate.json'), 'utf8'));
      expect(json.version).toBe(ABLATE_VERSION);
      expect(ABLATE_VERSION).toBe(2);
      // resume: every phase done earlier, the same table
      const again: string[] = [];
      const s2 = await runDemoAblation(deps, { out, seeds: [3], quick: true, override, log: (l) => again.push(l) });
      expect(again.some((l) => / start$/.test(l))).toBe(false);
      expect(s2.table).toEqual(s.table);
      // the loads are those of the run that did the work, read back from each run directory
      expect(existsSync(join(seedDir, 'warmup', 'load.json'))).toBe(true);
      for (const a of DEMO_ARMS) expect(existsSync(join(seedDir, `arm-${a}`, 'load.json'))).toBe(true);
      expect(s2.seedsData[0].warmup.load).toEqual(s.seedsData[0].warmup.load);
      expect(s2.seedsData[0].arms.map((a) => a.load)).toEqual(s.seedsData[0].arms.map((a) => a.load));
      expect(s.seedsData[0].arms.every((a) => a.load && a.load.start >= 0 && a.load.end >= 0)).toBe(true);
      // another seed list, and another version's directory, are refused before any work
      await expect(runDemoAblation(deps, { out, seeds: [3, 4], quick: true, override })).rejects.toThrow(/use another --out/);
      writeFileSync(join(old, 'demo.json'), JSON.stringify({ version: 1, kind: 'ablate', quick: true, seeds: [3] }));
      await expect(runDemoAblation(deps, { out: old, seeds: [3], quick: true, override })).rejects.toThrow(/demo version 1/);
      // a directory of the ablation's version 1 (its reference arm selected by the answer's
      // perplexity): refused, its arms are not this version's
      writeFileSync(join(old, 'demo.json'), JSON.stringify({ version: DEMO_VERSION, kind: 'ablate', quick: true, seeds: [3], settings: fnv1a(JSON.stringify({ ablate: 1, arms: [...DEMO_ARMS], override })) }));
      await expect(runDemoAblation(deps, { out: old, seeds: [3], quick: true, override })).rejects.toThrow(/other sizes or settings/);
    } finally {
      rmSync(out, { recursive: true, force: true });
      rmSync(old, { recursive: true, force: true });
    }
  }, 300_000);

  it('bad input to the command is refused before any work', async () => {
    const out = join(tmpdir(), 'itool-ablate-never');
    let r = await itool(['ablate', '--demo', '--model', 'x', '--out', out]);
    expect(r.err).toMatch(/--demo runs on the embedded default: give no --model or --data/);
    r = await itool(['ablate', '--demo', '--only', 'bogus', '--out', out]);
    expect(r.err).toMatch(/unknown arm 'bogus'; known arms: reference, itool, no-search, no-iteration, dpo, no-warmup/);
    r = await itool(['ablate', '--demo', '--seeds', '1,1', '--out', out]);
    expect(r.err).toMatch(/seed 1 is given twice/);
    r = await itool(['ablate', '--demo', '--preset', 'reference', '--lr', '1e-3', '--out', out]);
    expect(r.err).toMatch(/--demo fixes every arm's settings; not used with it: --preset, --lr/);
    r = await itool(['ablate', '--out', out]);
    expect(r.err).toMatch(/give --model and --data \(or --demo/);
    expect(existsSync(out)).toBe(false);
  });
});
