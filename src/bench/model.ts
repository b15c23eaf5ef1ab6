// itool bench model [--json] [--quick] [--device cpu|cuda] [--steps N] [--skip-large]
//
// Training: forward + backward + AdamW step tokens/s and achieved GFLOP/s (6N + 12·L·H·T
// FLOPs per token: N parameters, L layers, H hidden, T context) for a ~10M and a ~100M
// Llama-shaped configuration, against the f32 GEMM peak measured in the same run (square
// 1024 on all threads). Generation: 64 branches of 50 tokens off one prompt, with the
// prefix shared (one prefill, 64 forks) and without (64 prefills), tokens/s of generated
// tokens including the prefill.
import { createModel } from '../engine/model.js';
import { llamaConfig } from '../engine/config.js';
import { loadNative } from '../engine/native.js';
import type { ModelConfig } from '../engine/model-types.js';
import type { DeviceRequest } from '../engine/engine.js';
import { randomTokens } from './random.js';

interface Opts {
  json: boolean;
  quick: boolean;
  device: string;
  steps: number;
  skipLarge: boolean;
}

function parseArgs(argv: string[]): Opts {
  const o: Opts = { json: false, quick: false, device: 'cpu', steps: 3, skipLarge: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--skip-large') o.skipLarge = true;
    else if (a === '--device') o.device = argv[++i] ?? 'cpu';
    else if (a === '--steps') o.steps = Number(argv[++i]);
    else if (a === '--help' || a === '-h') {
      process.stdout.write('itool bench model [--json] [--quick] [--device cpu|cuda] [--steps N] [--skip-large]\n');
      process.exit(0);
    } else throw new Error(`bench model: unknown option ${a}`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error('--steps must be a positive integer');
  return o;
}

const base = (over: Partial<ModelConfig>): ModelConfig => llamaConfig({ numHeads: 4, numKvHeads: 2, ...over });

export const CONFIGS: Array<{ name: string; config: ModelConfig; batch: number; seqLen: number }> = [
  { name: '10M', config: base({}), batch: 8, seqLen: 256 },
  {
    name: '100M',
    config: base({ vocabSize: 32000, hiddenSize: 768, intermediateSize: 2048, numLayers: 12, numHeads: 12, numKvHeads: 4, headDim: 64 }),
    batch: 4,
    seqLen: 256,
  },
];

const tokensOf = (n: number, V: number, seed: number): Int32Array => Int32Array.from(randomTokens(n, V, seed));

async function gemmPeak(): Promise<number | null> {
  const native = loadNative();
  if (typeof native.gemm !== 'function') return null;
  const n = 1024;
  const a = new Float32Array(n * n).fill(0.5), b = new Float32Array(n * n).fill(0.25), c = new Float32Array(n * n);
  const threads: number = native.gemmInfo?.().threads ?? 1;
  const args = { a, b, c, m: n, n, k: n, transA: false, transB: false, threads };
  await native.gemm(args);
  const times: number[] = [];
  for (let r = 0; r < 3; r++) times.push((await native.gemm({ ...args, repeat: 3 })) / 3);
  times.sort((x, y) => x - y);
  return (2 * n * n * n) / times[1]! / 1e9;
}

export interface TrainRow {
  config: string;
  parameters: number;
  batch: number;
  seqLen: number;
  tokensPerSecond: number;
  gflops: number;
  fractionOfGemmPeak: number | null;
  secondsPerStep: number;
}
export interface GenRow {
  config: string;
  branches: number;
  tokens: number;
  promptTokens: number;
  shared: { seconds: number; tokensPerSecond: number; blocks: number };
  unshared: { seconds: number; tokensPerSecond: number; blocks: number };
}

export async function benchTrain(c: (typeof CONFIGS)[number], steps: number, device: string, peak: number | null): Promise<TrainRow> {
  const m = createModel(c.config, { seed: 1, device: device as DeviceRequest });
  const T = c.batch * c.seqLen;
  const tokens = tokensOf(T, c.config.vocabSize, 7);
  const targets = tokensOf(T, c.config.vocabSize, 8);
  const cu = Int32Array.from({ length: c.batch + 1 }, (_, i) => i * c.seqLen);
  const dl = new Float32Array(T).fill(-1 / T);
  const once = async () => {
    m.zeroGrad();
    await m.forward({ tokens, targets, cuSeqlens: cu }, { train: true, dlogprobs: dl }); // as the SFT trainer does
    await m.backward();
    await m.step({ lr: 1e-4, maxGradNorm: 1 });
  };
  await once(); // warm-up
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await once();
  const sec = (performance.now() - t0) / 1000 / steps;
  const N = m.numParameters;
  const cf = c.config;
  const flopsPerToken = 6 * N + 12 * cf.numLayers * cf.numHeads * cf.headDim * c.seqLen;
  m.dispose();
  const tps = T / sec;
  const gflops = (tps * flopsPerToken) / 1e9;
  return { config: c.name, parameters: N, batch: c.batch, seqLen: c.seqLen, tokensPerSecond: tps, gflops, fractionOfGemmPeak: peak ? gflops / peak : null, secondsPerStep: sec };
}

export async function benchGenerate(c: (typeof CONFIGS)[number], device: string, branches: number, n: number, promptLen: number): Promise<GenRow> {
  const m = createModel(c.config, { seed: 1, device: device as DeviceRequest });
  const prompt = Array.from(tokensOf(promptLen, c.config.vocabSize, 3));
  const run = async (shared: boolean) => {
    const t0 = performance.now();
    let caches;
    if (shared) {
      const root = await m.cache(prompt);
      caches = Array.from({ length: branches }, () => root.fork());
      root.dispose();
    } else {
      caches = [];
      for (let i = 0; i < branches; i++) caches.push(await m.cache(prompt));
    }
    await m.generate(caches, { maxTokens: n, temperature: 1, seed: 5 });
    const seconds = (performance.now() - t0) / 1000;
    const blocks = m.poolInfo().blocksInUse;
    for (const x of caches) x.dispose();
    return { seconds, tokensPerSecond: (branches * n) / seconds, blocks };
  };
  const sharedR = await run(true);
  const unsharedR = await run(false);
  m.dispose();
  return { config: c.name, branches, tokens: n, promptTokens: promptLen, shared: sharedR, unshared: unsharedR };
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const log = (s: string) => {
    if (!o.json) process.stderr.write(s + '\n');
  };
  const peak = o.quick ? null : await gemmPeak();
  if (peak) log(`GEMM peak (f32 1024^3, all threads): ${peak.toFixed(1)} GFLOP/s`);
  const configs = o.quick
    ? [{ ...CONFIGS[0]!, name: 'quick', config: base({ vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, headDim: 16 }), batch: 2, seqLen: 32 }]
    : o.skipLarge
      ? [CONFIGS[0]!]
      : CONFIGS;
  const train: TrainRow[] = [];
  for (const c of configs) {
    const r = await benchTrain(c, o.quick ? 1 : o.steps, o.device, peak);
    train.push(r);
    log(
      `train ${r.config.padEnd(6)} ${(r.parameters / 1e6).toFixed(1)}M params, B ${r.batch} x T ${r.seqLen}: ${r.tokensPerSecond.toFixed(0)} tokens/s, ` +
        `${r.gflops.toFixed(1)} GFLOP/s${r.fractionOfGemmPeak !== null ? ` (${(100 * r.fractionOfGemmPeak).toFixed(0)}% of GEMM peak)` : ''}, ${r.secondsPerStep.toFixed(2)} s/step`,
    );
  }
  const gen: GenRow[] = [];
  const gcfg = configs[0]!;
  const g = await benchGenerate(gcfg, o.device, o.quick ? 8 : 64, o.quick ? 5 : 50, o.quick ? 16 : 128);
  gen.push(g);
  log(
    `generate ${g.config}: ${g.branches} branches x ${g.tokens} tokens off a ${g.promptTokens}-token prompt: ` +
      `shared prefix ${g.shared.tokensPerSecond.toFixed(0)} tokens/s (${g.shared.seconds.toFixed(2)} s, ${g.shared.blocks} KV blocks), ` +
      `unshared ${g.unshared.tokensPerSecond.toFixed(0)} tokens/s (${g.unshared.seconds.toFixed(2)} s, ${g.unshared.blocks} KV blocks)`,
  );
  if (o.json) process.stdout.write(JSON.stringify({ device: o.device, gemmPeakGflops: peak, train, generate: gen }, null, 2) + '\n');
}
