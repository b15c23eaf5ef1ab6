// Tensor: a typed handle on native memory (cpu or cuda:N).
import { loadNative } from './native.js';

export type DType = 'f32' | 'bf16' | 'f16' | 'i32';
export type DeviceName = 'cpu' | `cuda:${number}`;

/** The native handle; methods are implemented in native/addon/tensor_binding.cpp. */
export interface NativeTensor {
  readonly dtype: DType | null;
  readonly shape: number[] | null;
  readonly device: DeviceName | null;
  readonly disposed: boolean;
  readonly nbytes: number;
  toArray(): Float32Array | Int32Array | Uint16Array;
  dispose(): void;
}

export type TensorData = Float32Array | Int32Array | Uint16Array;

/**
 * Creates a tensor from a TypedArray: Float32Array for f32 (or f32 values to round
 * into bf16/f16), Int32Array for i32, Uint16Array for raw bf16/f16 bits.
 */
export function tensor(data: TensorData, shape: number[], dtype?: DType, device: DeviceName = 'cpu'): NativeTensor {
  const dt: DType = dtype ?? (data instanceof Int32Array ? 'i32' : data instanceof Uint16Array ? 'bf16' : 'f32');
  return loadNative().tensorFromArray({ data, dtype: dt, shape, device }) as NativeTensor;
}

export function zeros(shape: number[], dtype: DType = 'f32', device: DeviceName = 'cpu'): NativeTensor {
  return loadNative().tensorZeros({ dtype, shape, device }) as NativeTensor;
}

/** Converts between float dtypes on the tensor's device (off the event loop). */
export async function convert(x: NativeTensor, dtype: DType): Promise<NativeTensor> {
  return (await loadNative().tensorConvert({ x, dtype })) as NativeTensor;
}

/** Reads a float tensor back as a Float32Array, converting bf16/f16 bits. */
export function toFloat32(x: NativeTensor): Float32Array {
  const a = x.toArray();
  if (a instanceof Float32Array) return a;
  if (a instanceof Int32Array) return Float32Array.from(a);
  const out = new Float32Array(a.length);
  const f = x.dtype === 'bf16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < a.length; i++) out[i] = f(a[i]!);
  return out;
}

const scratch = new DataView(new ArrayBuffer(4));
export function bf16ToF32(h: number): number {
  scratch.setUint32(0, (h & 0xffff) << 16);
  return scratch.getFloat32(0);
}
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
