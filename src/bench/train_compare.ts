// itool bench train --compare torch [--json] [--quick] [--steps N] [--shape small|base]
//
// SFT steps (forward + mean NLL over the target tokens + backward + global-norm clipping
// + AdamW) of itool and of a PyTorch peer (bench/torch_peer.py, Debian's /usr/bin/python3
// with python3-torch) on the same Llama-shaped decoder, the same f32 initial weights
// (itool creates the model, saves it as a Hugging Face directory, the peer loads it),
// the same packed batch and the same optimizer settings. The step-0 losses (computed by
// both before any update) must agree to f32 tolerance: the same work, not just the same
// shape. Rows: ms/step (median of the timed steps after one warm-up step), tokens/s,
// achieved GFLOP/s (6N + 12·L·H·T FLOPs per token), peak RSS of each process, ratio
// itool/peer tokens/s. itool runs in a child process so that its peak RSS is its own.
// Then numpy's SGEMM (bench/numpy_gemm.py, OpenBLAS, itool's thread count) on square
// 2048 and on the largest GEMM of each shape's step, in the same run: each itool row
// gets `fractionOfNumpy`, its training GFLOP/s over numpy's best SGEMM figure.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel } from '../engine/model.js';
import { llamaConfig } from '../engine/config.js';
import { packageRoot } from '../engine/native.js';
import type { ModelConfig } from '../engine/model-types.js';
import { info } from '../engine/engine.js';
import { measureNumpy, type GemmShape } from './gemm.js';
import { xorshift32 } from './random.js';

export interface Shape {
  name: string;
  config: ModelConfig;
  batch: number;
  seqLen: number;
}

const llama = llamaConfig;

export const SHAPES: Shape[] = [
  { name: 'small', config: llama({}), batch: 8, seqLen: 256 },
  {
    name: 'base',
    config: llama({ vocabSize: 32000, hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, headDim: 64 }),
    batch: 4,
    seqLen: 256,
  },
  {
    name: 'tiny',
    config: llama({ architecture: 'Qwen2ForCausalLM', vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, attentionBias: true }),
    batch: 2,
    seqLen: 32,
  },
];

const LR = 1e-4;
const MAX_GRAD_NORM = 1.0;
const TORCH_INSTALL = 'apt-get install -y python3-torch libopenblas0-pthread  (Debian; runs with /usr/bin/python3)';

/** B sequences of T random tokens; targets are the next token within each sequence, -1 at its end. */
export function makeBatch(s: Shape): { tokens: number[][]; targets: number[][] } {
  const rnd = xorshift32(12345);
  const tokens: number[][] = [];
  const targets: number[][] = [];
  for (let b = 0; b < s.batch; b++) {
    const t = Array.from({ length: s.seqLen }, () => 3 + (rnd() % (s.config.vocabSize - 3)));
    tokens.push(t);
    targets.push(t.map((_, i) => (i + 1 < t.length ? t[i + 1]! : -1)));
  }
  return { tokens, targets };
}

export interface SideResult {
  loss0: number;
  secondsPerStep: number[];
  peakRssBytes: number;
  parameters?: number;
  torch?: string;
}

export interface CompareRow {
  shape: string;
  side: 'itool' | 'torch';
  parameters: number;
  batch: number;
  seqLen: number;
  loss0: number;
  msPerStep: number;
  tokensPerSecond: number;
  gflops: number;
  peakRssMiB: number;
  ratio?: number; // itool tokens/s over the peer's, on the itool row
  fractionOfNumpy?: number; // itool GFLOP/s over numpy's best SGEMM GFLOP/s in the same run, on the itool row
}

export interface NumpyRow {
  name: string;
  m: number;
  n: number;
  k: number;
  transB: boolean;
  threads: number;
  gflops: number;
}

/** The SGEMMs numpy is timed on: square 2048, and each shape's largest GEMM (gate/up projection over the batch). */
export function numpyShapes(shapes: Shape[]): GemmShape[] {
  const out: GemmShape[] = [{ name: 'square 2048', m: 2048, n: 2048, k: 2048 }];
  for (const s of shapes) {
    const c = s.config;
    out.push({ name: `${s.name} gate/up`, m: s.batch * s.seqLen, n: c.intermediateSize, k: c.hiddenSize, transB: true });
  }
  return out;
}

async function numpyReference(shapes: Shape[], threads: number): Promise<{ rows: NumpyRow[]; note: string } | { rows: null; note: string }> {
  const gemms = numpyShapes(shapes);
  const r = await measureNumpy(gemms.map((shape) => ({ shape, threads })), 5, 0.1);
  if (r.missing !== undefined) return { rows: null, note: `no numpy SGEMM reference: ${r.missing}` };
  const rows = gemms.map((g, i): NumpyRow => ({ name: g.name, m: g.m, n: g.n, k: g.k, transB: !!g.transB, threads, gflops: r.gflops[i]! }));
  const list = rows.map((x) => `${x.name} ${x.m}x${x.n}x${x.k} ${x.gflops.toFixed(0)}`).join(', ');
  return { rows, note: `numpy ${r.info.numpy} SGEMM GFLOP/s on ${threads} threads (${r.info.corename ?? 'OpenBLAS'}), same run: ${list}` };
}

const median = (a: number[]) => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)]!;
};

/** itool's side, run in this process: saves the initial weights to `dir` for the peer. */
export async function runItool(s: Shape, steps: number, dir: string): Promise<SideResult> {
  const m = createModel(s.config, { seed: 1, device: 'cpu' });
  try {
    await m.save(dir);
    const { tokens, targets } = makeBatch(s);
    const batch = {
      tokens: Int32Array.from(tokens.flat()),
      targets: Int32Array.from(targets.flat()),
      cuSeqlens: Int32Array.from({ length: s.batch + 1 }, (_, i) => i * s.seqLen),
    };
    const n = batch.targets.reduce((c, t) => c + (t >= 0 ? 1 : 0), 0);
    const dl = new Float32Array(batch.targets.length);
    for (let i = 0; i < dl.length; i++) dl[i] = batch.targets[i]! >= 0 ? -1 / n : 0;
    const step = async () => {
      m.zeroGrad();
      // as the SFT trainer does (src/train/sft.ts): the gradients go with the forward
      const { logprobs } = await m.forward(batch, { train: true, dlogprobs: dl });
      let sum = 0;
      for (let i = 0; i < logprobs.length; i++) if (batch.targets[i]! >= 0) sum -= logprobs[i]!;
      await m.backward();
      await m.step({ lr: LR, maxGradNorm: MAX_GRAD_NORM });
      return sum / n;
    };
    const loss0 = await step(); // warm-up, and the step-0 loss
    const secondsPerStep: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      await step();
      secondsPerStep.push((performance.now() - t0) / 1000);
    }
    return { loss0, secondsPerStep, peakRssBytes: process.resourceUsage().maxRSS * 1024, parameters: m.numParameters };
  } finally {
    m.dispose();
  }
}

export function runPeer(s: Shape, steps: number, dir: string): { ok: true; r: SideResult } | { ok: false; reason: string } {
  const script = join(packageRoot(), 'bench', 'torch_peer.py');
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0)
    return { ok: false, reason: `torch does not import in ${python} (${(probe.stderr || String(probe.error)).trim().split('\n').pop()}); install: ${TORCH_INSTALL}` };
  const req = join(dir, 'peer-request.json');
  writeFileSync(req, JSON.stringify({ modelDir: dir, ...makeBatch(s), steps, lr: LR, maxGradNorm: MAX_GRAD_NORM, threads: 1 }));
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE; // the machine pins OpenBLAS to AVX2 with these; the peer runs at its best without
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(python, [script, req], { env, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 60 * 60_000 });
  if (r.error) return { ok: false, reason: `${python} could not run the peer (${r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `bench/torch_peer.py failed (exit ${r.status ?? r.signal}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
  try {
    return { ok: true, r: JSON.parse(r.stdout.trim().split('\n').pop()!) as SideResult };
  } catch {
    return { ok: false, reason: `bench/torch_peer.py printed no JSON: ${r.stdout.slice(0, 200)}` };
  }
}

function row(s: Shape, side: 'itool' | 'torch', r: SideResult, parameters: number): CompareRow {
  const sec = median(r.secondsPerStep);
  const tokens = s.batch * s.seqLen;
  const c = s.config;
  const flopsPerToken = 6 * parameters + 12 * c.numLayers * c.numHeads * c.headDim * s.seqLen;
  return {
    shape: s.name,
    side,
    parameters,
    batch: s.batch,
    seqLen: s.seqLen,
    loss0: r.loss0,
    msPerStep: sec * 1e3,
    tokensPerSecond: tokens / sec,
    gflops: ((tokens / sec) * flopsPerToken) / 1e9,
    peakRssMiB: r.peakRssBytes / 2 ** 20,
  };
}

/** Relative tolerance of the step-0 loss agreement (f32 sums over B*T*V terms). */
export const LOSS_RTOL = 1e-4;

interface Opts {
  json: boolean;
  quick: boolean;
  steps: number;
  shapes: string[];
  child: string | null;
  dir: string | null;
}

function parseArgs(argv: string[]): Opts {
  const o: Opts = { json: false, quick: false, steps: 5, shapes: [], child: null, dir: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`bench train: ${a} needs a value`);
      return v;
    };
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--compare') {
      const v = val();
      if (v !== 'torch') throw new Error(`bench train: --compare supports 'torch' only, got '${v}'`);
    } else if (a === '--steps') o.steps = Number(val());
    else if (a === '--shape') o.shapes.push(val());
    else if (a === '--itool-child') o.child = val();
    else if (a === '--dir') o.dir = val();
    else throw new Error(`bench train --compare torch: unknown option ${a}`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error('bench train: --steps must be a positive integer');
  for (const s of [...o.shapes, ...(o.child ? [o.child] : [])])
    if (!SHAPES.some((x) => x.name === s)) throw new Error(`bench train: unknown shape '${s}' (one of ${SHAPES.map((x) => x.name).join(', ')})`);
  return o;
}

export function formatCompare(rows: CompareRow[]): string {
  const head = ['shape', 'engine', 'params', 'B x T', 'loss0', 'ms/step', 'tok/s', 'GFLOP/s', 'peak RSS MiB', 'ratio', 'of numpy SGEMM'];
  const body = rows.map((r) => [
    r.shape,
    r.side,
    `${(r.parameters / 1e6).toFixed(1)}M`,
    `${r.batch} x ${r.seqLen}`,
    r.loss0.toFixed(5),
    r.msPerStep.toFixed(1),
    r.tokensPerSecond.toFixed(0),
    r.gflops.toFixed(1),
    r.peakRssMiB.toFixed(0),
    r.ratio !== undefined ? r.ratio.toFixed(2) : '',
    r.fractionOfNumpy !== undefined ? `${(100 * r.fractionOfNumpy).toFixed(0)}%` : '',
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i < 2 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join('  ');
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  if (o.child) {
    // child mode: itool's side of one shape, one JSON line
    const s = SHAPES.find((x) => x.name === o.child)!;
    process.stdout.write(JSON.stringify(await runItool(s, o.steps, o.dir!)) + '\n');
    return;
  }
  const names = o.shapes.length ? o.shapes : o.quick ? ['tiny'] : ['small', 'base'];
  const steps = o.quick ? 1 : o.steps;
  const rows: CompareRow[] = [];
  const notes: string[] = [];
  let mismatch = false;
  for (const name of names) {
    const s = SHAPES.find((x) => x.name === name)!;
    const dir = mkdtempSync(join(tmpdir(), `itool-bench-train-${name}-`));
    try {
      const r = spawnSync(process.execPath, [process.argv[1]!, 'bench', 'train', '--itool-child', name, '--steps', String(steps), '--dir', dir], {
        encoding: 'utf8',
        env: process.env,
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) throw new Error(`bench train ${name}: itool's child failed (${r.status ?? r.signal}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
      const it = JSON.parse(r.stdout.trim().split('\n').pop()!) as SideResult;
      const itRow = row(s, 'itool', it, it.parameters!);
      rows.push(itRow);
      if (o.quick) {
        notes.push(`${name}: peer not run (--quick)`);
        continue;
      }
      const peer = runPeer(s, steps, dir);
      if (!peer.ok) {
        notes.push(`${name}: no PyTorch peer: ${peer.reason}`);
        continue;
      }
      const pRow = row(s, 'torch', peer.r, it.parameters!);
      rows.push(pRow);
      itRow.ratio = itRow.tokensPerSecond / pRow.tokensPerSecond;
      const rel = Math.abs(it.loss0 - peer.r.loss0) / Math.max(1, Math.abs(peer.r.loss0));
      if (!(rel <= LOSS_RTOL)) {
        mismatch = true;
        notes.push(`${name}: step-0 losses differ (itool ${it.loss0}, torch ${peer.r.loss0}, relative ${rel.toExponential(2)} > ${LOSS_RTOL}): not the same work`);
      } else notes.push(`${name}: step-0 losses agree (relative difference ${rel.toExponential(2)}); torch ${peer.r.torch}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  let numpy: NumpyRow[] | null = null;
  if (!o.quick) {
    // last, after every itool and torch step: OpenBLAS's threads spin on after its calls
    const ref = await numpyReference(names.map((n) => SHAPES.find((x) => x.name === n)!), info().cpu.threads);
    notes.push(ref.note);
    numpy = ref.rows;
    if (numpy) {
      const best = Math.max(...numpy.map((r) => r.gflops));
      for (const r of rows)
        if (r.side === 'itool') {
          r.fractionOfNumpy = r.gflops / best;
          notes.push(`${r.shape}: itool trains at ${r.gflops.toFixed(0)} GFLOP/s, ${(100 * r.fractionOfNumpy).toFixed(0)}% of numpy's best SGEMM (${best.toFixed(0)})`);
        }
    }
  }
  if (o.json) process.stdout.write(JSON.stringify({ device: 'cpu', rows, numpy, notes }, null, 2) + '\n');
  else process.stdout.write(formatCompare(rows) + '\n' + notes.map((n) => `note: ${n}`).join('\n') + '\n');
  if (mismatch) process.exitCode = 1;
}
