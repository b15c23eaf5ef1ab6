// Float64 references for the engine's ops, written from the formulas (not from the
// kernels): plain loops over number[] / Float64Array, no tiling, no online softmax.
// Each backward here is itself checked against central finite differences of the
// matching forward in test/native/ops.test.ts.

export type Vec = Float64Array;
export const vec = (a: ArrayLike<number>): Vec => Float64Array.from(a);

// ------------------------------------------------------------------ embedding
export function embeddingForward(ids: ArrayLike<number>, table: Vec, dim: number): Vec {
  const out = new Float64Array(ids.length * dim);
  for (let i = 0; i < ids.length; i++) for (let d = 0; d < dim; d++) out[i * dim + d] = table[ids[i]! * dim + d]!;
  return out;
}
export function embeddingBackward(ids: ArrayLike<number>, dout: Vec, vocab: number, dim: number): Vec {
  const g = new Float64Array(vocab * dim);
  for (let i = 0; i < ids.length; i++) for (let d = 0; d < dim; d++) g[ids[i]! * dim + d]! += dout[i * dim + d]!;
  return g;
}

// ------------------------------------------------------------------ RMSNorm
export function rmsnormForward(x: Vec, w: Vec, n: number, d: number, eps: number): { y: Vec; rstd: Vec } {
  const y = new Float64Array(n * d);
  const rstd = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[i * d + j]! ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    rstd[i] = r;
    for (let j = 0; j < d; j++) y[i * d + j] = x[i * d + j]! * r * w[j]!;
  }
  return { y, rstd };
}
export function rmsnormBackward(x: Vec, w: Vec, dy: Vec, n: number, d: number, eps: number): { dx: Vec; dw: Vec } {
  const dx = new Float64Array(n * d);
  const dw = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += x[i * d + j]! ** 2;
    const r = 1 / Math.sqrt(ss / d + eps);
    // y_j = x_j r w_j ;  dr/dx_k = -r^3 x_k / d
    let g = 0;
    for (let j = 0; j < d; j++) g += dy[i * d + j]! * w[j]! * x[i * d + j]!;
    for (let k = 0; k < d; k++) dx[i * d + k] = dy[i * d + k]! * w[k]! * r - (g * r * r * r * x[i * d + k]!) / d;
    for (let j = 0; j < d; j++) dw[j]! += dy[i * d + j]! * x[i * d + j]! * r;
  }
  return { dx, dw };
}

// ------------------------------------------------------------------ RoPE (HF half split)
export function rope(x: Vec, pos: ArrayLike<number>, invFreq: ArrayLike<number>, T: number, H: number, D: number, inverse = false): Vec {
  const y = new Float64Array(x.length);
  const half = D / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < H; h++)
      for (let i = 0; i < half; i++) {
        const ang = (inverse ? -1 : 1) * pos[t]! * invFreq[i]!;
        const o = (t * H + h) * D;
        const a = x[o + i]!, b = x[o + i + half]!;
        y[o + i] = a * Math.cos(ang) - b * Math.sin(ang);
        y[o + i + half] = b * Math.cos(ang) + a * Math.sin(ang);
      }
  return y;
}
/** rope_theta -> inv_freq [D/2] (no scaling). */
export function invFreq(D: number, theta: number): Float64Array {
  const r = new Float64Array(D / 2);
  for (let i = 0; i < D / 2; i++) r[i] = 1 / theta ** ((2 * i) / D);
  return r;
}

// ------------------------------------------------------------------ SwiGLU, add, bias
const sig = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)));
export function swigluForward(g: Vec, u: Vec): Vec {
  return g.map((gi, i) => gi * sig(gi) * u[i]!);
}
export function swigluBackward(g: Vec, u: Vec, dout: Vec): { dgate: Vec; dup: Vec } {
  const dgate = new Float64Array(g.length), dup = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) {
    const s = sig(g[i]!);
    dup[i] = dout[i]! * g[i]! * s;
    // d/dg [g s(g)] = s + g s (1 - s)
    dgate[i] = dout[i]! * u[i]! * (s + g[i]! * s * (1 - s));
  }
  return { dgate, dup };
}
export function add(a: Vec, b: Vec): Vec {
  return a.map((v, i) => v + b[i]!);
}
export function biasForward(x: Vec, bias: Vec, n: number, d: number): Vec {
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) y[i * d + j] = x[i * d + j]! + bias[j]!;
  return y;
}
export function biasBackward(dy: Vec, n: number, d: number): Vec {
  const g = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) g[j]! += dy[i * d + j]!;
  return g;
}

// ------------------------------------------------------------------ attention (naive, full softmax)
export interface AttnShape {
  T: number;
  Hq: number;
  Hkv: number;
  D: number;
  cu: number[];
  scale: number;
}
function seqOf(cu: number[], t: number): number {
  let s = 0;
  while (cu[s + 1]! <= t) s++;
  return s;
}
export function attentionForward(q: Vec, k: Vec, v: Vec, sh: AttnShape): { out: Vec; lse: Vec } {
  const { T, Hq, Hkv, D, cu, scale } = sh;
  const g = Hq / Hkv;
  const out = new Float64Array(T * Hq * D);
  const lse = new Float64Array(T * Hq);
  for (let t = 0; t < T; t++) {
    const start = cu[seqOf(cu, t)]!;
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / g);
      const s: number[] = [];
      for (let j = start; j <= t; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(t * Hq + h) * D + d]! * k[(j * Hkv + kh) * D + d]!;
        s.push(dot * scale);
      }
      const m = Math.max(...s);
      let z = 0;
      for (const x of s) z += Math.exp(x - m);
      lse[t * Hq + h] = m + Math.log(z);
      for (let j = start; j <= t; j++) {
        const p = Math.exp(s[j - start]! - m) / z;
        for (let d = 0; d < D; d++) out[(t * Hq + h) * D + d]! += p * v[(j * Hkv + kh) * D + d]!;
      }
    }
  }
  return { out, lse };
}
/**
 * With `out`, Delta = dout · out uses the forward output the op is given (both engines'
 * attention_backward take `out` as an input and compute Delta from it, as FlashAttention
 * does); without it, Delta = sum_j p_j dp_j exactly.
 */
export function attentionBackward(q: Vec, k: Vec, v: Vec, dout: Vec, sh: AttnShape, out?: ArrayLike<number>): { dq: Vec; dk: Vec; dv: Vec } {
  const { T, Hq, Hkv, D, cu, scale } = sh;
  const g = Hq / Hkv;
  const dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  for (let t = 0; t < T; t++) {
    const start = cu[seqOf(cu, t)]!;
    for (let h = 0; h < Hq; h++) {
      const kh = Math.floor(h / g);
      const n = t - start + 1;
      const s = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += q[(t * Hq + h) * D + d]! * k[((start + j) * Hkv + kh) * D + d]!;
        s[j] = dot * scale;
      }
      const m = Math.max(...s);
      let z = 0;
      for (const x of s) z += Math.exp(x - m);
      const p = s.map((x) => Math.exp(x - m) / z);
      // out = sum_j p_j v_j ; dp_j = dout·v_j ; ds_j = p_j (dp_j - sum_i p_i dp_i)
      const dp = new Float64Array(n);
      for (let j = 0; j < n; j++) {
        let acc = 0;
        for (let d = 0; d < D; d++) acc += dout[(t * Hq + h) * D + d]! * v[((start + j) * Hkv + kh) * D + d]!;
        dp[j] = acc;
        for (let d = 0; d < D; d++) dv[((start + j) * Hkv + kh) * D + d]! += p[j]! * dout[(t * Hq + h) * D + d]!;
      }
      let pdp = 0;
      if (out) for (let d = 0; d < D; d++) pdp += dout[(t * Hq + h) * D + d]! * out[(t * Hq + h) * D + d]!;
      else for (let j = 0; j < n; j++) pdp += p[j]! * dp[j]!;
      for (let j = 0; j < n; j++) {
        const ds = p[j]! * (dp[j]! - pdp) * scale;
        for (let d = 0; d < D; d++) {
          dq[(t * Hq + h) * D + d]! += ds * k[((start + j) * Hkv + kh) * D + d]!;
          dk[((start + j) * Hkv + kh) * D + d]! += ds * q[(t * Hq + h) * D + d]!;
        }
      }
    }
  }
  return { dq, dk, dv };
}

// ------------------------------------------------------------------ log-prob of targets
export function logprob(hidden: Vec, weight: Vec, targets: ArrayLike<number>, N: number, H: number, V: number): { logprob: Vec; lse: Vec } {
  const lp = new Float64Array(N), lse = new Float64Array(N);
  const z = new Float64Array(V);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < V; j++) {
      let acc = 0;
      for (let h = 0; h < H; h++) acc += hidden[i * H + h]! * weight[j * H + h]!;
      z[j] = acc;
    }
    let m = -Infinity;
    for (const x of z) m = Math.max(m, x);
    let s = 0;
    for (const x of z) s += Math.exp(x - m);
    lse[i] = m + Math.log(s);
    lp[i] = targets[i]! < 0 ? 0 : z[targets[i]!]! - lse[i]!;
  }
  return { logprob: lp, lse };
}
export function logprobBackward(hidden: Vec, weight: Vec, targets: ArrayLike<number>, dlogp: Vec, N: number, H: number, V: number): { dhidden: Vec; dweight: Vec } {
  const dh = new Float64Array(N * H), dw = new Float64Array(V * H);
  const { lse } = logprob(hidden, weight, targets, N, H, V);
  for (let i = 0; i < N; i++) {
    if (targets[i]! < 0) continue;
    for (let j = 0; j < V; j++) {
      let acc = 0;
      for (let h = 0; h < H; h++) acc += hidden[i * H + h]! * weight[j * H + h]!;
      const g = dlogp[i]! * ((j === targets[i] ? 1 : 0) - Math.exp(acc - lse[i]!));
      for (let h = 0; h < H; h++) {
        dh[i * H + h]! += g * weight[j * H + h]!;
        dw[j * H + h]! += g * hidden[i * H + h]!;
      }
    }
  }
  return { dhidden: dh, dweight: dw };
}

// ------------------------------------------------------------------ preference losses
export type PrefKind = 'dpo' | 'ipo' | 'simpo' | 'orpo';
export interface PrefArgs {
  kind: PrefKind;
  beta: number;
  gamma: number;
  labelSmoothing: number;
  lambda: number;
}
const logSigmoid = (z: number): number => (z >= 0 ? -Math.log1p(Math.exp(-z)) : z - Math.log1p(Math.exp(z)));
// log(p / (1 - p)) for log p = m < 0
const logOdds = (m: number): number => m - Math.log(-Math.expm1(m));
/** Loss and rewards of one pair (the gradients come from finite differences / the analytic forms below). */
export function prefLoss(a: PrefArgs, c: number, r: number, cl: number, rl: number, rc: number, rr: number): { loss: number; cr: number; rr: number } {
  switch (a.kind) {
    case 'dpo': {
      const z = a.beta * (c - rc - (r - rr));
      return { loss: -(1 - a.labelSmoothing) * logSigmoid(z) - a.labelSmoothing * logSigmoid(-z), cr: a.beta * (c - rc), rr: a.beta * (r - rr) };
    }
    case 'ipo': {
      const h = c - rc - (r - rr);
      return { loss: (h - 1 / (2 * a.beta)) ** 2, cr: a.beta * (c - rc), rr: a.beta * (r - rr) };
    }
    case 'simpo': {
      const z = a.beta * (c / cl - r / rl) - a.gamma;
      return { loss: -logSigmoid(z), cr: (a.beta * c) / cl, rr: (a.beta * r) / rl };
    }
    case 'orpo': {
      // averages clamped to at most -1e-6 (log-odds are infinite at probability 1)
      const mc = Math.min(c / cl, -1e-6), mr = Math.min(r / rl, -1e-6);
      const lc = logOdds(mc), lr = logOdds(mr);
      return { loss: -mc + a.lambda * -logSigmoid(lc - lr), cr: lc, rr: lr };
    }
  }
}
/** Analytic gradients of prefLoss wrt c and r. */
export function prefGrad(a: PrefArgs, c: number, r: number, cl: number, rl: number, rc: number, rr: number): { dc: number; dr: number } {
  const sg = (z: number): number => Math.exp(logSigmoid(z));
  switch (a.kind) {
    case 'dpo': {
      const z = a.beta * (c - rc - (r - rr));
      const dz = -(1 - a.labelSmoothing) * sg(-z) + a.labelSmoothing * sg(z);
      return { dc: a.beta * dz, dr: -a.beta * dz };
    }
    case 'ipo': {
      const h = c - rc - (r - rr);
      const d = 2 * (h - 1 / (2 * a.beta));
      return { dc: d, dr: -d };
    }
    case 'simpo': {
      const z = a.beta * (c / cl - r / rl) - a.gamma;
      const dz = -sg(-z);
      return { dc: (dz * a.beta) / cl, dr: (-dz * a.beta) / rl };
    }
    case 'orpo': {
      const mc = Math.min(c / cl, -1e-6), mr = Math.min(r / rl, -1e-6);
      const z = logOdds(mc) - logOdds(mr);
      const dl = (m: number): number => -1 / Math.expm1(m); // d logOdds / dm
      const dz = -a.lambda * sg(-z);
      // no gradient through a clamped average
      return { dc: c / cl < -1e-6 ? (-1 + dz * dl(mc)) / cl : 0, dr: r / rl < -1e-6 ? (-dz * dl(mr)) / rl : 0 };
    }
  }
}

// ------------------------------------------------------------------ AdamW
export function adamw(p: Vec, g: Vec, m: Vec, v: Vec, o: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number; gradScale: number }): { p: Vec; m: Vec; v: Vec } {
  const P = new Float64Array(p.length), M = new Float64Array(p.length), Vv = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]! * o.gradScale;
    M[i] = o.beta1 * m[i]! + (1 - o.beta1) * gi;
    Vv[i] = o.beta2 * v[i]! + (1 - o.beta2) * gi * gi;
    const mh = M[i]! / (1 - o.beta1 ** o.step);
    const vh = Vv[i]! / (1 - o.beta2 ** o.step);
    P[i] = p[i]! - o.lr * (mh / (Math.sqrt(vh) + o.eps) + o.weightDecay * p[i]!);
  }
  return { p: P, m: M, v: Vv };
}

// ------------------------------------------------------------------ sampling
const M64 = (1n << 64n) - 1n;
/** splitmix64 finaliser. */
export function mix64(z: bigint): bigint {
  z = (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n & M64;
  z = (z ^ (z >> 27n)) * 0x94d049bb133111ebn & M64;
  return z ^ (z >> 31n);
}
/** The engine's counter-based uniform in [0, 1): 53 bits of mix64(mix64(seed + golden*(counter+1)) ^ counter). */
export function uniform(seed: bigint, counter: bigint): number {
  const a = mix64((seed + 0x9e3779b97f4a7c15n * (counter + 1n)) & M64);
  const b = mix64(a ^ counter);
  return Number(b >> 11n) / 2 ** 53;
}
/**
 * Reference sampler. Temperature <= 0: greedy (first maximum), logpSampled 0.
 * Neither top-k nor top-p: inverse CDF over all tokens in index order. Otherwise the
 * tokens sorted by logit (descending, ties toward the lower index), cut to the top k,
 * then to the shortest prefix whose mass (renormalised over the top-k survivors, or
 * over all tokens summed in index order) reaches top_p; inverse CDF over that list.
 */
export function sampleRow(logits: ArrayLike<number>, o: { temperature: number; topK: number; topP: number }, u: number): { token: number; logpSampled: number; logpModel: number } {
  const V = logits.length;
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, logits[j]!);
  let z = 0;
  for (let j = 0; j < V; j++) z += Math.exp(logits[j]! - m);
  const lsm = (j: number): number => logits[j]! - m - Math.log(z);
  if (o.temperature <= 0) {
    let best = 0;
    for (let j = 1; j < V; j++) if (logits[j]! > logits[best]!) best = j;
    return { token: best, logpSampled: 0, logpModel: lsm(best) };
  }
  const w = (j: number): number => Math.exp((logits[j]! - m) / o.temperature);
  const useK = o.topK > 0 && o.topK < V, useP = o.topP < 1;
  let keep: number[];
  let zz = 0;
  if (!useK && !useP) {
    keep = Array.from({ length: V }, (_, j) => j);
    for (const j of keep) zz += w(j);
  } else {
    const idx = Array.from({ length: V }, (_, j) => j).sort((a, b) => logits[b]! - logits[a]! || a - b);
    keep = useK ? idx.slice(0, o.topK) : idx;
    if (useK) for (const j of keep) zz += w(j);
    else for (let j = 0; j < V; j++) zz += w(j);
    if (useP) {
      let cum = 0;
      let n = 0;
      while (n < keep.length) {
        cum += w(keep[n]!) / zz;
        n++;
        if (cum >= o.topP) break;
      }
      keep = keep.slice(0, n);
      zz = 0;
      for (const j of keep) zz += w(j);
    }
  }
  const target = u * zz;
  let acc = 0;
  let tok = keep[keep.length - 1]!;
  for (const j of keep) {
    acc += w(j);
    if (acc > target) {
      tok = j;
      break;
    }
  }
  return { token: tok, logpSampled: (logits[tok]! - m) / o.temperature - Math.log(zz), logpModel: lsm(tok) };
}


// ------------------------------------------------------------------ decode against a KV history
/**
 * q [B, nNew, Hq, D]; keys/values of row b are kHist[b], vHist[b] ([len_b, Hkv, D]);
 * new token j of row b sits at position len_b - nNew + j and sees positions <= its own.
 */
export function attentionDecode(q: Vec, kHist: Vec[], vHist: Vec[], lens: number[], nNew: number, Hq: number, Hkv: number, D: number, scale: number): Vec {
  const B = lens.length;
  const out = new Float64Array(B * nNew * Hq * D);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < nNew; j++)
      for (let h = 0; h < Hq; h++) {
        const kh = Math.floor(h / (Hq / Hkv));
        const own = lens[b]! - nNew + j;
        const s: number[] = [];
        for (let t = 0; t <= own; t++) {
          let dt = 0;
          for (let d = 0; d < D; d++) dt += q[((b * nNew + j) * Hq + h) * D + d]! * kHist[b]![(t * Hkv + kh) * D + d]!;
          s.push(dt * scale);
        }
        const m = Math.max(...s);
        const z = s.reduce((a, x) => a + Math.exp(x - m), 0);
        for (let t = 0; t <= own; t++)
          for (let d = 0; d < D; d++) out[((b * nNew + j) * Hq + h) * D + d]! += (Math.exp(s[t]! - m) / z) * vHist[b]![(t * Hkv + kh) * D + d]!;
      }
  return out;
}
