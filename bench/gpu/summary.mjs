#!/usr/bin/env node
// Combines what bench/gpu/run.sh and bench/gpu/bench.sh left in their work folder into the
// files that come back from the GPU machine, and prints the table.
//   node bench/gpu/summary.mjs check WORK OUT.json          (run.sh: the tests and memcheck)
//   node bench/gpu/summary.mjs bench WORK OUT.json OUT.md   (bench.sh: the benches vs PyTorch)
// Plain Node, no dependencies (it runs with the carried node binary).
import { existsSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [mode, work, outJson, outMd] = process.argv.slice(2);
if (!['check', 'bench'].includes(mode) || !work || !outJson) {
  process.stderr.write('usage: summary.mjs check WORK OUT.json | bench WORK OUT.json OUT.md\n');
  process.exit(2);
}
const readJson = (p) => {
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    return undefined;
  }
};
const readText = (p) => (existsSync(p) ? readFileSync(p, 'utf8') : '');
const steps = readText(join(work, 'steps.jsonl')).split('\n').filter(Boolean).map((l) => {
  try {
    return JSON.parse(l);
  } catch {
    return { name: '?', unparsed: l };
  }
});
const stepOf = (name) => steps.find((s) => s.name === name) ?? { name, notRun: 'did not run' };
const info = readJson(join(work, 'info.json'));
const dev = info?.cuda?.devices?.[0];
const gemm = !info ? 'unknown (the addon did not load)' : !info.cuda?.cublas ? 'built-in wmma kernels' : process.env.ITOOL_CUDA_GEMM === 'builtin' ? 'built-in wmma kernels (ITOOL_CUDA_GEMM=builtin)' : 'cuBLASLt';
const manifest = readJson('.device/manifest.json');
const atomicWrite = (p, text) => {
  writeFileSync(`${p}.tmp`, text);
  renameSync(`${p}.tmp`, p);
};
const pad = (s, n) => String(s).padEnd(n);
const env = {
  date: new Date().toISOString(),
  device: dev ? { name: dev.name, computeCapability: dev.computeCapability, totalMemory: dev.totalMemory } : null,
  noDeviceReason: dev ? undefined : info?.cuda?.reason,
  cudaRuntime: info?.cuda?.runtime,
  cudaDriver: info?.cuda?.driver,
  gemm,
  addon: manifest ?? null,
};

/**
 * Counts and failures of one vitest JSON report; without one (the process timed out or
 * died first), what its verbose output printed test by test, marked partial.
 */
function vitestResult(report, outText = '') {
  if (!report) {
    const lines = outText.replace(/\x1b\[[0-9;]*m/g, '').split('\n');
    const failures = [];
    let passed = 0, failed = 0, skipped = 0;
    for (let i = 0; i < lines.length; i++) {
      const l = lines[i].trim();
      if (l.startsWith('✓ ')) passed++;
      else if (l.startsWith('↓ ')) skipped++;
      else if (l.startsWith('× ')) {
        failed++;
        failures.push({ test: l.slice(2), message: (lines[i + 1] ?? '').trim().replace(/^→ /, '') });
      }
    }
    return { passed, failed, skipped, failures, report: 'missing (the process died or timed out before writing it): counts from its output, partial' };
  }
  const failures = [];
  const names = [];
  for (const file of report.testResults ?? []) {
    if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) failures.push({ test: file.name, message: String(file.message ?? '').slice(0, 2000) });
    for (const t of file.assertionResults ?? []) {
      if (t.status === 'passed' || t.status === 'failed') names.push(t.fullName);
      if (t.status === 'failed') failures.push({ test: t.fullName, message: (t.failureMessages ?? []).join('\n').slice(0, 2000) });
    }
  }
  return { passed: report.numPassedTests ?? 0, failed: report.numFailedTests ?? 0, skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0), failures, ran: names };
}

if (mode === 'check') {
  const groups = [];
  const dir = join(work, 'groups');
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  const seen = new Map();
  for (const s of steps.filter((x) => String(x.name).startsWith('tests-'))) {
    const name = s.name.slice('tests-'.length);
    const r = vitestResult(files.includes(`${name}.json`) ? readJson(join(dir, `${name}.json`)) : undefined, readText(join(work, `${s.name}.out`)));
    for (const t of r.ran ?? []) seen.set(t, (seen.get(t) ?? 0) + 1);
    delete r.ran;
    groups.push({ ...s, name, ...r });
  }
  const mstep = stepOf('memcheck');
  const mout = readText(join(work, 'memcheck.out'));
  const errLine = mout.match(/ERROR SUMMARY: (\d+) errors?/g) ?? [];
  const memcheck = {
    ...mstep,
    // one summary line per process compute-sanitizer followed (vitest's parent and its fork)
    errors: errLine.length ? errLine.reduce((s, l) => s + Number(l.match(/\d+/)[0]), 0) : null,
    summaries: errLine,
    firstErrors: mout.split('\n').filter((l) => /^=========\s+(Invalid|Program hit|Address|Saved host backtrace|\s+at )/.test(l)).slice(0, 40),
    tests: (() => {
      const r = vitestResult(readJson(join(work, 'memcheck.json')), mout);
      delete r.ran;
      return r;
    })(),
  };
  const twice = [...seen].filter(([, n]) => n > 1).map(([t]) => t);
  const passed = groups.reduce((s, g) => s + g.passed, 0), failed = groups.reduce((s, g) => s + g.failed, 0);
  const testsOk = !!dev && groups.length > 0 && groups.every((g) => g.rc === 0 && g.failed === 0) && passed > 0;
  const memcheckOk = memcheck.rc === 0 && memcheck.errors === 0 && memcheck.tests.failed === 0 && memcheck.tests.passed > 0;
  const res = { kind: 'itool GPU check (bench/gpu/run.sh)', ...env, ok: testsOk, memcheckOk, passed, failed, groups, ranInTwoGroups: twice, memcheck, steps };
  atomicWrite(outJson, JSON.stringify(res, null, 2) + '\n');
  const lines = [];
  lines.push(`device: ${dev ? `${dev.name} (sm ${dev.computeCapability})` : `none (${env.noDeviceReason ?? 'addon not loaded'})`}; GEMM: ${gemm}`);
  lines.push(`${pad("group", 16)}${pad('exit', 6)}${pad('seconds', 9)}${pad('passed', 8)}${pad('failed', 8)}skipped`);
  for (const g of groups) lines.push(`${pad(g.name, 16)}${pad(g.notRun ? 'skip' : g.timedOut ? 'TIME' : g.rc, 6)}${pad(g.seconds ?? '-', 9)}${pad(g.passed, 8)}${pad(g.failed, 8)}${g.skipped}`);
  for (const g of groups) for (const f of g.failures.slice(0, 5)) lines.push(`FAILED [${g.name}] ${f.test}: ${f.message.split('\n')[0].slice(0, 240)}`);
  if (twice.length) lines.push(`tests run by two groups (patterns overlap): ${twice.length}`);
  lines.push(memcheck.notRun ? `memcheck: not run (${memcheck.notRun})` : `memcheck: exit ${memcheck.rc}${memcheck.timedOut ? ' (timed out)' : ''}, ${memcheck.errors ?? '?'} errors, ${memcheck.tests.passed} tests passed, ${memcheck.tests.failed} failed, ${memcheck.seconds} s`);
  lines.push(`tests ${testsOk ? 'OK' : 'NOT OK'}: ${passed} passed, ${failed} failed`);
  process.stdout.write(lines.join('\n') + '\n');
} else {
  const read = (f) => readJson(join(work, f));
  const f = (x, d = 2) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '-');
  const out = ['# itool on the GPU: benches', ''];
  out.push(`Device: ${dev ? `${dev.name} (sm ${dev.computeCapability}, ${(dev.totalMemory / 2 ** 30).toFixed(0)} GiB)` : 'none'}; CUDA runtime ${info?.cuda?.runtime ?? '?'}; GEMM: ${gemm}`, '');
  const att = read('attention.json');
  if (att?.rows) {
    out.push('## Attention forward+backward (causal, bf16)', '');
    if (att.torch?.missing) out.push(`torch: not compared (${att.torch.missing})`, '');
    out.push('| D | heads | seq | batch | itool ms | itool TFLOP/s | torch SDPA ms | torch TFLOP/s | speed-up |', '|---|---|---|---|---|---|---|---|---|');
    for (const r of att.rows) out.push(`| ${r.D} | ${r.heads} | ${r.seq} | ${r.batch} | ${f(r.totalMs)} | ${f(r.tflops, 1)} | ${f(r.torchMs)} | ${f(r.torchTflops, 1)} | ${f(r.ratio)}x |`);
    out.push('');
  }
  const loss = read('loss.json');
  if (loss?.itool) {
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
  if (e2e?.sft) {
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
  out.push('## Steps', '', '| step | exit | seconds |', '|---|---|---|');
  for (const s of steps) out.push(`| ${s.name} | ${s.notRun ? `not run: ${s.notRun}` : s.timedOut ? `timed out (${s.rc})` : s.rc} | ${s.seconds ?? '-'} |`);
  out.push('');
  const res = { kind: 'itool GPU benches (bench/gpu/bench.sh)', ...env, steps, attention: att, loss, hfCheck: hf, e2e, cublasBuild: read('cublas-build.json') };
  atomicWrite(outJson, JSON.stringify(res, null, 2) + '\n');
  if (outMd) atomicWrite(outMd, out.join('\n') + '\n');
  process.stdout.write(out.join('\n') + '\n');
}
