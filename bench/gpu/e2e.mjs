#!/usr/bin/env node
// End-to-end GPU benchmarks of the engine (run by bench/gpu/run.sh; needs dist/):
//  - SFT and SimPO training steps on a randomly initialised Qwen2.5-0.5B-shaped model,
//    4 sequences of 2048 tokens per step (SimPO: 4 pairs of 1024 + 1024), tokens/s and MFU;
//  - generation: 64 branches x 50 tokens off one shared 512-token prompt (KV forks).
// `--compare torch` runs bench/gpu/e2e.py (transformers + PyTorch, bf16 autocast with f32
// master weights and fused AdamW; HF generate with the prompt repeated 64 times).
//   node bench/gpu/e2e.mjs [--compare torch] [--quick] [--device cuda:0]  -> JSON on stdout
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createModel, info } from '../../dist/engine/index.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const compare = args.includes('--compare');
const device = args.includes('--device') ? args[args.indexOf('--device') + 1] : 'cuda:0';
const log = (s) => process.stderr.write(s + '\n');

const cfg = {
  architecture: 'Qwen2ForCausalLM', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numLayers: 24,
  numHeads: 14, numKvHeads: 2, headDim: 64, rmsNormEps: 1e-6, ropeTheta: 1000000, ropeScaling: null,
  maxPositionEmbeddings: 32768, tieWordEmbeddings: true, attentionBias: true, qkNorm: false, bosTokenId: null,
  eosTokenId: [151645],
};
const SEQ = 2048, B = 4, STEPS = quick ? 3 : 10;
const dev = info().cuda.devices[Number(device.split(':')[1] ?? 0)];
const peak = /H100|H200|H800|GH200/.test(dev?.name ?? '') ? 989e12 : /A100|A800/.test(dev?.name ?? '') ? 312e12 : NaN;

let s = 1;
const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % (cfg.vocabSize - 10) + 10;
const seqs = Array.from({ length: B }, () => Array.from({ length: SEQ }, rnd));
const tokens = Int32Array.from(seqs.flat());
const cu = Int32Array.from({ length: B + 1 }, (_, i) => i * SEQ);
const targets = Int32Array.from(tokens, (_, i) => ((i + 1) % SEQ === 0 ? -1 : tokens[i + 1]));
const T = tokens.length;

const m = createModel(cfg, { seed: 1, initStd: 0.02, device });
const N = m.numParameters;
const flopsPerToken = 6 * N + 12 * cfg.numLayers * cfg.hiddenSize * SEQ;
const res = { device: dev ? `${dev.name}` : device, params: N, seq: SEQ, batch: B, tokensPerStep: T, peakFlops: peak };

async function timeSteps(step) {
  await step();
  await step();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < STEPS; i++) await step();
  return Number(process.hrtime.bigint() - t0) / 1e9 / STEPS;
}

// SFT: mean token NLL
const nT = targets.filter((t) => t >= 0).length;
const dlSft = Float32Array.from(targets, (t) => (t < 0 ? 0 : -1 / nT));
let sftLoss = NaN;
const sftSec = await timeSteps(async () => {
  m.zeroGrad();
  const out = await m.forward({ tokens, targets, cuSeqlens: cu }, { train: true });
  let l = 0;
  for (let i = 0; i < T; i++) l -= out.logprobs[i];
  sftLoss = l / nT;
  await m.backward(dlSft);
  await m.step({ lr: 1e-5, weightDecay: 0.0, maxGradNorm: 1 });
});
res.sft = { secPerStep: sftSec, tokensPerSec: T / sftSec, mfu: (flopsPerToken * T) / sftSec / peak, loss: sftLoss };
log(`itool SFT: ${(T / sftSec).toFixed(0)} tok/s, MFU ${(100 * res.sft.mfu).toFixed(1)}%`);

// SimPO: 4 pairs of 1024 + 1024 tokens (beta 2.5, gamma 0.5), step tokens = the answers' 1023 targets each
const half = SEQ / 2, P = B, beta = 2.5, gamma = 0.5;
const cuP = Int32Array.from({ length: 2 * P + 1 }, (_, i) => i * half);
const tgP = Int32Array.from(tokens, (_, i) => ((i + 1) % half === 0 ? -1 : tokens[i + 1]));
let simpoLoss = NaN;
const simpoSec = await timeSteps(async () => {
  m.zeroGrad();
  const out = await m.forward({ tokens, targets: tgP, cuSeqlens: cuP }, { train: true });
  const dl = new Float32Array(T);
  let loss = 0;
  for (let p = 0; p < P; p++) {
    let c = 0, r = 0;
    for (let i = 0; i < half; i++) {
      c += out.logprobs[2 * p * half + i];
      r += out.logprobs[(2 * p + 1) * half + i];
    }
    const L = half - 1;
    const z = beta * (c / L - r / L) - gamma;
    loss += Math.log1p(Math.exp(-z)) / P;
    const dz = -1 / (1 + Math.exp(z)) / P;
    for (let i = 0; i < half; i++) {
      if (tgP[2 * p * half + i] >= 0) dl[2 * p * half + i] = (dz * beta) / L;
      if (tgP[(2 * p + 1) * half + i] >= 0) dl[(2 * p + 1) * half + i] = (-dz * beta) / L;
    }
  }
  simpoLoss = loss;
  await m.backward(dl);
  await m.step({ lr: 1e-6, maxGradNorm: 1 });
});
res.simpo = { secPerStep: simpoSec, tokensPerSec: T / simpoSec, mfu: (flopsPerToken * T) / simpoSec / peak, loss: simpoLoss };
log(`itool SimPO: ${(T / simpoSec).toFixed(0)} tok/s`);

// generation: 64 branches x 50 tokens off a shared 512-token prompt
const prompt = seqs[0].slice(0, 512);
const gen = async () => {
  const base = await m.cache(prompt);
  const kids = Array.from({ length: 64 }, () => base.fork());
  const out = await m.generate(kids, { maxTokens: 50, temperature: 1, seed: 7 });
  for (const k of kids) k.dispose();
  base.dispose();
  return out;
};
await gen();
const g0 = process.hrtime.bigint();
const reps = quick ? 1 : 3;
for (let i = 0; i < reps; i++) await gen();
const genSec = Number(process.hrtime.bigint() - g0) / 1e9 / reps;
res.generate = { branches: 64, newTokens: 50, prompt: 512, sec: genSec, tokensPerSec: (64 * 50) / genSec };
log(`itool generate: ${(64 * 50 / genSec).toFixed(0)} tok/s`);
m.dispose();

if (compare) {
  const py = process.env.ITOOL_PYTHON || 'python3';
  const here = dirname(fileURLToPath(import.meta.url));
  const r = spawnSync(py, [join(here, 'e2e.py'), JSON.stringify({ seq: SEQ, batch: B, steps: STEPS, quick })], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 20 * 60_000 });
  if (r.status !== 0) res.torch = { missing: `e2e.py failed (exit ${r.status}): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-3).join(' | ')}` };
  else {
    const t = JSON.parse(r.stdout.trim().split('\n').pop());
    res.torch = t;
    res.speedup = {
      sft: res.sft.tokensPerSec / t.sft.tokensPerSec,
      simpo: res.simpo.tokensPerSec / t.simpo.tokensPerSec,
      generate: res.generate.tokensPerSec / t.generate.tokensPerSec,
    };
  }
}
process.stdout.write(JSON.stringify(res, null, 2) + '\n');
