// Float64 forward of the Llama-family decoder, written from the Hugging Face modeling
// code's definitions (modeling_llama / qwen2 / qwen3), independently of native/core.
// Weights are looked up by their Hugging Face names. Used by the model tests as the
// reference for logits and, through central finite differences, for gradients.
import type { ModelConfig } from '../../src/engine/model-types.js';

export type Weights = (name: string) => ArrayLike<number>;

export function invFreq64(c: ModelConfig): Float64Array {
  const half = c.headDim / 2;
  const out = new Float64Array(half);
  for (let i = 0; i < half; i++) {
    let f = 1 / Math.pow(c.ropeTheta, (2 * i) / c.headDim);
    const rs = c.ropeScaling;
    if (rs) {
      const lowWl = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
      const highWl = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
      const wl = (2 * Math.PI) / f;
      if (wl > lowWl) f = f / rs.factor;
      else if (wl >= highWl) {
        const s = (rs.originalMaxPositionEmbeddings / wl - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
        f = (1 - s) * (f / rs.factor) + s * f;
      }
    }
    out[i] = f;
  }
  return out;
}

function rmsnorm(x: Float64Array, rows: number, d: number, w: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(rows * d);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[r * d + j]! ** 2;
    const inv = 1 / Math.sqrt(ss / d + eps);
    for (let j = 0; j < d; j++) y[r * d + j] = x[r * d + j]! * inv * w[j]!;
  }
  return y;
}

/** y[T, out] = x[T, in] W^T (+ b), W stored [out, in] */
function linear(x: Float64Array, T: number, inD: number, W: ArrayLike<number>, outD: number, b?: ArrayLike<number>): Float64Array {
  const y = new Float64Array(T * outD);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < outD; o++) {
      let s = b ? b[o]! : 0;
      const wo = o * inD, xt = t * inD;
      for (let i = 0; i < inD; i++) s += x[xt + i]! * W[wo + i]!;
      y[t * outD + o] = s;
    }
  return y;
}

function rope(x: Float64Array, T: number, H: number, D: number, pos: ArrayLike<number>, inv: Float64Array): void {
  const half = D / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++) {
      const base = (t * H + h) * D;
      for (let i = 0; i < half; i++) {
        const a = pos[t]! * inv[i]!;
        const c = Math.cos(a), s = Math.sin(a);
        const x1 = x[base + i]!, x2 = x[base + i + half]!;
        x[base + i] = x1 * c - x2 * s;
        x[base + i + half] = x2 * c + x1 * s;
      }
    }
}

export interface Lora64 {
  rank: number;
  alpha: number;
  /** A [r, in] and B [out, r] by PEFT name, or undefined when the module has none */
  get(layer: number, proj: string): { A: ArrayLike<number>; B: ArrayLike<number> } | undefined;
}

/**
 * Full logits [T, V] for a packed batch (sequences [cu[s], cu[s+1]) attend only within
 * themselves; positions default to 0.. per sequence).
 */
export function forward64(
  c: ModelConfig,
  w: Weights,
  tokens: ArrayLike<number>,
  cu: ArrayLike<number>,
  positions?: ArrayLike<number>,
  lora?: Lora64,
): Float64Array {
  const T = tokens.length, H = c.hiddenSize, D = c.headDim, Hq = c.numHeads, Hkv = c.numKvHeads, I = c.intermediateSize, V = c.vocabSize;
  const pos = new Float64Array(T);
  const seqOf = new Int32Array(T);
  for (let s = 0; s + 1 < cu.length; s++)
    for (let t = cu[s]!; t < cu[s + 1]!; t++) {
      pos[t] = positions ? positions[t]! : t - cu[s]!;
      seqOf[t] = s;
    }
  const inv = invFreq64(c);
  const emb = w('model.embed_tokens.weight');
  let x: Float64Array = new Float64Array(T * H);
  for (let t = 0; t < T; t++) for (let j = 0; j < H; j++) x[t * H + j] = emb[tokens[t]! * H + j]!;
  const lin = (l: number, proj: string, sub: string, inp: Float64Array, inD: number, outD: number, bias?: ArrayLike<number>) => {
    const y = linear(inp, T, inD, w(`model.layers.${l}.${sub}.${proj}.weight`), outD, bias);
    const ad = lora?.get(l, proj);
    if (ad && lora) {
      const s = lora.alpha / lora.rank;
      const u = linear(inp, T, inD, ad.A, lora.rank);
      const v = linear(u, T, lora.rank, ad.B, outD);
      for (let i = 0; i < y.length; i++) y[i] += s * v[i]!;
    }
    return y;
  };
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    const xn = rmsnorm(x, T, H, w(p + 'input_layernorm.weight'), c.rmsNormEps);
    let q: Float64Array = lin(l, 'q_proj', 'self_attn', xn, H, Hq * D, c.attentionBias ? w(p + 'self_attn.q_proj.bias') : undefined);
    let k: Float64Array = lin(l, 'k_proj', 'self_attn', xn, H, Hkv * D, c.attentionBias ? w(p + 'self_attn.k_proj.bias') : undefined);
    const v = lin(l, 'v_proj', 'self_attn', xn, H, Hkv * D, c.attentionBias ? w(p + 'self_attn.v_proj.bias') : undefined);
    if (c.qkNorm) {
      q = rmsnorm(q, T * Hq, D, w(p + 'self_attn.q_norm.weight'), c.rmsNormEps);
      k = rmsnorm(k, T * Hkv, D, w(p + 'self_attn.k_norm.weight'), c.rmsNormEps);
    }
    rope(q, T, Hq, D, pos, inv);
    rope(k, T, Hkv, D, pos, inv);
    const att = new Float64Array(T * Hq * D);
    const scale = 1 / Math.sqrt(D);
    const group = Hq / Hkv;
    for (let t = 0; t < T; t++) {
      const s0 = cu[seqOf[t]!]!;
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / group);
        const scores: number[] = [];
        let mx = -Infinity;
        for (let u = s0; u <= t; u++) {
          let d = 0;
          for (let i = 0; i < D; i++) d += q[(t * Hq + h) * D + i]! * k[(u * Hkv + kh) * D + i]!;
          d *= scale;
          scores.push(d);
          if (d > mx) mx = d;
        }
        let z = 0;
        for (const sc of scores) z += Math.exp(sc - mx);
        for (let u = s0; u <= t; u++) {
          const pr = Math.exp(scores[u - s0]! - mx) / z;
          for (let i = 0; i < D; i++) att[(t * Hq + h) * D + i] += pr * v[(u * Hkv + kh) * D + i]!;
        }
      }
    }
    const o = lin(l, 'o_proj', 'self_attn', att, Hq * D, H);
    for (let i = 0; i < x.length; i++) o[i] += x[i]!;
    x = o;
    const xn2 = rmsnorm(x, T, H, w(p + 'post_attention_layernorm.weight'), c.rmsNormEps);
    const g = lin(l, 'gate_proj', 'mlp', xn2, H, I);
    const up = lin(l, 'up_proj', 'mlp', xn2, H, I);
    const a = new Float64Array(T * I);
    for (let i = 0; i < a.length; i++) a[i] = (g[i]! / (1 + Math.exp(-g[i]!))) * up[i]!;
    const dn = lin(l, 'down_proj', 'mlp', a, I, H);
    for (let i = 0; i < x.length; i++) dn[i] += x[i]!;
    x = dn;
  }
  const xf = rmsnorm(x, T, H, w('model.norm.weight'), c.rmsNormEps);
  return linear(xf, T, H, w(c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight'), V);
}

/** log-softmax of logits [T, V] at targets (-1: 0). */
export function logprobs64(logits: Float64Array, V: number, targets: ArrayLike<number>): Float64Array {
  const T = targets.length;
  const out = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    if (targets[t]! < 0) continue;
    let mx = -Infinity;
    for (let j = 0; j < V; j++) mx = Math.max(mx, logits[t * V + j]!);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(logits[t * V + j]! - mx);
    out[t] = logits[t * V + targets[t]!]! - mx - Math.log(z);
  }
  return out;
}
