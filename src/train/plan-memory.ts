// The engine's memory, computed without the engine: the bytes the CPU model allocates for a
// configuration, found by replaying the order in which native/core/model*.cpp allocates and
// frees its buffers (weights, adapters, gradients, AdamW moments, the activations a training
// forward keeps, each layer's temporaries in backward, the op scratch of attention and of the
// fused log-prob, the KV pool) through a model of the CPU allocator (native/cpu/cpu_backend.cpp:
// requests rounded to 64 bytes, blocks of 64 KiB and more rounded to a size class at most 25%
// above and kept, once freed, in a block cache up to its cap).
//
// Two figures come out of a replay: `live`, the bytes handed out (what the engine's allocator
// counter `current` says), and `resident`, live plus the cached blocks (what the process holds
// in RAM for the engine). Peaks are taken over the replay. Keep this file in step with the
// model's code: test/train/plan-memory.test.ts compares it with the engine's own counters.
import type { ModelConfig } from '../engine/model-types.js';

export type WeightsDtype = 'f32' | 'bf16';
export type Category = 'weights' | 'adapters' | 'gradients' | 'optimizer' | 'activations' | 'temporaries' | 'logprob' | 'kvCache';
export const CATEGORIES: readonly Category[] = ['weights', 'adapters', 'gradients', 'optimizer', 'activations', 'temporaries', 'logprob', 'kvCache'];

const CACHE_MIN = 64 * 1024;

/**
 * The bytes the CPU allocator reserves for a request (cpu_backend.cpp): 64-byte multiples, and
 * from 64 KiB a size class at most 25% above when its block cache is on (classes: false when
 * ITOOL_CPU_CACHE_MB=0 or in sanitizer builds).
 */
export function allocSize(bytes: number, classes = true): number {
  let r = Math.ceil(bytes / 64) * 64;
  if (r === 0) r = 64;
  if (r < CACHE_MIN || !classes) return r;
  const hi = 2 ** Math.floor(Math.log2(r));
  const step = Math.max(64, hi / 4);
  return Math.ceil(r / step) * step;
}

interface Buf {
  size: number;
  /** bytes of the block ever written (pages never touched are not resident) */
  touched: number;
  cat: Category;
  freed: boolean;
}

export type Bytes = Record<Category, number>;
const zero = (): Bytes => ({ weights: 0, adapters: 0, gradients: 0, optimizer: 0, activations: 0, temporaries: 0, logprob: 0, kvCache: 0 });
const PAGE = 4096;

/**
 * The allocator model: live bytes by category, the block cache, their peaks. `live` counts
 * blocks at their size class (as the engine's counter does); `resident` counts the pages of a
 * block that were ever written (a block serves its request from its start; the rest of its size
 * class is untouched until a longer request of the same class reuses it), plus cached blocks.
 */
export class Arena {
  live = 0;
  cached = 0;
  resident = 0;
  peakLive = 0;
  peakResident = 0;
  /** resident bytes by category at the resident peak */
  atPeak: Bytes = zero();
  cachedAtPeak = 0;
  /** live bytes by category as the allocator counts them (size classes) */
  readonly byCat: Bytes = zero();
  /** live bytes by category as resident pages (see the class comment) */
  readonly residentByCat: Bytes = zero();
  private free = new Map<number, number[]>(); // size class -> touched bytes of each cached block (LIFO)
  constructor(readonly cacheCap: number) {}

  alloc(bytes: number, cat: Category): Buf {
    const size = allocSize(bytes, this.cacheCap > 0);
    const want = Math.min(size, Math.ceil(bytes / PAGE) * PAGE);
    let touched = want;
    if (size >= CACHE_MIN && this.cacheCap > 0) {
      const list = this.free.get(size);
      if (list && list.length > 0) {
        const t = list.pop()!;
        this.cached -= size;
        this.cachedTouched -= t;
        this.resident -= t;
        touched = Math.max(t, want);
      }
    }
    this.live += size;
    this.resident += touched;
    this.byCat[cat] += size;
    this.residentByCat[cat] += touched;
    this.peakLive = Math.max(this.peakLive, this.live);
    if (this.resident > this.peakResident) {
      this.peakResident = this.resident;
      this.atPeak = { ...this.residentByCat };
      this.cachedAtPeak = this.cachedResident();
    }
    return { size, touched, cat, freed: false };
  }

  private cachedTouched = 0;
  private cachedResident(): number {
    return this.cachedTouched;
  }

  release(b: Buf | null | undefined): void {
    if (!b || b.freed) return;
    b.freed = true;
    this.live -= b.size;
    this.byCat[b.cat] -= b.size;
    this.residentByCat[b.cat] -= b.touched;
    if (b.size >= CACHE_MIN && this.cacheCap > 0 && this.cached + b.size <= this.cacheCap) {
      const list = this.free.get(b.size) ?? [];
      list.push(b.touched);
      this.free.set(b.size, list);
      this.cached += b.size;
      this.cachedTouched += b.touched;
      return;
    }
    this.resident -= b.touched;
  }

  /** peaks restart from now (resetAllocatorPeak) */
  resetPeak(): void {
    this.peakLive = this.live;
    this.peakResident = this.resident;
    this.atPeak = { ...this.residentByCat };
    this.cachedAtPeak = this.cachedTouched;
  }
}

const PROJ = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;
export type ProjName = (typeof PROJ)[number];

/** in and out features of a projection (model_detail::proj_dims) */
export function projDims(c: ModelConfig, p: ProjName): [number, number] {
  const H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim, I = c.intermediateSize;
  switch (p) {
    case 'q_proj': return [H, Dq];
    case 'k_proj':
    case 'v_proj': return [H, Dkv];
    case 'o_proj': return [Dq, H];
    case 'gate_proj':
    case 'up_proj': return [H, I];
    case 'down_proj': return [I, H];
  }
}

const round16 = (n: number): number => Math.ceil(n / 16) * 16;

/** Elements of the base group (every tensor's start 64-byte aligned: numel rounded up to 16). */
export function baseElements(c: ModelConfig): { numel: number; parameters: number; largest: number } {
  const H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim, I = c.intermediateSize, V = c.vocabSize;
  const t: number[] = [V * H];
  for (let l = 0; l < c.numLayers; l++) {
    t.push(H, Dq * H, Dkv * H, Dkv * H, H * Dq, H, I * H, I * H, H * I);
    if (c.attentionBias) t.push(Dq, Dkv, Dkv);
    if (c.qkNorm) t.push(c.headDim, c.headDim);
  }
  t.push(H);
  if (!c.tieWordEmbeddings) t.push(V * H);
  return { numel: t.reduce((a, n) => a + round16(n), 0), parameters: t.reduce((a, n) => a + n, 0), largest: Math.max(...t) };
}

export interface LoraShape {
  rank: number;
  targets: readonly string[];
}

export function loraElements(c: ModelConfig, lora: LoraShape): { numel: number; parameters: number } {
  let numel = 0, parameters = 0;
  for (const p of PROJ) {
    if (!lora.targets.includes(p)) continue;
    const [i, o] = projDims(c, p);
    numel += c.numLayers * (round16(lora.rank * i) + round16(o * lora.rank));
    parameters += c.numLayers * (lora.rank * i + o * lora.rank);
  }
  return { numel, parameters };
}

/** What a model holds between calls (allocated once): weights, adapters, gradients, AdamW moments. */
export interface ModelSetup {
  config: ModelConfig;
  weightsDtype: WeightsDtype;
  lora: LoraShape | null;
}

/** One packed batch: its sequence lengths (tokens). */
export type Lengths = readonly number[];

/** Rows of the fused log-prob chunk (cpu::logprob_chunk with the backend's choice, or `requested`). */
export function logprobChunk(N: number, V: number, backward: boolean, requested = 0): number {
  let c = requested > 0 ? requested : Math.floor(Math.floor((16 << 20) / Math.max(1, V)) / 16) * 16;
  if (requested <= 0) c = Math.min(backward ? 1024 : 256, Math.max(16, c));
  return Math.max(1, Math.min(c, Math.max(1, N)));
}

const BK = 64; // keys per attention tile (ops_attention.cpp)

/**
 * The model in the allocator: persistent buffers, and the calls a training step and generation
 * make. Each method mirrors the native function of the same name.
 */
export class ModelReplay {
  readonly a: Arena;
  private readonly c: ModelConfig;
  private grads: Buf | null = null;
  private moments: Buf[] = [];
  constructor(readonly setup: ModelSetup, cacheCap: number, readonly logprobRows = 0) {
    this.a = new Arena(cacheCap);
    this.c = setup.config;
    const b = baseElements(this.c);
    this.a.alloc(Math.max(1, b.numel) * (setup.weightsDtype === 'bf16' ? 2 : 4), 'weights');
    this.a.alloc((this.c.headDim / 2) * 4, 'weights'); // RoPE inv_freq
    if (setup.lora) this.a.alloc(Math.max(1, loraElements(this.c, setup.lora).numel) * 4, 'adapters');
  }

  private trainableNumel(): number {
    return this.setup.lora ? loraElements(this.c, this.setup.lora).numel : baseElements(this.c).numel;
  }
  private ensureGrads(): void {
    if (!this.grads) this.grads = this.a.alloc(Math.max(1, this.trainableNumel()) * 4, 'gradients');
  }
  /** AdamW's m and v, made by the first step() */
  step(): void {
    this.ensureGrads();
    if (this.moments.length === 0) for (let i = 0; i < 2; i++) this.moments.push(this.a.alloc(Math.max(1, this.trainableNumel()) * 4, 'optimizer'));
  }

  private act(n: number, cat: Category): Buf {
    return this.a.alloc(n * 4, cat);
  }

  /** alloc_layer_acts(full) */
  private layerActs(T: number, cat: Category): Buf[] {
    const c = this.c, H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim, I = c.intermediateSize;
    const out: Buf[] = [this.act(T * H, cat), this.act(T, cat)];
    if (c.qkNorm) out.push(this.act(T * Dq, cat), this.act(T * Dkv, cat), this.act(T * c.numHeads, cat), this.act(T * c.numKvHeads, cat));
    out.push(this.act(T * Dq, cat), this.act(T * Dkv, cat), this.act(T * Dkv, cat), this.act(T * Dq, cat), this.act(T * c.numHeads, cat));
    out.push(this.act(T * H, cat), this.act(T * H, cat), this.act(T, cat), this.act(T * I, cat), this.act(T * I, cat), this.act(T * I, cat));
    const l = this.setup.lora;
    if (l) for (const p of PROJ) if (l.targets.includes(p)) out.push(this.act(T * l.rank, cat));
    return out;
  }

  private tiles(lengths: Lengths): number {
    return lengths.reduce((n, L) => n + Math.ceil(L / BK), 0);
  }

  /** layer_forward's transients: the attention's transposed key tiles (packed mode) */
  private layerForward(lengths: Lengths): void {
    const kt = this.act(this.c.numKvHeads * this.tiles(lengths) * this.c.headDim * BK, 'temporaries');
    this.a.release(kt);
  }

  private loraDt(T: number, p: ProjName): void {
    const l = this.setup.lora;
    if (l && l.targets.includes(p)) this.a.release(this.act(T * l.rank, 'temporaries'));
  }

  /** layer_backward */
  private layerBackward(lengths: Lengths): void {
    const c = this.c, T = lengths.reduce((a, b) => a + b, 0), H = c.hiddenSize, I = c.intermediateSize;
    const Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim;
    const tmp = this.act(T * H, 'temporaries'), dxn = this.act(T * H, 'temporaries');
    let dscratch: Buf | null = null; // a frozen norm's weight gradient goes to scratch (made at the first one)
    {
      const b = [this.act(T * I, 'temporaries'), this.act(T * I, 'temporaries'), this.act(T * I, 'temporaries')];
      this.loraDt(T, 'down_proj');
      this.loraDt(T, 'gate_proj');
      this.loraDt(T, 'up_proj');
      b.forEach((x) => this.a.release(x));
    }
    if (this.setup.lora) dscratch = this.act(Math.max(H, c.headDim), 'temporaries');
    {
      const dAttn = this.act(T * Dq, 'temporaries');
      this.loraDt(T, 'o_proj');
      const d = [this.act(T * Dq, 'temporaries'), this.act(T * Dkv, 'temporaries'), this.act(T * Dkv, 'temporaries')];
      // attention_backward: Delta [T, Hq], K and V transposed into tiles
      const tiles = this.tiles(lengths);
      const s = [this.act(T * c.numHeads, 'temporaries'), this.act(c.numKvHeads * tiles * c.headDim * BK, 'temporaries'), this.act(c.numKvHeads * tiles * c.headDim * BK, 'temporaries')];
      s.reverse().forEach((x) => this.a.release(x));
      const qk = c.qkNorm ? [this.act(T * Dq, 'temporaries'), this.act(T * Dkv, 'temporaries')] : [];
      this.loraDt(T, 'q_proj');
      this.loraDt(T, 'k_proj');
      this.loraDt(T, 'v_proj');
      [...qk, ...d, dAttn].forEach((x) => this.a.release(x));
    }
    this.a.release(dscratch);
    this.a.release(dxn);
    this.a.release(tmp);
  }

  /** head_logprob: the chunk of logits [rows, V] f32 */
  private headLogprob(T: number, backward: boolean): void {
    if (backward) this.ensureGrads();
    const rows = logprobChunk(T, this.c.vocabSize, backward, this.logprobRows);
    this.a.release(this.act(rows * this.c.vocabSize, 'logprob'));
  }

  /**
   * A training step's forward and backward over one packed batch (Model::forward with
   * train: true, then Model::backward). dlogpAhead: the SFT path (the head's gradient made
   * in the forward); without it, the preference path (the head runs again in backward).
   */
  trainForwardBackward(lengths: Lengths, recompute: boolean, dlogpAhead: boolean): void {
    const c = this.c, T = lengths.reduce((a, b) => a + b, 0), H = c.hiddenSize;
    if (T === 0) return;
    const ints = [this.a.alloc(T * 4, 'activations'), this.a.alloc(T * 4, 'activations'), this.a.alloc((lengths.length + 1) * 4, 'activations'), this.a.alloc(T * 4, 'activations')];
    let x = this.act(T * H, 'activations');
    const keepAll = !recompute;
    const saved: Buf[][] = [];
    const scratch = keepAll ? [] : this.layerActs(T, 'temporaries');
    for (let l = 0; l < c.numLayers; l++) {
      const acts = keepAll ? this.layerActs(T, 'activations') : [];
      saved.push([x, ...acts]);
      const xo = this.act(T * H, 'activations');
      this.layerForward(lengths);
      x = xo;
    }
    const xLast = x;
    const xf = this.act(T * H, 'activations'), rstdf = this.act(T, 'activations');
    const lp = this.act(T, 'logprob'), lse = this.act(T, 'logprob');
    let dxf: Buf | null = null;
    let dl: Buf | null = null;
    if (dlogpAhead) {
      dl = this.act(T, 'logprob');
      dxf = this.act(T * H, 'activations');
    }
    this.headLogprob(T, dlogpAhead);
    [dl, lse, lp].forEach((b) => this.a.release(b));
    scratch.forEach((b) => this.a.release(b));
    // backward
    this.ensureGrads();
    const extra: Buf[] = [];
    if (!dxf) {
      extra.push(this.act(T, 'logprob'), this.act(T, 'logprob'), this.act(T, 'logprob'));
      dxf = this.act(T * H, 'activations');
      this.headLogprob(T, true);
      extra.splice(0).forEach((b) => this.a.release(b)); // locals of that branch
    }
    const dx = this.act(T * H, 'temporaries');
    const dscr = this.setup.lora ? this.act(H, 'temporaries') : null; // the frozen final norm's weight gradient
    for (let l = c.numLayers - 1; l >= 0; l--) {
      if (recompute) {
        const a = this.layerActs(T, 'temporaries');
        const xo = this.act(T * H, 'temporaries');
        this.layerForward(lengths);
        this.layerBackward(lengths);
        this.a.release(xo);
        a.forEach((b) => this.a.release(b));
      } else {
        this.layerBackward(lengths);
        saved[l]!.forEach((b) => this.a.release(b));
      }
    }
    this.a.release(dscr);
    this.a.release(dx);
    extra.forEach((b) => this.a.release(b));
    // saved_ = Saved{}: what is left of the forward's buffers
    for (const s of saved) s.forEach((b) => this.a.release(b));
    [...ints, xf, rstdf, xLast, dxf].forEach((b) => this.a.release(b));
  }

  /** A gradient-free forward (Model::forward with train: false): logprobs, perplexity, reference sums. */
  inferenceForward(lengths: Lengths): void {
    const c = this.c, T = lengths.reduce((a, b) => a + b, 0), H = c.hiddenSize;
    if (T === 0) return;
    const ints = [this.a.alloc(T * 4, 'temporaries'), this.a.alloc(T * 4, 'temporaries'), this.a.alloc((lengths.length + 1) * 4, 'temporaries'), this.a.alloc(T * 4, 'temporaries')];
    let x = this.act(T * H, 'temporaries');
    const scratch = this.layerActs(T, 'temporaries');
    let xin: Buf = x;
    for (let l = 0; l < c.numLayers; l++) {
      if (xin !== x) this.a.release(xin); // scratch.x_in = x: the input before it is let go
      xin = x;
      const xo = this.act(T * H, 'temporaries');
      this.layerForward(lengths);
      x = xo;
    }
    const xf = this.act(T * H, 'temporaries'), rstdf = this.act(T, 'temporaries');
    const lp = this.act(T, 'logprob'), lse = this.act(T, 'logprob');
    this.headLogprob(T, false);
    [lse, lp, rstdf, xf].forEach((b) => this.a.release(b));
    scratch.forEach((b) => this.a.release(b));
    [xin, x, ...ints].forEach((b) => this.a.release(b));
  }

  // ---- generation: the KV pool grows by doubling (pool_reserve), the old pool copied into the new
  private poolBlocks = 0;
  private pool: Buf[] = [];
  readonly blockSize = 16;
  /** blocks the KV pool holds now (it never shrinks: the most the run's generation needed) */
  get kvPoolBlocks(): number {
    return this.poolBlocks;
  }
  /** bytes of one block in the pool: K and V of blockSize tokens for every layer */
  get kvBlockBytes(): number {
    return 2 * this.c.numLayers * this.blockSize * this.c.numKvHeads * this.c.headDim * 4;
  }
  /** the pool holds at least n blocks: grown as block_alloc grows it, one doubling at a time */
  reservePool(n: number): void {
    while (this.poolBlocks < n) this.growPool(Math.max(this.poolBlocks + 1, this.poolBlocks * 2, 16));
  }
  private growPool(cap: number): void {
    const per = this.blockSize * this.c.numKvHeads * this.c.headDim * 4;
    const next: Buf[] = [];
    for (let l = 0; l < this.c.numLayers; l++) next.push(this.a.alloc(per * cap, 'kvCache'), this.a.alloc(per * cap, 'kvCache'));
    this.pool.forEach((b) => this.a.release(b));
    this.pool = next;
    this.poolBlocks = cap;
  }

  /** decode(): B caches, n_new tokens each (prefill: B 1, n_new the prompt); a new cache keeps its last hidden state */
  decode(B: number, nNew: number, newCaches = 0): void {
    const c = this.c, T = B * nNew, H = c.hiddenSize;
    const misc = [this.a.alloc(T * 4, 'temporaries'), this.a.alloc(T * 4, 'temporaries'), this.a.alloc(B * 4, 'temporaries'), this.a.alloc(B * 4, 'temporaries')];
    const x = this.act(T * H, 'temporaries');
    const a = this.layerActs(T, 'temporaries');
    const y = this.act(T * H, 'temporaries');
    const xf = this.act(T * H, 'temporaries'), rstdf = this.act(T, 'temporaries');
    for (let i = 0; i < newCaches; i++) this.hidden.push(this.act(H, 'kvCache'));
    a.forEach((b) => this.a.release(b));
    [x, y, xf, rstdf, ...misc].forEach((b) => this.a.release(b));
  }
  private hidden: Buf[] = [];
  /** cache_fork: the fork's copy of the last hidden state */
  forkHidden(): void {
    this.hidden.push(this.act(this.c.hiddenSize, 'kvCache'));
  }
  /** caches disposed: their hidden states freed (the pool's blocks stay in the pool) */
  disposeCaches(): void {
    this.hidden.forEach((b) => this.a.release(b));
    this.hidden = [];
  }

  /** logits_for(): the last hidden states and the [B, V] logits of a sampling call */
  sampleLogits(B: number): void {
    const hid = this.act(B * this.c.hiddenSize, 'temporaries');
    const lg = this.act(B * this.c.vocabSize, 'logprob');
    this.a.release(hid);
    this.a.release(lg);
  }
}
