// itool bench train [--json] [--quick] [--steps N] [--skip-large] [--only NAME]
// itool bench train --compare torch [--json] [--quick] [--steps N] [--shape small|base]: see train_compare.ts
//
// The trainers' own step paths on the CPU, for the ~10M and ~100M Llama-shaped
// configurations of `itool bench model`:
//   SFT:   packed samples (B x T tokens, loss on the second half of each: the answer),
//          forward + loss + backward + AdamW with clipping (src/train sftForwardBackward);
//   SimPO: pairs packed chosen + rejected in one micro-batch (prompt T/2, steps T/4 each
//          after a shared prefix), native SimPO loss, backward, AdamW
//          (src/train preferenceForwardBackward).
// Tokens/s count every position processed; GFLOP/s use 6N + 12·L·H·T FLOPs per token (N
// parameters, L layers, H = heads x head_dim, T the sequence length). Each configuration
// runs in its own child process so that its peak memory (max RSS) is its own.
import { spawnSync } from 'node:child_process';
import { createModel } from '../engine/model.js';
import type { Model, ModelConfig } from '../engine/model-types.js';
import { nativePreferenceLoss } from '../train/losses.js';
import { preferenceOptions } from '../train/options.js';
import { sftSequence, type TrainSequence } from '../train/pack.js';
import type { PreferencePair } from '../train/pairs.js';
import { pairSequences, preferenceForwardBackward } from '../train/preference.js';
import { sftForwardBackward } from '../train/sft.js';
import { CONFIGS } from './model.js';
import { randomTokens } from './random.js';

interface Opts {
  json: boolean;
  quick: boolean;
  steps: number;
  skipLarge: boolean;
  only: string | null;
}

function parseArgs(argv: string[]): Opts {
  const o: Opts = { json: false, quick: false, steps: 3, skipLarge: false, only: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--skip-large') o.skipLarge = true;
    else if (a === '--steps') o.steps = Number(argv[++i]);
    else if (a === '--only') o.only = argv[++i] ?? null;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('itool bench train [--json] [--quick] [--steps N] [--skip-large] [--only 10M|100M|quick]\n');
      process.exit(0);
    } else throw new Error(`bench train: unknown option ${a}`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error('bench train: --steps must be a positive integer');
  return o;
}

type Cfg = { name: string; config: ModelConfig; batch: number; seqLen: number };

function quickConfig(): Cfg {
  const c = CONFIGS[0]!;
  return { name: 'quick', config: { ...c.config, vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, headDim: 16 }, batch: 2, seqLen: 32 };
}

const ids = (n: number, V: number, seed: number): number[] => randomTokens(n, V, seed, 3);

export interface PhaseRow {
  tokensPerSecond: number;
  gflops: number;
  secondsPerStep: number;
  tokensPerStep: number;
}
export interface TrainBenchRow {
  config: string;
  parameters: number;
  batch: number;
  seqLen: number;
  sft: PhaseRow;
  simpo: PhaseRow;
  /** peak resident memory of the process that ran this configuration */
  peakRssBytes: number;
}

async function timeSteps(steps: number, once: () => Promise<number>): Promise<{ sec: number; tokens: number }> {
  await once(); // warm-up
  let tokens = 0;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) tokens = await once();
  return { sec: (performance.now() - t0) / 1000 / steps, tokens };
}

export async function benchConfig(c: Cfg, steps: number): Promise<TrainBenchRow> {
  const m: Model = createModel(c.config, { seed: 1, device: 'cpu' });
  const cf = c.config;
  const N = m.numParameters;
  const flopsPerToken = 6 * N + 12 * cf.numLayers * cf.numHeads * cf.headDim * c.seqLen;
  const row = (t: { sec: number; tokens: number }): PhaseRow => ({
    tokensPerSecond: t.tokens / t.sec,
    gflops: ((t.tokens / t.sec) * flopsPerToken) / 1e9,
    secondsPerStep: t.sec,
    tokensPerStep: t.tokens,
  });
  try {
    // SFT: B samples of T tokens, the second half masked in
    const seqs: TrainSequence[] = Array.from({ length: c.batch }, (_, b) => {
      const t = ids(c.seqLen, cf.vocabSize, 11 + b);
      return sftSequence({ ids: t, mask: t.map((_, i) => (i >= c.seqLen / 2 ? 1 : 0)) });
    });
    const sft = await timeSteps(steps, async () => {
      m.zeroGrad();
      const r = await sftForwardBackward(m, [seqs]);
      await m.step({ lr: 1e-5, maxGradNorm: 1 });
      return r.tokens;
    });
    // SimPO: B/2 pairs, each two sequences of T tokens sharing a T/2 prompt and T/4 prefix
    const P = Math.max(1, c.batch / 2);
    const pairs: PreferencePair[] = Array.from({ length: P }, (_, p) => ({
      promptIds: ids(c.seqLen / 2, cf.vocabSize, 100 + p),
      prefixIds: ids(c.seqLen / 4, cf.vocabSize, 200 + p),
      chosenIds: ids(c.seqLen / 4, cf.vocabSize, 300 + p),
      rejectedIds: ids(c.seqLen / 4, cf.vocabSize, 400 + p),
    }));
    const ps = pairs.map(pairSequences);
    const o = preferenceOptions({ loss: 'simpo' });
    const simpo = await timeSteps(steps, async () => {
      m.zeroGrad();
      const r = await preferenceForwardBackward(m, [ps.map((_, i) => i)], ps, o, nativePreferenceLoss, null);
      await m.step({ lr: 1e-6, maxGradNorm: 1 });
      return r.tokens;
    });
    return { config: c.name, parameters: N, batch: c.batch, seqLen: c.seqLen, sft: row(sft), simpo: row(simpo), peakRssBytes: process.resourceUsage().maxRSS * 1024 };
  } finally {
    m.dispose();
  }
}

export async function main(argv: string[]): Promise<void> {
  // --compare torch: itool against the PyTorch peer on the small/base shapes (train_compare.ts)
  if (argv.includes('--compare') || argv.includes('--itool-child')) return (await import('./train_compare.js')).main(argv);
  const o = parseArgs(argv);
  const all: Cfg[] = o.quick ? [quickConfig()] : o.skipLarge ? [CONFIGS[0]!] : [...CONFIGS];
  if (o.only) {
    const c = [...CONFIGS, quickConfig()].find((x) => x.name === o.only);
    if (!c) throw new Error(`bench train: --only must be one of ${[...CONFIGS, quickConfig()].map((x) => x.name).join(', ')}`);
    // child mode: one configuration, one JSON line
    process.stdout.write(JSON.stringify(await benchConfig(c, o.steps)) + '\n');
    return;
  }
  const rows: TrainBenchRow[] = [];
  for (const c of all) {
    const r = spawnSync(process.execPath, [process.argv[1]!, 'bench', 'train', '--only', c.name, '--steps', String(o.quick ? 1 : o.steps)], {
      encoding: 'utf8',
      env: process.env,
      maxBuffer: 1 << 24,
    });
    if (r.status !== 0) throw new Error(`bench train ${c.name}: child failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const row = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as TrainBenchRow;
    rows.push(row);
    if (!o.json) {
      const f = (p: PhaseRow) => `${p.tokensPerSecond.toFixed(0).padStart(7)} tok/s ${p.gflops.toFixed(1).padStart(6)} GFLOP/s ${p.secondsPerStep.toFixed(2).padStart(6)} s/step`;
      process.stdout.write(
        `${row.config.padEnd(5)} ${(row.parameters / 1e6).toFixed(1).padStart(6)}M  B ${row.batch} x T ${row.seqLen}  ` +
          `SFT ${f(row.sft)}  |  SimPO ${f(row.simpo)}  |  peak RSS ${(row.peakRssBytes / 2 ** 20).toFixed(0)} MiB\n`,
      );
    }
  }
  if (o.json) process.stdout.write(JSON.stringify({ device: 'cpu', threads: process.env.ITOOL_THREADS ?? null, train: rows }, null, 2) + '\n');
}
