// CPU SGEMM (native/cpu/gemm*.cpp) through native.gemm, against a float64 reference
// written here from the definition C = alpha * op(A) op(B) + beta * C, for every CPU
// kernel level the machine has (scalar, avx2, avx512 / neon).
//
// Tolerance per element: 2 * sqrt(K + 1) * eps_f32 * (|alpha| * sum_k |op(A)_ik| |op(B)_kj| + |beta * C0_ij|)
// (eps_f32 = 2^-23): the rounding error of a length-K f32 dot product with random signs
// grows like sqrt(K) eps times the sum of the magnitudes.
import { afterAll, describe, expect, it } from 'vitest';
import { addon, rng } from '../helpers/native.js';

const native = addon();
const EPS = 2 ** -23;

interface Case {
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  beta?: number;
  lda?: number;
  ldb?: number;
  ldc?: number;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  threads?: number;
}

interface Full extends Required<Omit<Case, 'threads'>> {
  threads?: number;
}

function complete(c: Case): Full {
  const transA = c.transA ?? false;
  const transB = c.transB ?? false;
  const aRows = transA ? c.k : c.m;
  const aCols = transA ? c.m : c.k;
  const bRows = transB ? c.n : c.k;
  const bCols = transB ? c.k : c.n;
  const lda = c.lda ?? Math.max(1, aCols);
  const ldb = c.ldb ?? Math.max(1, bCols);
  const ldc = c.ldc ?? Math.max(1, c.n);
  const ext = (r: number, cols: number, ld: number) => (r === 0 || cols === 0 ? 0 : (r - 1) * ld + cols);
  return {
    m: c.m,
    n: c.n,
    k: c.k,
    transA,
    transB,
    alpha: c.alpha ?? 1,
    beta: c.beta ?? 0,
    lda,
    ldb,
    ldc,
    batch: c.batch ?? 1,
    strideA: c.strideA ?? ext(aRows, aCols, lda),
    strideB: c.strideB ?? ext(bRows, bCols, ldb),
    strideC: c.strideC ?? ext(c.m, c.n, ldc),
    threads: c.threads,
  };
}

function need(batch: number, stride: number, rows: number, cols: number, ld: number): number {
  if (rows === 0 || cols === 0 || batch === 0) return 1;
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

/** Random data; every element outside the matrices (padding) is NaN, so reading one shows up. */
function makeInputs(f: Full, seed: number, cFill: 'random' | 'nan') {
  const r = rng(seed);
  const aRows = f.transA ? f.k : f.m;
  const aCols = f.transA ? f.m : f.k;
  const bRows = f.transB ? f.n : f.k;
  const bCols = f.transB ? f.k : f.n;
  const fill = (len: number, batch: number, stride: number, rows: number, cols: number, ld: number, rand: boolean) => {
    const x = new Float32Array(len).fill(NaN);
    for (let b = 0; b < batch; b++)
      for (let i = 0; i < rows; i++)
        for (let j = 0; j < cols; j++) x[b * stride + i * ld + j] = rand ? r() * 2 - 1 : NaN;
    return x;
  };
  const a = fill(need(f.batch, f.strideA, aRows, aCols, f.lda), f.batch, f.strideA, aRows, aCols, f.lda, true);
  const b = fill(need(f.batch, f.strideB, bRows, bCols, f.ldb), f.batch, f.strideB, bRows, bCols, f.ldb, true);
  const c = fill(need(f.batch, f.strideC, f.m, f.n, f.ldc), f.batch, f.strideC, f.m, f.n, f.ldc, cFill === 'random');
  return { a, b, c };
}

/** float64 reference and the per-element error bound. */
function reference(f: Full, a: Float32Array, b: Float32Array, c0: Float32Array) {
  const out = new Float64Array(c0.length);
  const tol = new Float64Array(c0.length);
  for (let i = 0; i < c0.length; i++) out[i] = c0[i];
  for (let bt = 0; bt < f.batch; bt++) {
    const oa = bt * f.strideA;
    const ob = bt * f.strideB;
    const oc = bt * f.strideC;
    for (let i = 0; i < f.m; i++)
      for (let j = 0; j < f.n; j++) {
        let s = 0;
        let mag = 0;
        for (let p = 0; p < f.k; p++) {
          const av = f.transA ? a[oa + p * f.lda + i] : a[oa + i * f.lda + p];
          const bv = f.transB ? b[ob + j * f.ldb + p] : b[ob + p * f.ldb + j];
          s += av * bv;
          mag += Math.abs(av * bv);
        }
        const idx = oc + i * f.ldc + j;
        const prev = f.beta === 0 ? 0 : f.beta * c0[idx];
        out[idx] = f.alpha * s + prev;
        tol[idx] = 2 * Math.sqrt(f.k + 1) * EPS * (Math.abs(f.alpha) * mag + Math.abs(prev)) + 1e-37;
      }
  }
  return { out, tol };
}

/** Indices of C that belong to some batch entry's matrix. */
function inC(f: Full): Uint8Array {
  const len = need(f.batch, f.strideC, f.m, f.n, f.ldc);
  const mask = new Uint8Array(len);
  for (let bt = 0; bt < f.batch; bt++)
    for (let i = 0; i < f.m; i++) for (let j = 0; j < f.n; j++) mask[bt * f.strideC + i * f.ldc + j] = 1;
  return mask;
}

async function runCase(c: Case, seed = 1, cFill: 'random' | 'nan' = 'random') {
  const f = complete(c);
  const { a, b, c: c0 } = makeInputs(f, seed, cFill);
  const cOut = c0.slice();
  await native.gemm({ ...f, a, b, c: cOut });
  return { f, a, b, c0, cOut };
}

async function check(c: Case, seed = 1, cFill: 'random' | 'nan' = 'random') {
  const { f, a, b, c0, cOut } = await runCase(c, seed, cFill);
  const { out, tol } = reference(f, a, b, c0);
  const mask = inC(f);
  let bad = 0;
  let first = '';
  for (let i = 0; i < cOut.length; i++) {
    if (mask[i]) {
      const err = Math.abs(cOut[i] - out[i]);
      if (!(err <= tol[i])) {
        if (!bad) first = `C[${i}] = ${cOut[i]}, expected ${out[i]} (tolerance ${tol[i].toExponential(2)})`;
        bad++;
      }
    } else if (!Object.is(cOut[i], c0[i])) {
      if (!bad) first = `C[${i}] outside the matrices changed from ${c0[i]} to ${cOut[i]}`;
      bad++;
    }
  }
  expect(bad, `${JSON.stringify(c)}: ${bad} bad elements; first: ${first}`).toBe(0);
  return cOut;
}

const SHAPES: Array<[number, number, number]> = [
  [1, 1, 1],
  [1, 7, 5],
  [3, 1, 2],
  [2, 3, 1],
  [13, 17, 19],
  [14, 32, 256],
  [15, 33, 257],
  [29, 61, 300],
  [64, 100, 37],
  [6, 16, 8],
  [7, 47, 31],
  [5, 600, 300], // several column blocks and two depth blocks when rows fit one A block
  [353, 45, 23], // more rows than one packed A block (mc)
  [4, 9, 33], // few rows (decode): dot products when B is transposed
  [11, 37, 45],
  [2, 70, 1000],
];
const TRANS: Array<[boolean, boolean]> = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

const info = native.info();
const levels: string[] = info.cpu.available;
const initial: string = info.cpu.kernels;
afterAll(() => {
  native.setCpuKernels(initial);
});

describe('gemm: argument checks', () => {
  const a = new Float32Array(6);
  const b = new Float32Array(6);
  const c = new Float32Array(4);
  const ok = { a, b, c, m: 2, n: 2, k: 3 };
  it('accepts the valid call', async () => {
    await expect(native.gemm(ok)).resolves.toBeTypeOf('number');
  });
  it('names the bad argument', () => {
    expect(() => native.gemm()).toThrow(/gemm/);
    expect(() => native.gemm({ ...ok, a: undefined })).toThrow(/'a' is required/);
    expect(() => native.gemm({ ...ok, a: [1, 2, 3, 4, 5, 6] })).toThrow(/'a' must be a Float32Array/);
    expect(() => native.gemm({ ...ok, b: new Float64Array(6) })).toThrow(/'b' must be a Float32Array/);
    expect(() => native.gemm({ ...ok, a: new Float32Array(5) })).toThrow(/'a' holds 5 elements/);
    expect(() => native.gemm({ ...ok, c: new Float32Array(3) })).toThrow(/'c' holds 3 elements/);
    expect(() => native.gemm({ ...ok, m: -1 })).toThrow(/'m'/);
    expect(() => native.gemm({ ...ok, k: 1.5 })).toThrow(/'k' must be an integer/);
    expect(() => native.gemm({ ...ok, lda: 2 })).toThrow(/'lda'/);
    expect(() => native.gemm({ ...ok, ldc: 1 })).toThrow(/'ldc'/);
    expect(() => native.gemm({ ...ok, transA: 1 })).toThrow(/'transA' must be a boolean/);
    expect(() => native.gemm({ ...ok, alpha: NaN })).toThrow(/'alpha'/);
    expect(() => native.gemm({ ...ok, beta: Infinity })).toThrow(/'beta'/);
    expect(() => native.gemm({ ...ok, threads: 0 })).toThrow(/'threads'/);
    expect(() => native.gemm({ ...ok, batch: 2 })).toThrow(/'a' holds 6 elements/);
    expect(() => native.gemm({ ...ok, batch: 2, strideC: 1, a: new Float32Array(12), b: new Float32Array(12), c: new Float32Array(8) })).toThrow(/'strideC'/);
    const shared = new Float32Array(16);
    expect(() => native.gemm({ ...ok, a: shared.subarray(0, 6), c: shared.subarray(4, 8) })).toThrow(/'c' must not share memory/);
    expect(() => native.gemmInfo(1)).toThrow(/no arguments/);
  });
});

describe.each(levels)('gemm on the %s kernels', (level) => {
  it('uses the requested kernel level', () => {
    expect(native.setCpuKernels(level)).toBe(level);
    expect(native.gemmInfo().kernel.startsWith(level)).toBe(true);
  });

  it.each(TRANS)('matches the float64 reference, transA=%s transB=%s, awkward shapes', async (transA, transB) => {
    native.setCpuKernels(level);
    let seed = 10;
    for (const [m, n, k] of SHAPES) await check({ m, n, k, transA, transB }, seed++);
  });

  it('alpha and beta; beta 0 ignores NaN in C', async () => {
    native.setCpuKernels(level);
    for (const [transA, transB] of TRANS) {
      await check({ m: 19, n: 37, k: 41, transA, transB, alpha: -0.5, beta: 0.75 }, 3);
      await check({ m: 19, n: 37, k: 300, transA, transB, alpha: 2, beta: 1 }, 4);
      const out = await check({ m: 23, n: 35, k: 270, transA, transB, alpha: 1.5, beta: 0 }, 5, 'nan');
      expect(out.every((x) => !Number.isNaN(x))).toBe(true);
    }
    // alpha 0 and K = 0: C = beta * C, and zeros for beta 0 whatever C held
    await check({ m: 9, n: 11, k: 13, alpha: 0, beta: 0.5 }, 6);
    await check({ m: 9, n: 11, k: 0, beta: -2 }, 7);
    const z = await check({ m: 9, n: 11, k: 0, beta: 0 }, 8, 'nan');
    expect(z.every((x) => x === 0)).toBe(true);
    // empty C: nothing is written
    await check({ m: 0, n: 5, k: 3 }, 9);
    await check({ m: 4, n: 0, k: 3 }, 9);
  });

  it('leading dimensions wider than the rows (padding never read or written)', async () => {
    native.setCpuKernels(level);
    for (const [transA, transB] of TRANS) {
      await check({ m: 17, n: 35, k: 29, transA, transB, lda: 41, ldb: 50, ldc: 39, beta: 0.5 }, 11);
      await check({ m: 1, n: 1, k: 7, transA, transB, lda: 9, ldb: 8, ldc: 3 }, 12);
    }
  });

  it('batches with strides (small ones split across threads by entry, large ones each threaded)', async () => {
    native.setCpuKernels(level);
    for (const [transA, transB] of TRANS) {
      // gaps between entries (strides larger than a matrix) stay untouched
      await check({ m: 7, n: 9, k: 11, transA, transB, batch: 5, strideA: 100, strideB: 120, strideC: 70, beta: 0.25 }, 13);
      await check({ m: 40, n: 50, k: 200, transA, transB, batch: 3, beta: 1, alpha: 0.5 }, 14); // entries split
      await check({ m: 100, n: 90, k: 250, transA, transB, batch: 3 }, 16); // each entry threaded
    }
    // A shared by every entry (stride 0)
    await check({ m: 5, n: 6, k: 7, batch: 4, strideA: 0 }, 15);
  });

  it('threads: the same bits for 1 and 2 threads and for two runs', async () => {
    native.setCpuKernels(level);
    const cases: Case[] = [
      // (each above the 2 MFLOP under which gemm stays on one thread)
      { m: 200, n: 130, k: 300 }, // rows cut between threads
      { m: 20, n: 700, k: 128, transB: true }, // columns cut between threads
      { m: 40, n: 50, k: 100, batch: 8, transA: true }, // batch entries between threads
      { m: 3, n: 1001, k: 400, transA: true, transB: true }, // few rows: dot products, columns cut
    ];
    for (const c of cases) {
      const one = await runCase({ ...c, threads: 1 }, 21);
      const two = await runCase({ ...c, threads: 2 }, 21);
      const again = await runCase({ ...c, threads: 2 }, 21);
      expect(Buffer.from(two.cOut.buffer).equals(Buffer.from(one.cOut.buffer))).toBe(true);
      expect(Buffer.from(again.cOut.buffer).equals(Buffer.from(two.cOut.buffer))).toBe(true);
      await check({ ...c, threads: 2 }, 21);
    }
  });
});

describe('itool bench gemm (quick shapes)', () => {
  it('measures every shape and thread count and prints a well-formed table', async () => {
    const { runGemmBench, formatGemmTable, QUICK } = await import('../../src/bench/gemm.js');
    native.setCpuKernels(initial);
    const rep = await runGemmBench({ shapes: QUICK, threads: [1, 2], runs: 1, minSeconds: 0.0005 });
    expect(rep.kernel).toBe(native.gemmInfo().kernel);
    expect(rep.rows.length).toBe(QUICK.length * 2);
    for (const r of rep.rows) {
      expect(r.gflops).toBeGreaterThan(0);
      expect(Number.isFinite(r.ms)).toBe(true);
      expect(r.op).toMatch(/^[NT][NT]$/);
      expect(r.ratio).toBeUndefined();
    }
    const table = formatGemmTable(rep).split('\n');
    expect(table[0]).toMatch(/^shape\s+M\s+N\s+K\s+op\s+threads\s+ms\s+GFLOP\/s$/);
    expect(table.length).toBe(2 + rep.rows.length);
  });
});

// B in bf16 (weights kept in bf16 for decoding): the CPU widens each B block to f32
// exactly, so the product must be bitwise the one of the f32 matrix with the same
// values, on the dot-product path (few rows, B^T) and the packing path, every transpose,
// batched, at every kernel level.
describe('gemm with a bf16 B', () => {
  const bf16Round = (x: Float32Array): Uint16Array => {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const out = new Uint16Array(x.length);
    for (let i = 0; i < x.length; i++) out[i] = u[i]! >>> 16; // truncation: any bf16 value will do
    return out;
  };
  const widen = (h: Uint16Array): Float32Array => {
    const u = new Uint32Array(h.length);
    for (let i = 0; i < h.length; i++) u[i] = h[i]! << 16;
    return new Float32Array(u.buffer);
  };
  const cases: Array<[number, number, number, number]> = [
    [1, 300, 97, 1], // decode: dot products over bf16 rows
    [12, 1029, 260, 1],
    [13, 70, 33, 1], // just past the dot-product path
    [70, 1100, 300, 1], // several column and depth blocks
    [5, 40, 17, 3], // batched
  ];
  for (const level of levels) {
    it(`equals the f32 product of the widened matrix bitwise, kernels ${level}`, async () => {
      native.setCpuKernels(level);
      try {
        const r = rng(77);
        for (const [m, n, k, batch] of cases) {
          for (const [transA, transB] of TRANS) {
            const a = Float32Array.from({ length: batch * m * k }, () => r() * 2 - 1);
            const b16 = bf16Round(Float32Array.from({ length: batch * k * n }, () => r() * 2 - 1));
            const shapeA = transA ? [k, m] : [m, k];
            const shapeB = transB ? [n, k] : [k, n];
            const lead = batch > 1 ? [batch] : [];
            const A = native.tensorFromArray({ data: a, dtype: 'f32', shape: [...lead, ...shapeA] });
            const B16 = native.tensorFromArray({ data: b16, dtype: 'bf16', shape: [...lead, ...shapeB] });
            const B32 = native.tensorFromArray({ data: widen(b16), dtype: 'f32', shape: [...lead, ...shapeB] });
            const got = (await native.ops.gemm({ a: A, b: B16, transA, transB, alpha: 0.75 })).c.toArray() as Float32Array;
            const want = (await native.ops.gemm({ a: A, b: B32, transA, transB, alpha: 0.75 })).c.toArray() as Float32Array;
            expect(got.length).toBe(batch * m * n);
            expect(Buffer.from(got.buffer).equals(Buffer.from(want.buffer)), `${m}x${n}x${k} b${batch} ${transA}${transB}`).toBe(true);
          }
        }
        // a bf16 A is still refused on the CPU, naming the argument
        const a16 = native.tensorFromArray({ data: new Uint16Array(6), dtype: 'bf16', shape: [2, 3] });
        const b = native.tensorFromArray({ data: new Float32Array(6), dtype: 'f32', shape: [3, 2] });
        await expect(async () => native.ops.gemm({ a: a16, b })).rejects.toThrow(/ops.gemm: argument 'a'/);
      } finally {
        native.setCpuKernels(initial);
      }
    });
  }
});
