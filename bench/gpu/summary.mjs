#!/usr/bin/env node
// Writes the markdown summary of a bench/gpu/run.sh output folder: device, tests, and
// the itool vs PyTorch tables of every bench JSON found there.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const read = (f) => {
  const p = join(dir, f);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return undefined;
  }
};
const f = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
const out = ['# itool on the GPU', ''];
const info = read('info.json');
if (info) {
  const d = info.cuda?.devices?.[0];
  out.push(`Device: ${d ? `${d.name} (sm ${d.computeCapability}, ${(d.totalMemory / 2 ** 30).toFixed(0)} GiB)` : 'none'}; CUDA runtime ${info.cuda?.runtime ?? '?'}, driver ${info.cuda?.driver ?? '?'}; GEMM: ${info.cuda?.cublas ? 'cuBLASLt' : 'built-in wmma kernel'}`, '');
}
const tests = read('tests.json');
if (tests) {
  out.push(`GPU tests: ${tests.numPassedTests} passed, ${tests.numFailedTests} failed, ${tests.numPendingTests} skipped`, '');
  for (const file of tests.testResults ?? [])
    for (const t of file.assertionResults ?? [])
      if (t.status === 'failed') out.push(`- FAILED ${t.fullName}: ${(t.failureMessages?.[0] ?? '').split('\n')[0].slice(0, 300)}`);
  out.push('');
}
const att = read('attention.json');
if (att) {
  out.push('## Attention forward+backward (causal, bf16)', '');
  if (att.torch?.missing) out.push(`torch: not compared (${att.torch.missing})`, '');
  out.push('| D | heads | seq | batch | itool ms | itool TFLOP/s | torch SDPA ms | torch TFLOP/s | speed-up |', '|---|---|---|---|---|---|---|---|---|');
  for (const r of att.rows) out.push(`| ${r.D} | ${r.heads} | ${r.seq} | ${r.batch} | ${f(r.totalMs)} | ${f(r.tflops, 1)} | ${f(r.torchMs)} | ${f(r.torchTflops, 1)} | ${f(r.ratio)}x |`);
  out.push('');
}
const loss = read('loss.json');
if (loss) {
  out.push(`## Fused LM head + log-prob + SimPO, loss and gradient (${loss.tokens} tokens, vocab ${loss.vocab}, hidden ${loss.hidden})`, '');
  out.push('| | ms | peak MiB | loss |', '|---|---|---|---|');
  out.push(`| itool | ${f(loss.itool.ms)} | ${(loss.itool.peakBytes / 2 ** 20).toFixed(0)} | ${f(loss.itool.loss, 4)} |`);
  if (loss.torch && !loss.torch.missing) out.push(`| torch eager | ${f(loss.torch.ms)} | ${(loss.torch.peakBytes / 2 ** 20).toFixed(0)} | ${f(loss.torch.loss, 4)} |`);
  else if (loss.torch) out.push(`torch: not compared (${loss.torch.missing})`);
  if (loss.speedup !== undefined) out.push('', `speed-up ${f(loss.speedup)}x; itool peak memory = ${f(loss.memoryRatio, 3)} of torch's`);
  out.push('');
}
const hf = read('hf_check.json');
if (hf) {
  out.push('## Interop: itool checkpoint in transformers, LoRA adapter in PEFT', '');
  out.push(`- model (transformers ${hf.transformers}): max |logit diff| ${f(hf.model?.maxAbsDiff, 4)} of max |logit| ${f(hf.model?.maxAbsLogit, 2)}: ${hf.model?.ok ? 'ok' : 'FAILED'}`);
  const a = hf.adapter ?? {};
  out.push(a.error ? `- adapter: FAILED (${a.error})` : `- adapter (peft ${a.peft}): max |logit diff| ${f(a.maxAbsDiff, 4)} (the adapter moves logits by ${f(a.adapterEffect, 3)}): ${a.ok ? 'ok' : 'FAILED'}`, '');
}
const e2e = read('e2e.json');
if (e2e) {
  out.push(`## Qwen2.5-0.5B-shaped model (${(e2e.params / 1e6).toFixed(0)}M parameters, random weights): training and generation`, '');
  const t = e2e.torch && !e2e.torch.missing ? e2e.torch : undefined;
  if (e2e.torch?.missing) out.push(`torch: not compared (${e2e.torch.missing})`, '');
  else if (t) out.push(`peer: torch ${t.torch}, transformers ${t.transformers} (bf16 autocast, f32 master weights, fused AdamW; HF generate)`, '');
  out.push('| workload | itool tok/s | itool MFU | torch tok/s | speed-up |', '|---|---|---|---|---|');
  const row = (name, a, b, sp) => out.push(`| ${name} | ${f(a?.tokensPerSec, 0)} | ${a?.mfu !== undefined ? f(100 * a.mfu, 1) + '%' : '-'} | ${f(b?.tokensPerSec, 0)} | ${f(sp)}x |`);
  row(`SFT step, ${e2e.batch} x ${e2e.seq} tokens`, e2e.sft, t?.sft, e2e.speedup?.sft);
  row(`SimPO step, ${e2e.batch} pairs of ${e2e.seq / 2} + ${e2e.seq / 2}`, e2e.simpo, t?.simpo, e2e.speedup?.simpo);
  row('generation, 64 branches x 50 tokens off a 512-token prompt', e2e.generate, t?.generate, e2e.speedup?.generate);
  out.push('');
}
process.stdout.write(out.join('\n') + '\n');
