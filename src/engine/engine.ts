// Engine: device selection and what the native build can do.
import { loadNative } from './native.js';
import type { DeviceName } from './tensor.js';

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalMemory: number;
  freeMemory: number;
  computeCapability: string;
  multiprocessors: number;
}

export interface EngineInfo {
  version: string;
  build: { cuda: boolean; blas: boolean; sanitize: boolean; napi: number; compiler?: string };
  cpu: { features: string[]; kernels: string; available: string[]; threads: number; arch: string };
  cuda: { compiled: boolean; cublas: boolean; runtime?: string; driver?: string; devices: CudaDeviceInfo[]; reason?: string };
}

export type DeviceRequest = 'auto' | DeviceName | 'cuda';

export function info(): EngineInfo {
  return loadNative().info() as EngineInfo;
}

/**
 * Resolves 'auto' | 'cpu' | 'cuda' | 'cuda:N' to a concrete device. 'auto' picks cuda:0
 * when a device is present and falls back to the CPU; an explicit CUDA request on a
 * machine without one is an error that says why and what to do.
 */
export function resolveDevice(req: DeviceRequest = 'auto'): DeviceName {
  const i = info();
  if (req === 'cpu') return 'cpu';
  if (req === 'auto') return i.cuda.devices.length > 0 ? 'cuda:0' : 'cpu';
  const m = /^cuda(?::(\d+))?$/.exec(req);
  if (!m) throw new TypeError(`device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got '${String(req)}'`);
  const idx = m[1] === undefined ? 0 : Number(m[1]);
  if (!i.cuda.compiled)
    throw new Error(`device '${req}': this build has no CUDA (${i.cuda.reason ?? 'built without CUDA'}); use device 'cpu' or rebuild with nvcc on PATH: npm run build:native -- --cuda=ON`);
  if (i.cuda.devices.length === 0) throw new Error(`device '${req}': no CUDA device available (${i.cuda.reason ?? 'unknown reason'}); use device 'cpu'`);
  if (idx >= i.cuda.devices.length) throw new RangeError(`device '${req}': only ${i.cuda.devices.length} CUDA device(s) present`);
  return `cuda:${idx}`;
}

/** Forces the CPU kernel level (tests and benchmarks); returns the level in use. */
export function setCpuKernels(level: 'scalar' | 'avx2' | 'avx512' | 'neon'): string {
  return loadNative().setCpuKernels(level) as string;
}

/** The CPU backend allocator's counters, in bytes (native/cpu/cpu_backend.h). */
export interface AllocatorStats {
  /**
   * bytes handed out by the CPU allocator and not yet given back: every native buffer on the
   * CPU (model weights, adapters, gradients, optimizer state, KV pool, saved activations,
   * per-call temporaries, op scratch such as the log-prob chunk and attention tiles, engine
   * Tensors). Each block at the size it occupies: the request rounded up to 64 bytes, or, from
   * 64 KiB, to its size class (at most 25% more). Not counted: GEMM packing buffers (a few MB
   * per thread), std::vector temporaries inside ops, mapped checkpoint pages, JavaScript memory.
   */
  current: number;
  /** the most `current` has been since resetAllocatorPeak() (or since the process started) */
  peak: number;
  /** freed blocks kept for reuse by the allocator's cache (resident, not in `current`; ITOOL_CPU_CACHE_MB caps it, 1024 MB by default, 0 in sanitizer builds) */
  cached: number;
}

/** The CPU allocator's current, peak and cached bytes (see AllocatorStats). */
export function allocatorStats(): AllocatorStats {
  return loadNative().allocatorStats() as AllocatorStats;
}

/** Sets the allocator's peak to its current bytes (a mark to measure a peak from). */
export function resetAllocatorPeak(): void {
  loadNative().resetAllocatorPeak();
}
