// Micro-batches and recompute change how a step runs, never what it computes: the parameters after
// one step equal the plain step's, bitwise where the split is the same, within f32 rounding otherwise.
import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { createModel, type NativeModel } from '../../src/engine/model.js';
import { nativePreferenceLoss } from '../../src/train/losses.js';
import { preferenceOptions, sftOptions } from '../../src/train/options.js';
import { packGroups, sftSequence, type TrainSequence } from '../../src/train/pack.js';
import { pairSequences, planPreference, preferenceForwardBackward } from '../../src/train/preference.js';
import { planSft, sftForwardBackward, type RenderedSample } from '../../src/train/sft.js';
import { Rng } from '../../src/train/rng.js';

const cfg = tinyConfig('Qwen2ForCausalLM', { vocabSize: 96, numLayers: 3 });

function ids(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.int(cfg.vocabSize));
}

function samples(n: number, seed: number): TrainSequence[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => {
    const len = 9 + ((i * 7) % 23);
    const t = ids(rng, len);
    return sftSequence({ ids: t, mask: t.map((_, j) => (j >= len / 3 ? 1 : 0)) });
  });
}

function params(m: NativeModel): Map<string, Float32Array> {
  return new Map(m.paramNames().map((n) => [n, m.getParam(n)]));
}
function grads(m: NativeModel): Map<string, Float32Array> {
  return new Map(m.paramNames().map((n) => [n, m.getGrad(n)]));
}

/** largest |a - b| over every tensor, relative to the largest |b| */
function relDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0, s = 0;
  for (const [k, x] of a) {
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) {
      d = Math.max(d, Math.abs(x[i]! - y[i]!));
      s = Math.max(s, Math.abs(y[i]!));
    }
  }
  return d / s;
}
function bitwise(a: Map<string, Float32Array>, b: Map<string, Float32Array>): boolean {
  for (const [k, x] of a) {
    const y = b.get(k)!;
    if (Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength)) !== 0) return false;
  }
  return true;
}

async function sftStep(micro: TrainSequence[][], recompute = false, lora = false): Promise<{ g: Map<string, Float32Array>; p: Map<string, Float32Array>; loss: number }> {
  const m = createModel(cfg, { seed: 3, recompute });
  try {
    if (lora) m.addLora({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 5 });
    m.zeroGrad();
    const r = await sftForwardBackward(m, micro);
    const g = grads(m);
    await m.step({ lr: 1e-3, maxGradNorm: 1 });
    return { g, p: params(m), loss: r.loss };
  } finally {
    m.dispose();
  }
}

describe('micro-batches and recompute (tiny Qwen2 model, CPU)', () => {
  const seqs = samples(10, 11);
  const lengths = seqs.map((s) => s.tokens.length);
  const order = seqs.map((_, i) => i);
  const T = lengths.reduce((a, b) => a + b, 0);

  it('SFT: splitting a step into micro-batches keeps its loss normalisation: gradients and parameters within f32 rounding', async () => {
    const whole = await sftStep([seqs]);
    for (const budget of [T, 64, 40]) {
      const micro = packGroups(lengths, order, budget).map((g) => g.map((i) => seqs[i]!));
      const split = await sftStep(micro);
      expect(Math.abs(split.loss - whole.loss) / whole.loss).toBeLessThan(1e-6);
      expect(relDiff(split.g, whole.g)).toBeLessThan(1e-5);
      expect(relDiff(split.p, whole.p)).toBeLessThan(1e-5);
      if (budget === T) expect(bitwise(split.p, whole.p)).toBe(true); // the same split: bitwise
      else expect(micro.length).toBeGreaterThan(1);
    }
  });

  it('SFT: the same split run twice, and recompute on vs off, give bitwise the same parameters', async () => {
    const micro = packGroups(lengths, order, 64).map((g) => g.map((i) => seqs[i]!));
    const a = await sftStep(micro);
    const b = await sftStep(micro);
    expect(bitwise(a.p, b.p)).toBe(true);
    const rc = await sftStep(micro, true);
    expect(bitwise(rc.g, a.g)).toBe(true);
    expect(bitwise(rc.p, a.p)).toBe(true);
  });

  it('SFT with LoRA: split and recomputed steps match the plain one', async () => {
    const whole = await sftStep([seqs], false, true);
    const micro = packGroups(lengths, order, 48).map((g) => g.map((i) => seqs[i]!));
    const split = await sftStep(micro, true, true);
    expect(relDiff(split.g, whole.g)).toBeLessThan(1e-5);
    expect(relDiff(split.p, whole.p)).toBeLessThan(1e-5);
  });

  it('SimPO: whole pairs per micro-batch give the unsplit step within f32 rounding', async () => {
    const rng = new Rng(7);
    const pairs = Array.from({ length: 6 }, (_, i) => ({ promptIds: ids(rng, 6 + i), prefixIds: ids(rng, 3), chosenIds: ids(rng, 4 + (i % 3)), rejectedIds: ids(rng, 5) }));
    const ps = pairs.map(pairSequences);
    const o = preferenceOptions({ loss: 'simpo' });
    const run = async (micro: number[][]) => {
      const m = createModel(cfg, { seed: 3 });
      try {
        m.zeroGrad();
        const s = await preferenceForwardBackward(m, micro, ps, o, nativePreferenceLoss, null);
        const g = grads(m);
        await m.step({ lr: 1e-3, maxGradNorm: 1 });
        return { g, p: params(m), loss: s.loss };
      } finally {
        m.dispose();
      }
    };
    const whole = await run([[0, 1, 2, 3, 4, 5]]);
    const split = await run([[0, 1], [2], [3, 4, 5]]);
    expect(Math.abs(split.loss - whole.loss)).toBeLessThan(1e-6 * Math.abs(whole.loss) + 1e-7);
    expect(relDiff(split.g, whole.g)).toBeLessThan(1e-5);
    expect(relDiff(split.p, whole.p)).toBeLessThan(1e-5);
    const same = await run([[0, 1, 2, 3, 4, 5]]);
    expect(bitwise(same.p, whole.p)).toBe(true);
  });

  it('planSft / planPreference: microTokens splits each step\'s micro-batches, keeping its samples, the step count and the fingerprint', () => {
    const data: RenderedSample[] = seqs.map((s, i) => ({ ids: Array.from(s.tokens), mask: Array.from(s.targets, (t, j) => (j === 0 ? 0 : s.targets[j - 1]! >= 0 ? 1 : 0)), id: `s${i}` }));
    const a = planSft(data, sftOptions({ batchTokens: 128, gradAccum: 2, curriculum: false, epochs: 2 }));
    const b = planSft(data, sftOptions({ batchTokens: 128, gradAccum: 2, curriculum: false, epochs: 2, microTokens: 40 }));
    expect(b.steps.length).toBe(a.steps.length);
    expect(b.fingerprint).toBe(a.fingerprint);
    for (let k = 0; k < a.steps.length; k++) {
      expect(b.steps[k]!.flat()).toEqual(a.steps[k]!.flat()); // same samples, same order
      for (const mb of b.steps[k]!) if (mb.length > 1) expect(mb.reduce((n, i) => n + b.sequences[i]!.tokens.length, 0)).toBeLessThanOrEqual(40);
    }
    expect(b.steps.some((st, k) => st.length > a.steps[k]!.length)).toBe(true);
    const rng = new Rng(2);
    const pairs = Array.from({ length: 9 }, () => ({ promptIds: ids(rng, 8), prefixIds: [], chosenIds: ids(rng, 3), rejectedIds: ids(rng, 4) }));
    const pa = planPreference(pairs, preferenceOptions({ batchPairs: 4 }));
    const pb = planPreference(pairs, preferenceOptions({ batchPairs: 4, microTokens: 30 }));
    expect(pb.fingerprint).toBe(pa.fingerprint);
    expect(pb.steps.map((s) => s.flat())).toEqual(pa.steps.map((s) => s.flat()));
    expect(pb.steps[0]!.length).toBeGreaterThan(pa.steps[0]!.length);
  });
});
