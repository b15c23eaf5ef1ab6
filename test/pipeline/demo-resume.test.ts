// A resumed demo reports the whole demo's seconds: what earlier processes finished (the copy
// stage, the pipeline's phases) counts in results.json's `seconds`, not only the seconds of the
// process that resumed it. secondsDoneEarlier on a hand-written directory, then a tiny demo run
// twice into one directory (the second run finds every phase done).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { synthesize } from '../../src/data/synth.js';
import { createModel, loadModel } from '../../src/engine/model.js';
import { runDemo, type DemoDeps } from '../../src/pipeline/demo.js';
import { secondsDoneEarlier } from '../../src/pipeline/demo-measures.js';

describe('secondsDoneEarlier', () => {
  it('adds the copy stage stamp and every finished phase of state.json; 0 for a new directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'itool-demo-secs-'));
    try {
      expect(secondsDoneEarlier(dir)).toBe(0);
      mkdirSync(join(dir, 'copy-model'));
      writeFileSync(join(dir, 'copy-model', 'copy-stage.json'), JSON.stringify({ steps: 10, tokens: 100, finalLoss: 0.1, seconds: 125.25 }));
      expect(secondsDoneEarlier(dir)).toBe(125.25);
      mkdirSync(join(dir, 'run'));
      const phases = [
        { name: 'warmup', finishedAt: '2026-12-06T00:00:00Z', seconds: 136.5, result: null },
        { name: 'eval-0', finishedAt: '2026-12-06T00:00:01Z', seconds: 2.25, result: null },
        { name: 'iteration-1/select', finishedAt: '2026-12-06T00:00:02Z', seconds: 20, result: null },
      ];
      writeFileSync(join(dir, 'run', 'state.json'), JSON.stringify({ version: 1, fingerprint: 'x', phases, model: null }));
      expect(secondsDoneEarlier(dir)).toBeCloseTo(125.25 + 136.5 + 2.25 + 20, 10);
      writeFileSync(join(dir, 'run', 'state.json'), '{ not json');
      expect(() => secondsDoneEarlier(dir)).toThrow(/state\.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a resumed demo', () => {
  const deps: DemoDeps = {
    synthesize: (o) => synthesize(o),
    createModel: async (config, o) => createModel(config, { seed: o.seed, device: 'cpu' }),
    loadModel: (dir) => loadModel(dir, { device: 'cpu' }),
  };
  const override = {
    trainSamples: 60,
    testSamples: 12,
    copyStage: { epochs: 1, lr: 5e-3, batchTokens: 2048, maxSteps: 3 },
    vocabSize: 512,
    model: { hiddenSize: 32, intermediateSize: 64, numLayers: 1, numHeads: 2, numKvHeads: 1 },
    pipeline: {
      iterations: 1,
      selectRatio: 0.3,
      maxSelected: 3,
      sft: { lr: 5e-3, epochs: 1, batchTokens: 2048, saveEvery: 0, maxLength: 512 },
      preference: { loss: 'simpo', lr: 2e-4, epochs: 1, beta: 2.5, gamma: 0.5, batchPairs: 4, saveEvery: 0 },
      search: { numActions: 2, temperature: 1.0, maxTokens: 12, maxDepth: 2, simulations: 2, rolloutMaxTokens: 16 },
      eval: { maxTokens: 16, batchSize: 12 },
      baseline: true,
    },
  };
  it.skipIf(!!process.env.ITOOL_ASAN)('reports the seconds of the phases earlier processes finished in its total (skipped under ASan: compute-heavy)', async () => {
    const out = mkdtempSync(join(tmpdir(), 'itool-demo-resume-'));
    try {
      const first = (await runDemo(deps, { out, seed: 2, quick: true, override })).results;
      const done = Object.entries(first.phases).filter(([p]) => p !== 'measures');
      expect(done.map(([p]) => p)).toContain('copy-stage');
      expect(done.map(([p]) => p)).toContain('warmup');
      const doneSum = done.reduce((a, [, s]) => a + s, 0);
      // a fresh run: its total holds its phases
      expect(first.seconds).toBeGreaterThanOrEqual(doneSum + first.phases.measures - 0.5);

      // an earlier process whose copy stage took 1000 s (as its stamp records): the resumed total must hold it
      const stamp = join(out, 'copy-model', 'copy-stage.json');
      writeFileSync(stamp, JSON.stringify({ ...JSON.parse(readFileSync(stamp, 'utf8')), seconds: 1000 }));
      const earlier = secondsDoneEarlier(out);
      expect(earlier).toBeCloseTo(1000 + doneSum - first.phases['copy-stage'], 0);

      const lines: string[] = [];
      const t0 = performance.now();
      const second = (await runDemo(deps, { out, seed: 2, quick: true, override, log: (l) => lines.push(l) })).results;
      const wall = (performance.now() - t0) / 1000;
      // nothing was redone: every phase was skipped, the phase seconds are the first run's
      expect(lines.some((l) => l.endsWith('warmup: start'))).toBe(false);
      for (const [p, s] of done) expect(second.phases[p], p).toBe(p === 'copy-stage' ? 1000 : s);
      // the total: the earlier phases plus this process's wall time, which holds its measures
      expect(second.seconds).toBeGreaterThanOrEqual(earlier + second.phases.measures - 0.05);
      expect(second.seconds).toBeLessThanOrEqual(earlier + wall);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
