// Training phases one after another on the same model object (the pipeline's warm-up SFT, then
// each iteration's preference phase) against the same phases with the model saved and loaded
// in between (a run resumed at a phase boundary, or a new process): every phase starts from
// fresh AdamW moments and step counter, so both give bitwise the same weights.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { createModel, loadModel } from '../../src/engine/model.js';
import type { Model } from '../../src/engine/model-types.js';
import type { PreferencePair } from '../../src/train/pairs.js';
import { pairLogprobSums, trainPreference } from '../../src/train/preference.js';
import { trainSft, type RenderedSample } from '../../src/train/sft.js';
import { BigramModel } from '../train/fake-model.js';

const config = tinyConfig('LlamaForCausalLM', { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2 });
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** prompt tokens then a masked answer, 16 samples */
function samples(V = 64): RenderedSample[] {
  return Array.from({ length: 16 }, (_, i) => ({
    id: `s${i}`,
    category: 'simple',
    ids: [1 + (i % 7), 9 + ((i * 3) % 11), 30, 40 + (i % 5), 47 + (i % 3), (V - 1 - (i % 4)) % V],
    mask: [0, 0, 0, 1, 1, 1],
  }));
}

function pairs(): PreferencePair[] {
  return Array.from({ length: 12 }, (_, i) => ({
    promptIds: [3 + (i % 6), 10 + ((i * 5) % 9), 30],
    prefixIds: i % 3 === 0 ? [] : [40 + (i % 4)],
    chosenIds: [50 + (i % 5), 56, 57],
    rejectedIds: [20 + (i % 7), 21, 22],
  }));
}

const sftOpts = { lr: 2e-2, epochs: 3, batchTokens: 24, warmupRatio: 0, curriculum: false, progress: false, maxGradNorm: 1 } as const;
const prefOpts = { loss: 'simpo', lr: 5e-3, epochs: 2, batchPairs: 4, batchTokens: 64, progress: false, maxGradNorm: 1 } as const;

/** the model's log-probability sums of fixed pairs: they stand for its weights (bitwise) */
async function fingerprint(m: Model): Promise<number[]> {
  const r = await pairLogprobSums(m, pairs());
  return [...r.chosen, ...r.rejected];
}

describe('training phases start from fresh optimizer state', () => {
  it('SFT then SimPO on one model object = SFT, save, load, SimPO (bitwise)', async () => {
    const d = mkdtempSync(join(tmpdir(), 'itool-phases-'));
    dirs.push(d);
    const a = createModel(config, { seed: 21 });
    let inProcess: number[];
    let reloaded: number[];
    let sftOnly: number[];
    try {
      await trainSft(a, samples(), null, sftOpts);
      await a.save(join(d, 'after-sft'));
      sftOnly = await fingerprint(a);
      await trainPreference(a, pairs(), prefOpts);
      inProcess = await fingerprint(a);
    } finally {
      a.dispose();
    }
    const b = await loadModel(join(d, 'after-sft'));
    try {
      await trainPreference(b, pairs(), prefOpts);
      reloaded = await fingerprint(b);
    } finally {
      b.dispose();
    }
    // the preference phase changed the model, and did so the same way in both
    expect(inProcess).not.toEqual(sftOnly);
    expect(inProcess).toEqual(reloaded);
  });

  it('a second SFT phase on the stand-in starts its AdamW step counter at 1 with zero moments', async () => {
    const m = new BigramModel(64, 3);
    await trainSft(m, samples(), null, sftOpts);
    expect(m.t).toBeGreaterThan(1);
    const fresh = new BigramModel(64, 3);
    fresh.w = Float64Array.from(m.w);
    const opts = { ...sftOpts, epochs: 1 };
    await trainSft(m, samples(), null, opts);
    await trainSft(fresh, samples(), null, opts);
    expect(m.t).toBe(fresh.t);
    expect(Array.from(m.w)).toEqual(Array.from(fresh.w));
  });
});
