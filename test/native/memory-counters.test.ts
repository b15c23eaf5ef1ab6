// The memory counters the planner (issue 19) is built on: model.memory() by category and the
// CPU allocator's current/peak bytes, against byte counts computed here by hand from the
// configuration (numel x bytes, tensors at 64-byte-aligned starts, 2 x f32 AdamW moments,
// the KV pool's blocks) and from the allocator's documented rounding rule.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { allocatorStats, createModel, info, loadModel, resetAllocatorPeak, tinyConfig } from '../../src/engine/index.js';
import type { ModelConfig } from '../../src/engine/model-types.js';
import { batchOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-mem-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const PROJ = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
const pad16 = (n: number) => Math.ceil(n / 16) * 16;

/** [in, out] features of a projection */
function dims(c: ModelConfig, p: (typeof PROJ)[number]): [number, number] {
  const H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim, I = c.intermediateSize;
  return { q_proj: [H, Dq], k_proj: [H, Dkv], v_proj: [H, Dkv], o_proj: [Dq, H], gate_proj: [H, I], up_proj: [H, I], down_proj: [I, H] }[p] as [number, number];
}

/** elements of the base group: every HF tensor of the configuration, each padded to 16 */
function baseElements(c: ModelConfig): number {
  const H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim;
  let n = pad16(c.vocabSize * H) + pad16(H); // embedding, final norm
  if (!c.tieWordEmbeddings) n += pad16(c.vocabSize * H);
  for (let l = 0; l < c.numLayers; l++) {
    n += 2 * pad16(H); // the two layer norms
    for (const p of PROJ) n += pad16(dims(c, p)[0] * dims(c, p)[1]);
    if (c.attentionBias) n += pad16(Dq) + 2 * pad16(Dkv);
    if (c.qkNorm) n += 2 * pad16(c.headDim);
  }
  return n;
}

function loraElements(c: ModelConfig, r: number, targets: readonly string[]): number {
  let n = 0;
  for (let l = 0; l < c.numLayers; l++)
    for (const p of PROJ) if (targets.includes(p)) n += pad16(r * dims(c, p)[0]) + pad16(dims(c, p)[1] * r);
  return n;
}

/** the CPU allocator's rounding (native/cpu/cpu_backend.cpp, documented in AllocatorStats) */
const caching = !info().build.sanitize && process.env.ITOOL_CPU_CACHE_MB !== '0';
function allocSize(bytes: number): number {
  const rounded = Math.max(64, Math.ceil(bytes / 64) * 64);
  if (!caching || rounded < 64 * 1024) return rounded;
  const hi = 2 ** Math.floor(Math.log2(rounded));
  const step = Math.max(64, hi / 4);
  return Math.ceil(rounded / step) * step;
}

describe('model.memory()', () => {
  const cfg = tinyConfig('LlamaForCausalLM', { tieWordEmbeddings: false });
  const H = cfg.hiddenSize, I = cfg.intermediateSize, Dq = cfg.numHeads * cfg.headDim, Dkv = cfg.numKvHeads * cfg.headDim;
  const L = cfg.numLayers, r = 4;

  it('weights: 4 bytes per (padded) element in f32, 2 in bf16; the rest empty at first', () => {
    for (const [dtype, bytes] of [['f32', 4], ['bf16', 2]] as const) {
      const m = createModel(cfg, { seed: 1, dtype });
      const u = m.memory();
      expect(u.weights).toBe(baseElements(cfg) * bytes);
      expect(u).toEqual({
        weights: u.weights, adapters: 0, gradients: 0, optimizer: 0, activations: 0, kvCache: 0,
        scratch: (cfg.headDim / 2) * 4, total: u.weights + (cfg.headDim / 2) * 4,
      });
      m.dispose();
    }
  });

  it('adapters, gradients, AdamW moments and the saved activations (LoRA on a bf16 base)', async () => {
    const m = createModel(cfg, { seed: 1, dtype: 'bf16' });
    try {
      m.addLora({ rank: r, alpha: 8, targetModules: [...PROJ] });
      const lora = loraElements(cfg, r, PROJ) * 4;
      expect(m.memory().adapters).toBe(lora);
      const b = batchOf(cfg, [9, 6], 2);
      const T = b.tokens.length, nseq = 2;
      const ints = 3 * T * 4 + (nseq + 1) * 4; // tokens, targets, positions, cuSeqlens (i32)
      // every activation kept: per layer x_in, xn1, q, k, v, attn, x_mid, xn2, gate, up, act,
      // lse [T, heads], rstd1, rstd2 [T], and x·A^T [T, r] of each adapted projection
      await m.forward(b, { train: true });
      const perLayer = (T * (4 * H + 2 * Dq + 2 * Dkv + 3 * I + cfg.numHeads + 2) + PROJ.length * T * r) * 4;
      const tail = (2 * T * H + T) * 4; // final norm output, the last layer's output, rstd
      let u = m.memory();
      expect(u.activations).toBe(ints + L * perLayer + tail);
      expect(u.gradients).toBe(0);
      await m.backward(new Float32Array(T).fill(-0.1));
      u = m.memory();
      expect(u.activations).toBe(0);
      expect(u.gradients).toBe(lora);
      expect(u.optimizer).toBe(0);
      await m.step({ lr: 1e-3 });
      u = m.memory();
      expect(u.optimizer).toBe(2 * lora);
      expect(u.weights).toBe(baseElements(cfg) * 2);
      // with recompute only each layer's input is kept; dlogprobs ahead add dhidden [T, H]
      m.setRecompute(true);
      await m.forward(b, { train: true, dlogprobs: new Float32Array(T).fill(-0.1) });
      expect(m.memory().activations).toBe(ints + L * T * H * 4 + tail + T * H * 4);
      await m.backward();
      expect(m.memory().activations).toBe(0);
      u = m.memory();
      expect(u.total).toBe(u.weights + u.adapters + u.gradients + u.optimizer + u.activations + u.kvCache + u.scratch);
    } finally {
      m.dispose();
    }
  });

  it('kvCache: the pool of K/V blocks; scratch: RoPE frequencies and each cache\'s last hidden state', async () => {
    const m = createModel(cfg, { seed: 1 });
    try {
      const c = await m.cache(Array.from({ length: 20 }, (_, i) => i + 3));
      const bs = m.poolInfo().blockSize;
      // the pool starts at 16 blocks per layer, K and V, f32
      const pool = 2 * L * 16 * bs * cfg.numKvHeads * cfg.headDim * 4;
      let u = m.memory();
      expect(u.kvCache).toBe(pool);
      expect(u.scratch).toBe((cfg.headDim / 2) * 4 + H * 4);
      const f = c.fork();
      expect(m.memory().scratch).toBe((cfg.headDim / 2) * 4 + 2 * H * 4);
      // 17 more blocks than the pool holds: it doubles to 32
      const many = [];
      for (let i = 0; i < 16; i++) many.push(await m.cache([1, 2, 3]));
      u = m.memory();
      expect(u.kvCache).toBe(2 * pool);
      for (const x of [c, f, ...many]) x.dispose();
      expect(m.memory().kvCache).toBe(2 * pool); // the pool never shrinks
    } finally {
      m.dispose();
    }
  });
});

describe('allocatorStats()', () => {
  const cfg = tinyConfig('Qwen2ForCausalLM', { vocabSize: 1000, tieWordEmbeddings: true });

  it('counts the model\'s buffers at their allocation size, and only one bf16 copy of the weights', () => {
    for (const [dtype, bytes] of [['f32', 4], ['bf16', 2]] as const) {
      const s0 = allocatorStats();
      const m = createModel(cfg, { seed: 2, dtype });
      const s1 = allocatorStats();
      // the weights' one buffer and RoPE's inverse frequencies
      expect(s1.current - s0.current).toBe(allocSize(baseElements(cfg) * bytes) + allocSize((cfg.headDim / 2) * 4));
      m.dispose();
      expect(allocatorStats().current).toBe(s0.current);
    }
  });

  it('peak since a mark: a forward\'s transient buffers (the log-prob chunk among them) come and go', async () => {
    const m = createModel(cfg, { seed: 2 });
    try {
      const b = batchOf(cfg, [12, 8], 4);
      await m.logprobs(b); // warm
      const before = allocatorStats().current;
      resetAllocatorPeak();
      expect(allocatorStats().peak).toBe(before);
      await m.logprobs(b);
      const s = allocatorStats();
      expect(s.current).toBe(before); // nothing kept
      // at least the logits of one chunk (all 20 rows here) x V in f32 were live at once
      expect(s.peak - before).toBeGreaterThanOrEqual(allocSize(b.tokens.length * cfg.vocabSize * 4));
      resetAllocatorPeak();
      expect(allocatorStats().peak).toBe(before);
    } finally {
      m.dispose();
    }
  });

  it('loading an f32 checkpoint as bf16 never holds the weights in f32; saving adds nothing', async () => {
    const src = createModel(cfg, { seed: 2 });
    const dir = join(tmp, 'ck');
    await src.save(dir);
    src.dispose();
    const s0 = allocatorStats();
    resetAllocatorPeak();
    const m = await loadModel(dir, { device: 'cpu', dtype: 'bf16' });
    try {
      const own = allocSize(baseElements(cfg) * 2) + allocSize((cfg.headDim / 2) * 4);
      const s1 = allocatorStats();
      expect(s1.current - s0.current).toBe(own);
      expect(s1.peak - s0.current).toBe(own);
      resetAllocatorPeak();
      await m.save(join(tmp, 'again'));
      await m.save(join(tmp, 'again16'), { dtype: 'bf16' });
      expect(allocatorStats().peak).toBe(s1.current);
    } finally {
      m.dispose();
    }
  });
});
