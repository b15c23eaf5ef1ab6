// The op table: every op of native/core/ops.h against the float64 references in
// test/reference/ops64.ts, in the style of ggml's test-backend-ops. Each case builds
// its inputs, runs the op through native.ops on ctx.device, and compares with the
// stated per-op tolerance (f32 on the CPU; bf16 tolerances for a CUDA run, which
// reuses this table by passing { device: 'cuda:0', act: 'bf16' }). Every backward is
// first checked against central finite differences of the float64 forward, then the
// kernel's gradient against the float64 backward.
//
// Use (test/native/ops.test.ts does this per CPU kernel level):
//   for (const c of opTable()) it(`${c.op}: ${c.name}`, () => c.run({ native, device: 'cuda:0', act: 'bf16' }));
import { toFloat32, type NativeTensor } from '../../src/engine/tensor.js';
import * as R from '../reference/ops64.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Native = Record<string, any>;
export interface Ctx {
  native: Native;
  device: string;
  act: 'f32' | 'bf16';
  /** accepted for callers that pass it; the table's shapes are small enough everywhere */
  small?: boolean;
}
export interface Tol {
  atol: number;
  rtol: number;
}
export interface OpCase {
  op: string;
  name: string;
  run: (ctx: Ctx) => Promise<void>;
}

// ------------------------------------------------------------------ helpers
export { rng } from '../helpers/native.js';
import { rng } from '../helpers/native.js';
export function randn(r: () => number, n: number, s = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const u = Math.max(r(), 1e-12), v = r();
    out[i] = s * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  return out;
}
export function randint(r: () => number, n: number, lo: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + Math.floor(r() * (hi - lo));
  return out;
}

interface Made {
  t: NativeTensor;
  /** the values as stored (after rounding to the tensor's dtype) */
  v: Float64Array;
}
function mk(ctx: Ctx, data: Float64Array, shape: number[], dtype: 'act' | 'f32'): Made {
  const dt = dtype === 'act' ? ctx.act : 'f32';
  const t = ctx.native.tensorFromArray({ data: Float32Array.from(data), dtype: dt, shape, device: ctx.device }) as NativeTensor;
  return { t, v: Float64Array.from(toFloat32(t)) };
}
function mki(ctx: Ctx, data: ArrayLike<number>, shape: number[]): NativeTensor {
  return ctx.native.tensorFromArray({ data: Int32Array.from(data), dtype: 'i32', shape, device: ctx.device }) as NativeTensor;
}
export function read(t: NativeTensor): Float64Array {
  return Float64Array.from(toFloat32(t));
}

/** Throws unless |got - want| <= atol + rtol*|want| everywhere (NaN/Inf must match). */
export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, what: string): void {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} != ${want.length}`);
  let worst = -1, worstI = -1;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      if (!Object.is(g, w) && !(Number.isNaN(g) && Number.isNaN(w))) throw new Error(`${what}[${i}]: got ${g}, want ${w}`);
      continue;
    }
    const ex = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w));
    if (ex > worst) {
      worst = ex;
      worstI = i;
    }
  }
  if (worst > 0)
    throw new Error(`${what}: [${worstI}] got ${got[worstI]}, want ${want[worstI]} (|diff| ${Math.abs(got[worstI]! - want[worstI]!).toExponential(3)} > atol ${tol.atol} + rtol ${tol.rtol}·|want|)`);
}
function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
function axpyF(x: Float64Array, d: Float64Array, h: number): Float64Array {
  return x.map((v, i) => v + h * d[i]!);
}
/**
 * Central finite differences of a float64 scalar function along random directions:
 * checks <grad, dir> == (f(x + h dir) - f(x - h dir)) / 2h for each input.
 */
export function fdCheck(f: (xs: Float64Array[]) => number, xs: Float64Array[], grads: Float64Array[], what: string, seed = 7, h = 1e-5, rtol = 1e-6): void {
  const r = rng(seed);
  for (let k = 0; k < xs.length; k++) {
    for (let rep = 0; rep < 2; rep++) {
      const dir = randn(r, xs[k]!.length);
      const plus = xs.map((x, i) => (i === k ? axpyF(x, dir, h) : x));
      const minus = xs.map((x, i) => (i === k ? axpyF(x, dir, -h) : x));
      const fd = (f(plus) - f(minus)) / (2 * h);
      const an = dot(grads[k]!, dir);
      const scale = Math.max(1e-8, Math.abs(an), Math.abs(fd));
      if (Math.abs(fd - an) > rtol * scale + 1e-9)
        throw new Error(`${what}: finite differences disagree with the float64 gradient of input ${k}: fd ${fd}, analytic ${an}`);
    }
  }
}

// per-op tolerances: f32 on the CPU, bf16 on CUDA (inputs are rounded to bf16 before
// the reference sees them, so only the op's own rounding counts)
function tol(ctx: Ctx, f32: Tol, bf16: Tol): Tol {
  return ctx.act === 'f32' ? f32 : bf16;
}
const ELEM = (ctx: Ctx): Tol => tol(ctx, { atol: 1e-6, rtol: 2e-6 }, { atol: 1e-2, rtol: 1e-2 });
const REDUCE = (ctx: Ctx): Tol => tol(ctx, { atol: 1e-5, rtol: 1e-5 }, { atol: 2e-2, rtol: 2e-2 });

// ------------------------------------------------------------------ cases
export function opTable(): OpCase[] {
  const cases: OpCase[] = [];
  const add = (op: string, name: string, run: (ctx: Ctx) => Promise<void>): void => {
    cases.push({ op, name, run });
  };

  // ---------------- gemm (the CPU entry delegates to cpu::sgemm; its own suite lives with it)
  for (const [M, N, K, ta, tb] of [
    [1, 1, 1, false, false],
    [3, 5, 7, true, false],
    [17, 13, 33, false, true],
    [31, 1, 65, true, true],
  ] as Array<[number, number, number, boolean, boolean]>) {
    add('gemm', `M${M} N${N} K${K} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`, async (ctx) => {
      const r = rng(M * 100 + N);
      const a = mk(ctx, randn(r, M * K), ta ? [K, M] : [M, K], 'act');
      const b = mk(ctx, randn(r, K * N), tb ? [N, K] : [K, N], 'act');
      const { c } = await ctx.native.ops.gemm({ a: a.t, b: b.t, transA: ta, transB: tb, alpha: 0.5 });
      const want = new Float64Array(M * N);
      for (let i = 0; i < M; i++)
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += (ta ? a.v[k * M + i]! : a.v[i * K + k]!) * (tb ? b.v[j * K + k]! : b.v[k * N + j]!);
          want[i * N + j] = 0.5 * s;
        }
      expectClose(read(c), want, tol(ctx, { atol: 1e-5 * Math.sqrt(K), rtol: 1e-5 }, { atol: 3e-2, rtol: 2e-2 }), 'gemm');
    });
  }

  // ---------------- embedding
  for (const [V, dim, n] of [
    [1, 1, 1],
    [37, 19, 53],
    [7, 67, 1000],
  ]) {
    add('embedding', `V${V} dim${dim} n${n}`, async (ctx) => {
      const r = rng(V + dim + n);
      const table = mk(ctx, randn(r, V * dim), [V, dim], 'act');
      const ids = randint(r, n, 0, V);
      ids[0] = V - 1;
      const idsT = mki(ctx, ids, [n]);
      const { out } = await ctx.native.ops.embeddingForward({ ids: idsT, table: table.t });
      expectClose(read(out), R.embeddingForward(ids, table.v, dim), { atol: 0, rtol: 0 }, 'embedding forward');
      // backward: scatter-add; repeated ids accumulate
      const dout = mk(ctx, randn(r, n * dim), [n, dim], 'act');
      const init = randn(r, V * dim);
      const dtable = mk(ctx, init, [V, dim], 'f32');
      await ctx.native.ops.embeddingBackward({ ids: idsT, dout: dout.t, dtable: dtable.t });
      const want = R.embeddingBackward(ids, dout.v, V, dim).map((g, i) => g + dtable.v[i]!);
      // linear op: finite differences of sum(dout*forward) wrt table give the scatter-add
      if (V * dim <= 2000)
        fdCheck((xs) => dot(R.embeddingForward(ids, xs[0]!, dim), dout.v), [table.v], [R.embeddingBackward(ids, dout.v, V, dim)], 'embedding');
      expectClose(read(dtable.t), want, { atol: 1e-5, rtol: 1e-5 }, 'embedding backward');
    });
  }

  // ---------------- RMSNorm
  for (const [n, d] of [
    [1, 1],
    [3, 17],
    [29, 130],
    [5, 1031],
  ]) {
    add('rmsnorm', `n${n} d${d}`, async (ctx) => {
      const r = rng(n * 7 + d);
      const eps = 1e-5;
      const x = mk(ctx, randn(r, n * d, 2), [n, d], 'act');
      const w = mk(ctx, randn(r, d).map((v) => 1 + 0.3 * v), [d], 'act');
      const { y, rstd } = await ctx.native.ops.rmsnormForward({ x: x.t, w: w.t, eps });
      const ref = R.rmsnormForward(x.v, w.v, n, d, eps);
      expectClose(read(y), ref.y, REDUCE(ctx), 'rmsnorm y');
      expectClose(read(rstd), ref.rstd, tol(ctx, { atol: 1e-6, rtol: 1e-5 }, { atol: 1e-3, rtol: 1e-3 }), 'rmsnorm rstd');
      const dy = mk(ctx, randn(r, n * d), [n, d], 'act');
      const g = R.rmsnormBackward(x.v, w.v, dy.v, n, d, eps);
      fdCheck((xs) => dot(R.rmsnormForward(xs[0]!, xs[1]!, n, d, eps).y, dy.v), [x.v, w.v], [g.dx, g.dw], 'rmsnorm');
      const dw0 = mk(ctx, randn(r, d), [d], 'f32');
      const out = await ctx.native.ops.rmsnormBackward({ x: x.t, w: w.t, dy: dy.t, rstd, eps, dw: dw0.t });
      expectClose(read(out.dx), g.dx, REDUCE(ctx), 'rmsnorm dx');
      expectClose(read(out.dw), g.dw.map((v, i) => v + dw0.v[i]!), tol(ctx, { atol: 1e-5 * Math.sqrt(n), rtol: 1e-5 }, { atol: 5e-2, rtol: 2e-2 }), 'rmsnorm dw');
      const out2 = await ctx.native.ops.rmsnormBackward({ x: x.t, w: w.t, dy: dy.t, eps });
      expectClose(read(out2.dx), g.dx, REDUCE(ctx), 'rmsnorm dx (rstd recomputed)');
    });
  }

  // ---------------- RoPE
  for (const [T, H, D, theta, maxPos] of [
    [1, 1, 2, 10000, 1],
    [7, 3, 6, 10000, 50],
    [13, 4, 64, 500000, 4096],
  ]) {
    add('rope', `T${T} H${H} D${D} theta${theta}`, async (ctx) => {
      const r = rng(T * H * D);
      const x = mk(ctx, randn(r, T * H * D), [T, H, D], 'act');
      const pos = randint(r, T, 0, maxPos);
      const inv = Float32Array.from(R.invFreq(D, theta));
      const invT = ctx.native.tensorFromArray({ data: inv, dtype: 'f32', shape: [D / 2], device: ctx.device });
      await ctx.native.ops.rope({ x: x.t, pos: mki(ctx, pos, [T]), invFreq: invT });
      const want = R.rope(x.v, pos, inv, T, H, D);
      // angles up to ~4096 rad: f32 angle products differ from f64 by ~|angle|·6e-8
      const t = tol(ctx, { atol: 2e-6 + maxPos * 2e-7, rtol: 1e-5 }, { atol: 2e-2, rtol: 1e-2 });
      expectClose(read(x.t), want, t, 'rope');
      // the backward is the inverse rotation: orthogonal, so it is its own adjoint check
      const dy = randn(r, T * H * D);
      const gx = R.rope(dy, pos, inv, T, H, D, true);
      fdCheck((xs) => dot(R.rope(xs[0]!, pos, inv, T, H, D), dy), [x.v], [gx], 'rope');
      const dyT = mk(ctx, dy, [T, H, D], 'act');
      await ctx.native.ops.rope({ x: dyT.t, pos: mki(ctx, pos, [T]), invFreq: invT, inverse: true });
      expectClose(read(dyT.t), R.rope(dyT.v, pos, inv, T, H, D, true), t, 'rope inverse');
    });
  }

  add('rope', 'repeated calls (position table grows), negative positions', async (ctx) => {
    const T = 9, H = 2, D = 8;
    const r = rng(4242);
    const inv = Float32Array.from(R.invFreq(D, 10000));
    const invT = ctx.native.tensorFromArray({ data: inv, dtype: 'f32', shape: [D / 2], device: ctx.device });
    for (const pos of [
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
      [300, 2, 1000, 7, 0, 5, 999, 1, 3],
      [-5, 0, 3, -1, 2, 2, 2, 8, 1],
      [0, 1, 2, 3, 4, 5, 6, 7, 8],
    ]) {
      const x = mk(ctx, randn(r, T * H * D), [T, H, D], 'act');
      await ctx.native.ops.rope({ x: x.t, pos: mki(ctx, pos, [T]), invFreq: invT });
      expectClose(read(x.t), R.rope(x.v, pos, inv, T, H, D), tol(ctx, { atol: 1e-5, rtol: 1e-5 }, { atol: 2e-2, rtol: 1e-2 }), `rope positions ${pos.join(',')}`);
    }
  });

  // ---------------- SwiGLU
  for (const [n, s] of [
    [1, 1],
    [1000, 3],
    [517, 40],
  ]) {
    add('swiglu', `n${n} scale${s}`, async (ctx) => {
      const r = rng(n + s);
      const gd = randn(r, n, s);
      if (n > 10) {
        gd[0] = 1e4;
        gd[1] = -1e4;
        gd[2] = 0;
        gd[3] = -88;
      }
      const g = mk(ctx, gd, [n], 'act');
      const u = mk(ctx, randn(r, n), [n], 'act');
      const { out } = await ctx.native.ops.swigluForward({ gate: g.t, up: u.t });
      expectClose(read(out), R.swigluForward(g.v, u.v), ELEM(ctx), 'swiglu out');
      const dout = mk(ctx, randn(r, n), [n], 'act');
      const ref = R.swigluBackward(g.v, u.v, dout.v);
      const gm = g.v.map((v) => Math.max(-30, Math.min(30, v))); // FD away from the ±1e4 saturation
      const refm = R.swigluBackward(gm, u.v, dout.v);
      fdCheck((xs) => dot(R.swigluForward(xs[0]!, xs[1]!), dout.v), [gm, u.v], [refm.dgate, refm.dup], 'swiglu');
      const got = await ctx.native.ops.swigluBackward({ gate: g.t, up: u.t, dout: dout.t });
      expectClose(read(got.dgate), ref.dgate, ELEM(ctx), 'swiglu dgate');
      expectClose(read(got.dup), ref.dup, ELEM(ctx), 'swiglu dup');
    });
  }

  // ---------------- add, bias
  for (const n of [1, 37, 100003]) {
    add('add', `n${n}`, async (ctx) => {
      const r = rng(n);
      const a = mk(ctx, randn(r, n), [n], 'act'), b = mk(ctx, randn(r, n), [n], 'act');
      const { out } = await ctx.native.ops.add({ a: a.t, b: b.t });
      expectClose(read(out), R.add(a.v, b.v), ELEM(ctx), 'add');
    });
  }
  for (const [n, d] of [
    [1, 1],
    [17, 33],
    [130, 67],
  ]) {
    add('bias', `n${n} d${d}`, async (ctx) => {
      const r = rng(n * d);
      const x = mk(ctx, randn(r, n * d), [n, d], 'act'), b = mk(ctx, randn(r, d), [d], 'act');
      await ctx.native.ops.biasForward({ x: x.t, bias: b.t });
      expectClose(read(x.t), R.biasForward(x.v, b.v, n, d), ELEM(ctx), 'bias forward');
      const dy = mk(ctx, randn(r, n * d), [n, d], 'act');
      const gb = R.biasBackward(dy.v, n, d);
      fdCheck((xs) => dot(R.biasForward(x.v, xs[0]!, n, d), dy.v), [b.v], [gb], 'bias');
      const { dbias } = await ctx.native.ops.biasBackward({ dy: dy.t });
      expectClose(read(dbias), gb, tol(ctx, { atol: 1e-5 * Math.sqrt(n), rtol: 1e-5 }, { atol: 5e-2, rtol: 2e-2 }), 'bias backward');
    });
  }

  // ---------------- attention (packed causal GQA)
  const attnCases: Array<{ name: string; cu: number[]; Hq: number; Hkv: number; D: number; qs: number; fd: boolean }> = [
    { name: 'T1 D1', cu: [0, 1], Hq: 1, Hkv: 1, D: 1, qs: 1, fd: true },
    { name: 'packed 1/7/1/37, GQA 2, D16', cu: [0, 1, 8, 9, 46], Hq: 4, Hkv: 2, D: 16, qs: 1, fd: true },
    { name: 'T70, GQA 8, D5', cu: [0, 70], Hq: 8, Hkv: 1, D: 5, qs: 1, fd: true },
    { name: 'packed 3/130, GQA 4, D64', cu: [0, 3, 133], Hq: 4, Hkv: 1, D: 64, qs: 1, fd: false },
    { name: 'empty sequences, GQA 1, D7', cu: [0, 0, 5, 5, 12], Hq: 3, Hkv: 3, D: 7, qs: 1, fd: true },
    { name: 'large scores (q x 30), T97, GQA 2, D8', cu: [0, 97], Hq: 2, Hkv: 1, D: 8, qs: 30, fd: false },
  ];
  for (const c of attnCases) {
    add('attention', c.name, async (ctx) => {
      const { cu, Hq, Hkv, D } = c;
      const T = cu[cu.length - 1]!;
      const r = rng(T * 31 + Hq * 7 + D);
      const scale = 1 / Math.sqrt(D);
      const q = mk(ctx, randn(r, T * Hq * D, c.qs), [T, Hq, D], 'act');
      const k = mk(ctx, randn(r, T * Hkv * D), [T, Hkv, D], 'act');
      const v = mk(ctx, randn(r, T * Hkv * D), [T, Hkv, D], 'act');
      const cuT = mki(ctx, cu, [cu.length]);
      const sh = { T, Hq, Hkv, D, cu, scale };
      const fw = await ctx.native.ops.attentionForward({ q: q.t, k: k.t, v: v.t, cuSeqlens: cuT });
      const ref = R.attentionForward(q.v, k.v, v.v, sh);
      const tO = tol(ctx, { atol: 2e-5, rtol: 1e-4 }, { atol: 2e-2, rtol: 2e-2 });
      expectClose(read(fw.out), ref.out, tO, 'attention out');
      expectClose(read(fw.lse), ref.lse, tol(ctx, { atol: 2e-5, rtol: 1e-5 * c.qs }, { atol: 2e-2, rtol: 1e-2 }), 'attention lse');
      const dout = mk(ctx, randn(r, T * Hq * D), [T, Hq, D], 'act');
      const g = R.attentionBackward(q.v, k.v, v.v, dout.v, sh);
      if (c.fd) fdCheck((xs) => dot(R.attentionForward(xs[0]!, xs[1]!, xs[2]!, sh).out, dout.v), [q.v, k.v, v.v], [g.dq, g.dk, g.dv], 'attention');
      const bw = await ctx.native.ops.attentionBackward({ q: q.t, k: k.t, v: v.t, cuSeqlens: cuT, out: fw.out, lse: fw.lse, dout: dout.t });
      // the backward takes the forward's out as an input and gets Delta = dout · out from it
      // (both engines, as FlashAttention): the kernel is compared with the reference given the
      // same out. In bf16 that out is rounded, and at large scores (q x 30) its rounding alone
      // moves dk by ~0.3 from the exact gradient (float64 simulation: 0.32 over the bf16
      // tolerance); in f32 the two references agree to ~1e-7.
      const gk = R.attentionBackward(q.v, k.v, v.v, dout.v, sh, read(fw.out));
      const tG = tol(ctx, { atol: 1e-4 * c.qs, rtol: 2e-4 }, { atol: 5e-2, rtol: 5e-2 });
      expectClose(read(bw.dq), gk.dq, tG, 'attention dq');
      expectClose(read(bw.dk), gk.dk, tG, 'attention dk');
      expectClose(read(bw.dv), gk.dv, tG, 'attention dv');
    });
  }

  // ---------------- KV cache write + decode
  for (const c of [
    { B: 1, nNew: 1, lens: [1], Hq: 1, Hkv: 1, D: 1, bs: 1 },
    { B: 3, nNew: 1, lens: [5, 1, 17], Hq: 4, Hkv: 2, D: 16, bs: 3 },
    { B: 2, nNew: 3, lens: [3, 70], Hq: 8, Hkv: 1, D: 7, bs: 16 },
  ]) {
    add('decode', `B${c.B} nNew${c.nNew} lens ${c.lens.join('/')} GQA ${c.Hq / c.Hkv} D${c.D} block${c.bs}`, async (ctx) => {
      const { B, nNew, lens, Hq, Hkv, D, bs } = c;
      const r = rng(B * 13 + D);
      const maxBlocks = Math.max(...lens.map((l) => Math.ceil(l / bs))) + 1;
      const nBlocks = B * maxBlocks + 2;
      // a scrambled block table: block ids are a permutation
      const perm = Array.from({ length: nBlocks }, (_, i) => i).sort(() => r() - 0.5);
      const table = Int32Array.from({ length: B * maxBlocks }, (_, i) => perm[i]!);
      const row = Hkv * D;
      const kHist = lens.map((l) => randn(r, l * row)), vHist = lens.map((l) => randn(r, l * row));
      // the history before the new tokens is written directly, the new tokens through kvWrite
      const kc = new Float64Array(nBlocks * bs * row), vc = new Float64Array(nBlocks * bs * row);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < lens[b]! - nNew; t++) {
          const off = (table[b * maxBlocks + Math.floor(t / bs)]! * bs + (t % bs)) * row;
          kc.set(kHist[b]!.subarray(t * row, (t + 1) * row), off);
          vc.set(vHist[b]!.subarray(t * row, (t + 1) * row), off);
        }
      const kC = mk(ctx, kc, [nBlocks, bs, Hkv, D], 'act'), vC = mk(ctx, vc, [nBlocks, bs, Hkv, D], 'act');
      const kNew = new Float64Array(B * nNew * row), vNew = new Float64Array(B * nNew * row);
      for (let b = 0; b < B; b++)
        for (let j = 0; j < nNew; j++) {
          const t = lens[b]! - nNew + j;
          kNew.set(kHist[b]!.subarray(t * row, (t + 1) * row), (b * nNew + j) * row);
          vNew.set(vHist[b]!.subarray(t * row, (t + 1) * row), (b * nNew + j) * row);
        }
      const kN = mk(ctx, kNew, [B, nNew, Hkv, D], 'act'), vN = mk(ctx, vNew, [B, nNew, Hkv, D], 'act');
      const bt = mki(ctx, table, [B, maxBlocks]), cl = mki(ctx, lens, [B]);
      await ctx.native.ops.kvWrite({ kNew: kN.t, vNew: vN.t, kCache: kC.t, vCache: vC.t, blockTable: bt, ctxLens: cl });
      const kcGot = read(kC.t);
      for (let b = 0; b < B; b++)
        for (let t = 0; t < lens[b]!; t++) {
          const off = (table[b * maxBlocks + Math.floor(t / bs)]! * bs + (t % bs)) * row;
          expectClose(kcGot.subarray(off, off + row), Float64Array.from(Float32Array.from(kHist[b]!.subarray(t * row, (t + 1) * row))), { atol: ctx.act === 'f32' ? 0 : 1e-2, rtol: ctx.act === 'f32' ? 0 : 1e-2 }, `kvWrite row ${b} pos ${t}`);
        }
      const q = mk(ctx, randn(r, B * nNew * Hq * D), [B, nNew, Hq, D], 'act');
      const { out } = await ctx.native.ops.attentionDecode({ q: q.t, kCache: kC.t, vCache: vC.t, blockTable: bt, ctxLens: cl });
      const rk = lens.map((l, b) => Float64Array.from(toFloat32(ctx.native.tensorFromArray({ data: Float32Array.from(kHist[b]!), dtype: ctx.act, shape: [l * row] }))));
      const rv = lens.map((l, b) => Float64Array.from(toFloat32(ctx.native.tensorFromArray({ data: Float32Array.from(vHist[b]!), dtype: ctx.act, shape: [l * row] }))));
      const want = R.attentionDecode(q.v, rk, rv, lens, nNew, Hq, Hkv, D, 1 / Math.sqrt(D));
      expectClose(read(out), want, tol(ctx, { atol: 2e-5, rtol: 1e-4 }, { atol: 2e-2, rtol: 2e-2 }), 'attention decode');
    });
  }

  // ---------------- fused LM head -> log-prob (chunked)
  const lpCases: Array<{ name: string; N: number; H: number; V: number; chunk: number; make?: 'extreme' | 'equal'; fd: boolean }> = [
    { name: 'N1 H1 V1', N: 1, H: 1, V: 1, chunk: 0, fd: true },
    { name: 'N37 H19 V101 chunk16 (ignored targets)', N: 37, H: 19, V: 101, chunk: 16, fd: true },
    { name: 'logits ±1e4', N: 6, H: 2, V: 5, chunk: 4, make: 'extreme', fd: false },
    { name: 'all-equal logits', N: 9, H: 3, V: 7, chunk: 0, make: 'equal', fd: true },
    { name: 'N67 H33 V517 default chunk', N: 67, H: 33, V: 517, chunk: 0, fd: false },
  ];
  for (const c of lpCases) {
    add('logprob', c.name, async (ctx) => {
      const { N, H, V } = c;
      const r = rng(N * 3 + H * 5 + V);
      let hd = randn(r, N * H), wd = randn(r, V * H, 1 / Math.sqrt(H));
      if (c.make === 'extreme') {
        // logits = ±1e4 and 0: hidden rows ±100 on the first unit, weight rows ±100/0
        hd = new Float64Array(N * H);
        for (let i = 0; i < N; i++) hd[i * H] = i % 2 ? 100 : -100;
        wd = new Float64Array(V * H);
        for (let j = 0; j < V; j++) wd[j * H] = [100, -100, 0, 50, 99.99][j % 5]!;
      }
      if (c.make === 'equal') for (let j = 1; j < V; j++) for (let h = 0; h < H; h++) wd[j * H + h] = wd[h]!;
      const hidden = mk(ctx, hd, [N, H], 'act'), weight = mk(ctx, wd, [V, H], 'act');
      const targets = randint(r, N, 0, V);
      if (N > 3) targets[1] = -1;
      if (N > 5) targets[N - 1] = -1;
      const tT = mki(ctx, targets, [N]);
      const fw = await ctx.native.ops.logprob({ hidden: hidden.t, weight: weight.t, targets: tT, chunk: c.chunk });
      const ref = R.logprob(hidden.v, weight.v, targets, N, H, V);
      // logits of ±1e4 carry f32 rounding of ulp(1e4) ~ 1e-3
      const ext = c.make === 'extreme';
      const tL = tol(ctx, { atol: 2e-5 * Math.sqrt(H) + (ext ? 4e-3 : 0), rtol: 1e-5 }, { atol: ext ? 1e2 : 5e-2, rtol: 2e-2 });
      expectClose(read(fw.logprob), ref.logprob, tL, 'logprob');
      expectClose(read(fw.lse), ref.lse, tL, 'logprob lse');
      if (c.make === 'equal') expectClose(read(fw.logprob), Float64Array.from(targets, (t) => (t < 0 ? 0 : -Math.log(V))), tL, 'logprob (all equal = -log V)');
      const dl = mk(ctx, randn(r, N), [N], 'f32');
      const g = R.logprobBackward(hidden.v, weight.v, targets, dl.v, N, H, V);
      if (c.fd) fdCheck((xs) => dot(R.logprob(xs[0]!, xs[1]!, targets, N, H, V).logprob, dl.v), [hidden.v, weight.v], [g.dhidden, g.dweight], 'logprob');
      const dw0 = mk(ctx, randn(r, V * H), [V, H], 'f32');
      const bw = await ctx.native.ops.logprob({ hidden: hidden.t, weight: weight.t, targets: tT, chunk: c.chunk, dlogp: dl.t, dweight: dw0.t });
      expectClose(read(bw.logprob), ref.logprob, tL, 'logprob (with backward)');
      const tG = tol(ctx, { atol: 2e-5 * Math.sqrt(H) + (ext ? 2e-3 : 0), rtol: 1e-4 }, { atol: ext ? 5 : 5e-2, rtol: 5e-2 });
      expectClose(read(bw.dhidden), g.dhidden, tG, 'logprob dhidden');
      expectClose(read(bw.dweight), g.dweight.map((x, i) => x + dw0.v[i]!), tG, 'logprob dweight (accumulated)');
    });
  }

  // ---------------- preference losses
  const prefCases: Array<{ name: string; a: R.PrefArgs; scale: number }> = [
    { name: 'DPO beta 0.1', a: { kind: 'dpo', beta: 0.1, gamma: 0, labelSmoothing: 0, lambda: 0 }, scale: 1 },
    { name: 'DPO beta 0.5 label smoothing 0.2', a: { kind: 'dpo', beta: 0.5, gamma: 0, labelSmoothing: 0.2, lambda: 0 }, scale: 1 },
    { name: 'DPO saturated (margins ±1e4)', a: { kind: 'dpo', beta: 1, gamma: 0, labelSmoothing: 0.1, lambda: 0 }, scale: 1e3 },
    { name: 'IPO beta 0.1', a: { kind: 'ipo', beta: 0.1, gamma: 0, labelSmoothing: 0, lambda: 0 }, scale: 1 },
    { name: 'SimPO beta 2.5 gamma 0.5', a: { kind: 'simpo', beta: 2.5, gamma: 0.5, labelSmoothing: 0, lambda: 0 }, scale: 1 },
    { name: 'ORPO lambda 0.1', a: { kind: 'orpo', beta: 0.1, gamma: 0, labelSmoothing: 0, lambda: 0.1 }, scale: 1 },
    { name: 'ORPO lambda 1, near-certain answers', a: { kind: 'orpo', beta: 0.1, gamma: 0, labelSmoothing: 0, lambda: 1 }, scale: 1e-3 },
  ];
  for (const c of prefCases) {
    add('preference', c.name, async (ctx) => {
      const P = 23;
      const r = rng(P + c.name.length);
      const cl = Float64Array.from({ length: P }, (_, i) => 1 + ((i * 7) % 19));
      const rl = Float64Array.from({ length: P }, (_, i) => 1 + ((i * 5) % 13));
      // per-sequence sums: negative, ~ -len * U(0.05, 3) * scale
      const ch = cl.map((l) => -l * (0.05 + 3 * r()) * c.scale);
      const rj = rl.map((l) => -l * (0.05 + 3 * r()) * c.scale);
      const rc = ch.map((x) => x + randn(r, 1)[0]! * c.scale);
      const rr = rj.map((x) => x + randn(r, 1)[0]! * c.scale);
      const f = (x: Float64Array): Made => mk(ctx, x, [P], 'f32');
      const [C, Rj, CL, RL, RC, RR] = [ch, rj, cl, rl, rc, rr].map(f) as [Made, Made, Made, Made, Made, Made];
      const needsLen = c.a.kind === 'simpo' || c.a.kind === 'orpo';
      const out = await ctx.native.ops.preferenceLoss({
        kind: c.a.kind, beta: c.a.beta, gamma: c.a.gamma, labelSmoothing: c.a.labelSmoothing, lambda: c.a.lambda,
        chosen: C.t, rejected: Rj.t,
        ...(needsLen ? { chosenLen: CL.t, rejectedLen: RL.t } : { refChosen: RC.t, refRejected: RR.t }),
      });
      const want = { loss: [] as number[], dc: [] as number[], dr: [] as number[], cr: [] as number[], rr: [] as number[] };
      for (let i = 0; i < P; i++) {
        const args = [C.v[i]!, Rj.v[i]!, CL.v[i]!, RL.v[i]!, RC.v[i]!, RR.v[i]!] as const;
        const l = R.prefLoss(c.a, ...args);
        const g = R.prefGrad(c.a, ...args);
        // the analytic gradient against central differences of the float64 loss
        const h = 1e-6 * Math.max(1, Math.abs(args[0]), Math.abs(args[1]));
        const fdc = (R.prefLoss(c.a, args[0] + h, ...args.slice(1) as [number, number, number, number, number]).loss - R.prefLoss(c.a, args[0] - h, ...args.slice(1) as [number, number, number, number, number]).loss) / (2 * h);
        const fdr = (R.prefLoss(c.a, args[0], args[1] + h, args[2], args[3], args[4], args[5]).loss - R.prefLoss(c.a, args[0], args[1] - h, args[2], args[3], args[4], args[5]).loss) / (2 * h);
        for (const [fd, an, nm] of [[fdc, g.dc, 'dChosen'], [fdr, g.dr, 'dRejected']] as Array<[number, number, string]>)
          if (Math.abs(fd - an) > 1e-5 * Math.max(1, Math.abs(an)))
            throw new Error(`${c.name}: finite differences disagree with the float64 ${nm} of pair ${i}: fd ${fd}, analytic ${an}`);
        want.loss.push(l.loss);
        want.cr.push(l.cr);
        want.rr.push(l.rr);
        want.dc.push(g.dc);
        want.dr.push(g.dr);
      }
      const t = { atol: 1e-6, rtol: 1e-5 };
      expectClose(read(out.loss), want.loss, { atol: 1e-6 * Math.max(1, c.scale), rtol: 1e-5 }, `${c.name} loss`);
      expectClose(read(out.dChosen), want.dc, t, `${c.name} dChosen`);
      expectClose(read(out.dRejected), want.dr, t, `${c.name} dRejected`);
      expectClose(read(out.chosenReward), want.cr, { atol: 1e-5, rtol: 1e-5 }, `${c.name} chosenReward`);
      expectClose(read(out.rejectedReward), want.rr, { atol: 1e-5, rtol: 1e-5 }, `${c.name} rejectedReward`);
    });
  }

  // ---------------- sampling
  const sampleCases: Array<{ name: string; B: number; V: number; temperature: number; topK: number; topP: number; make?: 'equal' | 'extreme' | 'peaked' | 'masked' }> = [
    { name: 'V1', B: 2, V: 1, temperature: 1, topK: 0, topP: 1 },
    { name: 'greedy', B: 5, V: 37, temperature: 0, topK: 0, topP: 1 },
    { name: 'T1 plain', B: 64, V: 53, temperature: 1, topK: 0, topP: 1 },
    { name: 'T0.7 top-k 5', B: 64, V: 101, temperature: 0.7, topK: 5, topP: 1 },
    { name: 'T1.3 top-p 0.9 (wide nucleus)', B: 64, V: 1009, temperature: 1.3, topK: 0, topP: 0.9 },
    { name: 'T0.7 top-p 0.95, peaked logits (narrow nucleus)', B: 32, V: 5003, temperature: 0.7, topK: 0, topP: 0.95, make: 'peaked' },
    { name: 'T0.8 top-k 40 top-p 0.5', B: 64, V: 211, temperature: 0.8, topK: 40, topP: 0.5 },
    { name: 'top-k 1', B: 8, V: 31, temperature: 1, topK: 1, topP: 1 },
    { name: 'all-equal logits, top-p 0.5', B: 64, V: 16, temperature: 1, topK: 0, topP: 0.5, make: 'equal' },
    { name: 'logits ±1e4', B: 16, V: 9, temperature: 1, topK: 0, topP: 0.95, make: 'extreme' },
    { name: 'masked logits (-inf), top-p 0.8', B: 32, V: 40, temperature: 1, topK: 0, topP: 0.8, make: 'masked' },
    { name: 'masked logits (-inf), plain', B: 32, V: 40, temperature: 1, topK: 0, topP: 1, make: 'masked' },
    // a Qwen-sized vocabulary: the vectorised double exponentials over 151936 logits
    { name: 'T1.5 plain, V 151936', B: 6, V: 151936, temperature: 1.5, topK: 0, topP: 1 },
    { name: 'T1 plain, V 151936, peaked', B: 6, V: 151936, temperature: 1, topK: 0, topP: 1, make: 'peaked' },
    { name: 'greedy, V 151936', B: 3, V: 151936, temperature: 0, topK: 0, topP: 1 },
    { name: 'T0.9 top-k 50, V 151936', B: 6, V: 151936, temperature: 0.9, topK: 50, topP: 1 },
    { name: 'T1 top-k 7, all-equal logits', B: 16, V: 300, temperature: 1, topK: 7, topP: 1, make: 'equal' },
  ];
  for (const c of sampleCases) {
    add('sample', c.name, async (ctx) => {
      const { B, V } = c;
      const r = rng(B * V + c.topK);
      let lg = randn(r, B * V, 2);
      if (c.make === 'equal') lg = new Float64Array(B * V).fill(0.25);
      if (c.make === 'peaked') lg = randn(r, B * V, 6);
      if (c.make === 'masked') for (let i = 0; i < B * V; i++) if (i % 3 !== 1) lg[i] = -Infinity;
      if (c.make === 'extreme') lg = Float64Array.from({ length: B * V }, (_, i) => [1e4, -1e4, 0, 1e4 - 1, 9999.5][i % 5]!);
      const logits = mk(ctx, lg, [B, V], 'f32');
      const seed = 0x1234abcd5678n;
      const counters = BigUint64Array.from({ length: B }, (_, b) => BigInt(1000 + 17 * b));
      const got = await ctx.native.ops.sample({ logits: logits.t, temperature: c.temperature, topK: c.topK, topP: c.topP, seed, counters });
      const opts = { temperature: Math.fround(c.temperature), topK: c.topK, topP: Math.fround(c.topP) };
      const seen = new Set<number>();
      for (let b = 0; b < B; b++) {
        const row = logits.v.subarray(b * V, (b + 1) * V);
        const want = R.sampleRow(row, opts, R.uniform(seed, counters[b]!));
        if (got.tokens[b] !== want.token) throw new Error(`sample row ${b}: token ${got.tokens[b]}, reference ${want.token}`);
        expectClose([got.logpSampled[b]], [want.logpSampled], { atol: 1e-5, rtol: 1e-5 }, `sample row ${b} logpSampled`);
        expectClose([got.logpModel[b]], [want.logpModel], { atol: 1e-5, rtol: 1e-5 }, `sample row ${b} logpModel`);
        seen.add(got.tokens[b]);
        if (c.make === 'masked' && got.tokens[b] % 3 !== (1 - ((b * V) % 3) + 3) % 3) throw new Error(`sample row ${b}: drew masked token ${got.tokens[b]}`);
      }
      if (c.make === 'equal' && seen.size < 4) throw new Error(`sample: all-equal logits gave only ${seen.size} distinct tokens over ${B} rows`);
      // same seed and counters: same tokens
      const again = await ctx.native.ops.sample({ logits: logits.t, temperature: c.temperature, topK: c.topK, topP: c.topP, seed, counters });
      for (let b = 0; b < B; b++) if (again.tokens[b] !== got.tokens[b]) throw new Error('sample: same seed and counter gave another token');
    });
  }

  // ---------------- AdamW and the f32 vector helpers
  for (const [n, step, wd, gs] of [
    [1, 1, 0, 1],
    [1001, 10, 0.1, 0.5],
  ]) {
    add('adamw', `n${n} step${step} wd${wd}`, async (ctx) => {
      const r = rng(n + step);
      const p = mk(ctx, randn(r, n), [n], 'f32'), g = mk(ctx, randn(r, n), [n], 'f32');
      const m = mk(ctx, randn(r, n, 0.1), [n], 'f32'), v = mk(ctx, randn(r, n, 0.1).map((x) => x * x), [n], 'f32');
      const o = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: wd, step, gradScale: gs };
      await ctx.native.ops.adamw({ param: p.t, grad: g.t, m: m.t, v: v.t, ...o });
      const want = R.adamw(p.v, g.v, m.v, v.v, o);
      expectClose(read(p.t), want.p, { atol: 1e-6, rtol: 1e-5 }, 'adamw param');
      expectClose(read(m.t), want.m, { atol: 1e-7, rtol: 1e-5 }, 'adamw m');
      expectClose(read(v.t), want.v, { atol: 1e-8, rtol: 1e-5 }, 'adamw v');
    });
  }
  for (const n of [0, 1, 4097, 100003]) {
    add('vector', `sumSquares/scale/axpy/hasNonfinite n${n}`, async (ctx) => {
      const r = rng(n + 1);
      const x = mk(ctx, randn(r, n), [n], 'f32'), y = mk(ctx, randn(r, n), [n], 'f32');
      const ss = await ctx.native.ops.sumSquares({ x: x.t });
      const want = dot(x.v, x.v);
      if (Math.abs(ss - want) > 1e-6 * Math.max(1, want)) throw new Error(`sumSquares: got ${ss}, want ${want}`);
      await ctx.native.ops.axpy({ y: y.t, x: x.t, a: -0.75 });
      expectClose(read(y.t), y.v.map((v, i) => v - 0.75 * x.v[i]!), ELEM(ctx), 'axpy');
      await ctx.native.ops.scale({ x: x.t, s: 3 });
      expectClose(read(x.t), x.v.map((v) => 3 * v), ELEM(ctx), 'scale');
      if ((await ctx.native.ops.hasNonfinite({ x: x.t })) !== false) throw new Error('hasNonfinite: finite data reported as non-finite');
      if (n > 0) {
        for (const bad of [NaN, Infinity, -Infinity]) {
          const d = Float32Array.from(x.v);
          d[n - 1] = bad;
          const t = ctx.native.tensorFromArray({ data: d, dtype: 'f32', shape: [n], device: ctx.device });
          if ((await ctx.native.ops.hasNonfinite({ x: t })) !== true) throw new Error(`hasNonfinite: missed ${bad} at the end`);
        }
      }
    });
  }
  return cases;
}
