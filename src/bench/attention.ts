// itool bench attention [--device cuda[:N]] [--compare torch] [--json] [--quick] [--seqs 512,1024,...] [--dims 64,128] [--iters N]
//
// Causal attention forward+backward, bf16, on the CUDA engine's flash-style kernels
// (native/cuda/kernels/attention_*.cuh): packed batches of equal sequences, 16384 tokens
// per batch (fewer sequences as they get longer), hidden 2048 (32 heads of 64, 16 of 128),
// no GQA so that the peer is comparable. `--compare torch` runs bench/gpu/attention.py
// (PyTorch scaled_dot_product_attention, causal, bf16, on the same GPU) in the same run
// and adds the ratio itool/torch of speed (> 1: itool faster).
//
// Timing: N iterations queued back to back, then one synchronising call; time per
// iteration = wall time / N. FLOPs: forward 2·B·H·S²·D (causal half of 4·B·H·S²·D),
// backward 2.5× the forward (the convention of FlashAttention's benchmarks).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative, packageRoot } from '../engine/native.js';
import { resolveDevice } from '../engine/engine.js';
import { uniformBf16Bits } from './random.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Native = Record<string, any>;

export interface CommonArgs {
  device: string;
  compare?: 'torch';
  json: boolean;
  quick: boolean;
  iters: number;
  help: boolean;
  rest: Map<string, string>;
}

/** Parses the options every GPU bench shares; unknown `--key value` pairs land in `rest`. */
export function parseCommon(argv: string[]): CommonArgs {
  const o: CommonArgs = { device: 'cuda', json: false, quick: false, iters: 10, help: false, rest: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(0, eq) : a;
    const val = (): string => {
      if (eq > 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined) throw new Error(`${key} needs a value`);
      return v;
    };
    if (key === '--json') o.json = true;
    else if (key === '--quick') o.quick = true;
    else if (key === '--help' || key === '-h') o.help = true;
    else if (key === '--device') o.device = val();
    else if (key === '--iters') o.iters = Math.max(1, Number.parseInt(val(), 10) || 1);
    else if (key === '--compare') {
      const v = val();
      if (v !== 'torch') throw new Error(`--compare must be 'torch', got '${v}'`);
      o.compare = 'torch';
    } else if (key.startsWith('--')) o.rest.set(key.slice(2), val());
    else throw new Error(`unexpected argument '${a}'`);
  }
  return o;
}

export function numberList(s: string | undefined, def: number[]): number[] {
  if (!s) return def;
  const v = s.split(',').map((x) => Number.parseInt(x, 10));
  if (v.some((x) => !Number.isInteger(x) || x <= 0)) throw new Error(`expected a comma-separated list of positive integers, got '${s}'`);
  return v;
}

/** The CUDA device to run on, or an error that says why there is none. */
export function cudaDevice(req: string): { device: string; name: string } {
  const dev = resolveDevice(req as 'cuda');
  if (!dev.startsWith('cuda')) throw new Error(`this benchmark runs on a CUDA device, got '${req}'`);
  const idx = Number(dev.split(':')[1] ?? 0);
  const d = loadNative().info().cuda.devices[idx];
  return { device: dev, name: d ? `${d.name} (sm ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB)` : dev };
}

/** Waits for all queued GPU work (sum of squares of a 1-element tensor synchronises the stream). */
export async function syncDevice(native: Native, device: string): Promise<void> {
  const t = native.tensorZeros({ dtype: 'f32', shape: [1], device });
  await native.ops.sumSquares({ x: t });
  t.dispose();
}

/** Seconds per call of `fn` (after `warm` untimed calls), `iters` calls queued back to back. */
export async function timeGpu(native: Native, device: string, fn: () => Promise<void>, iters: number, warm = 2): Promise<number> {
  for (let i = 0; i < warm; i++) await fn();
  await syncDevice(native, device);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iters; i++) await fn();
  await syncDevice(native, device);
  return Number(process.hrtime.bigint() - t0) / 1e9 / iters;
}

/** Bytes the device has free now (the engine's pool only grows, so a drop is its peak growth). */
export function deviceFree(native: Native, device: string): number {
  const idx = Number(device.split(':')[1] ?? 0);
  return native.info().cuda.devices[idx].freeMemory as number;
}

/** Runs bench/gpu/<script> with a JSON request; returns its JSON or why it could not run. */
export function runPython(script: string, req: unknown): { ok: true; out: Record<string, unknown> } | { ok: false; reason: string } {
  const path = join(packageRoot(), 'bench', 'gpu', script);
  if (!existsSync(path)) return { ok: false, reason: `${path} is missing` };
  const py = process.env.ITOOL_PYTHON || 'python3';
  const r = spawnSync(py, [path, JSON.stringify(req)], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 30 * 60_000 });
  if (r.error) return { ok: false, reason: `${py} could not be started (${r.error.message})` };
  if (r.status !== 0) {
    const err = (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    if (/No module named '?torch/.test(err)) return { ok: false, reason: 'PyTorch is not installed for python3' };
    return { ok: false, reason: `bench/gpu/${script} failed (exit ${r.status}): ${err}` };
  }
  try {
    return { ok: true, out: JSON.parse(r.stdout.trim().split('\n').pop()!) };
  } catch {
    return { ok: false, reason: `bench/gpu/${script} printed no JSON: ${r.stdout.slice(0, 200)}` };
  }
}

export function fmt(x: number | undefined, d = 2): string {
  return x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d);
}
export function table(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => '| ' + r.map((c, i) => c.padStart(w[i]!)).join(' | ') + ' |';
  return [line(head), '|' + w.map((x) => '-'.repeat(x + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

export interface AttentionRow {
  D: number;
  heads: number;
  seq: number;
  batch: number;
  fwdMs: number;
  bwdMs: number;
  totalMs: number;
  tflops: number;
  torchMs?: number;
  torchTflops?: number;
  ratio?: number; // torch time / itool time: > 1 means itool is faster
}
export interface AttentionReport {
  bench: 'attention';
  device: string;
  tokens: number;
  rows: AttentionRow[];
  torch?: { version: string; device: string } | { missing: string };
}

const HELP = `itool bench attention [--device cuda[:N]] [--compare torch] [--json] [--quick]
                      [--seqs 512,1024,2048,4096,8192] [--dims 64,128] [--tokens 16384] [--iters 10]
Causal attention forward+backward (bf16) on the CUDA engine; --compare torch runs
PyTorch's scaled_dot_product_attention on the same GPU in the same run.
`;

const bf16Bits = (n: number, seed: number): Uint16Array => uniformBf16Bits(n, seed, 1.7);

export async function main(argv: string[]): Promise<void> {
  const o = parseCommon(argv);
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const native = loadNative();
  const { device, name } = cudaDevice(o.device);
  const seqs = numberList(o.rest.get('seqs'), o.quick ? [512, 2048] : [512, 1024, 2048, 4096, 8192]);
  const dims = numberList(o.rest.get('dims'), [64, 128]);
  const tokens = Number.parseInt(o.rest.get('tokens') ?? '16384', 10);
  const iters = o.quick ? Math.min(o.iters, 3) : o.iters;
  const log = o.json ? () => {} : (l: string) => process.stderr.write(l + '\n');
  const rows: AttentionRow[] = [];
  for (const D of dims) {
    const H = Math.max(1, Math.floor(2048 / D));
    for (const S of seqs) {
      const B = Math.max(1, Math.floor(tokens / S));
      const T = B * S;
      const mk = (seed: number) => native.tensorFromArray({ data: bf16Bits(T * H * D, seed), dtype: 'bf16', shape: [T, H, D], device });
      const q = mk(1), k = mk(2), v = mk(3), dout = mk(4);
      const cu = native.tensorFromArray({ data: Int32Array.from({ length: B + 1 }, (_, i) => i * S), dtype: 'i32', shape: [B + 1], device });
      let fw = await native.ops.attentionForward({ q, k, v, cuSeqlens: cu });
      const fwdS = await timeGpu(native, device, async () => {
        const r = await native.ops.attentionForward({ q, k, v, cuSeqlens: cu });
        fw.out.dispose();
        fw.lse.dispose();
        fw = r;
      }, iters);
      const bwdS = await timeGpu(native, device, async () => {
        const g = await native.ops.attentionBackward({ q, k, v, cuSeqlens: cu, out: fw.out, lse: fw.lse, dout });
        g.dq.dispose();
        g.dk.dispose();
        g.dv.dispose();
      }, iters);
      const flopFwd = 2 * B * H * S * S * D;
      const total = fwdS + bwdS;
      const row: AttentionRow = { D, heads: H, seq: S, batch: B, fwdMs: fwdS * 1e3, bwdMs: bwdS * 1e3, totalMs: total * 1e3, tflops: (3.5 * flopFwd) / total / 1e12 };
      rows.push(row);
      log(`D ${D} S ${S} B ${B}: fwd ${fmt(row.fwdMs)} ms, bwd ${fmt(row.bwdMs)} ms, ${fmt(row.tflops, 1)} TFLOP/s`);
      for (const t of [q, k, v, dout, cu, fw.out, fw.lse]) t.dispose();
    }
  }
  const rep: AttentionReport = { bench: 'attention', device: name, tokens, rows };
  if (o.compare === 'torch') {
    const r = runPython('attention.py', { cases: rows.map((x) => ({ D: x.D, heads: x.heads, seq: x.seq, batch: x.batch })), iters });
    if (!r.ok) rep.torch = { missing: r.reason };
    else {
      rep.torch = { version: String(r.out.torch), device: String(r.out.device) };
      const res = r.out.rows as Array<{ ms: number }>;
      rows.forEach((x, i) => {
        const t = res[i];
        if (!t) return;
        x.torchMs = t.ms;
        x.torchTflops = (3.5 * 2 * x.batch * x.heads * x.seq * x.seq * x.D) / (t.ms / 1e3) / 1e12;
        x.ratio = t.ms / x.totalMs;
      });
    }
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(rep, null, 2) + '\n');
    return;
  }
  const out = [`itool attention forward+backward, causal, bf16, ${tokens} tokens per batch, on ${name}`];
  if (rep.torch && 'missing' in rep.torch) out.push(`torch: not compared (${rep.torch.missing})`);
  else if (rep.torch) out.push(`torch ${rep.torch.version} scaled_dot_product_attention on ${rep.torch.device}`);
  out.push('', formatAttention(rep));
  process.stdout.write(out.join('\n') + '\n');
}

export function formatAttention(rep: AttentionReport): string {
  return table(
    ['D', 'heads', 'seq', 'batch', 'fwd ms', 'bwd ms', 'itool ms', 'itool TFLOP/s', 'torch ms', 'torch TFLOP/s', 'speed-up'],
    rep.rows.map((r) => [String(r.D), String(r.heads), String(r.seq), String(r.batch), fmt(r.fwdMs), fmt(r.bwdMs), fmt(r.totalMs), fmt(r.tflops, 1), fmt(r.torchMs), fmt(r.torchTflops, 1), r.ratio === undefined ? '-' : `${fmt(r.ratio)}x`]),
  );
}
