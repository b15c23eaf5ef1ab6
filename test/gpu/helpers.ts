// Shared by the GPU tests: whether a CUDA device is usable, and why not.
import { loadNative } from '../../src/engine/native.js';

export interface GpuStatus {
  ok: boolean;
  reason: string;
  device: string;
}

export function gpuStatus(): GpuStatus {
  try {
    const info = loadNative().info();
    if (!info.cuda.compiled) return { ok: false, reason: `no GPU: this build has no CUDA (${info.cuda.reason ?? 'built without CUDA'})`, device: '' };
    if (info.cuda.devices.length === 0) return { ok: false, reason: `no GPU: ${info.cuda.reason ?? 'no CUDA device'}`, device: '' };
    const d = info.cuda.devices[0];
    return { ok: true, reason: '', device: `${d.name} (sm ${d.computeCapability})` };
  } catch (e) {
    return { ok: false, reason: `no GPU: the addon did not load (${(e as Error).message.split('\n')[0]})`, device: '' };
  }
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
