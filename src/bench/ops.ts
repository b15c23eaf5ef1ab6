// itool bench ops [--json] [--quick] [--min-ms N] [--only TEXT]
//
// Speed of every CPU op (native/cpu/ops_*.cpp) through native.ops, on the engine's
// thread pool (ITOOL_THREADS sets its size; the report says which). Memory-bound ops
// are reported in GB/s of the bytes they must move; attention and the fused log-prob
// in GFLOP/s against the f32 GEMM peak measured in the same run (1024^3 through the
// same CpuBackend::gemm entry they use), measured again right before each of them so
// that both figures of a ratio see the same machine load. Each figure is the best of
// three timed runs, each run repeating the op until it lasts --min-ms (default 40 ms);
// the timing is taken around the Promise, so it includes the ~10-50 us of N-API
// scheduling per call, and the outputs are released after each call.
//
// Memory of the fused log-prob: peak resident-set growth (VmHWM after a reset through
// /proc/self/clear_refs, Linux only) of (a) the fused op (chunked; its scratch is
// chunk*V floats) and (b) a naive version that materialises the N x V logits (one GEMM
// into an [N, V] tensor, then log-softmax in TypeScript over a copy), next to the
// analytic sizes chunk*V*4 and N*V*4 bytes.
import { readFileSync, writeFileSync } from 'node:fs';
import { loadNative } from '../engine/native.js';
import type { NativeTensor } from '../engine/tensor.js';
import { uniformF32 } from './random.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Native = Record<string, any>;

export interface OpsRow {
  op: string;
  shape: string;
  ms: number;
  /** GB/s (memory-bound ops) */
  gbps?: number;
  /** GFLOP/s (compute-bound ops) */
  gflops?: number;
  /** the gemm's GFLOP/s measured right before this row */
  peakGflops?: number;
  /** gflops / peakGflops */
  ofPeak?: number;
}
export interface OpsReport {
  kernels: string;
  threads: number;
  /** the highest gemm GFLOP/s measured in the run */
  gemmPeakGflops: number;
  rows: OpsRow[];
  logprobMemory?: {
    N: number;
    H: number;
    V: number;
    chunk: number;
    fusedScratchBytes: number;
    naiveLogitsBytes: number;
    fusedPeakRssGrowthBytes: number | null;
    naivePeakRssGrowthBytes: number | null;
    method: string;
  };
}

const randn = uniformF32;

/** Disposes the tensors an op returned (in-place ops return new handles on the same storage, so this is safe). */
function release(r: unknown): void {
  if (r && typeof r === 'object')
    for (const v of Object.values(r as Record<string, unknown>))
      if (v && typeof (v as { dispose?: unknown }).dispose === 'function') (v as NativeTensor).dispose();
}

async function timeOp(op: () => Promise<unknown>, minMs: number, runs = 3): Promise<number> {
  // outputs are released at once, as the engine does, so that their memory is reused
  const fn = async () => release(await op());
  await fn(); // warm-up
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    let reps = 0;
    const t0 = process.hrtime.bigint();
    let el = 0;
    do {
      await fn();
      reps++;
      el = Number(process.hrtime.bigint() - t0) / 1e6;
    } while (el < minMs);
    times.push(el / reps);
  }
  // the best run: on a shared machine it is the least disturbed one
  return Math.min(...times);
}

function rssKb(field: 'VmHWM' | 'VmRSS'): number | null {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
/** Peak RSS growth in bytes while fn runs (null where /proc is not there). */
async function peakGrowth(fn: () => Promise<void>): Promise<number | null> {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    return null;
  }
  const base = rssKb('VmRSS');
  await fn();
  const hwm = rssKb('VmHWM');
  return base === null || hwm === null ? null : Math.max(0, hwm - base) * 1024;
}

export async function runOps(o: { quick: boolean; minMs: number; only?: string; log?: (l: string) => void }): Promise<OpsReport> {
  const native: Native = loadNative();
  const ops = native.ops;
  const info = native.info();
  const f32 = (data: Float32Array, shape: number[]): NativeTensor => native.tensorFromArray({ data, dtype: 'f32', shape });
  const i32 = (data: Int32Array, shape: number[]): NativeTensor => native.tensorFromArray({ data, dtype: 'i32', shape });
  const q = o.quick;
  const rows: OpsRow[] = [];
  const want = (op: string) => !o.only || op.startsWith('gemm') || op.includes(o.only);
  const bw = async (op: string, shape: string, bytes: number, fn: () => Promise<unknown>) => {
    if (!want(op)) return;
    const ms = await timeOp(fn, o.minMs);
    const row: OpsRow = { op, shape, ms, gbps: bytes / (ms * 1e-3) / 1e9 };
    rows.push(row);
    o.log?.(`  ${op} ${shape}: ${row.gbps!.toFixed(2)} GB/s (${ms.toFixed(3)} ms)`);
  };
  // The GEMM peak is measured at the start and again right before each compute-bound
  // op (so that each ratio compares figures taken under the same machine load).
  const ps = q ? 256 : 1024;
  const pa = f32(randn(ps * ps, 1), [ps, ps]), pb = f32(randn(ps * ps, 2), [ps, ps]), pc = f32(new Float32Array(ps * ps), [ps, ps]);
  const measurePeak = async (): Promise<number> => (2 * ps * ps * ps) / (await timeOp(() => ops.gemm({ a: pa, b: pb, c: pc }), o.minMs)) / 1e6;
  let peak = 0;
  const fl = async (op: string, shape: string, flops: number, fn: () => Promise<unknown>) => {
    if (!want(op)) return;
    const pk = await measurePeak();
    peak = Math.max(peak, pk);
    const ms = await timeOp(fn, o.minMs);
    const g = flops / (ms * 1e-3) / 1e9;
    const row: OpsRow = { op, shape, ms, gflops: g, peakGflops: pk, ofPeak: g / pk };
    rows.push(row);
    o.log?.(`  ${op} ${shape}: ${g.toFixed(1)} GFLOP/s (${((100 * g) / pk).toFixed(0)}% of the gemm's ${pk.toFixed(1)} GFLOP/s measured just before) (${ms.toFixed(3)} ms)`);
  };
  {
    const ms = await timeOp(() => ops.gemm({ a: pa, b: pb, c: pc }), o.minMs);
    peak = (2 * ps * ps * ps) / (ms * 1e-3) / 1e9;
    rows.push({ op: 'gemm (peak reference)', shape: `${ps}x${ps}x${ps} NN`, ms, gflops: peak });
    o.log?.(`  gemm ${ps}^3: ${peak.toFixed(1)} GFLOP/s`);
  }

  // memory-bound ops at a Llama-like width (hidden 768, 12 heads of 64, intermediate 2048)
  const T = q ? 128 : 1024, Hd = q ? 128 : 768, I = q ? 256 : 2048, V = q ? 1000 : 32000;
  const x = f32(randn(T * Hd, 3), [T, Hd]), w = f32(randn(Hd, 4), [Hd]), dy = f32(randn(T * Hd, 5), [T, Hd]);
  {
    const ids = i32(Int32Array.from({ length: T }, (_, i) => (i * 7919) % V), [T]);
    const table = f32(randn(V * Hd, 6), [V, Hd]);
    const dtable = f32(new Float32Array(V * Hd), [V, Hd]);
    await bw('embedding forward', `n${T} dim${Hd} V${V}`, 2 * T * Hd * 4, () => ops.embeddingForward({ ids, table }));
    await bw('embedding backward', `n${T} dim${Hd} V${V}`, 3 * T * Hd * 4, () => ops.embeddingBackward({ ids, dout: x, dtable }));
  }
  await bw('rmsnorm forward', `n${T} d${Hd}`, 2 * T * Hd * 4, () => ops.rmsnormForward({ x, w }));
  {
    const { rstd } = await ops.rmsnormForward({ x, w });
    const dw = f32(new Float32Array(Hd), [Hd]);
    await bw('rmsnorm backward', `n${T} d${Hd}`, 4 * T * Hd * 4, () => ops.rmsnormBackward({ x, w, dy, rstd, dw }));
  }
  {
    const H = Hd / 64;
    const xr = f32(randn(T * H * 64, 7), [T, H, 64]);
    const pos = i32(Int32Array.from({ length: T }, (_, i) => i), [T]);
    const invFreq = f32(Float32Array.from({ length: 32 }, (_, i) => 1 / 10000 ** ((2 * i) / 64)), [32]);
    await bw('rope', `T${T} H${H} D64`, 2 * T * H * 64 * 4, () => ops.rope({ x: xr, pos, invFreq }));
  }
  {
    const n = T * I;
    const g = f32(randn(n, 8), [n]), u = f32(randn(n, 9), [n]), d = f32(randn(n, 10), [n]);
    await bw('swiglu forward', `n${n}`, 3 * n * 4, () => ops.swigluForward({ gate: g, up: u }));
    await bw('swiglu backward', `n${n}`, 5 * n * 4, () => ops.swigluBackward({ gate: g, up: u, dout: d }));
  }
  await bw('add', `n${T * Hd}`, 3 * T * Hd * 4, () => ops.add({ a: x, b: dy }));
  {
    const bias = f32(randn(Hd, 11), [Hd]), db = f32(new Float32Array(Hd), [Hd]);
    await bw('bias forward', `n${T} d${Hd}`, 2 * T * Hd * 4, () => ops.biasForward({ x, bias }));
    await bw('bias backward', `n${T} d${Hd}`, T * Hd * 4, () => ops.biasBackward({ dy, dbias: db }));
  }
  {
    const n = q ? 1 << 16 : 1 << 23;
    const p = f32(randn(n, 12), [n]), g = f32(randn(n, 13), [n]), m = f32(new Float32Array(n), [n]), v = f32(new Float32Array(n), [n]);
    let step = 1;
    await bw('adamw', `n${n}`, 7 * n * 4, () => ops.adamw({ param: p, grad: g, m, v, lr: 1e-4, step: step++, weightDecay: 0.01 }));
    await bw('sum_squares', `n${n}`, n * 4, () => ops.sumSquares({ x: g }));
    await bw('scale', `n${n}`, 2 * n * 4, () => ops.scale({ x: m, s: 1 }));
    await bw('axpy', `n${n}`, 3 * n * 4, () => ops.axpy({ y: m, x: g, a: 0 }));
    await bw('has_nonfinite', `n${n}`, n * 4, () => ops.hasNonfinite({ x: g }));
  }

  // attention: causal GQA, 12 query heads, 4 kv heads, D 64
  {
    const Hq = 12, Hkv = 4, D = 64;
    for (const [label, lens] of (q
      ? [['1 x 128', [128]]]
      : [
          ['1 x 1024', [1024]],
          ['4 x 256 packed', [256, 256, 256, 256]],
        ]) as Array<[string, number[]]>) {
      const Tt = lens.reduce((a, b) => a + b, 0);
      const cu = i32(Int32Array.from([0, ...lens.map((_, i) => lens.slice(0, i + 1).reduce((a, b) => a + b, 0))]), [lens.length + 1]);
      const qq = f32(randn(Tt * Hq * D, 14), [Tt, Hq, D]), kk = f32(randn(Tt * Hkv * D, 15), [Tt, Hkv, D]), vv = f32(randn(Tt * Hkv * D, 16), [Tt, Hkv, D]);
      // causal: each head does QK^T and PV over L(L+1)/2 pairs: 4*D flops per pair
      const pairs = lens.reduce((a, L) => a + (L * (L + 1)) / 2, 0);
      const fwd = 4 * D * pairs * Hq;
      await fl('attention forward', `${label} Hq${Hq} Hkv${Hkv} D${D}`, fwd, () => ops.attentionForward({ q: qq, k: kk, v: vv, cuSeqlens: cu }));
      const f = await ops.attentionForward({ q: qq, k: kk, v: vv, cuSeqlens: cu });
      // backward: 2.5x the forward's flops (dV, dP, dQ, dK products; the usual FlashAttention count)
      await fl('attention backward', `${label} Hq${Hq} Hkv${Hkv} D${D}`, 2.5 * fwd, () =>
        ops.attentionBackward({ q: qq, k: kk, v: vv, cuSeqlens: cu, out: f.out, lse: f.lse, dout: qq }),
      );
    }
    // decode: 8 rows, context 1024, block 16
    const B = q ? 2 : 8, ctx = q ? 128 : 1024, bs = 16, mb = ctx / bs;
    const kc = f32(randn(B * mb * bs * Hkv * D, 17), [B * mb, bs, Hkv, D]), vc = f32(randn(B * mb * bs * Hkv * D, 18), [B * mb, bs, Hkv, D]);
    const bt = i32(Int32Array.from({ length: B * mb }, (_, i) => i), [B, mb]), cl = i32(new Int32Array(B).fill(ctx), [B]);
    const qd = f32(randn(B * Hq * D, 19), [B, 1, Hq, D]);
    if (want('attention decode')) {
    const t = await timeOp(() => ops.attentionDecode({ q: qd, kCache: kc, vCache: vc, blockTable: bt, ctxLens: cl }), o.minMs);
    const bytes = 2 * B * ctx * Hkv * D * 4;
    rows.push({ op: 'attention decode', shape: `B${B} ctx${ctx} Hq${Hq} Hkv${Hkv} D${D}`, ms: t, gbps: bytes / (t * 1e-3) / 1e9, gflops: (4 * B * ctx * Hq * D) / (t * 1e-3) / 1e9 });
    o.log?.(`  attention decode B${B} ctx${ctx}: ${(bytes / (t * 1e-3) / 1e9).toFixed(2)} GB/s of KV (${t.toFixed(3)} ms)`);
    }
  }

  // fused LM head -> log-prob
  const N = q ? 64 : 1024, LH = q ? 128 : 768;
  const hidden = f32(randn(N * LH, 20), [N, LH]), weight = f32(randn(V * LH, 21, 0.05), [V, LH]);
  const targets = i32(Int32Array.from({ length: N }, (_, i) => (i * 31) % V), [N]);
  const dlogp = f32(new Float32Array(N).fill(1 / N), [N]);
  const dweight = f32(new Float32Array(V * LH), [V, LH]);
  await fl('logprob forward', `N${N} H${LH} V${V}`, 2 * N * LH * V, () => ops.logprob({ hidden, weight, targets }));
  await fl('logprob forward+backward', `N${N} H${LH} V${V}`, 6 * N * LH * V, () => ops.logprob({ hidden, weight, targets, dlogp, dweight }));

  // preference loss and sampling (per call)
  {
    const P = 4096;
    const c = f32(randn(P, 22, 10).map((v) => -Math.abs(v) - 1), [P]), r = f32(randn(P, 23, 10).map((v) => -Math.abs(v) - 1), [P]);
    const len = f32(new Float32Array(P).fill(12), [P]);
    await bw('preference_loss simpo', `P${P}`, 4 * P * 4 + 5 * P * 4, () => ops.preferenceLoss({ kind: 'simpo', chosen: c, rejected: r, chosenLen: len, rejectedLen: len }));
    const B = 8;
    // uniform logits in ±3 (a flat distribution: the nucleus holds most of the vocabulary)
    // and in ±12 (peaked, closer to a trained model: a nucleus of tens of tokens)
    const flat = f32(randn(B * V, 24, 3), [B, V]), peaked = f32(randn(B * V, 25, 12), [B, V]);
    const counters = BigUint64Array.from({ length: B }, (_, i) => BigInt(i));
    await bw('sample top-p 0.9 (flat)', `B${B} V${V}`, B * V * 4, () => ops.sample({ logits: flat, temperature: 0.8, topP: 0.9, seed: 1, counters }));
    await bw('sample top-p 0.9 (peaked)', `B${B} V${V}`, B * V * 4, () => ops.sample({ logits: peaked, temperature: 0.8, topP: 0.9, seed: 1, counters }));
    await bw('sample top-k 50', `B${B} V${V}`, B * V * 4, () => ops.sample({ logits: flat, temperature: 0.8, topK: 50, seed: 1, counters }));
    await bw('sample plain', `B${B} V${V}`, B * V * 4, () => ops.sample({ logits: flat, temperature: 1, seed: 1, counters }));
  }

  // memory of the fused log-prob against a naive N x V version
  if (!want('logprob memory')) return { kernels: info.cpu.kernels, threads: info.cpu.threads, gemmPeakGflops: peak, rows };
  const MN = q ? 128 : 2048;
  const mh = f32(randn(MN * LH, 25), [MN, LH]);
  const mt = i32(Int32Array.from({ length: MN }, (_, i) => (i * 17) % V), [MN]);
  const mdl = f32(new Float32Array(MN).fill(1), [MN]);
  const chunk = Math.min(MN, Math.max(16, Math.min(1024, Math.floor((16 << 20) / V / 16) * 16))); // the backend's default rule
  const fused = await peakGrowth(async () => {
    const r = await ops.logprob({ hidden: mh, weight, targets: mt, dlogp: mdl, dweight });
    for (const t of Object.values(r) as NativeTensor[]) if (t !== dweight) t.dispose();
  });
  const naive = await peakGrowth(async () => {
    const { c } = await ops.gemm({ a: mh, b: weight, transB: true }); // [N, V] logits
    const z = c.toArray() as Float32Array;
    const tg = mt.toArray() as Int32Array;
    let acc = 0;
    for (let i = 0; i < MN; i++) {
      let m = -Infinity;
      for (let j = 0; j < V; j++) m = Math.max(m, z[i * V + j]!);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(z[i * V + j]! - m);
      acc += z[i * V + tg[i]!]! - m - Math.log(s);
    }
    c.dispose();
    if (!Number.isFinite(acc)) throw new Error('naive log-prob is not finite');
  });
  const report: OpsReport = {
    kernels: info.cpu.kernels,
    threads: info.cpu.threads,
    gemmPeakGflops: peak,
    rows,
    logprobMemory: {
      N: MN,
      H: LH,
      V,
      chunk,
      fusedScratchBytes: chunk * V * 4,
      naiveLogitsBytes: MN * V * 4,
      fusedPeakRssGrowthBytes: fused,
      naivePeakRssGrowthBytes: naive,
      method:
        'peak RSS growth (VmHWM after clear_refs) around one call; fused = ops.logprob with gradients; naive = ops.gemm into an [N, V] tensor + log-softmax in TypeScript over a copy (so its growth counts the logits twice)',
    },
  };
  return report;
}

function table(r: OpsReport): string {
  const head = ['op', 'shape', 'ms', 'GB/s', 'GFLOP/s', 'gemm GFLOP/s', '% of gemm'];
  const body = r.rows.map((x) => [
    x.op,
    x.shape,
    x.ms.toFixed(3),
    x.gbps !== undefined ? x.gbps.toFixed(2) : '',
    x.gflops !== undefined ? x.gflops.toFixed(1) : '',
    x.peakGflops !== undefined ? x.peakGflops.toFixed(1) : '',
    x.ofPeak !== undefined ? (100 * x.ofPeak).toFixed(0) + '%' : '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((s, i) => (i < 2 ? s.padEnd(w[i]!) : s.padStart(w[i]!))).join('  ');
  let out = `CPU ops (kernels ${r.kernels}, ${r.threads} threads; best gemm in the run ${r.gemmPeakGflops.toFixed(1)} GFLOP/s)\n`;
  out += line(head) + '\n' + line(w.map((n) => '-'.repeat(n))) + '\n' + body.map(line).join('\n') + '\n';
  const m = r.logprobMemory;
  if (m) {
    const mb = (b: number | null) => (b === null ? 'n/a' : (b / 2 ** 20).toFixed(1) + ' MiB');
    out += `\nfused log-prob memory, N ${m.N} H ${m.H} V ${m.V} (chunk ${m.chunk}):\n`;
    out += `  fused: scratch ${mb(m.fusedScratchBytes)} (chunk*V*4), measured peak RSS growth ${mb(m.fusedPeakRssGrowthBytes)}\n`;
    out += `  naive: logits ${mb(m.naiveLogitsBytes)} (N*V*4), measured peak RSS growth ${mb(m.naivePeakRssGrowthBytes)}\n`;
    out += `  (${m.method})\n`;
  }
  return out;
}

const HELP = `itool bench ops [--json] [--quick] [--min-ms N]

  Speed of every CPU op: GB/s for memory-bound ops, GFLOP/s against the measured
  GEMM peak for attention and the fused log-prob; peak memory of the fused log-prob
  against a naive N x V version. Threads: the engine pool (set ITOOL_THREADS).

  --json       print the report as JSON
  --quick      small shapes (a smoke run)
  --min-ms N   each timed run repeats the op for at least N ms (default 40)
  --only TEXT  only the ops whose name contains TEXT (and the gemm peak), e.g. attention
`;

export async function main(argv: string[]): Promise<void> {
  const o = { json: false, quick: false, minMs: 40, only: undefined as string | undefined };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--only') o.only = argv[++i];
    else if (a === '--min-ms') {
      const v = Number(argv[++i]);
      if (!Number.isFinite(v) || v <= 0) throw new Error(`itool bench ops: --min-ms must be a positive number, got '${argv[i]}'`);
      o.minMs = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write(HELP);
      return;
    } else throw new Error(`itool bench ops: unknown option '${a}' (see --help)`);
  }
  const report = await runOps({ quick: o.quick, minMs: o.minMs, only: o.only, log: o.json ? undefined : (l) => process.stderr.write(l + '\n') });
  process.stdout.write(o.json ? JSON.stringify(report, null, 2) + '\n' : table(report));
}
