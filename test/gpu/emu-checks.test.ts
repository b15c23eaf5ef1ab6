// The CUDA emulator's checks (native/cuda/emu), each proven by a deliberately broken
// kernel (native/cuda/emu/checks.cpp, built as build/emu/Release/itool_emu_checks beside
// the emulated addon): every mistake a real GPU would fail on must be caught with a
// message naming the kernel and the thread, and the same kernel without the mistake must
// run clean. Runs where test/gpu runs on the emulator (npm run test:gpu:emu); skipped with
// the reason elsewhere.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { gpuStatus } from './helpers.js';

const gpu = gpuStatus();
const addon = process.env.ITOOL_ADDON ?? '';
const bin = addon ? join(dirname(addon), 'itool_emu_checks') : '';
const why = !gpu.emulated
  ? 'not running on the CUDA emulator (npm run test:gpu:emu)'
  : !existsSync(bin)
    ? `${bin || 'itool_emu_checks'} is missing (node scripts/build-native.mjs --emulate builds it)`
    : '';
const skip = why !== '';

function run(name: string, extra: NodeJS.ProcessEnv = {}): { out: string; status: number | null } {
  const env: NodeJS.ProcessEnv = { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:exitcode=86', UBSAN_OPTIONS: 'halt_on_error=1:exitcode=87', ...extra };
  delete env.LD_PRELOAD; // the checks binary links the sanitizers itself
  const r = spawnSync(bin, [name], { env, encoding: 'utf8', timeout: 60_000 });
  return { out: `${r.stdout ?? ''}${r.stderr ?? ''}`, status: r.status };
}
function clean(name: string): void {
  const r = run(name);
  expect(r.out, r.out).toContain('result: cudaSuccess');
  expect(r.status).toBe(0);
}
/** a CUDA error from the emulator: the code, then the message naming kernel, block and thread */
function cudaError(name: string, code: string, kernel: string, thread: string, what: RegExp): void {
  const r = run(name);
  expect(r.out, r.out).toContain(`result: ${code}:`);
  expect(r.out).toContain(`itool CUDA emulator: ${kernel}: block (0,0,0) thread ${thread}`);
  expect(r.out).toMatch(what);
}
/** a sanitizer report that ends the process, then the emulator's line naming kernel and thread */
function sanitizer(name: string, report: RegExp, kernel: string, thread: string): void {
  const r = run(name);
  expect(r.status, r.out).not.toBe(0);
  expect(r.out).toMatch(report);
  expect(r.out).toContain(`itool CUDA emulator: the report above comes from kernel ${kernel}, block (0,0,0) thread ${thread}`);
}

describe(`CUDA emulator checks${skip ? ` (skipped: ${why})` : ''}`, () => {
  it.skipIf(skip)('out-of-bounds global write (one element past a cudaMalloc buffer): ASan names the kernel and thread 64', () => {
    sanitizer('oob_global', /AddressSanitizer: heap-buffer-overflow/, 'oob_global_kernel', '(64,0,0)');
    clean('good_global');
  });
  it.skipIf(skip)('out-of-bounds static __shared__ index: caught, naming the kernel and thread 64', () => {
    sanitizer('oob_static_smem', /index 64 out of bounds for type 'float \[64\]'|AddressSanitizer/, 'oob_static_smem_kernel', '(64,0,0)');
    clean('good_static_smem');
  });
  it.skipIf(skip)('read past the dynamic shared memory the launch gave: ASan names the kernel and thread 31', () => {
    sanitizer('oob_dynamic_smem', /AddressSanitizer: heap-buffer-overflow/, 'oob_dynamic_smem_kernel', '(31,0,0)');
    clean('good_dynamic_smem');
  });
  it.skipIf(skip)('__syncthreads inside a divergent branch: not reached by all threads', () => {
    cudaError('divergent_barrier', 'cudaErrorIllegalInstruction', 'divergent_barrier_kernel', '(0,0,0)',
      /__syncthreads at emu\/checks\.cpp:\d+ is not reached by all threads of the block: 32 of 64 wait there, thread \(32,0,0\) has exited/);
  });
  it.skipIf(skip)('__syncthreads after some threads returned', () => {
    cudaError('barrier_after_return', 'cudaErrorIllegalInstruction', 'barrier_after_return_kernel', '(0,0,0)',
      /not reached by all threads of the block: 40 of 64 wait there, thread \(40,0,0\) has exited/);
    clean('good_barrier');
  });
  it.skipIf(skip)('a full-mask shuffle called by half a warp names the missing lane', () => {
    cudaError('shuffle_bad_mask', 'cudaErrorIllegalInstruction', 'shuffle_bad_mask_kernel', '(0,0,0)',
      /__shfl_xor_sync at emu\/checks\.cpp:\d+: the mask 0xffffffff names lane 16, which has exited/);
  });
  it.skipIf(skip)('a vote whose mask leaves out the calling lane', () => {
    cudaError('vote_mask_without_caller', 'cudaErrorIllegalInstruction', 'vote_mask_without_caller_kernel', '(16,0,0)',
      /__ballot_sync at emu\/checks\.cpp:\d+: the mask 0x0000ffff does not include the calling lane 16/);
  });
  it.skipIf(skip)('a full-mask shuffle in a 48-thread block names lanes that do not exist', () => {
    cudaError('shuffle_missing_lanes', 'cudaErrorIllegalInstruction', 'shuffle_missing_lanes_kernel', '(32,0,0)',
      /__shfl_down_sync at emu\/checks\.cpp:\d+: the mask 0xffffffff names lanes that do not exist \(warp 1 of a 48-thread block has lanes 0x0000ffff\)/);
    clean('good_shuffle');
  });
  it.skipIf(skip)('wmma::load_matrix_sync from a pointer 16 bytes off a 32-byte boundary', () => {
    cudaError('wmma_misaligned_pointer', 'cudaErrorMisalignedAddress', 'wmma_misaligned_kernel', '(', /wmma::load_matrix_sync: pointer 0x[0-9a-f]+ is not 32-byte aligned/);
  });
  it.skipIf(skip)('wmma::load_matrix_sync with ldm 36 (bf16 needs a multiple of 8)', () => {
    cudaError('wmma_bad_ldm', 'cudaErrorMisalignedAddress', 'wmma_misaligned_kernel', '(', /wmma::load_matrix_sync: ldm 36 is not a multiple of 8 \(2-byte elements\)/);
  });
  it.skipIf(skip)('wmma done right computes a 16x16x16 product of ones exactly (16)', () => {
    const r = run('good_wmma');
    expect(r.out, r.out).toContain('result: cudaSuccess');
    expect(r.out).toContain('wmma: c[0] = 16, c[255] = 16');
  });
  it.skipIf(skip)('a 16-byte vector load from a 4-byte aligned address', () => {
    sanitizer('misaligned_vector', /misaligned address 0x[0-9a-f]+ for type 'const struct uint4', which requires 16 byte alignment/, 'misaligned_vector_kernel', '(0,0,0)');
    clean('good_vector');
  });
  it.skipIf(skip)('a shared-memory race (a neighbour\'s entry read without __syncthreads) gives a result that depends on the thread order (ITOOL_CUDA_EMU_ORDER=reverse)', () => {
    const sum = (name: string, order: string) => {
      const r = run(name, { ITOOL_CUDA_EMU_ORDER: order });
      expect(r.out, r.out).toContain('result: cudaSuccess');
      const m = /checksum: (-?[\d.]+)/.exec(r.out);
      expect(m, r.out).not.toBeNull();
      return Number(m![1]);
    };
    expect(sum('race_missing_barrier', 'index')).not.toBe(sum('race_missing_barrier', 'reverse'));
    // with the barrier: the same in both orders, and the value of the float64 formula
    const want = Array.from({ length: 64 }, (_, i) => ((i + 1) % 64) * (i + 1)).reduce((a, b) => a + b, 0);
    expect(sum('good_race', 'index')).toBe(want);
    expect(sum('good_race', 'reverse')).toBe(want);
  });
  it.skipIf(skip)('launch limits: 1025 threads per block, grid y 65536', () => {
    const a = run('block_too_large');
    expect(a.out).toContain('result: cudaErrorInvalidConfiguration:');
    expect(a.out).toContain('plain_kernel: block (1025,1,1) is outside the device\'s limits');
    const b = run('grid_y_too_large');
    expect(b.out).toContain('result: cudaErrorInvalidConfiguration:');
    expect(b.out).toContain('plain_kernel: grid (1,65536,1) is outside the device\'s limits');
  });
  it.skipIf(skip)('dynamic shared memory above the kernel\'s attribute (48 KB unset) or the device\'s 227 KB', () => {
    const a = run('smem_above_attribute');
    expect(a.out).toContain('result: cudaErrorInvalidValue:');
    expect(a.out).toContain('plain_kernel: 65536 bytes of dynamic shared memory asked, the kernel\'s cudaFuncAttributeMaxDynamicSharedMemorySize allows 49152');
    clean('smem_with_attribute');
    const b = run('smem_above_device');
    expect(b.out).toContain('attribute: cudaErrorInvalidValue:');
    expect(b.out).toContain('plain_kernel: 233472 bytes of dynamic shared memory asked, the device has at most 232448 (227 KB) per block');
  });
});
