// Tensor handles: round trips for each dtype, bf16/f16 conversion against a reference
// written from the formats' definitions (nearest representable value by exact
// distance, ties to even; not the bit tricks the C++ uses), disposal.
import { describe, expect, it } from 'vitest';
import { addon, rng } from '../helpers/native.js';

const native = addon();

const dv = new DataView(new ArrayBuffer(8));
function f32bits(x: number): number {
  dv.setFloat32(0, x);
  return dv.getUint32(0);
}
function fromF32bits(u: number): number {
  dv.setUint32(0, u >>> 0);
  return dv.getFloat32(0);
}

// Every finite value of a 16-bit float format, decoded from its definition.
function decode16(bits: number, expBits: number, mantBits: number, bias: number): number {
  const sign = bits >> (expBits + mantBits) ? -1 : 1;
  const e = (bits >> mantBits) & ((1 << expBits) - 1);
  const m = bits & ((1 << mantBits) - 1);
  if (e === (1 << expBits) - 1) return m ? NaN : sign * Infinity;
  if (e === 0) return sign * m * 2 ** (1 - bias - mantBits);
  return sign * (1 + m / 2 ** mantBits) * 2 ** (e - bias);
}

interface Format {
  name: 'bf16' | 'f16';
  expBits: number;
  mantBits: number;
  bias: number;
}
const BF16: Format = { name: 'bf16', expBits: 8, mantBits: 7, bias: 127 };
const F16: Format = { name: 'f16', expBits: 5, mantBits: 10, bias: 15 };

// Positive finite values in increasing order with their bit patterns.
function table(f: Format): { values: number[]; bits: number[] } {
  const values: number[] = [];
  const bits: number[] = [];
  const maxExp = (1 << f.expBits) - 1;
  for (let b = 0; b < maxExp << f.mantBits; b++) {
    values.push(decode16(b, f.expBits, f.mantBits, f.bias));
    bits.push(b);
  }
  return { values, bits };
}

// Reference rounding: the nearest representable value (exact f64 distances), ties to
// the even mantissa; beyond max + half an ulp: Inf; NaN stays NaN.
function refRound(x: number, f: Format, t: { values: number[]; bits: number[] }): number {
  const signBit = 1 << (f.expBits + f.mantBits);
  if (Number.isNaN(x)) return NaN;
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  const sign = neg ? signBit : 0;
  const infBits = sign | (((1 << f.expBits) - 1) << f.mantBits);
  if (a === Infinity) return infBits;
  const n = t.values.length;
  const max = t.values[n - 1]!;
  const ulpAtMax = max - t.values[n - 2]!;
  if (a > max + ulpAtMax / 2) return infBits;
  if (a === max + ulpAtMax / 2) return t.bits[n - 1]! & 1 ? infBits : sign | t.bits[n - 1]!;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (t.values[mid]! <= a) lo = mid;
    else hi = mid - 1;
  }
  if (t.values[lo] === a || lo === n - 1) return sign | t.bits[lo]!;
  const dLo = a - t.values[lo]!;
  const dHi = t.values[lo + 1]! - a;
  if (dLo < dHi) return sign | t.bits[lo]!;
  if (dHi < dLo) return sign | t.bits[lo + 1]!;
  return sign | (t.bits[lo]! & 1 ? t.bits[lo + 1]! : t.bits[lo]!);
}

function testValues(seed: number): Float32Array {
  const r = rng(seed);
  const v: number[] = [0, -0, 1, -1, 0.5, 65504, 65505, 65519, 65520, 65536, -65520, 1e-8, 5.96e-8, 2.98e-8, 2.99e-8,
    6.1e-5, 6.09e-5, 3.4e38, -3.4e38, Infinity, -Infinity, NaN, 1.401298464324817e-45, 1.1754942106924411e-38];
  // every f32 whose low 16 bits are exactly the bf16 halfway point (ties) and neighbours
  for (let i = 0; i < 400; i++) {
    const hi = Math.floor(r() * 0x7f80) | (r() < 0.5 ? 0x8000 : 0);
    for (const lo of [0x7fff, 0x8000, 0x8001, 0x0000, 0xffff]) v.push(fromF32bits((hi << 16) | lo));
  }
  // f16 ties: mantissa bits below the f16 ulp exactly half
  for (let i = 0; i < 400; i++) {
    const e = 103 + Math.floor(r() * 40); // spans f16 subnormals to above max
    const m = Math.floor(r() * 0x400) << 13;
    for (const low of [0x1000, 0x0fff, 0x1001, 0]) v.push(fromF32bits((e << 23) | m | low));
  }
  for (let i = 0; i < 3000; i++) v.push((r() - 0.5) * 10 ** (r() * 12 - 6));
  for (let i = 0; i < 1000; i++) v.push(fromF32bits(Math.floor(r() * 2 ** 32)));
  return Float32Array.from(v);
}

describe('tensor round trips', () => {
  it('f32 and i32 copy exactly', () => {
    const r = rng(1);
    const f = Float32Array.from({ length: 1000 }, () => (r() - 0.5) * 1e6);
    const t = native.tensorFromArray({ data: f, dtype: 'f32', shape: [10, 100] });
    expect(t.shape).toEqual([10, 100]);
    expect(t.dtype).toBe('f32');
    expect(t.device).toBe('cpu');
    expect(t.nbytes).toBe(4000);
    expect(Array.from(t.toArray())).toEqual(Array.from(f));
    const i = Int32Array.from({ length: 77 }, () => Math.floor((r() - 0.5) * 2 ** 32));
    const ti = native.tensorFromArray({ data: i, dtype: 'i32', shape: [7, 11] });
    expect(Array.from(ti.toArray())).toEqual(Array.from(i));
  });

  it('zero-size and scalar tensors', () => {
    const z = native.tensorZeros({ dtype: 'f32', shape: [0, 5] });
    expect(z.toArray().length).toBe(0);
    const s = native.tensorFromArray({ data: new Float32Array([3]), dtype: 'f32', shape: [] });
    expect(Array.from(s.toArray())).toEqual([3]);
    const zz = native.tensorZeros({ dtype: 'bf16', shape: [3] });
    expect(Array.from(zz.toArray())).toEqual([0, 0, 0]);
  });

  for (const fmt of [BF16, F16]) {
    it(`${fmt.name}: f32 -> ${fmt.name} rounds to nearest even, like the reference`, async () => {
      const t = table(fmt);
      const x = testValues(fmt === BF16 ? 7 : 8);
      const h = native.tensorFromArray({ data: x, dtype: fmt.name, shape: [x.length] });
      const bits = h.toArray() as Uint16Array;
      const mismatches: string[] = [];
      for (let i = 0; i < x.length; i++) {
        const want = refRound(x[i]!, fmt, t);
        const got = bits[i]!;
        if (Number.isNaN(want)) {
          const exp = (got >> fmt.mantBits) & ((1 << fmt.expBits) - 1);
          if (exp !== (1 << fmt.expBits) - 1 || (got & ((1 << fmt.mantBits) - 1)) === 0) mismatches.push(`NaN -> ${got}`);
        } else if (got !== want) {
          mismatches.push(`${x[i]} (0x${f32bits(x[i]!).toString(16)}): got 0x${got.toString(16)} want 0x${want.toString(16)}`);
        }
      }
      expect(mismatches.slice(0, 10)).toEqual([]);
      // the async device conversion agrees with the host one
      const f = native.tensorFromArray({ data: x, dtype: 'f32', shape: [x.length] });
      const c = await native.tensorConvert({ x: f, dtype: fmt.name });
      expect(Array.from(c.toArray() as Uint16Array)).toEqual(Array.from(bits));
    });

    it(`${fmt.name}: every bit pattern widens to f32 exactly`, async () => {
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
      const h = native.tensorFromArray({ data: all, dtype: fmt.name, shape: [65536] });
      const f = await native.tensorConvert({ x: h, dtype: 'f32' });
      const out = f.toArray() as Float32Array;
      let bad = 0;
      for (let i = 0; i < 65536; i++) {
        const want = decode16(i, fmt.expBits, fmt.mantBits, fmt.bias);
        const got = out[i]!;
        if (Number.isNaN(want) ? !Number.isNaN(got) : !Object.is(got, want)) bad++;
      }
      expect(bad).toBe(0);
      // and narrows back to the same bits (NaNs stay NaN)
      const back = (await native.tensorConvert({ x: f, dtype: fmt.name })).toArray() as Uint16Array;
      let diff = 0;
      for (let i = 0; i < 65536; i++) {
        if (Number.isNaN(decode16(i, fmt.expBits, fmt.mantBits, fmt.bias))) continue;
        if (back[i] !== i) diff++;
      }
      expect(diff).toBe(0);
    });
  }
});

describe('disposal', () => {
  it('use after dispose is a TypeError naming the tensor', () => {
    const t = native.tensorFromArray({ data: new Float32Array([1, 2]), dtype: 'f32', shape: [2] });
    expect(t.disposed).toBe(false);
    t.dispose();
    expect(t.disposed).toBe(true);
    expect(t.shape).toBeNull();
    expect(() => t.toArray()).toThrow(TypeError);
    expect(() => t.toArray()).toThrow(/disposed/);
    // native functions validate synchronously (the typed wrappers in src/engine are async and reject)
    expect(() => native.tensorConvert({ x: t, dtype: 'bf16' })).toThrow(/argument 'x' is a disposed Tensor/);
    t.dispose(); // twice is fine
  });

  it('work in flight keeps its input alive when the handle is disposed', async () => {
    const n = 1 << 20;
    const x = native.tensorFromArray({ data: new Float32Array(n).fill(1.5), dtype: 'f32', shape: [n] });
    const p = native.tensorConvert({ x, dtype: 'bf16' });
    x.dispose();
    const y = await p;
    const bits = y.toArray() as Uint16Array;
    expect(bits[0]).toBe(0x3fc0);
    expect(bits[n - 1]).toBe(0x3fc0);
  });

  it('many tensors are reclaimed by the finalizer without dispose', () => {
    for (let i = 0; i < 2000; i++) native.tensorZeros({ dtype: 'f32', shape: [256] });
    expect(true).toBe(true);
  });
});

describe('bad arguments', () => {
  it('each names the argument and what was expected', () => {
    const f = (o: unknown) => () => native.tensorFromArray(o);
    expect(f(undefined)).toThrow(/tensorFromArray: argument 'options' must be an object/);
    expect(f({ data: new Float32Array(2), dtype: 'f64', shape: [2] })).toThrow(/'dtype' must be one of/);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [3] })).toThrow(RangeError);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [-2] })).toThrow(/'shape'.*\[0,/);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [NaN] })).toThrow(/NaN/);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [2 ** 40, 2 ** 40] })).toThrow(/too large/);
    expect(f({ data: new Int32Array(2), dtype: 'f32', shape: [2] })).toThrow(/Float32Array/);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [2], device: 'tpu' })).toThrow(/'cpu' or 'cuda:N'/);
    expect(f({ data: new Float32Array(2), dtype: 'f32', shape: [2], device: 'cuda:0' })).toThrow(/cuda/);
  });
});
