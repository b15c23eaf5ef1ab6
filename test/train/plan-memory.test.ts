// The planner's byte counts against the engine's own counters: the replay of the model's
// allocations (src/train/plan-memory.ts) must give the bytes the CPU allocator hands out
// (allocatorStats().peak, counted by the engine) and the model's buffers by category
// (model.memory()), to the byte, on tiny models.
import { describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { allocatorStats, resetAllocatorPeak } from '../../src/engine/engine.js';
import { createModel, type NativeModel } from '../../src/engine/model.js';
import type { ModelConfig } from '../../src/engine/model-types.js';
import { nativePreferenceLoss } from '../../src/train/losses.js';
import { preferenceOptions } from '../../src/train/options.js';
import { packSequences, sftSequence, type TrainSequence } from '../../src/train/pack.js';
import { allocSize, baseElements, loraElements, ModelReplay, type LoraShape, type WeightsDtype } from '../../src/train/plan-memory.js';
import { pairSequences, preferenceForwardBackward } from '../../src/train/preference.js';
import { planMemory } from '../../src/train/plan.js';
import { planLimits } from '../../src/train/plan-cli.js';
import { Rng } from '../../src/train/rng.js';
import { sftForwardBackward } from '../../src/train/sft.js';

/** the engine's block cache cap (its size classes apply only when the cache is on) */
const ENGINE_CACHE_CAP = process.env.ITOOL_CPU_CACHE_MB !== undefined ? Number(process.env.ITOOL_CPU_CACHE_MB) * 2 ** 20 : 2 ** 30;

const LORA: LoraShape = { rank: 4, targets: ['q_proj', 'v_proj', 'o_proj', 'down_proj'] };

function seqs(V: number, lengths: number[], seed: number): TrainSequence[] {
  const rng = new Rng(seed);
  return lengths.map((n) => {
    const ids = Array.from({ length: n }, () => rng.int(V));
    return sftSequence({ ids, mask: ids.map((_, i) => (i >= n / 2 ? 1 : 0)) });
  });
}

interface Case {
  name: string;
  config: ModelConfig;
  dtype: WeightsDtype;
  lora: LoraShape | null;
  recompute: boolean;
}

const cases: Case[] = [
  { name: 'Llama, full, f32', config: tinyConfig('LlamaForCausalLM', { vocabSize: 200, numLayers: 2 }), dtype: 'f32', lora: null, recompute: false },
  { name: 'Qwen2 (bias), LoRA, bf16 frozen weights', config: tinyConfig('Qwen2ForCausalLM', { vocabSize: 300, hiddenSize: 64, intermediateSize: 96, numLayers: 3 }), dtype: 'bf16', lora: LORA, recompute: false },
  { name: 'Qwen3 (qk-norm), LoRA, f32, recompute', config: tinyConfig('Qwen3ForCausalLM', { vocabSize: 256, numLayers: 2 }), dtype: 'f32', lora: LORA, recompute: true },
  { name: 'Llama, full, recompute, 64 KiB+ blocks', config: tinyConfig('LlamaForCausalLM', { vocabSize: 4096, hiddenSize: 128, intermediateSize: 256, numHeads: 4, numKvHeads: 2, headDim: 32, numLayers: 2 }), dtype: 'f32', lora: null, recompute: true },
];

function make(c: Case): NativeModel {
  const m = createModel(c.config, { seed: 2, recompute: c.recompute, dtype: c.dtype });
  if (c.lora) m.addLora({ rank: c.lora.rank, alpha: 8, targetModules: c.lora.targets as never, seed: 3 });
  return m;
}

/** runs f on the engine and on the replay; returns [engine peak over the baseline, replay peak] */
async function both(c: Case, f: (m: NativeModel) => Promise<void>, g: (r: ModelReplay) => void, logprobRows = 0): Promise<{ engine: number; replay: number; m: ReturnType<NativeModel['memory']>; r: ModelReplay }> {
  resetAllocatorPeak();
  const before = allocatorStats().current;
  const m = make(c);
  if (logprobRows > 0) m.setMemoryLimits({ logprobChunkRows: logprobRows });
  const r = new ModelReplay({ config: c.config, weightsDtype: c.dtype, lora: c.lora }, ENGINE_CACHE_CAP, logprobRows);
  try {
    await f(m);
    g(r);
    return { engine: allocatorStats().peak - before, replay: r.a.peakLive, m: m.memory(), r };
  } finally {
    m.dispose();
  }
}

describe('the plan\'s byte counts against the engine\'s counters (tiny models, CPU)', () => {
  it('allocSize follows the allocator: 64-byte rounding, then size classes at most 25% above from 64 KiB', () => {
    expect(allocSize(1)).toBe(64);
    expect(allocSize(65)).toBe(128);
    expect(allocSize(65535)).toBe(65536);
    expect(allocSize(65537)).toBe(65536 + 16384);
    expect(allocSize(100 << 20)).toBe(112 << 20);
    expect(allocSize(2 ** 30 + 1)).toBe(2 ** 30 + 2 ** 28);
  });

  for (const c of cases) {
    it(`${c.name}: weights, SFT steps, a preference step, scoring and generation, to the byte`, async () => {
      const V = c.config.vocabSize;
      const batch = seqs(V, [37, 80, 15, 64], 5);
      const lengths = batch.map((s) => s.tokens.length);
      // SFT: two steps (the first allocates the gradients and AdamW moments)
      const sft = await both(
        c,
        async (m) => {
          for (let k = 0; k < 2; k++) {
            m.zeroGrad();
            await sftForwardBackward(m, [batch]);
            await m.step({ lr: 1e-3 });
          }
        },
        (r) => {
          for (let k = 0; k < 2; k++) {
            r.trainForwardBackward(lengths, c.recompute, true);
            r.step();
          }
        },
      );
      expect(sft.engine).toBe(sft.replay);
      // model.memory() counts its buffers' own bytes (before the allocator's rounding)
      const base = baseElements(c.config).numel;
      const trainable = c.lora ? loraElements(c.config, c.lora).numel : base;
      expect(sft.m.weights).toBe(base * (c.dtype === 'bf16' ? 2 : 4));
      expect(sft.m.adapters).toBe(c.lora ? trainable * 4 : 0);
      expect(sft.m.gradients).toBe(trainable * 4);
      expect(sft.m.optimizer).toBe(2 * trainable * 4);
      // the replay counts them as the allocator does
      const on = ENGINE_CACHE_CAP > 0;
      expect(sft.r.a.byCat.weights).toBe(allocSize(sft.m.weights, on) + allocSize((c.config.headDim / 2) * 4, on));
      expect(sft.r.a.byCat.adapters).toBe(c.lora ? allocSize(sft.m.adapters, on) : 0);
      expect(sft.r.a.byCat.gradients).toBe(allocSize(sft.m.gradients, on));
      expect(sft.r.a.byCat.optimizer).toBe(2 * allocSize(sft.m.optimizer / 2, on));
      // preference: the LM head runs again in backward
      const rng = new Rng(8);
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const ps = [0, 1, 2].map((i) => pairSequences({ promptIds: ids(20 + 7 * i), prefixIds: ids(3), chosenIds: ids(5), rejectedIds: ids(9) }));
      const pb = packSequences(ps.flatMap((p) => [p.chosen, p.rejected]));
      const pref = await both(
        c,
        async (m) => {
          m.zeroGrad();
          await preferenceForwardBackward(m, [[0, 1, 2]], ps, preferenceOptions({ loss: 'simpo' }), nativePreferenceLoss, null);
          await m.step({ lr: 1e-3 });
        },
        (r) => {
          r.trainForwardBackward(Array.from(pb.cuSeqlens.subarray(1), (e, i) => e - pb.cuSeqlens[i]!), c.recompute, false);
          r.step();
        },
      );
      expect(pref.engine).toBe(pref.replay);
      // gradient-free scoring
      const score = await both(
        c,
        async (m) => void (await m.logprobs(packSequences(batch))),
        (r) => r.inferenceForward(lengths),
      );
      expect(score.engine).toBe(score.replay);
      // generation: a prompt, forks, batched decoding (the KV pool grows by doubling)
      const gen = await both(
        c,
        async (m) => {
          const root = await m.cache(ids(40));
          const forks = [0, 1, 2, 3, 4].map(() => root.fork());
          for (let t = 0; t < 20; t++) await m.sampleNext(forks, { temperature: 1, seed: 4 });
          for (const f of [root, ...forks]) f.dispose();
        },
        (r) => {
          r.reservePool(Math.ceil(40 / 16));
          r.decode(1, 40, 1);
          for (let b = 0; b < 5; b++) r.forkHidden();
          for (let t = 0; t < 20; t++) {
            if (t > 0) {
              // the token sampled last is written: blocks for 40 + t tokens (the shared partial block copied on write)
              r.reservePool(Math.ceil(40 / 16) + 5 * (Math.ceil((40 + t) / 16) - Math.floor(40 / 16)));
              r.decode(5, 1);
            }
            r.sampleLogits(5);
          }
          r.disposeCaches();
        },
      );
      expect(gen.m.kvCache).toBe(gen.r.a.byCat.kvCache);
      expect(gen.engine).toBe(gen.replay);
    });
  }

  it('the knobs the plan sets: a 16-row log-prob chunk replayed to the byte; the planned KV cap holds the planned generation', async () => {
    for (const c of [cases[0]!, cases[3]!]) {
      const V = c.config.vocabSize;
      const batch = seqs(V, [37, 80, 15, 64], 6);
      const lengths = batch.map((s) => s.tokens.length);
      const sft = await both(
        c,
        async (m) => {
          m.zeroGrad();
          await sftForwardBackward(m, [batch]);
          await m.step({ lr: 1e-3 });
          await m.logprobs(packSequences(batch));
        },
        (r) => {
          r.trainForwardBackward(lengths, c.recompute, true);
          r.step();
          r.inferenceForward(lengths);
        },
        16,
      );
      expect(sft.engine, c.name).toBe(sft.replay);
    }
    // a plan with no headroom caps the pool at what its generation needs; the engine runs it under that cap
    const c = cases[0]!;
    const req = {
      config: c.config, checkpointDtype: null, lora: null, weightsDtype: 'f32' as const, recompute: false, microTokens: 0, batchTokens: 40, maxSequence: 40,
      workloads: { generate: { sequences: 3, promptTokens: 40, newTokens: 30 } }, budget: 2 ** 40, runtime: 0, load: 'random' as const,
    };
    const wide = planMemory(req);
    const tight = planMemory({ ...req, budget: wide.peak });
    expect(tight.fits).toBe(true);
    const m = createModel(c.config, { seed: 2, limits: planLimits(tight) });
    try {
      const caches = await Promise.all([0, 1, 2].map((i) => m.cache(Array.from({ length: 40 }, (_, j) => (i * 13 + j * 7) % c.config.vocabSize))));
      await m.generate(caches, { maxTokens: 30, temperature: 0 });
      const lim = m.memoryLimits();
      expect(lim.kvCacheBlocks).toBe(tight.choices.kvCacheBlocks);
      expect(lim.kvPoolBlocks).toBeLessThanOrEqual(lim.kvCacheBlocks);
      // one more sequence of the same length does not fit under the tight cap
      const more = await m.cache(Array.from({ length: 40 }, (_, j) => j % c.config.vocabSize)).catch((e: Error) => e);
      if (!(more instanceof Error)) await expect(m.generate([more], { maxTokens: 30, temperature: 0 })).rejects.toThrow(/KV cache: this call needs/);
      caches.forEach((x) => x.dispose());
    } finally {
      m.dispose();
    }
    // headroom goes to the pool: the cap is the headroom in blocks (a growth holds both pools)
    const per = 2 * c.config.numLayers * 16 * c.config.numKvHeads * c.config.headDim * 4;
    const roomy = planMemory({ ...req, budget: wide.peak + 1000 * per });
    expect(roomy.choices.kvCacheBlocks).toBe(1000);
  });
});
