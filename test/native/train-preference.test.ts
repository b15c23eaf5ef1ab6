// Preference training on the CPU engine with the native losses: fixed pairs, margin and
// pair accuracy rise; DPO's reference sums come from the model before training.
import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { createModel } from '../../src/engine/model.js';
import type { PreferencePair } from '../../src/train/pairs.js';
import { pairLogprobSums, trainPreference } from '../../src/train/preference.js';

const config = tinyConfig('Qwen2ForCausalLM', { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2 });

function fixedPairs(): PreferencePair[] {
  const out: PreferencePair[] = [];
  for (let i = 0; i < 12; i++) {
    const prompt = [3 + (i % 6), 10 + ((i * 5) % 9), 30];
    const prefix = i % 3 === 0 ? [] : [40 + (i % 4)];
    // chosen: a tool-call-like step; rejected: a different continuation of another length
    out.push({ promptIds: prompt, prefixIds: prefix, chosenIds: [50 + (i % 5), 56, 57], rejectedIds: [20 + (i % 7), 21, 22, 23 + (i % 2)] });
  }
  return out;
}

function stats(ps: PreferencePair[], s: { chosen: Float64Array; rejected: Float64Array }) {
  let acc = 0;
  let margin = 0;
  ps.forEach((p, i) => {
    const d = s.chosen[i]! / p.chosenIds.length - s.rejected[i]! / p.rejectedIds.length;
    margin += d / ps.length;
    if (d > 0) acc += 1 / ps.length;
  });
  return { acc, margin };
}

describe('preference training on the CPU engine', () => {
  for (const loss of ['simpo', 'dpo', 'ipo', 'orpo'] as const) {
    it(`${loss} raises the margin and the pair accuracy on fixed pairs`, async () => {
      const m = createModel(config, { seed: 21 });
      try {
        const ps = fixedPairs();
        const before = stats(ps, await pairLogprobSums(m, ps));
        const metrics: Array<{ margin: number; accuracy: number; loss: number }> = [];
        const res = await trainPreference(
          m,
          ps,
          { loss, lr: 3e-3, epochs: 8, batchPairs: 4, batchTokens: 64, progress: false, beta: loss === 'simpo' ? 2.5 : 0.5, maxGradNorm: 1 },
          { onStep: (s) => void metrics.push({ margin: s.margin!, accuracy: s.accuracy!, loss: s.loss }) },
        );
        const after = stats(ps, await pairLogprobSums(m, ps));
        process.stdout.write(`${loss}: mean per-token margin ${before.margin.toFixed(3)} -> ${after.margin.toFixed(3)}, accuracy ${before.acc.toFixed(2)} -> ${after.acc.toFixed(2)}, loss ${metrics[0]!.loss.toFixed(3)} -> ${metrics.at(-1)!.loss.toFixed(3)}\n`);
        expect(res.skipped).toBe(0);
        // IPO regresses the sum-level margin to 1/(2 beta) = 1 (per token about 0.25 here); the others push it further
        expect(after.margin).toBeGreaterThan(before.margin + (loss === 'ipo' ? 0.2 : 1));
        expect(after.acc).toBe(1);
        expect(metrics.at(-1)!.accuracy).toBe(1);
        expect(metrics.at(-1)!.margin).toBeGreaterThan(metrics[0]!.margin);
        expect(metrics.at(-1)!.loss).toBeLessThan(metrics[0]!.loss);
        if (loss === 'dpo' || loss === 'ipo') expect(Math.abs(metrics[0]!.margin)).toBeLessThan(1e-6); // policy = reference at the first step
      } finally {
        m.dispose();
      }
    });
  }
});
