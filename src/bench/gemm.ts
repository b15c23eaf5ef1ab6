// itool bench gemm [--json] [--compare numpy] [--threads N[,N]] [--quick] [--shapes square|model|all] [--runs N]
//
// GFLOP/s of the CPU SGEMM (native/cpu/gemm*.cpp) per shape and thread count: the
// median of several timed runs after a warm-up, each run repeating the product until
// it lasts at least 30 ms (native.gemm's `repeat`, timed on the worker thread, so the
// JavaScript call overhead is not counted). `--compare numpy` runs bench/numpy_gemm.py
// (python3 + numpy) in the same run, with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset
// for that process only, and adds numpy's GFLOP/s and the ratio itool/numpy per row.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative, packageRoot } from '../engine/native.js';

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
  rows: GemmRow[];
  numpy?: { version: string; openblas: string | null; corename: string | null } | { missing: string };
}

export const SQUARE: GemmShape[] = [256, 512, 1024, 2048].map((s) => ({ name: `square ${s}`, m: s, n: s, k: s }));

// The model's products (x W^T forward, dY W and dY^T X backward) at 2048 tokens for the
// `base` shape (hidden 768, 12 heads, 4 kv heads of 64, intermediate 2048, vocab 32000)
// and the `small` one (hidden 256, intermediate 704, vocab 8192), and decoding rows.
export const MODEL: GemmShape[] = [
  { name: 'base q/o proj', m: 2048, n: 768, k: 768, transB: true },
  { name: 'base k/v proj', m: 2048, n: 256, k: 768, transB: true },
  { name: 'base gate/up', m: 2048, n: 2048, k: 768, transB: true },
  { name: 'base down', m: 2048, n: 768, k: 2048, transB: true },
  { name: 'base lm head chunk', m: 256, n: 32000, k: 768, transB: true },
  { name: 'base down dX', m: 2048, n: 2048, k: 768 },
  { name: 'base down dW', m: 768, n: 2048, k: 2048, transA: true },
  { name: 'base lm head dhidden', m: 256, n: 768, k: 32000 },
  { name: 'base lm head dW', m: 32000, n: 768, k: 256, transA: true },
  { name: 'small gate/up', m: 2048, n: 704, k: 256, transB: true },
  { name: 'small down', m: 2048, n: 256, k: 704, transB: true },
  { name: 'small lm head chunk', m: 256, n: 8192, k: 256, transB: true },
  { name: 'decode 1 row', m: 1, n: 2048, k: 768, transB: true },
  { name: 'decode 64 rows', m: 64, n: 2048, k: 768, transB: true },
];

export const QUICK: GemmShape[] = [
  { name: 'quick 64', m: 64, n: 64, k: 64 },
  { name: 'quick 37x50x29 NT', m: 37, n: 50, k: 29, transB: true },
  { name: 'quick decode', m: 1, n: 256, k: 128, transB: true },
];

const opName = (s: { transA?: boolean; transB?: boolean }) => `${s.transA ? 'T' : 'N'}${s.transB ? 'T' : 'N'}`;
const key = (s: { m: number; n: number; k: number; transA?: boolean; transB?: boolean }, threads: number) =>
  `${s.m}x${s.n}x${s.k}${opName(s)}@${threads}`;

function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    a[i] = ((x >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

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

/** Runs bench/numpy_gemm.py; returns its JSON or the reason it could not run. */
export function runNumpy(
  shapes: GemmShape[],
  threads: number[],
  runs: number,
  minSeconds: number,
): { ok: true; out: { numpy: string; openblas: string | null; corename: string | null; rows: Array<GemmShape & { threads: number; gflops: number }> } } | { ok: false; reason: string } {
  const script = join(packageRoot(), 'bench', 'numpy_gemm.py');
  if (!existsSync(script)) return { ok: false, reason: `${script} is missing` };
  const env = { ...process.env };
  // The machine pins OpenBLAS to its AVX2 kernels with these; the peer runs at its best without them.
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const req = JSON.stringify({
    shapes: shapes.map(({ m, n, k, transA, transB }) => ({ m, n, k, transA: !!transA, transB: !!transB })),
    threads,
    runs,
    minSeconds,
  });
  const r = spawnSync('python3', [script, req], { env, encoding: 'utf8', maxBuffer: 16 << 20, timeout: 30 * 60_000 });
  if (r.error) return { ok: false, reason: `python3 could not be started (${r.error.message})` };
  if (r.status !== 0) {
    const err = (r.stderr || '').trim().split('\n').slice(-3).join(' | ');
    if (/No module named '?numpy/.test(err)) return { ok: false, reason: 'numpy is not installed for python3 (pip install numpy)' };
    return { ok: false, reason: `bench/numpy_gemm.py failed (exit ${r.status}): ${err}` };
  }
  try {
    return { ok: true, out: JSON.parse(r.stdout) };
  } catch {
    return { ok: false, reason: `bench/numpy_gemm.py printed no JSON: ${r.stdout.slice(0, 200)}` };
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

export async function runGemmBench(o: GemmBenchOptions): Promise<GemmReport> {
  const native = loadNative();
  const info = native.gemmInfo();
  const rows: GemmRow[] = [];
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
      o.log?.(`  itool ${s.name} (${threads} thread${threads > 1 ? 's' : ''}): ${row.gflops.toFixed(1)} GFLOP/s`);
    }
  }
  const report: GemmReport = { kernel: info.kernel, threadsAvailable: info.threads, rows };
  if (o.compare === 'numpy') {
    o.log?.('  running numpy (bench/numpy_gemm.py) ...');
    const r = runNumpy(o.shapes, o.threads, o.runs, o.minSeconds);
    if (!r.ok) {
      report.numpy = { missing: r.reason };
    } else {
      report.numpy = { version: r.out.numpy, openblas: r.out.openblas, corename: r.out.corename };
      const peer = new Map(r.out.rows.map((x) => [key(x, x.threads), x.gflops]));
      for (const row of rows) {
        const g = peer.get(key({ ...row, transA: row.op[0] === 'T', transB: row.op[1] === 'T' }, row.threads));
        if (g !== undefined) {
          row.numpyGflops = g;
          row.ratio = row.gflops / g;
        }
      }
    }
  }
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
  const shapes = o.quick ? QUICK : o.shapes === 'square' ? SQUARE : o.shapes === 'model' ? MODEL : [...SQUARE, ...MODEL];
  const log = o.json ? undefined : (l: string) => process.stderr.write(l + '\n');
  const rep = await runGemmBench({ shapes, threads, runs: o.quick ? 1 : o.runs, minSeconds: o.quick ? 0.001 : 0.03, compare: o.compare, log });
  if (o.json) {
    process.stdout.write(JSON.stringify(rep, null, 2) + '\n');
    return;
  }
  const lines = [`itool gemm: kernel ${rep.kernel}, pool of ${rep.threadsAvailable} threads`];
  if (rep.numpy && 'missing' in rep.numpy) lines.push(`numpy: not compared (${rep.numpy.missing})`);
  else if (rep.numpy) lines.push(`numpy ${rep.numpy.version}, ${rep.numpy.openblas ?? 'BLAS unknown'}, kernel ${rep.numpy.corename ?? 'unknown'}`);
  lines.push('', formatGemmTable(rep));
  process.stdout.write(lines.join('\n') + '\n');
}
