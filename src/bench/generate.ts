// itool bench generate [--compare torch] [--json] [--quick] [--shape small|base]
// (--compare llama.cpp: generate_llama.ts)
//
// The tree search's generation workload: `branches` (64) continuations of `newTokens`
// (50) tokens sampled at temperature 1 off one `promptTokens` (512) prompt. itool
// prefills the prompt once and forks its KV cache for every branch (the forks share
// the prompt's blocks), then decodes all branches in batches. The PyTorch peer
// (bench/torch_peer.py, mode generate) does what Hugging Face generate does: one cache
// per branch (the prompt prefilled for each), then batched cached decoding. Both load
// the same initial weights (itool saves them, the peer reads them); the log-probability
// of the prompt's second token is checked to agree before the figures are compared.
// Tokens/s count generated tokens over the whole time, prefill included.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, type NativeModel } from '../engine/model.js';
import { packageRoot } from '../engine/native.js';
import { SHAPES, type Shape } from './train_compare.js';
import { randomTokens } from './random.js';

export interface GenerateRow {
  shape: string;
  engine: 'itool' | 'torch';
  branches: number;
  promptTokens: number;
  newTokens: number;
  seconds: number;
  tokensPerSecond: number;
  ratio?: number; // itool over torch, on the itool row
}

const TORCH_INSTALL = 'apt-get install -y python3-torch libopenblas0-pthread  (Debian; runs with /usr/bin/python3)';

const promptOf = (n: number, V: number): number[] => randomTokens(n, V, 777, 3);

export interface Workload {
  branches: number;
  promptTokens: number;
  newTokens: number;
}

/**
 * The tree workload on an itool model, timed: the log-prob of the prompt's second token (to
 * check against a peer), a warm-up on a short prompt (threads, buffers), then one prefilled
 * prompt cache forked into BRANCHES caches that each sample NEWTOKENS tokens at temperature 1.
 * Returns the seconds of the prefill + decode and each branch's generated token count.
 */
export async function timeTree(m: NativeModel, prompt: readonly number[], branches: number, newTokens: number): Promise<{ lp0: number; seconds: number; generated: number[] }> {
  const lp = await m.logprobs({ tokens: Int32Array.from(prompt.slice(0, 2)), targets: Int32Array.from([prompt[1]!, -1]), cuSeqlens: Int32Array.from([0, 2]) });
  {
    const c = await m.cache(prompt.slice(0, 8));
    const f = [c.fork(), c.fork()];
    await m.generate(f, { maxTokens: 2, temperature: 1, seed: 2 });
    for (const x of [c, ...f]) x.dispose();
  }
  const t0 = performance.now();
  const root = await m.cache([...prompt]);
  const forks = Array.from({ length: branches }, () => root.fork());
  const gens = await m.generate(forks, { maxTokens: newTokens, temperature: 1, seed: 1 });
  const seconds = (performance.now() - t0) / 1000;
  for (const c of [root, ...forks]) c.dispose();
  return { lp0: lp[0]!, seconds, generated: gens.map((g) => g.tokens.length) };
}

/** itool's side; saves the initial weights into `dir` for the peer. */
export async function runItoolGenerate(s: Shape, w: Workload, dir: string): Promise<{ seconds: number; generated: number; promptLogprob0: number }> {
  const m = createModel(s.config, { seed: 1, device: 'cpu' });
  try {
    await m.save(dir);
    const prompt = promptOf(w.promptTokens, s.config.vocabSize);
    const { lp0, seconds, generated } = await timeTree(m, prompt, w.branches, w.newTokens);
    return { seconds, generated: generated.reduce((n, g) => n + g, 0), promptLogprob0: lp0 };
  } finally {
    m.dispose();
  }
}

export function runPeerGenerate(
  s: Shape,
  w: Workload,
  dir: string,
): { ok: true; r: { seconds: number; generated: number; promptLogprob0: number; torch: string } } | { ok: false; reason: string } {
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0)
    return { ok: false, reason: `torch does not import in ${python} (${(probe.stderr || String(probe.error)).trim().split('\n').pop()}); install: ${TORCH_INSTALL}` };
  const req = join(dir, 'peer-generate.json');
  writeFileSync(
    req,
    JSON.stringify({ mode: 'generate', modelDir: dir, prompt: promptOf(w.promptTokens, s.config.vocabSize), branches: w.branches, newTokens: w.newTokens, temperature: 1, prefillBatch: 8, threads: 1 }),
  );
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const r = spawnSync(python, [join(packageRoot(), 'bench', 'torch_peer.py'), req], { env, encoding: 'utf8', maxBuffer: 1 << 24, timeout: 60 * 60_000 });
  if (r.error) return { ok: false, reason: `${python} could not run the peer (${r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `bench/torch_peer.py failed (exit ${r.status ?? r.signal}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
  try {
    return { ok: true, r: JSON.parse(r.stdout.trim().split('\n').pop()!) };
  } catch {
    return { ok: false, reason: `bench/torch_peer.py printed no JSON: ${r.stdout.slice(0, 200)}` };
  }
}

function parseArgs(argv: string[]) {
  const o = { json: false, quick: false, compare: false, shape: 'small' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--compare') {
      const v = argv[++i];
      if (v !== 'torch') throw new Error(`bench generate: --compare supports 'torch' and 'llama.cpp', got '${v ?? ''}'`);
      o.compare = true;
    } else if (a === '--shape') {
      const v = argv[++i] ?? '';
      if (!SHAPES.some((s) => s.name === v)) throw new Error(`bench generate: unknown shape '${v}' (one of ${SHAPES.map((s) => s.name).join(', ')})`);
      o.shape = v;
    } else if (a === '--help' || a === '-h') {
      process.stdout.write('itool bench generate [--compare torch] [--json] [--quick] [--shape small|base|tiny]\nitool bench generate --compare llama.cpp [--json] [--quick] [--shape small|qwen2.5-0.5b|all] [--dtype f32|f16|bf16]\n');
      process.exit(0);
    } else throw new Error(`bench generate: unknown option ${a}`);
  }
  return o;
}

export async function main(argv: string[]): Promise<void> {
  const c = argv.indexOf('--compare');
  if (c >= 0 && argv[c + 1] === 'llama.cpp') return (await import('./generate_llama.js')).main(argv);
  const o = parseArgs(argv);
  const s = SHAPES.find((x) => x.name === (o.quick ? 'tiny' : o.shape))!;
  const w: Workload = o.quick ? { branches: 4, promptTokens: 16, newTokens: 4 } : { branches: 64, promptTokens: 512, newTokens: 50 };
  const dir = mkdtempSync(join(tmpdir(), 'itool-bench-generate-'));
  const rows: GenerateRow[] = [];
  const notes: string[] = [];
  let mismatch = false;
  try {
    const it = await runItoolGenerate(s, w, dir);
    const itRow: GenerateRow = { shape: s.name, engine: 'itool', ...w, seconds: it.seconds, tokensPerSecond: it.generated / it.seconds };
    rows.push(itRow);
    if (o.compare && !o.quick) {
      const p = runPeerGenerate(s, w, dir);
      if (!p.ok) notes.push(`no PyTorch peer: ${p.reason}`);
      else {
        const pRow: GenerateRow = { shape: s.name, engine: 'torch', ...w, seconds: p.r.seconds, tokensPerSecond: p.r.generated / p.r.seconds };
        rows.push(pRow);
        itRow.ratio = itRow.tokensPerSecond / pRow.tokensPerSecond;
        const d = Math.abs(p.r.promptLogprob0 - it.promptLogprob0);
        if (!(d <= 1e-4)) {
          mismatch = true;
          notes.push(`the engines disagree on the weights: log p(prompt[1] | prompt[0]) itool ${it.promptLogprob0}, torch ${p.r.promptLogprob0}`);
        } else notes.push(`same weights: log p(prompt[1] | prompt[0]) agrees to ${d.toExponential(1)}; torch ${p.r.torch}`);
      }
    } else if (o.compare) notes.push('peer not run (--quick)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (o.json) process.stdout.write(JSON.stringify({ device: 'cpu', rows, notes }, null, 2) + '\n');
  else {
    const head = ['shape', 'engine', 'branches', 'prompt', 'new', 'seconds', 'tok/s', 'ratio'];
    const body = rows.map((r) => [r.shape, r.engine, String(r.branches), String(r.promptTokens), String(r.newTokens), r.seconds.toFixed(2), r.tokensPerSecond.toFixed(0), r.ratio?.toFixed(2) ?? '']);
    const wd = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
    const line = (c: string[]) => c.map((x, i) => (i < 2 ? x.padEnd(wd[i]!) : x.padStart(wd[i]!))).join('  ');
    process.stdout.write([line(head), wd.map((x) => '-'.repeat(x)).join('  '), ...body.map(line), ...notes.map((n) => `note: ${n}`)].join('\n') + '\n');
  }
  if (mismatch) process.exitCode = 1;
}
