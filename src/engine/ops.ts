// Typed async wrappers over native.ops (native/addon/ops_binding.cpp): every op of the
// ops interface (native/core/ops.h), for tests, benchmarks and the trainers.
//
// Conventions
// - Tensors are NativeTensor handles (tensor(), zeros()). All tensors of one call must
//   be on one device; the op runs there (cpu, or cuda:N when built with CUDA).
// - "act" tensors have the device's activation dtype: f32 on the CPU, bf16 on CUDA.
//   Statistics (rstd, lse), weight gradients, optimizer state and losses are f32.
// - Outputs that an op writes are created by the binding and returned in the resolved
//   object. Accumulating outputs (dtable, dw, dbias, dweight) are added into when
//   passed and created as zeros when not. In-place ops (rope, biasForward, adamw,
//   scale, axpy, kvWrite) modify the tensors passed (and return them where useful).
// - Bad arguments reject with TypeError/RangeError naming the op and the argument.
import { loadNative } from './native.js';
import type { NativeTensor } from './tensor.js';

type T = NativeTensor;
// Argument errors thrown synchronously by the binding become rejections here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyOp = (o: object) => Promise<any>;
const ops = (): Record<string, AnyOp> =>
  new Proxy(loadNative().ops as Record<string, AnyOp>, {
    get: (target, name: string) => async (o: object) => target[name]!(o),
  });

/**
 * C = alpha*op(a)·op(b) + beta*C; a, b, c rank 2, or rank 3 with a common leading batch dim.
 * On the CPU b may also be bf16 (weights in half the memory; widened exactly, so the result
 * is bitwise that of the f32 matrix with the same values).
 */
export function gemm(o: { a: T; b: T; c?: T; transA?: boolean; transB?: boolean; alpha?: number; beta?: number }): Promise<{ c: T }> {
  return ops().gemm(o);
}

/** out[i] = table[ids[i]]. ids i32 [n], table act [V, dim] -> out act [n, dim]. */
export function embeddingForward(o: { ids: T; table: T }): Promise<{ out: T }> {
  return ops().embeddingForward(o);
}
/** dtable[ids[i]] += dout[i] (deterministic order). dtable f32 [V, dim], or pass vocab to create it. */
export function embeddingBackward(o: { ids: T; dout: T; dtable?: T; vocab?: number }): Promise<{ dtable: T }> {
  return ops().embeddingBackward(o);
}

/** y = x / sqrt(mean(x^2) + eps) * w;  x [n, d], w [d] -> y [n, d], rstd f32 [n]. */
export function rmsnormForward(o: { x: T; w: T; eps?: number }): Promise<{ y: T; rstd: T }> {
  return ops().rmsnormForward(o);
}
/** dx (written) and dw (f32 [d], accumulated) from dy; rstd from the forward (recomputed when absent). */
export function rmsnormBackward(o: { x: T; w: T; dy: T; rstd?: T; eps?: number; dw?: T }): Promise<{ dx: T; dw: T }> {
  return ops().rmsnormBackward(o);
}

/** In place on x [T, H, D] (Hugging Face half-split); pos i32 [T]; invFreq f32 [D/2]; inverse: rotate by -angle. */
export function rope(o: { x: T; pos: T; invFreq: T; inverse?: boolean }): Promise<{ x: T }> {
  return ops().rope(o);
}

/** out = silu(gate) * up (any shape, same for both). */
export function swigluForward(o: { gate: T; up: T }): Promise<{ out: T }> {
  return ops().swigluForward(o);
}
export function swigluBackward(o: { gate: T; up: T; dout: T }): Promise<{ dgate: T; dup: T }> {
  return ops().swigluBackward(o);
}
/** out = a + b (same shape). */
export function add(o: { a: T; b: T }): Promise<{ out: T }> {
  return ops().add(o);
}
/** x[i, :] += bias, in place. x [n, d], bias [d]. */
export function biasForward(o: { x: T; bias: T }): Promise<{ x: T }> {
  return ops().biasForward(o);
}
/** dbias (f32 [d]) += sum_i dy[i, :]. */
export function biasBackward(o: { dy: T; dbias?: T }): Promise<{ dbias: T }> {
  return ops().biasBackward(o);
}

export interface AttentionInputs {
  /** [T, Hq, D] */ q: T;
  /** [T, Hkv, D] */ k: T;
  /** [T, Hkv, D] */ v: T;
  /** i32 [nseq + 1], cumulative sequence offsets from 0 to T */ cuSeqlens: T;
  /** default 1/sqrt(D) */ scale?: number;
}
/** Causal GQA attention over packed sequences -> out [T, Hq, D], lse f32 [T, Hq]. */
export function attentionForward(o: AttentionInputs): Promise<{ out: T; lse: T }> {
  return ops().attentionForward(o);
}
/** Gradients from dout, given the forward's out and lse. */
export function attentionBackward(o: AttentionInputs & { out: T; lse: T; dout: T }): Promise<{ dq: T; dk: T; dv: T }> {
  return ops().attentionBackward(o);
}

export interface KvCacheInputs {
  /** [numBlocks, blockSize, Hkv, D] */ kCache: T;
  /** [numBlocks, blockSize, Hkv, D] */ vCache: T;
  /** i32 [B, maxBlocks] */ blockTable: T;
  /** i32 [B]: context length of each row including the new tokens */ ctxLens: T;
}
/** Writes kNew, vNew [B, nNew, Hkv, D] at positions ctxLens[b]-nNew+j (in place on the caches). */
export function kvWrite(o: KvCacheInputs & { kNew: T; vNew: T }): Promise<Record<string, never>> {
  return ops().kvWrite(o);
}
/** q [B, nNew, Hq, D] against the cache (causal within the new tokens) -> out [B, nNew, Hq, D]. */
export function attentionDecode(o: KvCacheInputs & { q: T; scale?: number }): Promise<{ out: T }> {
  return ops().attentionDecode(o);
}

/**
 * Fused LM head -> log-softmax -> log-prob of each target: hidden [N, H], weight [V, H],
 * targets i32 [N] (-1 = ignore) -> logprob, lse f32 [N]. With dlogp f32 [N], also dhidden
 * [N, H] and dweight f32 [V, H] (accumulated) in the same pass. Never materialises N×V.
 */
export function logprob(o: { hidden: T; weight: T; targets: T; chunk?: number; dlogp?: T; dweight?: T }): Promise<{
  logprob: T;
  lse: T;
  dhidden?: T;
  dweight?: T;
}> {
  return ops().logprob(o);
}

export type PreferenceKind = 'dpo' | 'ipo' | 'simpo' | 'orpo';
export interface PreferenceInputs {
  kind: PreferenceKind;
  /** f32 [P] per-sequence log-prob sums of the chosen / rejected steps under the policy */
  chosen: T;
  rejected: T;
  /** f32 [P] token counts (SimPO, ORPO) */
  chosenLen?: T;
  rejectedLen?: T;
  /** f32 [P] sums under the reference (DPO, IPO) */
  refChosen?: T;
  refRejected?: T;
  /** defaults: beta 2.5 for SimPO else 0.1; gamma 0.5; labelSmoothing 0; lambda 0.1 */
  beta?: number;
  gamma?: number;
  labelSmoothing?: number;
  lambda?: number;
}
export interface PreferenceOutputs {
  loss: T;
  dChosen: T;
  dRejected: T;
  chosenReward: T;
  rejectedReward: T;
}
export interface PreferenceMetrics {
  loss: number;
  chosenReward: number;
  rejectedReward: number;
  margin: number;
  accuracy: number;
}
/** Per-pair loss, gradients wrt chosen/rejected and rewards (all f32 [P]); see native/core/ops.h for the formulas. */
export function preferenceLoss(o: PreferenceInputs): Promise<PreferenceOutputs> {
  return ops().preferenceLoss(o);
}
/** Means over pairs: loss, rewards, margin (chosen - rejected reward) and accuracy (share with margin > 0). */
export function preferenceMetrics(out: PreferenceOutputs): PreferenceMetrics {
  const l = f32(out.loss), c = f32(out.chosenReward), r = f32(out.rejectedReward);
  const P = l.length;
  if (P === 0) return { loss: 0, chosenReward: 0, rejectedReward: 0, margin: 0, accuracy: 0 };
  let sl = 0, sc = 0, sr = 0, acc = 0;
  for (let i = 0; i < P; i++) {
    sl += l[i]!;
    sc += c[i]!;
    sr += r[i]!;
    if (c[i]! > r[i]!) acc++;
  }
  return { loss: sl / P, chosenReward: sc / P, rejectedReward: sr / P, margin: (sc - sr) / P, accuracy: acc / P };
}
function f32(t: T): Float32Array {
  return t.toArray() as Float32Array;
}

/** AdamW step in place on param, m, v (all f32, same shape); grad is read as grad*gradScale. */
export function adamw(o: {
  param: T;
  grad: T;
  m: T;
  v: T;
  lr: number;
  step: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  gradScale?: number;
}): Promise<Record<string, never>> {
  return ops().adamw(o);
}
/** Sum of squares of an f32 tensor, accumulated in double. */
export function sumSquares(x: T): Promise<number> {
  return ops().sumSquares({ x });
}
/** x *= s, in place (f32). */
export function scale(x: T, s: number): Promise<{ x: T }> {
  return ops().scale({ x, s });
}
/** y += a*x, in place (f32). */
export function axpy(y: T, x: T, a: number): Promise<{ y: T }> {
  return ops().axpy({ y, x, a });
}
/** true if any element is NaN or ±Inf (f32). */
export function hasNonfinite(x: T): Promise<boolean> {
  return ops().hasNonfinite({ x });
}

/**
 * Samples one token per row of logits f32 [B, V]: temperature (<= 0: greedy), topK (0: off),
 * topP (1: off). The random number of row b is a hash of (seed, counters[b]): the same
 * seed and counter always give the same token. Returns the tokens, their log-probabilities
 * under the sampling distribution and under the raw model (log-softmax of the logits).
 */
export function sample(o: {
  logits: T;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number | bigint;
  counters: BigUint64Array | Array<number | bigint>;
}): Promise<{ tokens: Int32Array; logpSampled: Float32Array; logpModel: Float32Array }> {
  return ops().sample(o);
}
