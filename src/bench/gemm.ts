// itool bench gemm [--json] [--compare numpy] [--threads N[,N]] [--quick] [--shapes square|model|all] [--runs N]
//
// GFLOP/s of the CPU SGEMM (native/cpu/gemm*.cpp) per shape and thread count: the
// median of several timed runs after a warm-up, each run repeating the product until
// it lasts at least 30 ms (native.gemm's `repeat`, timed on the worker thread, so the
// JavaScript call overhead is not counted). `--compare numpy` runs bench/numpy_gemm.py
// (python3 + numpy) in the same run, after itool's rows, with OPENBLAS_CORETYPE and
// OPENBLAS_L2_SIZE unset for that process only, and adds numpy's GFLOP/s and the ratio
// itool/numpy per row.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { loadNative, packageRoot } from '../engine/native.js';
import { uniformF32 } from './random.js';

export interface GemmShape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
}

export interface GemmRow {
  shape: string;
  m: number;
  n: number;
  k: number;
  op: string; // NN, NT, TN, TT: transposes of A and B
  threads: number;
  ms: number;
  gflops: number;
  numpyGflops?: number;
  ratio?: number; // itool / numpy
}

export interface GemmReport {
  kernel: string;
  threadsAvailable: number;
  /** 1-minute load average of the machine before and after the run (other work skews every figure) */
  loadAverage?: { before: number; after: number };
  rows: GemmRow[];
  numpy?: { version: string; openblas: string | null; corename: string | null } | { missing: string };
}

export const SQUARE: GemmShape[] = [256, 512, 1024, 2048].map((s) => ({ name: `square ${s}`, m: s, n: s, k: s }));

// The model's products (x W^T forward, dY W and dY^T X backward) at 2048 tokens for the
// `base` shape (hidden 768, 12 heads, 4 kv heads of 64, intermediate 2048, vocab 32000)
// and the `small` one (hidden 256, intermediate 704, vocab 8192), the fused LM head's
// chunks (cpu logprob: 512 rows at vocab 32000, 1024 at 8192), and decoding rows.
export const MODEL: GemmShape[] = [
  { name: 'base q/o proj', m: 2048, n: 768, k: 768, transB: true },
  { name: 'base k/v proj', m: 2048, n: 256, k: 768, transB: true },
  { name: 'base gate/up', m: 2048, n: 2048, k: 768, transB: true },
  { name: 'base down', m: 2048, n: 768, k: 2048, transB: true },
  { name: 'base lm head chunk', m: 512, n: 32000, k: 768, transB: true },
  { name: 'base down dX', m: 2048, n: 2048, k: 768 },
  { name: 'base down dW', m: 768, n: 2048, k: 2048, transA: true },
  { name: 'base lm head dhidden', m: 512, n: 768, k: 32000 },
  { name: 'base lm head dW', m: 32000, n: 768, k: 512, transA: true },
  { name: 'small gate/up', m: 2048, n: 704, k: 256, transB: true },
  { name: 'small down', m: 2048, n: 256, k: 704, transB: true },
  { name: 'small lm head chunk', m: 1024, n: 8192, k: 256, transB: true },
  { name: 'decode 1 row', m: 1, n: 2048, k: 768, transB: true },
  { name: 'decode 64 rows', m: 64, n: 2048, k: 768, transB: true },
];

export const QUICK: GemmShape[] = [
  { name: 'quick 64', m: 64, n: 64, k: 64 },
  { name: 'quick 37x50x29 NT', m: 37, n: 50, k: 29, transB: true },
  { name: 'quick decode', m: 1, n: 256, k: 128, transB: true },
];

const opName = (s: { transA?: boolean; transB?: boolean }) => `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}`;

const randomArray = (n: number, seed: number): Float32Array => uniformF32(n, seed);

/** Median seconds per product of one shape on `threads` threads. */
export async function timeGemm(shape: GemmShape, threads: number, runs: number, minSeconds: number): Promise<number> {
  const native = loadNative();
  const a = randomArray(shape.m * shape.k, 1);
  const b = randomArray(shape.k * shape.n, 2);
  const c = new Float32Array(shape.m * shape.n);
  const args = { a, b, c, m: shape.m, n: shape.n, k: shape.k, transA: !!shape.transA, transB: !!shape.transB, threads };
  await native.gemm(args); // warm-up: packing buffers, pool threads, caches
  const once: number = await native.gemm(args);
  const repeat = Math.max(1, Math.ceil(minSeconds / Math.max(once, 1e-7)));
  const times: number[] = [];
  for (let r = 0; r < runs; r++) times.push((await native.gemm({ ...args, repeat })) / repeat);
  times.sort((x, y) => x - y);
  return times[Math.floor(times.length / 2)]!;
}

export interface NumpyInfo {
  numpy: string;
  openblas: string | null;
  corename: string | null;
}

/**
 * bench/numpy_gemm.py --serve as a long-lived child: one request line per row, started
 * after itool's rows are measured (its OpenBLAS threads slowed the itool rows measured
 * between its calls). OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are removed from its
 * environment only.
 */
export class NumpyPeer {
  private proc: ChildProcess;
  private lines: string[] = [];
  private waiting: Array<(line: string | null) => void> = [];
  private stderr = '';
  private exited: string | null = null;

  private constructor(script: string) {
    const env = { ...process.env };
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
    this.proc = spawn('python3', [script, '--serve'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-4000);
    });
    const fail = (why: string) => {
      this.exited ??= why;
      for (const w of this.waiting.splice(0)) w(null);
    };
    this.proc.on('error', (e) => fail(`python3 could not be started (${e.message})`));
    this.proc.on('exit', (code, sig) => fail(`bench/numpy_gemm.py exited (${code ?? sig})`));
    this.proc.stdin!.on('error', () => undefined);
  }

  private next(): Promise<string | null> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.exited) return Promise.resolve(null);
    return new Promise((r) => this.waiting.push(r));
  }

  private reason(): string {
    const err = this.stderr.trim().split('\n').slice(-3).join(' | ');
    if (/No module named '?numpy/.test(err)) return 'numpy is not installed for python3 (pip install numpy)';
    return `${this.exited ?? 'bench/numpy_gemm.py failed'}${err ? `: ${err}` : ''}`;
  }

  /** Starts the peer; resolves with it and numpy's description, or with the reason it cannot run. */
  static async start(): Promise<{ ok: true; peer: NumpyPeer; info: NumpyInfo } | { ok: false; reason: string }> {
    const script = join(packageRoot(), 'bench', 'numpy_gemm.py');
    if (!existsSync(script)) return { ok: false, reason: `${script} is missing` };
    const peer = new NumpyPeer(script);
    const first = await peer.next();
    if (first === null) return { ok: false, reason: peer.reason() };
    try {
      return { ok: true, peer, info: JSON.parse(first) as NumpyInfo };
    } catch {
      peer.close();
      return { ok: false, reason: `bench/numpy_gemm.py printed no JSON: ${first.slice(0, 200)}` };
    }
  }

  /** numpy's GFLOP/s for one shape, or null (and `failure` says why) when the peer died. */
  async measure(s: GemmShape, threads: number, runs: number, minSeconds: number): Promise<number | null> {
    if (this.exited) return null;
    const { m, n, k, transA, transB } = s;
    this.proc.stdin!.write(JSON.stringify({ m, n, k, transA: !!transA, transB: !!transB, threads, runs, minSeconds }) + '\n');
    const line = await this.next();
    if (line === null) return null;
    try {
      return (JSON.parse(line) as { gflops: number }).gflops;
    } catch {
      return null;
    }
  }

  get failure(): string | null {
    return this.exited ? this.reason() : null;
  }

  close(): void {
    this.proc.stdin!.end();
    if (!this.exited) this.proc.kill();
  }
}

export interface GemmBenchOptions {
  shapes: GemmShape[];
  threads: number[];
  runs: number;
  minSeconds: number;
  compare?: 'numpy';
  log?: (line: string) => void;
}

/**
 * numpy's GFLOP/s for each (shape, threads), in order, from one peer started here and
 * closed after; `onResult` sees each figure as it comes. When the peer cannot start or
 * dies, `missing` says why and `gflops` holds the figures measured before.
 */
export async function measureNumpy(
  items: ReadonlyArray<{ shape: GemmShape; threads: number }>,
  runs: number,
  minSeconds: number,
  onResult?: (index: number, gflops: number) => void,
): Promise<{ info: NumpyInfo; gflops: number[]; missing?: undefined } | { info: NumpyInfo | null; gflops: number[]; missing: string }> {
  const p = await NumpyPeer.start();
  if (!p.ok) return { info: null, gflops: [], missing: p.reason };
  const gflops: number[] = [];
  try {
    for (const [i, it] of items.entries()) {
      const g = await p.peer.measure(it.shape, it.threads, runs, minSeconds);
      if (g === null) return { info: p.info, gflops, missing: p.peer.failure ?? 'bench/numpy_gemm.py stopped answering' };
      gflops.push(g);
      onResult?.(i, g);
    }
  } finally {
    p.peer.close();
  }
  return { info: p.info, gflops };
}

export async function runGemmBench(o: GemmBenchOptions): Promise<GemmReport> {
  const native = loadNative();
  const info = native.gemmInfo();
  const rows: GemmRow[] = [];
  const report: GemmReport = { kernel: info.kernel, threadsAvailable: info.threads, rows };
  const before = loadavg()[0]!;
  // itool's rows first, numpy's after, in the same run: with the peer alive, OpenBLAS's
  // threads took a core from the itool rows measured between its calls (square 256 on 2
  // threads read 137-147 GFLOP/s interleaved, 290-302 alone, even with a 1 s pause)
  const shapeRows: Array<[GemmShape, GemmRow]> = [];
  for (const threads of o.threads) {
    for (const s of o.shapes) {
      const sec = await timeGemm(s, threads, o.runs, o.minSeconds);
      const row: GemmRow = {
        shape: s.name,
        m: s.m,
        n: s.n,
        k: s.k,
        op: opName(s),
        threads,
        ms: sec * 1e3,
        gflops: (2 * s.m * s.n * s.k) / sec / 1e9,
      };
      rows.push(row);
      shapeRows.push([s, row]);
      o.log?.(`  ${s.name} (${threads} thread${threads > 1 ? 's' : ''}): itool ${row.gflops.toFixed(1)} GFLOP/s`);
    }
  }
  if (o.compare === 'numpy') {
    const items = shapeRows.map(([shape, row]) => ({ shape, threads: row.threads }));
    const r = await measureNumpy(items, o.runs, o.minSeconds, (i, g) => {
      const [s, row] = shapeRows[i]!;
      row.numpyGflops = g;
      row.ratio = row.gflops / g;
      o.log?.(`  ${s.name} (${row.threads} thread${row.threads > 1 ? 's' : ''}): numpy ${g.toFixed(1)} GFLOP/s`);
    });
    // a peer that cannot start or dies never hides our rows: the report says why
    if (r.missing !== undefined) report.numpy = { missing: r.missing };
    else report.numpy = { version: r.info.numpy, openblas: r.info.openblas, corename: r.info.corename };
  }
  report.loadAverage = { before, after: loadavg()[0]! };
  return report;
}

export function formatGemmTable(rep: GemmReport): string {
  const withPeer = rep.rows.some((r) => r.numpyGflops !== undefined);
  const head = ['shape', 'M', 'N', 'K', 'op', 'threads', 'ms', 'GFLOP/s', ...(withPeer ? ['numpy GFLOP/s', 'ratio'] : [])];
  const body = rep.rows.map((r) => [
    r.shape,
    String(r.m),
    String(r.n),
    String(r.k),
    r.op,
    String(r.threads),
    r.ms < 1 ? r.ms.toFixed(3) : r.ms.toFixed(2),
    r.gflops.toFixed(1),
    ...(withPeer ? [r.numpyGflops?.toFixed(1) ?? '-', r.ratio?.toFixed(2) ?? '-'] : []),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const out = [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)];
  return out.join('\n');
}

function parseArgs(argv: string[]) {
  const o = { json: false, quick: false, compare: undefined as 'numpy' | undefined, threads: [] as number[], shapes: 'all', runs: 5, help: false };
  const value = (i: number, name: string) => {
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new Error(`itool bench gemm: ${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const [flag, inline] = a.includes('=') ? [a.slice(0, a.indexOf('=')), a.slice(a.indexOf('=') + 1)] : [a, undefined];
    const take = () => (inline !== undefined ? inline : value(i++, flag));
    switch (flag) {
      case '--json': o.json = true; break;
      case '--quick': o.quick = true; break;
      case '-h':
      case '--help': o.help = true; break;
      case '--compare': {
        const v = take();
        if (v !== 'numpy') throw new Error(`itool bench gemm: --compare supports 'numpy' only, got '${v}'`);
        o.compare = 'numpy';
        break;
      }
      case '--threads': {
        const v = take();
        const list = v.split(',').map((x) => Number(x));
        if (!list.length || list.some((x) => !Number.isInteger(x) || x < 1 || x > 1024))
          throw new Error(`itool bench gemm: --threads must be positive integers (e.g. 2 or 1,2), got '${v}'`);
        o.threads = list;
        break;
      }
      case '--shapes': {
        const v = take();
        if (!['square', 'model', 'all'].includes(v)) throw new Error(`itool bench gemm: --shapes must be square, model or all, got '${v}'`);
        o.shapes = v;
        break;
      }
      case '--runs': {
        const v = Number(take());
        if (!Number.isInteger(v) || v < 1 || v > 1000) throw new Error(`itool bench gemm: --runs must be an integer in [1, 1000]`);
        o.runs = v;
        break;
      }
      default:
        throw new Error(`itool bench gemm: unknown option '${a}' (see itool bench gemm --help)`);
    }
  }
  return o;
}

const HELP = `itool bench gemm: f32 GEMM GFLOP/s per shape and thread count

Options
  --json               print the report as JSON (rows with a ratio field when compared)
  --compare numpy      also time numpy's matmul (python3 + numpy) in the same run
  --threads N[,N]      thread counts to measure (default 1 and the pool size)
  --shapes S           square | model | all (default all)
  --runs N             timed runs per row, median reported (default 5)
  --quick              tiny shapes, one run (a smoke test)
`;

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const native = loadNative();
  const pool: number = native.gemmInfo().threads;
  const threads = o.threads.length ? o.threads : [...new Set([1, pool])];
  const over = threads.find((t) => t > pool);
  if (over !== undefined) throw new Error(`itool bench gemm: --threads ${over} exceeds the engine's pool of ${pool} threads (ITOOL_THREADS sets the pool size)`);
  const shapes = o.quick ? QUICK : o.shapes === 'square' ? SQUARE : o.shapes === 'model' ? MODEL : [...SQUARE, ...MODEL];
  const log = o.json ? undefined : (l: string) => process.stderr.write(l + '\n');
  const rep = await runGemmBench({ shapes, threads, runs: o.quick ? 1 : o.runs, minSeconds: o.quick ? 0.001 : 0.03, compare: o.compare, log });
  if (o.json) {
    process.stdout.write(JSON.stringify(rep, null, 2) + '\n');
    return;
  }
  const lines = [`itool gemm: kernel ${rep.kernel}, pool of ${rep.threadsAvailable} threads`];
  if (rep.loadAverage)
    lines.push(`machine load average ${rep.loadAverage.before.toFixed(1)} before, ${rep.loadAverage.after.toFixed(1)} after (above ~0.5 other work is sharing the cores)`);
  if (rep.numpy && 'missing' in rep.numpy) lines.push(`numpy: not compared (${rep.numpy.missing})`);
  else if (rep.numpy) lines.push(`numpy ${rep.numpy.version}, ${rep.numpy.openblas ?? 'BLAS unknown'}, kernel ${rep.numpy.corename ?? 'unknown'}`);
  lines.push('', formatGemmTable(rep));
  process.stdout.write(lines.join('\n') + '\n');
}
