// f32 values as the tensor types GGUF stores: f32, f16 (IEEE binary16, round to nearest
// even), bf16 (the high half of binary32, round to nearest even) and q8_0 (ggml's block of
// 32 values: an f16 scale d = max|x| / 127, then 32 int8 q = round(x / d), half away from zero).
import { GgmlType } from './gguf.js';

export type ExportDtype = 'f32' | 'f16' | 'bf16' | 'q8_0';
export const EXPORT_DTYPES: readonly ExportDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];

export const QK8_0 = 32;
/** bytes of one q8_0 block: the f16 scale and 32 int8 */
export const Q8_0_BLOCK_BYTES = 2 + QK8_0;

export const GGML_TYPE_OF: Record<ExportDtype, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 };

/** general.file_type (llama_ftype) of a file whose matrices are of this type */
export const FILE_TYPE_OF: Record<ExportDtype, number> = { f32: 0, f16: 1, q8_0: 7, bf16: 32 };

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** binary16 bits of a number (round to nearest, ties to even; overflow to ±inf; NaN kept) */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): the value is mant' * 2^-24 with the implicit bit restored
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e; // 24-bit significand → 10-bit field with exponent e
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1) === 1)) h += 1;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h += 1; // may carry into the exponent: still correct (up to inf)
  return sign | h;
}

/** the number a binary16 bit pattern stands for */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** bfloat16 bits of a number (round to nearest even; NaN stays a quiet NaN) */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) & 0xffff) | 0x40;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** bytes of n values stored as `dtype` (q8_0: n must be a multiple of 32) */
export function byteSize(dtype: ExportDtype, n: number): number {
  switch (dtype) {
    case 'f32': return 4 * n;
    case 'f16':
    case 'bf16': return 2 * n;
    case 'q8_0':
      if (n % QK8_0 !== 0) throw new RangeError(`q8_0: ${n} values are not a whole number of blocks of ${QK8_0}`);
      return (n / QK8_0) * Q8_0_BLOCK_BYTES;
  }
}

/** The values as the bytes of `dtype`, little-endian. */
export function encodeTensor(values: Float32Array, dtype: ExportDtype): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(byteSize(dtype, n));
  const dv = new DataView(out.buffer);
  switch (dtype) {
    case 'f32':
      if (LITTLE_ENDIAN) out.set(new Uint8Array(values.buffer, values.byteOffset, 4 * n));
      else for (let i = 0; i < n; i++) dv.setFloat32(4 * i, values[i]!, true);
      break;
    case 'f16':
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToF16Bits(values[i]!), true);
      break;
    case 'bf16':
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToBf16Bits(values[i]!), true);
      break;
    case 'q8_0':
      for (let b = 0; b < n / QK8_0; b++) {
        let amax = 0;
        for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(values[b * QK8_0 + j]!));
        const d = Math.fround(amax / 127);
        const id = d !== 0 ? Math.fround(1 / d) : 0;
        const o = b * Q8_0_BLOCK_BYTES;
        dv.setUint16(o, f32ToF16Bits(d), true);
        for (let j = 0; j < QK8_0; j++) {
          const v = Math.fround(values[b * QK8_0 + j]! * id);
          // C's roundf: half away from zero
          const q = Math.sign(v) * Math.floor(Math.abs(v) + 0.5);
          dv.setInt8(o + 2 + j, q);
        }
      }
      break;
  }
  return out;
}
