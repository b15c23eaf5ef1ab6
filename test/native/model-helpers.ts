// Helpers of the model tests that check the engine against the float64 reference
// (test/reference/model64.ts): the engine's weights and LoRA adapter as float64, the
// reference's loss, and the relative error measure.
import type { NativeModel } from '../../src/engine/index.js';
import type { ModelConfig, PackedBatch } from '../../src/engine/model-types.js';
import { forward64, logprobs64, type Lora64 } from '../reference/model64.js';
import { rng } from '../helpers/native.js';

/** max |a - b| over max |b| */
export function maxRel(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let err = 0, mx = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    mx = Math.max(mx, Math.abs(b[i]!));
  }
  return err / Math.max(mx, 1e-30);
}

/** every parameter of the model (base and adapter) as float64, by name */
export function weightsOf(m: NativeModel): Map<string, Float64Array> {
  const w = new Map<string, Float64Array>();
  for (const n of m.paramNames()) w.set(n, Float64Array.from(m.getParam(n)));
  return w;
}

/** the model's LoRA adapter as the reference takes it, from weights named the PEFT way */
export function loraOf(m: NativeModel, w: Map<string, Float64Array>): Lora64 | undefined {
  if (!m.lora) return undefined;
  const l = m.lora;
  return {
    rank: l.rank,
    alpha: l.alpha,
    get(layer, proj) {
      const sub = ['gate_proj', 'up_proj', 'down_proj'].includes(proj) ? 'mlp' : 'self_attn';
      const p = `base_model.model.model.layers.${layer}.${sub}.${proj}`;
      const A = w.get(`${p}.lora_A.weight`), B = w.get(`${p}.lora_B.weight`);
      return A && B ? { A, B } : undefined;
    },
  };
}

/** the reference's sum of dl[i] * logprob[i] (the loss whose gradient the engine gets from dl) */
export function loss64(cfg: ModelConfig, w: Map<string, Float64Array>, b: PackedBatch, dl: Float32Array, lora?: Lora64): number {
  const logits = forward64(cfg, (n) => w.get(n)!, b.tokens, b.cuSeqlens, b.positions, lora);
  const lp = logprobs64(logits, cfg.vocabSize, b.targets);
  let s = 0;
  for (let i = 0; i < lp.length; i++) s += dl[i]! * lp[i]!;
  return s;
}

/** f32 -> bf16 -> f32, round to nearest even on the 16 dropped bits (finite inputs) */
export function bf16(x: ArrayLike<number>): Float32Array {
  const f = Float32Array.from(x as ArrayLike<number>);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < u.length; i++) {
    const v = u[i]!;
    const low = v & 0xffff, keep = v >>> 16;
    const up = low > 0x8000 || (low === 0x8000 && (keep & 1) === 1) ? 1 : 0;
    u[i] = ((keep + up) << 16) >>> 0;
  }
  return f;
}

/** a packed batch of random tokens and targets, one sequence per entry of lens */
export function batchOf(c: ModelConfig, lens: number[], seed: number): PackedBatch {
  const r = rng(seed);
  const tokens: number[] = [], targets: number[] = [], cu = [0];
  for (const n of lens) {
    for (let i = 0; i < n; i++) {
      tokens.push(Math.floor(r() * c.vocabSize));
      targets.push(Math.floor(r() * c.vocabSize));
    }
    cu.push(tokens.length);
  }
  return { tokens: Int32Array.from(tokens), targets: Int32Array.from(targets), cuSeqlens: Int32Array.from(cu) };
}
