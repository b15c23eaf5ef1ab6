// itool bench generate --compare llama.cpp [--json] [--quick] [--shape small|qwen2.5-0.5b|all] [--dtype f32|f16|bf16]
//
// itool's CPU generation against llama.cpp (node-llama-cpp 3.21.1's prebuilt CPU build, a
// devDependency) on the same weights: itool saves a random model as a Hugging Face
// directory, `itool export gguf` writes it as GGUF (f32 by default: the same precision as
// itool's CPU engine), and both engines run in this process one after the other with the
// same thread count. The log-probability of the prompt's second token is compared first:
// the figures are reported only for the same model.
//
// Workloads (tokens/s count generated tokens; sampling at temperature 1 over the whole
// vocabulary in both engines: llama.cpp with top-k and top-p off, end-of-generation
// tokens banned so that every branch makes all its tokens):
//   tree   : the tree search's: 64 branches x 50 new tokens off one 512-token prompt, the
//            time including the prompt's prefill. itool prefills once and forks the KV cache.
//            node-llama-cpp has no KV copy between sequences, so llama.cpp runs it two ways:
//            'prefill per sequence' (64 sequences of one context, each evaluating prompt +
//            50 tokens, batched together by node-llama-cpp: what its user writes), and
//            'state restored' (the prompt prefilled once, its sequence state saved and
//            loaded into the other 63: the closest to a shared prefix it offers).
//   decode : one sequence, 128 new tokens after a 16-token prompt, decode time only.
// Each row carries the machine's 1-minute load average when it was measured, and the
// memory-bandwidth bound of the shape: weight bytes read per decode step over the
// measured copy bandwidth (x branches for the tree, whose steps decode 64 rows at once).
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { llamaConfig } from '../engine/config.js';
import { info } from '../engine/engine.js';
import { createModel, loadModel } from '../engine/model.js';
import { timeTree } from './generate.js';
import type { ModelConfig } from '../engine/model-types.js';
import { exportGguf } from '../export/index.js';
import { randomTokens } from './random.js';

export interface LlamaCompareRow {
  shape: string;
  workload: 'tree' | 'decode';
  engine: 'itool' | 'llama.cpp';
  /** how the engine ran the workload */
  how: string;
  dtype: string;
  threads: number;
  branches: number;
  promptTokens: number;
  newTokens: number;
  seconds: number;
  tokensPerSecond: number;
  /** itool's tokens/s over this row's (llama.cpp rows) */
  itoolOver?: number;
  /** memory-bandwidth bound on tokens/s (weight bytes per step over the copy bandwidth) */
  boundTokensPerSecond: number;
  load1: number;
}

interface BenchShape {
  name: string;
  config: ModelConfig;
}

export const LLAMA_SHAPES: BenchShape[] = [
  { name: 'small', config: llamaConfig({}) },
  {
    name: 'qwen2.5-0.5b',
    config: llamaConfig({
      architecture: 'Qwen2ForCausalLM',
      vocabSize: 151936,
      hiddenSize: 896,
      intermediateSize: 4864,
      numLayers: 24,
      numHeads: 14,
      numKvHeads: 2,
      headDim: 64,
      attentionBias: true,
      ropeTheta: 1000000,
      rmsNormEps: 1e-6,
      maxPositionEmbeddings: 32768,
      bosTokenId: null,
      eosTokenId: [3],
    }),
  },
  {
    name: 'tiny',
    config: llamaConfig({ architecture: 'Qwen2ForCausalLM', vocabSize: 512, hiddenSize: 64, intermediateSize: 128, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, attentionBias: true }),
  },
];

/**
 * A byte-level BPE tokenizer.json of exactly V tokens (3 special, 256 bytes, merges of byte
 * pairs): the benchmark feeds token ids, so the tokenizer only has to be one llama.cpp loads.
 */
function writeBenchTokenizer(dir: string, V: number): void {
  const bytes: string[] = [];
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    bytes.push(printable ? String.fromCharCode(b) : '');
  }
  let n = 0;
  for (let b = 0; b < 256; b++) if (bytes[b] === '') bytes[b] = String.fromCharCode(256 + n++);
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
  const vocab: Record<string, number> = {};
  bytes.forEach((s, i) => (vocab[s] = i));
  const merges: string[] = [];
  let next = 256;
  for (let a = 0; a < 256 && next < V - specials.length; a++)
    for (let b = 0; b < 256 && next < V - specials.length; b++) {
      const t = bytes[a]! + bytes[b]!;
      if (vocab[t] !== undefined) continue;
      vocab[t] = next++;
      merges.push(`${bytes[a]} ${bytes[b]}`);
    }
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const added = specials.map((content, i) => ({ id: next + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  writeFileSync(
    join(dir, 'tokenizer.json'),
    JSON.stringify({
      version: '1.0',
      added_tokens: added,
      normalizer: null,
      pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Split', pattern: { Regex: split }, behavior: 'Isolated', invert: false }, bl] },
      post_processor: bl,
      decoder: bl,
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges },
    }),
  );
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, eos_token: '<|im_end|>', bos_token: null, pad_token: '<|endoftext|>' }));
}

/** Single-thread memcpy bandwidth, bytes read + written per second (best of 5 copies of `mib` MiB). */
export function copyBandwidth(mib = 256): number {
  const n = mib << 20;
  const a = Buffer.alloc(n, 1), b = Buffer.alloc(n);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    a.copy(b);
    best = Math.min(best, performance.now() - t0);
  }
  return (2 * n) / (best / 1000);
}

function weightBytes(c: ModelConfig, bytesPerValue: number): number {
  const H = c.hiddenSize, D = c.headDim, I = c.intermediateSize;
  const layer = H * c.numHeads * D * 2 + H * c.numKvHeads * D * 2 + 3 * H * I;
  return bytesPerValue * (c.numLayers * layer + c.vocabSize * H); // the LM head's matrix is read every step (the embedding lookup is one row)
}

interface Workloads {
  tree: { branches: number; promptTokens: number; newTokens: number };
  decode: { promptTokens: number; newTokens: number };
}

async function itoolSide(dir: string, c: ModelConfig, w: Workloads): Promise<{ tree: number; decode: number; lp0: number }> {
  const m = await loadModel(dir, { device: 'cpu' });
  try {
    const prompt = randomTokens(w.tree.promptTokens, c.vocabSize, 777, 3);
    const { lp0, seconds: tree, generated } = await timeTree(m, prompt, w.tree.branches, w.tree.newTokens);
    if (generated.some((n) => n !== w.tree.newTokens)) throw new Error('itool: a branch stopped early');
    const d = await m.cache(prompt.slice(0, w.decode.promptTokens));
    const t1 = performance.now();
    await m.generate([d], { maxTokens: w.decode.newTokens, temperature: 1, seed: 3 });
    const decode = (performance.now() - t1) / 1000;
    d.dispose();
    return { tree, decode, lp0 };
  } finally {
    m.dispose();
  }
}

type NodeLlamaCpp = typeof import('node-llama-cpp');

async function llamaSide(
  nlc: NodeLlamaCpp,
  gguf: string,
  c: ModelConfig,
  w: Workloads,
  threads: number,
  runPerSequence: boolean,
): Promise<{ perSequence: number | null; restored: number; decode: number; lp0: number; backend: string }> {
  const llama = await nlc.getLlama({ gpu: false, build: 'never', maxThreads: threads, logLevel: nlc.LlamaLogLevel.error, progressLogs: false });
  const model = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  const stateDir = mkdtempSync(join(tmpdir(), 'itool-bench-llama-state-'));
  try {
    const prompt = randomTokens(w.tree.promptTokens, c.vocabSize, 777, 3) as unknown as import('node-llama-cpp').Token[];
    const bias = new nlc.TokenBias(model.tokenizer);
    for (const t of [model.tokens.eos, model.tokens.eot, model.tokens.bos]) if (t !== null && t !== undefined) bias.set(t, 'never');
    // log p(prompt[1] | prompt[0]) with an f32 KV cache, to check the weights are the same
    let lp0: number;
    {
      const ctx = await model.createContext({ contextSize: 256, threads, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
      const seq = ctx.getSequence();
      const r = await seq.controlledEvaluate([[prompt[0]!, { generateNext: { probabilities: true } }]]);
      lp0 = Math.log(r[0]?.next?.probabilities?.get(prompt[1]!) ?? 0);
      await ctx.dispose();
    }
    const sample = { temperature: 1, topK: 0, topP: 1, minP: 0, tokenBias: bias };
    const take = async (seq: import('node-llama-cpp').LlamaContextSequence, tokens: import('node-llama-cpp').Token[], n: number, seed: number): Promise<number> => {
      let k = 0;
      for await (const _t of seq.evaluate(tokens, { ...sample, seed })) if (++k === n) break;
      return k;
    };
    const B = w.tree.branches, per = w.tree.promptTokens + w.tree.newTokens + 16;
    const ctx = await model.createContext({ sequences: B, contextSize: per, threads: { ideal: threads, min: threads } });
    let perSequence: number | null = null, restored: number;
    try {
      const seqs = Array.from({ length: B }, () => ctx.getSequence());
      // warm-up
      await take(seqs[0]!, prompt.slice(0, 8), 2, 9);
      await seqs[0]!.clearHistory();
      if (runPerSequence) {
        const t0 = performance.now();
        const got = await Promise.all(seqs.map((s, i) => take(s, prompt, w.tree.newTokens, 100 + i)));
        perSequence = (performance.now() - t0) / 1000;
        if (got.some((k) => k !== w.tree.newTokens)) throw new Error('llama.cpp: a sequence stopped early');
        for (const s of seqs) await s.clearHistory();
      }
      const t1 = performance.now();
      // the prompt but its last token, saved once and loaded into every other sequence; each
      // sequence then evaluates the last prompt token and samples from there
      await seqs[0]!.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
      const file = join(stateDir, 'prompt.state');
      await seqs[0]!.saveStateToFile(file);
      await Promise.all(seqs.slice(1).map((s) => s.loadStateFromFile(file, { acceptRisk: true })));
      const last = prompt.slice(-1);
      const got2 = await Promise.all(seqs.map((s, i) => take(s, last, w.tree.newTokens, 200 + i)));
      restored = (performance.now() - t1) / 1000;
      if (got2.some((k) => k !== w.tree.newTokens)) throw new Error('llama.cpp: a sequence stopped early (restored state)');
    } finally {
      await ctx.dispose();
    }
    const dctx = await model.createContext({ contextSize: w.decode.promptTokens + w.decode.newTokens + 16, threads: { ideal: threads, min: threads } });
    let decode: number;
    try {
      const seq = dctx.getSequence();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, w.decode.promptTokens - 1));
      const t0 = performance.now();
      await take(seq, [prompt[w.decode.promptTokens - 1]!], w.decode.newTokens, 7);
      decode = (performance.now() - t0) / 1000;
    } finally {
      await dctx.dispose();
    }
    return { perSequence, restored, decode, lp0, backend: `node-llama-cpp's ${llama.buildType} llama.cpp (ggml ${llama.llamaCppRelease.release}), ${llama.systemInfo.replace(/\s+\|\s*$/, '').replace(/\s+/g, ' ')}` };
  } finally {
    await model.dispose();
    await llama.dispose();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

function parseArgs(argv: string[]) {
  const o = { json: false, quick: false, shapes: ['small', 'qwen2.5-0.5b'], dtype: 'f32', perSequence: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--compare') {
      const v = argv[++i];
      if (v !== 'llama.cpp') throw new Error(`bench generate: --compare '${v ?? ''}' is not llama.cpp`);
    } else if (a === '--shape') {
      const v = argv[++i] ?? '';
      if (v === 'all') o.shapes = ['small', 'qwen2.5-0.5b'];
      else if (LLAMA_SHAPES.some((s) => s.name === v)) o.shapes = [v];
      else throw new Error(`bench generate --compare llama.cpp: unknown shape '${v}' (one of ${LLAMA_SHAPES.map((s) => s.name).join(', ')}, all)`);
    } else if (a === '--dtype') {
      const v = argv[++i] ?? '';
      if (!['f32', 'f16', 'bf16'].includes(v)) throw new Error(`bench generate --compare llama.cpp: --dtype '${v}' (known: f32, f16, bf16)`);
      o.dtype = v;
    } else if (a === '--prefill-per-sequence') o.perSequence = true;
    else if (a === '--no-prefill-per-sequence') o.perSequence = false;
    else if (a === '--help' || a === '-h') {
      process.stdout.write('itool bench generate --compare llama.cpp [--json] [--quick] [--shape small|qwen2.5-0.5b|all] [--dtype f32|f16|bf16] [--prefill-per-sequence]\n');
      process.exit(0);
    } else throw new Error(`bench generate --compare llama.cpp: unknown option ${a}`);
  }
  if (o.quick) o.shapes = ['tiny'];
  return o;
}

export function formatRows(rows: LlamaCompareRow[]): string {
  const head = ['shape', 'workload', 'engine', 'how', 'dtype', 'thr', 'B x prompt + new', 'seconds', 'tok/s', 'itool over', 'bandwidth bound tok/s', 'load'];
  const body = rows.map((r) => [
    r.shape,
    r.workload,
    r.engine,
    r.how,
    r.dtype,
    String(r.threads),
    `${r.branches} x ${r.promptTokens} + ${r.newTokens}`,
    r.seconds.toFixed(2),
    r.tokensPerSecond.toFixed(1),
    r.itoolOver !== undefined ? `${r.itoolOver.toFixed(2)}x` : '',
    r.boundTokensPerSecond.toFixed(0),
    r.load1.toFixed(2),
  ]);
  const wd = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (c: string[]) => c.map((x, i) => (i < 5 ? x.padEnd(wd[i]!) : x.padStart(wd[i]!))).join('  ');
  return [line(head), wd.map((x) => '-'.repeat(x)).join('  '), ...body.map(line)].join('\n');
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  let nlc: NodeLlamaCpp;
  try {
    nlc = await import('node-llama-cpp');
  } catch (e) {
    throw new Error(`bench generate --compare llama.cpp needs node-llama-cpp (a devDependency: npm ci, or npm i -D -E node-llama-cpp@3.21.1): ${(e as Error).message}`);
  }
  const threads = info().cpu.threads;
  const w: Workloads = o.quick
    ? { tree: { branches: 4, promptTokens: 16, newTokens: 4 }, decode: { promptTokens: 8, newTokens: 8 } }
    : { tree: { branches: 64, promptTokens: 512, newTokens: 50 }, decode: { promptTokens: 16, newTokens: 128 } };
  const bwMiB = o.quick ? 32 : 256;
  const bw = copyBandwidth(bwMiB);
  const rows: LlamaCompareRow[] = [];
  const notes: string[] = [
    `copy bandwidth ${(bw / 1e9).toFixed(1)} GB/s (one thread, memcpy of ${bwMiB} MiB, read + written bytes); ${cpus().length} cores, ${threads} threads for both engines`,
    'sampling: temperature 1 over the whole vocabulary in both (llama.cpp: topK 0, topP 1, minP 0, end-of-generation tokens banned)',
  ];
  let mismatch = false;
  for (const name of o.shapes) {
    const s = LLAMA_SHAPES.find((x) => x.name === name)!;
    const dir = mkdtempSync(join(tmpdir(), 'itool-bench-llama-'));
    try {
      const m0 = createModel(s.config, { seed: 1, device: 'cpu' });
      try {
        await m0.save(dir);
      } finally {
        m0.dispose();
      }
      writeBenchTokenizer(dir, s.config.vocabSize);
      const gguf = join(dir, `model-${o.dtype}.gguf`);
      await exportGguf({ model: dir, out: gguf, dtype: o.dtype });
      const it = await itoolSide(dir, s.config, w);
      const itLoad = loadavg()[0]!;
      const lc = await llamaSide(nlc, gguf, s.config, w, threads, o.perSequence);
      const lcLoad = loadavg()[0]!;
      const d = Math.abs(it.lp0 - lc.lp0);
      const tol = o.dtype === 'f32' ? 1e-4 : 5e-2;
      if (!(d <= tol)) {
        mismatch = true;
        notes.push(`${s.name}: the engines disagree on the weights: log p(prompt[1] | prompt[0]) itool ${it.lp0}, llama.cpp ${lc.lp0}`);
      } else notes.push(`${s.name}: same weights: log p(prompt[1] | prompt[0]) agrees to ${d.toExponential(1)}; ${lc.backend}`);
      const wbF32 = weightBytes(s.config, 4), wbGguf = weightBytes(s.config, o.dtype === 'f32' ? 4 : 2);
      const T = w.tree, D = w.decode;
      const treeTok = T.branches * T.newTokens;
      const base = { shape: s.name, threads };
      const itTree: LlamaCompareRow = { ...base, workload: 'tree', engine: 'itool', how: 'prompt prefilled once, KV cache forked', dtype: 'f32', branches: T.branches, promptTokens: T.promptTokens, newTokens: T.newTokens, seconds: it.tree, tokensPerSecond: treeTok / it.tree, boundTokensPerSecond: (T.branches * bw) / wbF32, load1: itLoad };
      const lcTree2: LlamaCompareRow = { ...base, workload: 'tree', engine: 'llama.cpp', how: 'prefill once, sequence state restored', dtype: o.dtype, branches: T.branches, promptTokens: T.promptTokens, newTokens: T.newTokens, seconds: lc.restored, tokensPerSecond: treeTok / lc.restored, boundTokensPerSecond: (T.branches * bw) / wbGguf, load1: lcLoad };
      lcTree2.itoolOver = itTree.tokensPerSecond / lcTree2.tokensPerSecond;
      const lcTree1: LlamaCompareRow[] = [];
      if (lc.perSequence !== null) {
        const r: LlamaCompareRow = { ...lcTree2, how: `prefill per sequence (${T.branches} sequences)`, seconds: lc.perSequence, tokensPerSecond: treeTok / lc.perSequence };
        r.itoolOver = itTree.tokensPerSecond / r.tokensPerSecond;
        lcTree1.push(r);
      }
      const itDec: LlamaCompareRow = { ...base, workload: 'decode', engine: 'itool', how: 'one sequence, decode only', dtype: 'f32', branches: 1, promptTokens: D.promptTokens, newTokens: D.newTokens, seconds: it.decode, tokensPerSecond: D.newTokens / it.decode, boundTokensPerSecond: bw / wbF32, load1: itLoad };
      const lcDec: LlamaCompareRow = { ...itDec, engine: 'llama.cpp', dtype: o.dtype, seconds: lc.decode, tokensPerSecond: D.newTokens / lc.decode, boundTokensPerSecond: bw / wbGguf, load1: lcLoad };
      lcDec.itoolOver = itDec.tokensPerSecond / lcDec.tokensPerSecond;
      const shapeRows = [itTree, ...lcTree1, lcTree2, itDec, lcDec];
      rows.push(...shapeRows);
      // each shape's rows as soon as they are measured (a long run keeps what it finished)
      process.stderr.write(formatRows(shapeRows) + '\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (o.json) process.stdout.write(JSON.stringify({ device: 'cpu', copyBandwidthBytesPerSecond: bw, rows, notes }, null, 2) + '\n');
  else process.stdout.write(formatRows(rows) + '\n' + notes.map((n) => `note: ${n}`).join('\n') + '\n');
  if (mismatch) process.exitCode = 1;
}
