// Bad input on CUDA: what the CPU engine rejects, the CUDA engine rejects with the same
// error kind (TypeError / RangeError / Error) and a message naming the same problem,
// including what only a kernel can see (cu_seqlens, targets, block tables: raised at the
// next synchronising call). Runs on a GPU and on the CUDA emulator; skipped with the reason
// elsewhere.
import { describe, expect, it } from 'vitest';
import { loadNative } from '../../src/engine/native.js';
import { gpuStatus } from './helpers.js';

const gpu = gpuStatus();
const skip = !gpu.ok;
const why = skip ? ` (skipped: ${gpu.reason})` : '';
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const native: Record<string, any> = skip ? {} : loadNative();

type Dev = 'cpu' | 'cuda:0';
const act = (d: Dev) => (d === 'cpu' ? 'f32' : 'bf16');
const t = (d: Dev, shape: number[], dtype?: string) =>
  native.tensorFromArray({ data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), dtype: dtype ?? act(d), shape, device: d });
const ints = (d: Dev, v: number[]) => native.tensorFromArray({ data: Int32Array.from(v), dtype: 'i32', shape: [v.length], device: d });

/** runs the call and reads every result back (device errors surface at that synchronising read) */
async function outcome(call: () => unknown): Promise<Error | undefined> {
  try {
    const r = await call();
    for (const v of Object.values((r ?? {}) as Record<string, unknown>)) {
      const x = v as { toArray?: () => unknown };
      if (x && typeof x.toArray === 'function') x.toArray();
    }
    return undefined;
  } catch (e) {
    return e as Error;
  }
}

const cases: Array<[string, (d: Dev) => unknown, RegExp]> = [
  ['gemm: inner dimensions differ', (d) => native.ops.gemm({ a: t(d, [3, 4]), b: t(d, [5, 6]) }), /gemm/],
  ['embedding: ids of dtype f32', (d) => native.ops.embeddingForward({ ids: t(d, [2], 'f32'), table: t(d, [10, 4]) }), /ids/],
  ['rmsnorm: weight of the wrong length', (d) => native.ops.rmsnormForward({ x: t(d, [3, 8]), w: t(d, [7]), eps: 1e-6 }), /rmsnorm/i],
  ['rope: odd head dim', (d) => native.ops.rope({ x: t(d, [2, 1, 5]), pos: ints(d, [0, 1]), invFreq: t(d, [2], 'f32') }), /rope/i],
  ['attention: cu_seqlens ending before T', (d) => native.ops.attentionForward({ q: t(d, [4, 2, 8]), k: t(d, [4, 1, 8]), v: t(d, [4, 1, 8]), cuSeqlens: ints(d, [0, 3]) }), /cu_?seqlens|cuSeqlens/i],
  ['attention: Hq not a multiple of Hkv', (d) => native.ops.attentionForward({ q: t(d, [4, 3, 8]), k: t(d, [4, 2, 8]), v: t(d, [4, 2, 8]), cuSeqlens: ints(d, [0, 4]) }), /multiple|Hq|Hkv|head/i],
  ['logprob: a target >= V', (d) => native.ops.logprob({ hidden: t(d, [2, 4]), weight: t(d, [6, 4]), targets: ints(d, [1, 6]) }), /target/i],
  ['sample: topP 0', (d) => native.ops.sample({ logits: t(d, [1, 5], 'f32'), temperature: 1, topP: 0, counters: [0] }), /top_?p|topP/i],
  ['adamw: step 0', (d) => native.ops.adamw({ param: t(d, [4], 'f32'), grad: t(d, [4], 'f32'), m: t(d, [4], 'f32'), v: t(d, [4], 'f32'), lr: 1e-3, step: 0 }), /step/i],
  ['add: shapes differ', (d) => native.ops.add({ a: t(d, [4]), b: t(d, [5]) }), /add|shape/i],
];

describe(`bad input on CUDA is rejected like on the CPU${why}`, () => {
  for (const [name, call, what] of cases) {
    it.skipIf(skip)(name, async () => {
      const c = await outcome(() => call('cpu'));
      const g = await outcome(() => call('cuda:0'));
      expect(c, 'the CPU engine rejects it').toBeInstanceOf(Error);
      expect(g, `CUDA rejects it as the CPU does (${c?.constructor.name}: ${c?.message})`).toBeInstanceOf(Error);
      expect(g!.constructor.name, `CUDA: ${g!.message}; CPU: ${c!.message}`).toBe(c!.constructor.name);
      expect(c!.message).toMatch(what);
      expect(g!.message).toMatch(what);
      // the device still works afterwards
      const ok = await native.ops.add({ a: t('cuda:0', [3]), b: t('cuda:0', [3]) });
      expect(Array.from(ok.out.toArray() as Uint16Array).length).toBe(3);
    });
  }
});
