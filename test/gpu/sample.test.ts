// Sampling on CUDA against the float64 reference sampler (test/reference/ops64.ts, the CPU
// engine's semantics) and the CPU engine itself, on the inputs where a bisection on the
// value goes wrong: tied logits (at the top-k and top-p boundaries and at the drawn value:
// ties are walked in index order), -inf logits (masked tokens: the first midpoint of a
// bisection between -inf and the maximum is NaN), and logits near 1e4 (log-probabilities
// computed as x - (max + log sum) in f32 lose up to half an ulp of the max, ~5e-4).
// Skipped with the reason where no CUDA device is present.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/native.js';
import type { NativeTensor } from '../../src/engine/tensor.js';
import { rng } from '../native/op-table.js';
import * as R from '../reference/ops64.js';
import { gpuStatus } from './helpers.js';

const gpu = gpuStatus();
const skip = !gpu.ok;
const why = skip ? ` (skipped: ${gpu.reason})` : '';
// on the CPU emulator of the CUDA engine every thread is a fiber: fewer rows there
const emulated = gpu.device.startsWith('itool CUDA emulator');
const rows = (real: number, emu: number): number => (emulated ? emu : real);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const native: Record<string, any> = skip ? {} : loadNative();

function logitsOn(device: string, data: ArrayLike<number>, B: number, V: number): NativeTensor {
  return native.tensorFromArray({ data: Float32Array.from(data), dtype: 'f32', shape: [B, V], device });
}

interface Mode {
  temperature: number;
  topK: number;
  topP: number;
}
const SEED = 0x5eed0016n;

/**
 * Runs one mode on CUDA and on the CPU engine and checks every row against the float64
 * reference: the token exactly, both log-probabilities within `tol`. A row whose draw lies
 * within 1e-6 (relative) of a step of the cumulative distribution may fall either way under
 * f32 exponentials: it is counted, not compared (at most 2% of the rows may be such).
 */
async function check(lg: Float32Array, B: number, V: number, mode: Mode, tol = 1e-5): Promise<void> {
  const counters = BigUint64Array.from({ length: B }, (_, b) => BigInt(7 * b + 3));
  const args = { temperature: mode.temperature, topK: mode.topK, topP: mode.topP, seed: SEED, counters };
  const g = await native.ops.sample({ logits: logitsOn('cuda:0', lg, B, V), ...args });
  const c = await native.ops.sample({ logits: logitsOn('cpu', lg, B, V), ...args });
  const opts = { temperature: Math.fround(mode.temperature), topK: mode.topK, topP: Math.fround(mode.topP) };
  const what = `T ${mode.temperature} k ${mode.topK} p ${mode.topP}`;
  let borderline = 0;
  for (let b = 0; b < B; b++) {
    const row = lg.subarray(b * V, (b + 1) * V);
    const u = R.uniform(SEED, counters[b]!);
    const want = R.sampleRow(row, opts, u);
    const lo = R.sampleRow(row, opts, u * (1 - 1e-6)).token, hi = R.sampleRow(row, opts, Math.min(u * (1 + 1e-6), 1 - 2 ** -53)).token;
    if (lo !== want.token || hi !== want.token) {
      borderline++;
      continue;
    }
    expect(g.tokens[b], `${what}: row ${b} CUDA token`).toBe(want.token);
    expect(c.tokens[b], `${what}: row ${b} CPU token`).toBe(want.token);
    expect(Math.abs(g.logpSampled[b]! - want.logpSampled), `${what}: row ${b} logpSampled ${g.logpSampled[b]} vs ${want.logpSampled}`).toBeLessThanOrEqual(tol);
    expect(Math.abs(g.logpModel[b]! - want.logpModel), `${what}: row ${b} logpModel ${g.logpModel[b]} vs ${want.logpModel}`).toBeLessThanOrEqual(tol);
  }
  expect(borderline, `${what}: rows too close to a step to compare`).toBeLessThanOrEqual(Math.ceil(0.02 * B));
}

describe(`sampling on CUDA: ties, -inf, large logits${why}`, () => {
  it.skipIf(skip)('tied logits: ties are walked in index order at the top-k and top-p boundaries and at the drawn value (as the CPU engine)', async () => {
    // logits from 5 values, so every row has long runs of ties; the top-k and top-p cuts
    // fall inside runs of equal values
    const B = rows(96, 16), V = 57;
    const r = rng(1601);
    const vals = [1.5, 0.75, 0, -0.5, -2];
    const lg = Float32Array.from({ length: B * V }, () => vals[Math.floor(r() * vals.length)]!);
    for (let i = 0; i < V; i++) lg[i] = 0.25; // row 0: all equal
    for (const mode of [
      { temperature: 1, topK: 7, topP: 1 },
      { temperature: 0.8, topK: 0, topP: 0.5 },
      { temperature: 1.3, topK: 20, topP: 0.6 },
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 1, topK: 1, topP: 1 },
    ])
      await check(lg, B, V, mode);
  });

  it.skipIf(skip)('-inf logits (masked tokens): top-k and top-p still apply, a masked token is never drawn', async () => {
    const B = rows(64, 16), V = 300;
    const r = rng(1602);
    const lg = new Float32Array(B * V);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < V; j++) {
        // rows 0..7: only 12 tokens left, fewer than top-k 20 (the top-k cut is then the -inf tie)
        const masked = b < 8 ? j % 25 !== 0 : r() < 0.4;
        lg[b * V + j] = masked ? -Infinity : 3 * (r() - 0.5);
      }
    for (const mode of [
      { temperature: 1, topK: 5, topP: 1 },
      { temperature: 0.9, topK: 0, topP: 0.5 },
      { temperature: 1.1, topK: 20, topP: 0.8 },
      { temperature: 1, topK: 0, topP: 1 },
    ]) {
      await check(lg, B, V, mode);
      const g = await native.ops.sample({ logits: logitsOn('cuda:0', lg, B, V), ...mode, seed: SEED, counters: BigUint64Array.from({ length: B }, (_, b) => BigInt(b)) });
      for (let b = 0; b < B; b++) expect(lg[b * V + g.tokens[b]!], `row ${b}: drew a masked token`).toBeGreaterThan(-Infinity);
    }
  });

  it.skipIf(skip)('logits near 1e4: log-probabilities within 2e-5 of float64 (the f32 sum max + log(sum) rounds to 2^-10 there)', async () => {
    const B = rows(48, 8), V = 200;
    const r = rng(1603);
    // 9984 + multiples of 2^-10 below 8: exact in f32
    const lg = Float32Array.from({ length: B * V }, () => 9984 + Math.floor(r() * 8192) / 1024);
    // the test can fail: in f32, x - (max + log sum) is off by more than 1e-4 in some rows
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const row = Array.from(lg.subarray(b * V, (b + 1) * V));
      const m = Math.max(...row);
      const ls = Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      const lseF32 = Math.fround(m + Math.fround(ls));
      worst = Math.max(worst, Math.abs(Math.fround(row[0]! - lseF32) - (row[0]! - m - ls)));
    }
    expect(worst).toBeGreaterThan(1e-4);
    for (const mode of [
      { temperature: 0, topK: 0, topP: 1 },
      { temperature: 1, topK: 0, topP: 1 },
      { temperature: 0.7, topK: 30, topP: 0.9 },
    ])
      await check(lg, B, V, mode, 2e-5);
  });

  it.skipIf(skip)('greedy with tied maxima picks the lowest index, as the CPU engine', async () => {
    const V = 1000;
    const lg = new Float32Array(2 * V).fill(-1);
    for (const j of [417, 3, 998]) lg[j] = 2;
    for (const j of [999, 500]) lg[V + j] = 2;
    const g = await native.ops.sample({ logits: logitsOn('cuda:0', lg, 2, V), temperature: 0, seed: SEED, counters: [0, 1] });
    expect(Array.from(g.tokens)).toEqual([3, 500]);
    const c = await native.ops.sample({ logits: logitsOn('cpu', lg, 2, V), temperature: 0, seed: SEED, counters: [0, 1] });
    expect(Array.from(g.tokens)).toEqual(Array.from(c.tokens));
    expect(g.logpModel[0]).toBeCloseTo(c.logpModel[0]!, 5);
  });
});
