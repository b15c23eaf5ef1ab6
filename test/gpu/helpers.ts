// Shared by the GPU tests: whether a CUDA device is usable, and why not.
import { loadNative } from '../../src/engine/native.js';

export interface GpuStatus {
  ok: boolean;
  reason: string;
  device: string;
  /** the device is the CPU emulator of the CUDA engine (native/cuda/emu; npm run test:gpu:emu) */
  emulated: boolean;
}

export function gpuStatus(): GpuStatus {
  try {
    const info = loadNative().info();
    if (!info.cuda.compiled) return { ok: false, reason: `no GPU: this build has no CUDA (${info.cuda.reason ?? 'built without CUDA'})`, device: '', emulated: false };
    if (info.cuda.devices.length === 0) return { ok: false, reason: `no GPU: ${info.cuda.reason ?? 'no CUDA device'}`, device: '', emulated: false };
    const d = info.cuda.devices[0];
    const emulated = String(d.name).startsWith('itool CUDA emulator');
    return { ok: true, reason: '', device: `${d.name} (sm ${d.computeCapability})`, emulated };
  } catch (e) {
    return { ok: false, reason: `no GPU: the addon did not load (${(e as Error).message.split('\n')[0]})`, device: '', emulated: false };
  }
}

/**
 * A size for a GPU test case: `real` on a GPU, `emulated` on the CPU emulator, where every
 * thread is a fiber and a case must run in seconds. The emulated sizes keep what the case
 * is about (odd sizes, several tiles, chunking, GQA), only smaller.
 */
export function sized<T>(real: T, emulated: T): T {
  return emulatedDevice() ? emulated : real;
}
let emu: boolean | undefined;
function emulatedDevice(): boolean {
  if (emu === undefined) emu = gpuStatus().emulated;
  return emu;
}

/** max |a - b| */
export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
/** cosine similarity and norm ratio |a| / |b| */
export function agreement(a: ArrayLike<number>, b: ArrayLike<number>): { cos: number; ratio: number } {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  if (aa === 0 && bb === 0) return { cos: 1, ratio: 1 };
  return { cos: ab / Math.sqrt(aa * bb + 1e-300), ratio: Math.sqrt(aa) / Math.sqrt(bb + 1e-300) };
}
