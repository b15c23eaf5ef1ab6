// CPU ops against float64 references (the op table in op-table.ts), at every CPU kernel
// level the machine has; determinism; argument validation.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { addon, repoRoot } from '../helpers/native.js';
import * as ops from '../../src/engine/ops.js';
import { tensor } from '../../src/engine/tensor.js';
import { opTable, randn, rng, type Ctx } from './op-table.js';

const native = addon();
const info = native.info();
const levels: string[] = info.cpu.available.filter((l: string) => l !== 'neon' || info.cpu.arch === 'arm64');
const initial: string = info.cpu.kernels;
const table = opTable();

afterAll(() => {
  native.setCpuKernels(initial);
});

for (const level of levels) {
  describe(`ops on cpu, kernels ${level}`, () => {
    const ctx: Ctx = { native, device: 'cpu', act: 'f32' };
    for (const c of table) {
      it(`${c.op}: ${c.name}`, async () => {
        expect(native.setCpuKernels(level)).toBe(level);
        await c.run(ctx);
      });
    }
  });
}

describe('determinism', () => {
  it('two runs give bitwise equal outputs', async () => {
    native.setCpuKernels(initial);
    const r = rng(99);
    const f = (n: number, s = 1) => native.tensorFromArray({ data: Float32Array.from(randn(r, n, s)), dtype: 'f32', shape: [n] });
    const V = 50, dim = 33, n = 4000;
    const ids = native.tensorFromArray({ data: Int32Array.from({ length: n }, (_, i) => (i * 7) % V), dtype: 'i32', shape: [n] });
    const dout = native.tensorFromArray({ data: Float32Array.from(randn(r, n * dim)), dtype: 'f32', shape: [n, dim] });
    const x = native.tensorFromArray({ data: Float32Array.from(randn(r, 300 * 257)), dtype: 'f32', shape: [300, 257] });
    const w = f(257);
    const aq = native.tensorFromArray({ data: Float32Array.from(randn(r, 150 * 4 * 32)), dtype: 'f32', shape: [150, 4, 32] });
    const ak = native.tensorFromArray({ data: Float32Array.from(randn(r, 150 * 2 * 32)), dtype: 'f32', shape: [150, 2, 32] });
    const av = native.tensorFromArray({ data: Float32Array.from(randn(r, 150 * 2 * 32)), dtype: 'f32', shape: [150, 2, 32] });
    const cu = native.tensorFromArray({ data: Int32Array.from([0, 1, 70, 150]), dtype: 'i32', shape: [4] });
    const lw = native.tensorFromArray({ data: Float32Array.from(randn(r, 301 * 257, 0.1)), dtype: 'f32', shape: [301, 257] });
    const lt = native.tensorFromArray({ data: Int32Array.from({ length: 300 }, (_, i) => (i * 13) % 301), dtype: 'i32', shape: [300] });
    const ldl = f(300);
    const run = async () => {
      const e = await native.ops.embeddingBackward({ ids, dout, vocab: V });
      const fw = await native.ops.rmsnormForward({ x, w });
      const bw = await native.ops.rmsnormBackward({ x, w, dy: x, rstd: fw.rstd });
      const ss = await native.ops.sumSquares({ x: dout });
      const at = await native.ops.attentionForward({ q: aq, k: ak, v: av, cuSeqlens: cu });
      const ab = await native.ops.attentionBackward({ q: aq, k: ak, v: av, cuSeqlens: cu, out: at.out, lse: at.lse, dout: aq });
      const lp = await native.ops.logprob({ hidden: x, weight: lw, targets: lt, chunk: 64, dlogp: ldl });
      return [e.dtable.toArray(), bw.dx.toArray(), bw.dw.toArray(), new Float64Array([ss]), at.out.toArray(), at.lse.toArray(),
        ab.dq.toArray(), ab.dk.toArray(), ab.dv.toArray(), lp.logprob.toArray(), lp.dhidden.toArray(), lp.dweight.toArray()];
    };
    const a = await run(), b = await run();
    for (let i = 0; i < a.length; i++) expect(Buffer.from(a[i]!.buffer).equals(Buffer.from(b[i]!.buffer))).toBe(true);
  });
});

// The CPU attention backward has two ways (native/cpu/ops_attention.cpp): one pass per
// (sequence, kv head), or a dK/dV pass then a dQ pass. Which one runs depends on the
// thread count and the shapes; both must give the same bits at every kernel level.
describe('attention backward: one pass and two passes', () => {
  const script = `
import { createHash } from 'node:crypto';
import { loadNative } from ${JSON.stringify(join(repoRoot, 'dist', 'engine', 'native.js'))};
const n = loadNative();
let a = 12345;
const rnd = () => { a = (a * 1103515245 + 12345) >>> 0; return a / 4294967296 - 0.5; };
const t = (len, shape, s = 1) => n.tensorFromArray({ data: Float32Array.from({ length: len }, () => rnd() * s), dtype: 'f32', shape });
const cases = [[[0, 1, 8, 9, 46, 346], 4, 2, 16], [[0, 0, 70, 70, 200], 8, 2, 64], [[0, 97, 130], 3, 1, 5], [[0, 33, 66, 99, 132], 4, 4, 8]];
const out = {};
for (const level of n.info().cpu.available.filter((l) => l !== 'neon')) {
  n.setCpuKernels(level);
  for (const [cu, Hq, Hkv, D] of cases) {
    const T = cu[cu.length - 1];
    const q = t(T * Hq * D, [T, Hq, D], 2), k = t(T * Hkv * D, [T, Hkv, D], 2), v = t(T * Hkv * D, [T, Hkv, D]), dout = t(T * Hq * D, [T, Hq, D]);
    const cuT = n.tensorFromArray({ data: Int32Array.from(cu), dtype: 'i32', shape: [cu.length] });
    const f = await n.ops.attentionForward({ q, k, v, cuSeqlens: cuT });
    const g = await n.ops.attentionBackward({ q, k, v, cuSeqlens: cuT, out: f.out, lse: f.lse, dout });
    const h = createHash('sha256');
    for (const x of [g.dq, g.dk, g.dv]) h.update(Buffer.from(x.toArray().buffer));
    out[level + ' ' + cu.join('/')] = h.digest('hex');
  }
}
console.log(JSON.stringify(out));
`;
  const run = (way: string | undefined): Record<string, string> => {
    const env = { ...process.env };
    if (way) env.ITOOL_ATTENTION_BACKWARD = way;
    else delete env.ITOOL_ATTENTION_BACKWARD;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, string>;
  };
  it('give bitwise equal dq, dk, dv (packed, empty and ragged sequences, GQA 1 to 4)', () => {
    const one = run('one-pass'), two = run('two-pass'), auto = run(undefined);
    expect(Object.keys(one).length).toBeGreaterThanOrEqual(4);
    expect(one).toEqual(two);
    expect(auto).toEqual(one);
  });
});

// The sampler's double exponentials (kn.exp_sum_f64, a vectorised rational approximation)
// against Math.exp, at every kernel level: each weight within 4e-16 relative, 0 where
// exp underflows past exp(-708), NaN passed through, the sum within 1e-13.
describe('sampler exponentials (double)', () => {
  for (const level of levels) {
    it(`exp((x - m) / t) matches Math.exp to 4e-16, kernels ${level}`, () => {
      native.setCpuKernels(level);
      try {
        const r = rng(5);
        const n = 4099; // not a multiple of the 8 lanes
        const x = new Float32Array(n);
        for (let i = 0; i < n; i++) x[i] = (r() - 0.5) * 200;
        x[0] = 100; // the maximum: exp(0) = 1
        x[1] = -1e4; // underflows to 0
        x[2] = -Infinity;
        for (const t of [1, 1.5, 0.7, 20]) {
          const { w, sum } = native.cpuExpSumF64(x, 100, t) as { w: Float64Array; sum: number };
          let worst = 0, ref = 0;
          for (let i = 0; i < n; i++) {
            const e = Math.exp((x[i]! - 100) / t);
            ref += e;
            if (e < 1e-300) {
              if (w[i]! > 1e-300) throw new Error(`x=${x[i]} t=${t}: ${w[i]} where exp underflows`);
              continue;
            }
            worst = Math.max(worst, Math.abs(w[i]! - e) / e);
          }
          expect(worst, `t=${t}`).toBeLessThan(4e-16);
          expect(Math.abs(sum - ref) / ref).toBeLessThan(1e-13); // two summation orders over 4099 terms
        }
        const nan = native.cpuExpSumF64(Float32Array.from([0, NaN, -1]), 0, 1) as { w: Float64Array; sum: number };
        expect(Number.isNaN(nan.w[1])).toBe(true);
        expect(nan.w[0]).toBe(1);
      } finally {
        native.setCpuKernels(initial);
      }
    });
  }
});

describe('argument validation', () => {
  const t = (data: number[], shape: number[], dtype = 'f32') =>
    native.tensorFromArray({ data: dtype === 'i32' ? Int32Array.from(data) : Float32Array.from(data), dtype, shape });
  it('names op and argument', async () => {
    const x = t([1, 2, 3, 4], [2, 2]);
    await expect(async () => native.ops.rmsnormForward({ x, w: t([1, 2, 3], [3]) })).rejects.toThrow(/ops.rmsnormForward: argument 'w' must have shape \[2\]/);
    await expect(async () => native.ops.rmsnormForward({ x, w: t([1, 2], [2], 'i32') })).rejects.toThrow(/ops.rmsnormForward: argument 'w' must have dtype f32/);
    await expect(async () => native.ops.embeddingForward({ ids: t([0, 5], [2], 'i32'), table: x })).rejects.toThrow(/ops.embeddingForward: argument 'ids'\[1\] = 5 is outside \[0, 2\)/);
    await expect(async () => native.ops.swigluForward({ gate: x, up: t([1, 2], [2]) })).rejects.toThrow(/argument 'up' must have (rank|shape)/);
    await expect(async () => native.ops.add({ a: x })).rejects.toThrow(/ops.add: argument 'b'/);
    await expect(async () => native.ops.adamw({ param: x, grad: x, m: x, v: x, lr: 1, step: 1 })).rejects.toThrow(/four different tensors/);
    await expect(async () => native.ops.adamw({ param: x, grad: t([1, 2, 3, 4], [2, 2]), m: t([0, 0, 0, 0], [2, 2]), v: t([0, 0, 0, 0], [2, 2]), lr: 1, step: 0 })).rejects.toThrow(/argument 'step' must be in/);
    await expect(async () => native.ops.rope({ x: t([1, 2, 3], [1, 1, 3]), pos: t([0], [1], 'i32'), invFreq: t([1], [1]) })).rejects.toThrow(/even head dim/);
    const disposed = t([1], [1]);
    disposed.dispose();
    await expect(async () => native.ops.scale({ x: disposed, s: 2 })).rejects.toThrow(/ops.scale: argument 'x' is a disposed Tensor/);
    await expect(async () => native.ops.gemm({ a: x, b: t([1, 2, 3], [3, 1]) })).rejects.toThrow(/ops.gemm: inner dimensions differ/);
  });
  it.skipIf(!info.cuda.compiled || info.cuda.devices.length === 0)('rejects tensors on two devices (needs a CUDA device)', async () => {
    const a = t([1, 2], [2]);
    const b = native.tensorFromArray({ data: Float32Array.from([1, 2]), dtype: info.cuda.devices.length ? 'bf16' : 'f32', shape: [2], device: 'cuda:0' });
    await expect(async () => native.ops.add({ a, b })).rejects.toThrow(/all tensors of one call must be on one device/);
  });
});

describe('src/engine/ops.ts wrappers', () => {
  it('preferenceMetrics: means, margin and accuracy from the per-pair outputs', async () => {
    // SimPO, beta 2: rewards 2*c/|c|
    const chosen = tensor(Float32Array.from([-2, -9, -1]), [3]);
    const rejected = tensor(Float32Array.from([-8, -3, -4]), [3]);
    const len = tensor(Float32Array.from([2, 3, 1]), [3]);
    const out = await ops.preferenceLoss({ kind: 'simpo', beta: 2, gamma: 0, chosen, rejected, chosenLen: len, rejectedLen: len });
    const m = ops.preferenceMetrics(out);
    // chosen rewards -2, -6, -2; rejected -8, -2, -8
    expect(m.chosenReward).toBeCloseTo(-10 / 3, 5);
    expect(m.rejectedReward).toBeCloseTo(-6, 5);
    expect(m.margin).toBeCloseTo(-10 / 3 + 6, 5);
    expect(m.accuracy).toBeCloseTo(2 / 3, 10);
    const z = [6, -4, 6];
    const want = z.reduce((a, x) => a + Math.log1p(Math.exp(-x)), 0) / 3;
    expect(m.loss).toBeCloseTo(want, 5);
  });
  it('bad arguments become rejections naming op and argument', async () => {
    const x = tensor(Float32Array.from([1, 2]), [2]);
    await expect(ops.add({ a: x, b: tensor(Float32Array.from([1]), [1]) })).rejects.toThrow(/ops.add: argument 'b' must have shape \[2\]/);
    await expect(ops.preferenceLoss({ kind: 'orpo', chosen: x, rejected: x, chosenLen: x, rejectedLen: x })).rejects.toThrow(/ops.preferenceLoss: argument 'chosen'\[0\] must be a log-probability sum \(<= 0\)/);
    await expect(ops.preferenceLoss({ kind: 'dpo' as never, chosen: x, rejected: x })).rejects.toThrow(/argument 'refChosen' is required/);
  });
});

describe('argument validation: one bad field at a time on otherwise valid calls', () => {
  const f = (n: number[], shape: number[]) => native.tensorFromArray({ data: Float32Array.from(n), dtype: 'f32', shape });
  const i = (n: number[], shape: number[]) => native.tensorFromArray({ data: Int32Array.from(n), dtype: 'i32', shape });
  const fz = (shape: number[]) => native.tensorZeros({ dtype: 'f32', shape });
  const dead = fz([1]);
  dead.dispose();
  // valid options for each op, small shapes
  const valid: Record<string, () => Record<string, unknown>> = {
    attentionForward: () => ({ q: fz([5, 4, 2]), k: fz([5, 2, 2]), v: fz([5, 2, 2]), cuSeqlens: i([0, 2, 5], [3]) }),
    attentionDecode: () => ({ q: fz([2, 1, 4, 2]), kCache: fz([3, 2, 2, 2]), vCache: fz([3, 2, 2, 2]), blockTable: i([0, 1, 2, 0], [2, 2]), ctxLens: i([3, 2], [2]) }),
    kvWrite: () => ({ kNew: fz([2, 1, 2, 2]), vNew: fz([2, 1, 2, 2]), kCache: fz([3, 2, 2, 2]), vCache: fz([3, 2, 2, 2]), blockTable: i([0, 1, 2, 0], [2, 2]), ctxLens: i([3, 2], [2]) }),
    logprob: () => ({ hidden: fz([3, 4]), weight: fz([5, 4]), targets: i([0, -1, 4], [3]), dlogp: fz([3]) }),
    embeddingForward: () => ({ ids: i([0, 2], [2]), table: fz([3, 4]) }),
    sample: () => ({ logits: fz([2, 5]), counters: [1, 2], topK: 2, topP: 0.5, temperature: 1 }),
    preferenceLoss: () => ({ kind: 'simpo', chosen: f([-1, -2], [2]), rejected: f([-3, -1], [2]), chosenLen: f([1, 2], [2]), rejectedLen: f([2, 1], [2]) }),
  };
  const mutations: Record<string, Array<[string, (o: Record<string, unknown>) => void]>> = {
    attentionForward: [
      ['cuSeqlens not ending at T', (o) => (o.cuSeqlens = i([0, 2, 4], [3]))],
      ['cuSeqlens decreasing', (o) => (o.cuSeqlens = i([0, 3, 2, 5], [4]))],
      ['cuSeqlens not starting at 0', (o) => (o.cuSeqlens = i([1, 5], [2]))],
      ['GQA not dividing', (o) => ((o.k = fz([5, 3, 2])), (o.v = fz([5, 3, 2])))],
      ['k of another length', (o) => (o.k = fz([4, 2, 2]))],
      ['q as i32', (o) => (o.q = i(new Array(40).fill(0), [5, 4, 2]))],
      ['v disposed', (o) => (o.v = dead)],
      ['scale NaN', (o) => (o.scale = NaN)],
    ],
    attentionDecode: [
      ['block id out of range', (o) => (o.blockTable = i([0, 3, 2, 0], [2, 2]))],
      ['negative block id', (o) => (o.blockTable = i([-1, 1, 2, 0], [2, 2]))],
      ['context longer than the table', (o) => (o.ctxLens = i([5, 2], [2]))],
      ['context shorter than the new tokens', (o) => (o.ctxLens = i([0, 2], [2]))],
      ['vCache of another shape', (o) => (o.vCache = fz([3, 2, 2, 3]))],
      ['heads not a multiple', (o) => (o.q = fz([2, 1, 3, 2]))],
    ],
    kvWrite: [
      ['block id out of range', (o) => (o.blockTable = i([0, 1, 7, 0], [2, 2]))],
      ['kNew of another head dim', (o) => (o.kNew = fz([2, 1, 2, 3]))],
      ['ctxLens of another length', (o) => (o.ctxLens = i([3], [1]))],
    ],
    logprob: [
      ['target = V', (o) => (o.targets = i([0, 5, 1], [3]))],
      ['target < -1', (o) => (o.targets = i([0, -2, 1], [3]))],
      ['weight of another width', (o) => (o.weight = fz([5, 3]))],
      ['dlogp of another length', (o) => (o.dlogp = fz([2]))],
      ['dweight without dlogp', (o) => ((o.dlogp = undefined), (o.dweight = fz([5, 4])))],
      ['chunk negative', (o) => (o.chunk = -1)],
    ],
    embeddingForward: [
      ['id = V', (o) => (o.ids = i([0, 3], [2]))],
      ['id negative', (o) => (o.ids = i([-1, 0], [2]))],
      ['ids as f32', (o) => (o.ids = fz([2]))],
    ],
    sample: [
      ['counters too short', (o) => (o.counters = [1])],
      ['counters negative', (o) => (o.counters = [1, -1])],
      ['topP 0', (o) => (o.topP = 0)],
      ['topP above 1', (o) => (o.topP = 1.5)],
      ['topK negative', (o) => (o.topK = -1)],
      ['logits with no columns', (o) => (o.logits = fz([2, 0]))],
    ],
    preferenceLoss: [
      ['zero length', (o) => (o.chosenLen = f([0, 1], [2]))],
      ['unknown kind', (o) => (o.kind = 'kto')],
      ['label smoothing above 0.5', (o) => (o.labelSmoothing = 0.7)],
      ['rejected of another length', (o) => (o.rejected = f([1], [1]))],
    ],
  };
  for (const [op, muts] of Object.entries(mutations)) {
    it(`${op}: the valid call works and each bad field is a JS error naming ${op}`, async () => {
      await native.ops[op](valid[op]!());
      for (const [what, mutate] of muts) {
        const o = valid[op]!();
        mutate(o);
        let err: unknown;
        try {
          await native.ops[op](o);
        } catch (e) {
          err = e;
        }
        expect(err, `${op} with ${what} was accepted`).toBeInstanceOf(Error);
        expect((err as Error).message, what).toContain(`ops.${op}`);
      }
    });
  }
});

describe('ORPO at probability 1', () => {
  it('a log-prob sum of exactly 0 gives a finite loss and gradient (average clamped to -1e-6)', async () => {
    const chosen = tensor(Float32Array.from([0, -3]), [2]);
    const rejected = tensor(Float32Array.from([-2, 0]), [2]);
    const len = tensor(Float32Array.from([1, 2]), [2]);
    const out = await ops.preferenceLoss({ kind: 'orpo', lambda: 0.5, chosen, rejected, chosenLen: len, rejectedLen: len });
    for (const k of ['loss', 'dChosen', 'dRejected', 'chosenReward', 'rejectedReward'] as const)
      for (const v of out[k].toArray() as Float32Array) expect(Number.isFinite(v), k).toBe(true);
    // pair 0: mc clamped to -1e-6 -> log-odds = -1e-6 - log(1 - e^-1e-6) ~ 13.8155
    expect((out.chosenReward.toArray() as Float32Array)[0]).toBeCloseTo(-1e-6 - Math.log(-Math.expm1(-1e-6)), 3);
  });
});

describe('NaN inputs', () => {
  it('propagate as NaN through the exp-based ops (no undefined float-to-int casts)', async () => {
    const g = tensor(Float32Array.from([NaN, 1, -1e4, 1e4]), [4]);
    const u = tensor(Float32Array.from([1, 1, 1, 1]), [4]);
    const { out } = await ops.swigluForward({ gate: g, up: u });
    const o = out.toArray() as Float32Array;
    expect(Number.isNaN(o[0])).toBe(true);
    expect(o[1]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
    expect(Math.abs(o[2]!)).toBeLessThan(1e-30);
    expect(o[3]).toBe(1e4);
    const hidden = tensor(Float32Array.from([NaN, 1, 0.5, 0.25]), [2, 2]);
    const weight = tensor(Float32Array.from([1, 0, 0, 1, 1, 1]), [3, 2]);
    const lp = await ops.logprob({ hidden, weight, targets: tensor(Int32Array.from([0, 2]), [2]) });
    const l = lp.logprob.toArray() as Float32Array;
    expect(Number.isNaN(l[0])).toBe(true);
    expect(Number.isFinite(l[1])).toBe(true);
  });
});
