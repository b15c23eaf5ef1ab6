// The memory plan of a run: what each part of it needs (weights, adapters, gradients, AdamW
// state, activations, temporaries, log-prob scratch, KV cache, runtime), the choices that make
// it fit a budget (frozen weights' dtype, activation recompute, micro-batch tokens), and the
// expected peak. Pure: from a model configuration (config.json, no weights loaded) and the
// run's options; the byte counts come from plan-memory.ts (a replay of the engine's allocations).
//
// Choices, cheapest first:
// 1. frozen weights in bf16 when that loses nothing (a bf16 checkpoint under LoRA, or loaded
//    only to generate, score or evaluate, with no adapter merged into it): half the bytes, and
//    the bf16-B GEMM is as fast. Otherwise f32, and bf16 only when f32 cannot fit (an f16
//    checkpoint is not exact in bf16: 3 fewer mantissa bits).
//    Full fine-tuning keeps f32 weights (they are trained).
// 2. the (recompute, micro-batch tokens) pair of lowest estimated time that fits, time relative
//    to the plain step: (recompute ? 4/3 : 1) x (1 + 128 / micro-batch tokens) (a recomputed
//    layer costs one more forward, a third of a step; a smaller micro-batch runs smaller GEMMs
//    and one more pass of the LM head's weight gradient).
// 3. within a combination, the allocator's block cache cap (ITOOL_CPU_CACHE_MB): 1 GiB, else 256
//    or 64 MiB, which cost page faults only (blocks the cache does not keep are unmapped at once:
//    native/cpu/cpu_backend.cpp maps them itself; through malloc, glibc's rising mmap threshold
//    kept them resident, 3.51 GiB measured against 2.61 planned on base, full, split); then the
//    log-prob chunk: the backend's rows, else 16.
// The KV pool's cap (kvCap) takes what the budget leaves above the peak.
// Micro-batches never change a step's result beyond f32 rounding: a step keeps its samples (or
// pairs) and its loss normalisation; only how many of them run in one forward changes.
import type { ModelConfig } from '../engine/model-types.js';
import { baseElements, CATEGORIES, loraElements, ModelReplay, type Bytes, type Category, type LoraShape, type WeightsDtype } from './plan-memory.js';

export type CheckpointDtype = 'f32' | 'bf16' | 'f16' | null;

export interface PlanRequest {
  config: ModelConfig;
  /** dtype of the checkpoint's weights (null: unknown, e.g. a random model) */
  checkpointDtype: CheckpointDtype;
  lora: LoraShape | null;
  weightsDtype: 'auto' | WeightsDtype;
  recompute: 'auto' | boolean;
  /** tokens per micro-batch: 'auto' (chosen), or a number (0: the trainer's batchTokens, no split) */
  microTokens: 'auto' | number;
  /** the token budget of one of the trainer's micro-batches (batchTokens of the options) */
  batchTokens: number;
  /** the longest sequence (maxLength of SFT; a micro-batch holds at least one sequence) */
  maxSequence: number;
  /** what the run does: SFT steps (head gradient ahead), preference steps, the tree search, gradient-free scoring */
  workloads: {
    sft?: boolean;
    preference?: boolean;
    /** B branches decoding newTokens each off one prompt of promptTokens (forked KV caches) */
    search?: { branches: number; promptTokens: number; newTokens: number } | null;
    /** independent sequences generated together (evaluation, itool generate): B prompts of promptTokens, newTokens each */
    generate?: { sequences: number; promptTokens: number; newTokens: number } | null;
    /** gradient-free forwards of batchTokens (perplexity selection, DPO/IPO reference sums, evaluation) */
    scoring?: { batchTokens: number } | null;
  };
  budget: number;
  /** bytes of the process outside the engine: node, the addon, the tokenizer, the data (see runtimeBytes) */
  runtime: number;
  /** the allocator's block cache cap in force ('auto': chosen; default 1 GiB) */
  cacheCap?: 'auto' | number;
  /**
   * how the weights come in: 'checkpoint' (loadModel: each tensor's mapped file pages are resident
   * while it is read), 'random' (createModel: a million values at a time), or 'none'. Default
   * 'checkpoint'.
   */
  load?: 'checkpoint' | 'random' | 'none';
  /**
   * adapters are merged into the base weights after loading (a LoRA chain): merged into bf16
   * weights they are rounded to bf16, so a bf16 checkpoint is not kept in bf16 for free
   */
  mergesAdapters?: boolean;
}

export interface PlanChoices {
  weightsDtype: WeightsDtype;
  recompute: boolean;
  /** tokens per micro-batch (0: no split beyond the trainer's batchTokens) */
  microTokens: number;
  cacheCap: number;
  /**
   * the engine's KV pool cap in blocks (setMemoryLimits): the pool the run's generation needs, or
   * more when the budget leaves room (a call past it is refused with an error, not an overrun)
   */
  kvCacheBlocks: number;
  /** rows of the fused log-prob chunk (setMemoryLimits; 0: the backend's choice, at most 64 MiB of logits) */
  logprobChunkRows: number;
  /** why each choice was made */
  reasons: string[];
}

export interface PhasePeak {
  phase: string;
  /** engine bytes (live + cached) at this phase's peak */
  engine: number;
}

export interface MemoryPlan {
  budget: number;
  /** where the budget came from (--max-memory, or the fraction of the available memory) */
  budgetSource?: string;
  fits: boolean;
  choices: PlanChoices;
  /** bytes by category at the expected peak (engine live bytes), plus the cache, loading's transients and the runtime */
  categories: Bytes & { allocatorCache: number; loading: number; runtime: number };
  /** expected peak resident memory of the process */
  peak: number;
  /** the peak when micro-batches vary in length enough to fill the allocator's block cache with blocks of other size classes (bounded by its cap) */
  worstPeak: number;
  /** engine live bytes at its own peak (what the engine's allocator counter `peak` should read) */
  enginePeakLive: number;
  phases: PhasePeak[];
  parameters: { base: number; trainable: number };
  /** when it does not fit: what would */
  advice: string[];
}

export const DEFAULT_CACHE_CAP = 1024 * 2 ** 20;
/** the block cache caps the plan tries, the default first */
const CACHE_CAPS = [DEFAULT_CACHE_CAP, 256 * 2 ** 20, 64 * 2 ** 20];
/** the log-prob chunk's rows the plan tries: the backend's choice (0), then the least */
const LOGPROB_ROWS = [0, 16];
const MIN_MICRO = 128;

/** Relative time of a step (see the header). */
export function stepCost(recompute: boolean, microTokens: number): number {
  return (recompute ? 4 / 3 : 1) * (1 + 128 / Math.max(1, microTokens));
}

/** Sequence lengths of a packed micro-batch of T tokens with sequences of at most `maxSeq`. */
function packOf(T: number, maxSeq: number): number[] {
  const out: number[] = [];
  let left = T;
  while (left > 0) {
    const n = Math.min(left, maxSeq > 0 ? maxSeq : left);
    out.push(n);
    left -= n;
  }
  return out;
}

interface Evaluated {
  peak: number;
  /** the peak when micro-batch lengths vary across the allocator's size classes (the block cache full of the other length's blocks) */
  worst: number;
  enginePeakLive: number;
  atPeak: Bytes;
  cachedAtPeak: number;
  /** loading's transients when the load is the peak */
  loading: number;
  phases: PhasePeak[];
  /** the KV pool's blocks at the end (it never shrinks) and the bytes of one block */
  kvPoolBlocks: number;
  kvBlockBytes: number;
}

/** Bytes loading adds to the weights for a moment (see PlanRequest.load). */
export function loadTransient(r: PlanRequest, weightsDtype: WeightsDtype): number {
  const largest = baseElements(r.config).largest;
  const load = r.load ?? 'checkpoint';
  if (load === 'none') return 0;
  // createModel: the normal draws a million values at a time (f32, and their bf16 copy)
  if (load === 'random') return Math.min(largest, 2 ** 20) * (4 + (weightsDtype === 'bf16' ? 2 : 0));
  // loadModel: each tensor is read (converted when its dtype differs) straight from the mapped
  // file, whose pages are resident until the tensor is done and released
  return largest * (r.checkpointDtype === 'bf16' || r.checkpointDtype === 'f16' ? 2 : 4);
}

/** Replays the run's work on the model of the allocator: returns the peaks. */
export function evaluate(r: PlanRequest, weightsDtype: WeightsDtype, recompute: boolean, microTokens: number, cacheCap: number, logprobRows = 0): Evaluated {
  const m = new ModelReplay({ config: r.config, weightsDtype, lora: r.lora }, cacheCap, logprobRows);
  const phases: PhasePeak[] = [];
  let best = { resident: 0, atPeak: m.a.atPeak, cached: 0, loading: 0 };
  const loading = loadTransient(r, weightsDtype);
  if (loading > 0) {
    phases.push({ phase: 'load', engine: m.a.peakResident + loading });
    best = { resident: m.a.peakResident + loading, atPeak: { ...m.a.atPeak }, cached: 0, loading };
  }
  const mark = (phase: string): void => {
    phases.push({ phase, engine: m.a.peakResident });
    if (m.a.peakResident > best.resident) best = { resident: m.a.peakResident, atPeak: { ...m.a.atPeak }, cached: m.a.cachedAtPeak, loading: 0 };
  };
  let peakLive = 0;
  const phase = (name: string, f: () => void): void => {
    m.a.resetPeak();
    f();
    peakLive = Math.max(peakLive, m.a.peakLive);
    mark(name);
  };
  const T = microTokens > 0 ? Math.max(microTokens, Math.min(r.maxSequence || microTokens, r.batchTokens)) : r.batchTokens;
  // two steps: the first allocates the gradients and AdamW state, the second runs with them. A
  // split step's micro-batches differ in length (the last holds what is left), so their blocks
  // fall in other size classes and the block cache keeps both sets: a third, shorter one
  // (measured: base shape, full, 2048-token micro-batches, 4.33 GiB resident against 2.75 planned
  // without it, with the engine's own peak 2.61 GiB as planned)
  const steps = microTokens > 0 ? [T, T, Math.max(1, Math.floor(T * 0.75))] : [T, T];
  const w = r.workloads;
  if (w.scoring) phase('scoring', () => m.inferenceForward(packOf(w.scoring!.batchTokens, r.maxSequence)));
  if (w.search) {
    const s = w.search;
    phase('search', () => {
      const bs = m.blockSize;
      const promptBlocks = Math.ceil(s.promptTokens / bs);
      m.reservePool(promptBlocks);
      m.decode(1, s.promptTokens, 1);
      // every branch copies the prompt's last (partial) block on its first write, then grows
      for (let t = 1; t <= s.newTokens; t++) {
        const perBranch = Math.ceil((s.promptTokens + t) / bs) - Math.floor(s.promptTokens / bs);
        m.reservePool(promptBlocks + s.branches * perBranch);
        m.decode(s.branches, 1, t === 1 ? s.branches : 0);
        m.sampleLogits(s.branches);
      }
      m.disposeCaches();
    });
  }
  if (w.generate) {
    const g = w.generate;
    phase('generation', () => {
      const bs = m.blockSize;
      for (let b = 0; b < g.sequences; b++) {
        m.reservePool((b + 1) * Math.ceil(g.promptTokens / bs));
        m.decode(1, g.promptTokens, 1);
      }
      for (let t = 1; t <= g.newTokens; t++) {
        m.reservePool(g.sequences * Math.ceil((g.promptTokens + t) / bs));
        m.decode(g.sequences, 1);
        m.sampleLogits(g.sequences);
      }
      m.disposeCaches();
    });
  }
  // a split step's micro-batches hold whole samples, so their lengths vary from one to the next
  // (packed samples of other lengths), their blocks fall in many size classes, and the block cache
  // fills with the other lengths' blocks up to its cap: a split step is counted with the cache
  // full (measured: base, full, 3 SFT steps of 1024-token micro-batches, 1 GiB cache: 2.13 GiB
  // resident against 1.84 planned with two lengths replayed; the engine's own peak as planned)
  const cacheFull = (): void => {
    if (microTokens <= 0 || cacheCap <= 0) return;
    const full = m.a.peakLive + cacheCap;
    if (full <= best.resident) return;
    const held = Object.values(m.a.atPeak).reduce((x, y) => x + y, 0);
    best = { resident: full, atPeak: { ...m.a.atPeak }, cached: full - held, loading: 0 };
    phases[phases.length - 1]!.engine = full;
  };
  if (w.sft)
    phase('sft step', () => {
      for (const t of steps) {
        m.trainForwardBackward(packOf(t, r.maxSequence), recompute, true);
        m.step();
      }
    });
  if (w.sft) cacheFull();
  if (w.preference)
    phase('preference step', () => {
      for (const t of steps) {
        m.trainForwardBackward(packOf(t, r.maxSequence), recompute, false);
        m.step();
      }
    });
  if (w.preference) cacheFull();
  peakLive = Math.max(peakLive, m.a.peakLive);
  // the worst case: a step whose micro-batch is shorter by a quarter allocates blocks of other
  // size classes while the block cache still holds the longer step's (up to its cap)
  let worst = best.resident;
  if (w.sft || w.preference) {
    m.a.resetPeak();
    m.trainForwardBackward(packOf(Math.max(1, Math.floor(T * 0.75)), r.maxSequence), recompute, !!w.sft);
    m.step();
    worst = Math.max(worst, m.a.peakResident);
  }
  return {
    worst: worst + r.runtime, peak: best.resident + r.runtime, enginePeakLive: peakLive, atPeak: best.atPeak, cachedAtPeak: best.cached, loading: best.loading, phases,
    kvPoolBlocks: m.kvPoolBlocks, kvBlockBytes: m.kvBlockBytes };
}

function microCandidates(r: PlanRequest): number[] {
  if (r.microTokens !== 'auto') return [r.microTokens];
  const out = [0];
  for (let t = r.batchTokens / 2; t >= MIN_MICRO; t /= 2) out.push(Math.floor(t));
  return out;
}

/** The plan: choices in order of cost, the first that fits; when none fits, the cheapest with the lowest peak. */
export function planMemory(r: PlanRequest, withAdvice = true): MemoryPlan {
  if (!(r.batchTokens > 0)) throw new RangeError(`plan: batchTokens must be > 0, got ${r.batchTokens}`);
  const training = !!(r.workloads.sft || r.workloads.preference);
  const reasons: string[] = [];
  let dtypes: WeightsDtype[];
  if (r.weightsDtype !== 'auto') {
    dtypes = [r.weightsDtype];
    reasons.push(`weights ${r.weightsDtype}: asked for (--weights-dtype)`);
  } else if (training && !r.lora) {
    dtypes = ['f32'];
    reasons.push('weights f32: full fine-tuning trains them');
  } else if (r.checkpointDtype === 'bf16' && !r.mergesAdapters) {
    dtypes = ['bf16'];
    reasons.push('weights bf16: the checkpoint is bf16 (no loss) and they are frozen');
  } else {
    dtypes = ['f32', 'bf16'];
  }
  const recomputes = r.recompute === 'auto' ? [false, true] : [r.recompute];
  const micros = training ? microCandidates(r) : [0];
  // the block cache's cap: the blocks it does not keep are unmapped at once, so a smaller cap lowers
  // the resident peak by what the cache held of the other lengths' blocks, for page faults
  const caps = r.cacheCap === 'auto' || r.cacheCap === undefined ? CACHE_CAPS : [r.cacheCap];
  const eff = (micro: number): number => (micro > 0 ? micro : r.batchTokens);
  const combos: Array<{ rc: boolean; micro: number }> = [];
  for (const rc of training ? recomputes : [false]) for (const micro of micros) combos.push({ rc, micro });
  combos.sort((a, b) => stepCost(a.rc, eff(a.micro)) - stepCost(b.rc, eff(b.micro)));
  type Cand = { dt: WeightsDtype; rc: boolean; micro: number; cap: number; rows: number; e: Evaluated };
  // the log-prob chunk: the backend's choice (at most 64 MiB of logits), else 16 rows (the
  // least it takes) before the next, dearer combination
  let chosen = null as Cand | null;
  let lowest = null as Cand | null;
  // a smaller block cache costs page faults only (little next to recompute): tried before the next combination
  outer: for (const dt of dtypes)
    for (const { rc, micro } of combos)
      for (const cap of caps)
        for (const rows of LOGPROB_ROWS) {
          const e = evaluate(r, dt, rc, micro, cap, rows);
          if (!lowest || e.peak < lowest.e.peak) lowest = { dt, rc, micro, cap, rows, e };
          if (e.peak <= r.budget) {
            chosen = { dt, rc, micro, cap, rows, e };
            break outer;
          }
        }
  const fits = chosen !== null;
  const c = chosen ?? lowest!;
  if (r.weightsDtype === 'auto' && dtypes.length === 2)
    reasons.push(
      c.dt === 'f32'
        ? `weights f32: the checkpoint is ${r.checkpointDtype ?? 'of unknown dtype'}${r.mergesAdapters ? ' with adapters merged into it' : ''} and f32 fits`
        : `weights bf16: f32 frozen weights do not fit the budget (bf16 rounds the ${r.mergesAdapters ? 'merged' : (r.checkpointDtype ?? 'f32')} weights)`,
    );
  if (training) {
    reasons.push(r.recompute === 'auto' ? (c.rc ? 'recompute on: keeping every layer\'s activations does not fit' : 'recompute off: the kept activations fit') : `recompute ${c.rc ? 'on' : 'off'}: asked for`);
    reasons.push(
      r.microTokens === 'auto'
        ? c.micro > 0
          ? `micro-batches of ${c.micro} tokens: ${r.batchTokens}-token micro-batches do not fit`
          : `no split: ${r.batchTokens}-token micro-batches fit`
        : `micro-batch tokens ${c.micro || r.batchTokens}: asked for`,
    );
  }
  if (c.cap !== DEFAULT_CACHE_CAP) reasons.push(`allocator block cache capped at ${c.cap / 2 ** 20} MiB (default 1024)`);
  if (c.rows > 0) reasons.push(`log-prob chunk of ${c.rows} rows: the backend's choice does not fit`);
  const kvCacheBlocks = kvCap(r.budget, c.e);
  const b = baseElements(r.config);
  const plan: MemoryPlan = {
    budget: r.budget,
    fits,
    choices: { weightsDtype: c.dt, recompute: c.rc, microTokens: c.micro, cacheCap: c.cap, kvCacheBlocks, logprobChunkRows: c.rows, reasons },
    categories: { ...c.e.atPeak, allocatorCache: c.e.cachedAtPeak, loading: c.e.loading, runtime: r.runtime },
    peak: c.e.peak,
    worstPeak: c.e.worst,
    enginePeakLive: c.e.enginePeakLive,
    phases: c.e.phases,
    parameters: { base: b.parameters, trainable: r.lora ? loraElements(r.config, r.lora).parameters : b.parameters },
    advice: [],
  };
  if (!fits && withAdvice) plan.advice = adviceFor(r, plan);
  return plan;
}

/**
 * The KV pool's cap: the blocks the run's generation needs (P, in the plan's peak already), or
 * more when the budget leaves room above the peak. Growing the pool from P to L holds both
 * pools for a moment (P + L blocks, P counted), so L is at most the headroom in blocks.
 */
export function kvCap(budget: number, e: Pick<Evaluated, 'peak' | 'kvPoolBlocks' | 'kvBlockBytes'>): number {
  const room = Math.floor(Math.max(0, budget - e.peak) / Math.max(1, e.kvBlockBytes));
  return Math.max(1, e.kvPoolBlocks, Math.min(room, 2 ** 31));
}

/** The bytes of the weights alone in a dtype (the model's buffer). */
export function weightsBytes(config: ModelConfig, dtype: WeightsDtype): number {
  return baseElements(config).numel * (dtype === 'bf16' ? 2 : 4);
}

/** Options that would make a plan fit, each checked by planning again with it. */
function adviceFor(r: PlanRequest, p: MemoryPlan): string[] {
  const out: string[] = [];
  const tryIt = (what: string, over: Partial<PlanRequest>): void => {
    const q = planMemory({ ...r, ...over, budget: r.budget }, false);
    if (q.fits) out.push(`${what} (planned peak ${fmt(q.peak)})`);
  };
  const fmt = (n: number): string => `${(n / 2 ** 30).toFixed(2)} GiB`;
  const training = !!(r.workloads.sft || r.workloads.preference);
  if (r.weightsDtype === 'f32' && (!training || r.lora)) tryIt('--weights-dtype bf16', { weightsDtype: 'bf16' });
  if (training && !r.lora) for (const rank of [16, 8]) if (out.length === 0 || !out.some((s) => s.startsWith('--lora-rank'))) tryIt(`--lora-rank ${rank}`, { lora: { rank, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] }, weightsDtype: 'auto' });
  if (r.lora && r.lora.rank > 8) tryIt('--lora-rank 8', { lora: { ...r.lora, rank: 8 } });
  if (training && r.recompute === false) tryIt('recompute on (drop --no-recompute)', { recompute: 'auto' });
  if (training && r.microTokens !== 'auto') tryIt('an automatic micro-batch (drop --micro-tokens)', { microTokens: 'auto' });
  if (training) for (const bt of [2048, 1024, 512]) if (bt < r.batchTokens && bt >= r.maxSequence) {
    const before = out.length;
    tryIt(`--batch-tokens ${bt}`, { batchTokens: bt });
    if (out.length > before) break;
  }
  if (r.workloads.search && r.workloads.search.branches > 8) tryIt(`fewer branches in the search (--num-actions, or batch of ${Math.ceil(r.workloads.search.branches / 2)})`, { workloads: { ...r.workloads, search: { ...r.workloads.search, branches: Math.ceil(r.workloads.search.branches / 2) } } });
  // the smallest budget that fits as asked
  out.push(`--max-memory ${Math.ceil((p.peak * 1.05) / 2 ** 20)}MiB or more (the lowest planned peak as asked is ${fmt(p.peak)}; 5% margin)`);
  return out;
}

export { CATEGORIES, type Category };
