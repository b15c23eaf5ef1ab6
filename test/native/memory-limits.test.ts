// The engine knobs the memory plan sets (issue 19): the KV pool's cap in blocks and the fused
// log-prob op's chunk rows (model.setMemoryLimits, loadModel/createModel's `limits`). The cap
// bounds the pool's bytes (counted by hand: 2 x layers x blocks x blockSize x kvHeads x headDim x
// 4) and a call past it is refused with an error that leaves the caches as they were; the chunk
// changes the scratch, not the log-probabilities (float64 reference) or the gradients.
import { describe, expect, it } from 'vitest';
import { allocatorStats, createModel, resetAllocatorPeak, tinyConfig } from '../../src/engine/index.js';
import { forward64, logprobs64 } from '../reference/model64.js';
import { batchOf, maxRel } from './model-helpers.js';

describe('KV pool cap (kvCacheBlocks)', () => {
  const cfg = tinyConfig('LlamaForCausalLM');
  const prompt = (n: number, from = 3) => Array.from({ length: n }, (_, i) => (from + i * 7) % cfg.vocabSize);

  it('bounds the pool; a call past it is refused with both numbers and the caches are left as they were', async () => {
    const m = createModel(cfg, { seed: 1, limits: { kvCacheBlocks: 4 } });
    try {
      expect(m.memoryLimits()).toMatchObject({ kvCacheBlocks: 4, logprobChunkRows: 0 });
      const bs = m.memoryLimits().kvBlockSize;
      const perBlock = 2 * cfg.numLayers * bs * cfg.numKvHeads * cfg.headDim * 4;
      const c = await m.cache(prompt(2 * bs + 8)); // 3 blocks, the last one partly filled
      // without the cap the pool's first growth takes 16 blocks
      expect(m.memoryLimits().kvPoolBlocks).toBe(4);
      expect(m.memory().kvCache).toBe(4 * perBlock);
      // a fork's first token copies the shared partial block: the 4th block, exactly the cap
      const a = c.fork();
      const ga = await m.generate([a], { maxTokens: 2, temperature: 0 });
      expect(ga[0]!.tokens.length).toBe(2);
      // another fork needs a 5th
      const b = c.fork();
      const lenB = b.length;
      await expect(m.generate([b], { maxTokens: 2, temperature: 0 })).rejects.toThrow(
        new RegExp(`KV cache: this call needs 1 more blocks of ${bs} tokens \\(${perBlock} bytes\\) with 4 of the pool's cap of 4 blocks \\(${4 * perBlock} bytes\\) in use`),
      );
      // a new cache of 2 blocks: refused too, before anything is written
      await expect(m.cache(prompt(bs + 1))).rejects.toThrow(/KV cache: this call needs 2 more blocks/);
      await expect(m.extend(c, prompt(bs))).rejects.toThrow(/the pool's cap of 4 blocks/);
      expect(c.length).toBe(2 * bs + 8); // the refused extend took nothing
      expect(m.poolInfo().blocksInUse).toBe(4);
      expect(m.memory().kvCache).toBe(4 * perBlock);
      // with room made (a disposed), b goes on: the same greedy tokens as a had
      a.dispose();
      expect(b.length).toBeGreaterThanOrEqual(lenB);
      b.truncate(lenB);
      const gb = await m.generate([b], { maxTokens: 2, temperature: 0 });
      expect(gb[0]!.tokens).toEqual(ga[0]!.tokens);
      // raised, the pool grows past 4 again
      m.setMemoryLimits({ kvCacheBlocks: 0 });
      const big = await m.cache(prompt(3 * bs));
      expect(m.memoryLimits().kvPoolBlocks).toBeGreaterThan(4);
      for (const x of [b, c, big]) x.dispose();
    } finally {
      m.dispose();
    }
  });

  it('greedy generation under a cap that fits equals generation without one', async () => {
    const free = createModel(cfg, { seed: 5, initStd: 0.2 });
    const capped = createModel(cfg, { seed: 5, initStd: 0.2, limits: { kvCacheBlocks: 6 } });
    try {
      const run = async (m: typeof free) => {
        const p = await m.cache(prompt(20, 1));
        const forks = [p.fork(), p.fork()];
        const g = await m.generate(forks, { maxTokens: 8, temperature: 0 });
        for (const x of [p, ...forks]) x.dispose();
        return g.map((x) => x.tokens);
      };
      expect(await run(capped)).toEqual(await run(free));
      expect(capped.memoryLimits().kvPoolBlocks).toBe(6);
    } finally {
      free.dispose();
      capped.dispose();
    }
  });

  it('bad values are errors naming the key', () => {
    const m = createModel(cfg, { seed: 1 });
    try {
      expect(() => m.setMemoryLimits({ kvCacheBlocks: -1 })).toThrow(/kvCacheBlocks/);
      expect(() => m.setMemoryLimits({ logprobChunkRows: 2.5 })).toThrow(/logprobChunkRows/);
      expect(() => m.setMemoryLimits({ kvCacheBlocks: 'many' as unknown as number })).toThrow(/kvCacheBlocks/);
      expect(() => createModel(cfg, { limits: { logprobChunkRows: -3 } })).toThrow(/logprobChunkRows/);
      expect(m.memoryLimits()).toMatchObject({ kvCacheBlocks: 0, logprobChunkRows: 0 });
    } finally {
      m.dispose();
    }
  });
});

describe('log-prob chunk rows (logprobChunkRows)', () => {
  const cfg = tinyConfig('Qwen2ForCausalLM', { vocabSize: 1000, tieWordEmbeddings: true });

  it('the log-probabilities do not depend on it (float64 reference); a smaller chunk lowers the peak', async () => {
    const m = createModel(cfg, { seed: 3, initStd: 0.2 });
    try {
      const b = batchOf(cfg, [150, 130], 7); // 280 rows: more than the forward's default chunk (256)
      const w = (n: string) => m.getParam(n);
      const ref = logprobs64(forward64(cfg, w, b.tokens, b.cuSeqlens), cfg.vocabSize, b.targets);
      const peaks = new Map<number, number>();
      let base: Float32Array | null = null;
      for (const rows of [0, 16, 7, 1000]) {
        m.setMemoryLimits({ logprobChunkRows: rows });
        await m.logprobs(b); // warm
        const before = allocatorStats().current;
        resetAllocatorPeak();
        const lp = await m.logprobs(b);
        peaks.set(rows, allocatorStats().peak - before);
        expect(maxRel(lp, ref), `rows ${rows}`).toBeLessThan(1e-4);
        if (base) expect(maxRel(lp, base), `rows ${rows} against the default`).toBeLessThan(1e-5);
        else base = lp;
      }
      // the chunk's logits [rows, V] f32 are the forward's largest scratch here
      expect(peaks.get(16)!).toBeLessThan(peaks.get(0)!);
      expect(peaks.get(0)!).toBeLessThan(peaks.get(1000)!);
    } finally {
      m.dispose();
    }
  });

  it('training: the same gradients within f32 rounding with another chunk (dlogprobs ahead and after)', async () => {
    const b = batchOf(cfg, [40, 33], 9);
    const T = b.tokens.length;
    const dl = new Float32Array(T).map((_, i) => -0.5 - (i % 5) * 0.1);
    const grads = async (rows: number, ahead: boolean) => {
      const m = createModel(cfg, { seed: 3, initStd: 0.2, limits: { logprobChunkRows: rows } });
      try {
        if (ahead) {
          await m.forward(b, { train: true, dlogprobs: dl });
          await m.backward();
        } else {
          await m.forward(b, { train: true });
          await m.backward(dl);
        }
        return new Map(m.paramNames().map((n) => [n, m.getGrad(n)]));
      } finally {
        m.dispose();
      }
    };
    for (const ahead of [true, false]) {
      const g0 = await grads(0, ahead), g16 = await grads(16, ahead), g5 = await grads(5, ahead);
      for (const [n, v] of g0) {
        expect(maxRel(g16.get(n)!, v), `${n} (16 rows)`).toBeLessThan(1e-4);
        expect(maxRel(g5.get(n)!, v), `${n} (5 rows)`).toBeLessThan(1e-4);
      }
    }
  });
});
