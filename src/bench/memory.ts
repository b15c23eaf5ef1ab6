// itool bench memory [--json] [--shapes small,base,qwen2.5-0.5b] [--rows sft,simpo,search,generate]
//                    [--modes lora,full] [--configs before,planned] [--max-memory 3GB] [--steps N] [--quick]
//
// Measured peak memory against the memory plan (src/train/plan.ts), with tokens/s beside it.
// Each row runs in a child process of its own and reads that process's peak resident set
// (VmHWM of /proc/self/status: the peak of a long-lived process cannot be reset, so one
// process per row). Rows: a workload (SFT steps; SimPO steps; the tree search's generation:
// 64 branches forked off one 512-token prompt, 50 tokens each; generation: 8 prompts of 256
// tokens, 64 tokens each) on a shape (the `small` and `base` shapes of the other benches, and
// Qwen2.5-0.5B's: hidden 896, 24 layers, vocab 151,936, tied embeddings; random weights),
// LoRA rank 8 (q,k,v,o) or full, in two configurations:
//   before:  f32 frozen weights, every activation kept, micro-batches not split, the 1 GiB block cache;
//   planned: the plan's choices for the budget (--max-memory, default 3GB), its KV pool cap and
//            log-prob chunk set on the engine; the random weights
//            stand for a bf16 checkpoint (as Qwen2.5's is), so LoRA rows plan bf16 frozen weights.
// SFT data: samples of 128-1024 random tokens (the last half is the answer) packed into
// 4096-token micro-batches, one per step, so that steps differ in length as real ones do;
// SimPO: pairs of a 256-640-token context and 24-64-token steps. Tokens/s: the steps after
// the first (which allocates the gradients and AdamW state), every position counted; for
// generation, generated tokens over the whole call (prefill included).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { llamaConfig } from '../engine/config.js';
import { createModel, type NativeModel } from '../engine/model.js';
import type { ModelConfig } from '../engine/model-types.js';
import { loadNative } from '../engine/native.js';
import { nativePreferenceLoss } from '../train/losses.js';
import { preferenceOptions } from '../train/options.js';
import { packGroups, sftSequence, type TrainSequence } from '../train/pack.js';
import { pairSequences, preferenceForwardBackward } from '../train/preference.js';
import { sftForwardBackward } from '../train/sft.js';
import { planMemory, type MemoryPlan, type PlanRequest } from '../train/plan.js';
import { RUNTIME_BASE } from '../train/plan-cli.js';
import { formatBytes, parseSize } from '../train/size.js';
import { Rng } from '../train/rng.js';
import { SHAPES } from './train_compare.js';
import { LLAMA_SHAPES } from './generate_llama.js';

export type Workload = 'sft' | 'simpo' | 'search' | 'generate';
export type Mode = 'lora' | 'full';
export type Setting = 'before' | 'planned';

export interface MemoryRowSpec {
  shape: string;
  workload: Workload;
  mode: Mode;
  setting: Setting;
  steps: number;
  batchTokens: number;
  budget: number;
}

export interface MemoryRow extends MemoryRowSpec {
  weightsDtype: string;
  recompute: boolean;
  microTokens: number;
  cacheCapMiB: number;
  /** what the plan expects (bytes) and whether it fits the budget */
  plannedPeak: number;
  fits: boolean;
  /** VmHWM of the row's process (null: not run, its plan is over --skip-over) */
  measuredPeak: number | null;
  /** measured / planned */
  ratio: number | null;
  tokensPerSecond: number | null;
  /** the engine's own allocator peak (bytes handed out) when the addon has the counter; null otherwise */
  enginePeak: number | null;
  plannedEnginePeak: number;
  /** bf16 asked for but the addon ignores it (older build): the row ran f32 */
  note: string | null;
}

const LORA = { rank: 8, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] as Array<'q_proj' | 'k_proj' | 'v_proj' | 'o_proj'> };

export function shapeConfig(name: string): ModelConfig {
  if (name === 'qwen2.5-0.5b') return { ...LLAMA_SHAPES.find((s) => s.name === name)!.config, tieWordEmbeddings: true };
  const s = SHAPES.find((x) => x.name === name);
  if (!s) throw new Error(`bench memory: unknown shape '${name}' (small, base, qwen2.5-0.5b, tiny)`);
  return s.config;
}

const SEARCH = { branches: 64, promptTokens: 512, newTokens: 50 };
const GENERATE = { sequences: 8, promptTokens: 256, newTokens: 64 };
const quickScale = (quick: boolean) => (quick ? 8 : 1);
const div = (n: number, q: number): number => Math.max(1, Math.floor(n / q));

/** The SFT steps of a row: one micro-batch of at most batchTokens per step (samples 128-1024 tokens). */
function sftSteps(V: number, batchTokens: number, steps: number, seed = 5): TrainSequence[][] {
  const rng = new Rng(seed);
  const maxLen = Math.min(1024, batchTokens);
  const lo = Math.max(4, Math.floor(maxLen / 8));
  const seqs: TrainSequence[] = [];
  let total = 0;
  while (total < batchTokens * (steps + 1)) {
    const n = lo + rng.int(maxLen - lo + 1);
    const ids = Array.from({ length: n }, () => 3 + rng.int(V - 3));
    seqs.push(sftSequence({ ids, mask: ids.map((_, i) => (i >= n / 2 ? 1 : 0)) }));
    total += n;
  }
  const groups = packGroups(seqs.map((s) => s.tokens.length), seqs.map((_, i) => i), batchTokens);
  return groups.slice(0, steps).map((g) => g.map((i) => seqs[i]!));
}

function pairsFor(V: number, batchTokens: number, seed = 9) {
  const rng = new Rng(seed);
  const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(V - 3));
  const out = [];
  const scale = Math.max(1, Math.floor(4096 / batchTokens));
  for (let i = 0; i < 64; i++)
    out.push({ promptIds: ids(Math.floor((256 + rng.int(385)) / scale)), prefixIds: ids(8), chosenIds: ids(24 + rng.int(41)), rejectedIds: ids(24 + rng.int(41)) });
  return out;
}

/** The plan of a row (the parent makes it, the child runs with its choices). */
export function rowPlan(spec: MemoryRowSpec, quick: boolean): MemoryPlan {
  const config = shapeConfig(spec.shape);
  const before = spec.setting === 'before';
  const maxSequence = spec.workload === 'simpo' ? spec.batchTokens : Math.min(1024, spec.batchTokens);
  const q = quickScale(quick);
  const req: PlanRequest = {
    config,
    checkpointDtype: 'bf16',
    lora: spec.mode === 'lora' ? { rank: LORA.rank, targets: LORA.targetModules } : null,
    weightsDtype: before ? 'f32' : spec.mode === 'full' ? 'f32' : 'auto',
    recompute: before ? false : 'auto',
    microTokens: before ? 0 : 'auto',
    batchTokens: spec.batchTokens,
    maxSequence,
    workloads: {
      sft: spec.workload === 'sft',
      preference: spec.workload === 'simpo',
      search: spec.workload === 'search' ? { branches: div(SEARCH.branches, q), promptTokens: div(SEARCH.promptTokens, q), newTokens: div(SEARCH.newTokens, q) } : null,
      generate: spec.workload === 'generate' ? { sequences: GENERATE.sequences, promptTokens: div(GENERATE.promptTokens, q), newTokens: div(GENERATE.newTokens, q) } : null,
    },
    budget: spec.budget,
    runtime: RUNTIME_BASE,
    cacheCap: before ? 1024 * 2 ** 20 : 'auto',
    load: 'random',
  };
  return planMemory(req, false);
}

function vmHwm(): number {
  const m = /^VmHWM:\s+(\d+)\s*kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

/** whether the loaded addon has the memory knobs (an older build, compared against, has not) */
function hasLimits(m: NativeModel): boolean {
  try {
    m.memoryLimits();
    return true;
  } catch {
    return false;
  }
}

/** One row, in this process (the child): returns tokens/s and the engine's counters. */
export async function runRow(spec: MemoryRowSpec, choices: MemoryPlan['choices'], quick: boolean): Promise<{ tokensPerSecond: number; enginePeak: number | null; note: string | null }> {
  const config = shapeConfig(spec.shape);
  const frozen = spec.mode === 'lora';
  let note: string | null = null;
  const m = createModel(config, { seed: 1, device: 'cpu', recompute: choices.recompute, ...(choices.weightsDtype === 'bf16' ? { dtype: 'bf16' } : {}) } as Parameters<typeof createModel>[1]) as NativeModel;
  const wd = (m as unknown as { weightDtype?: string }).weightDtype;
  if (choices.weightsDtype === 'bf16' && wd !== 'bf16') note = 'bf16 asked; this build keeps f32 weights';
  // planned rows run under the plan's engine knobs (the KV pool's cap, the log-prob chunk); 'before' under the engine's defaults
  if (spec.setting === 'planned' && choices.kvCacheBlocks > 0) {
    if (hasLimits(m)) m.setMemoryLimits({ kvCacheBlocks: choices.kvCacheBlocks, logprobChunkRows: choices.logprobChunkRows });
    else note = (note ? note + '; ' : '') + 'this build has no setMemoryLimits: engine defaults';
  }
  const q = quickScale(quick);
  try {
    if (frozen) m.addLora({ ...LORA, seed: 2 });
    let tokens = 0;
    let seconds = 0;
    if (spec.workload === 'sft') {
      const steps = sftSteps(config.vocabSize, spec.batchTokens, spec.steps);
      for (let k = 0; k < steps.length; k++) {
        const micro = choices.microTokens > 0 ? packGroups(steps[k]!.map((s) => s.tokens.length), steps[k]!.map((_, i) => i), choices.microTokens).map((g) => g.map((i) => steps[k]![i]!)) : [steps[k]!];
        const t0 = performance.now();
        m.zeroGrad();
        const r = await sftForwardBackward(m, micro);
        await m.step({ lr: 1e-5, maxGradNorm: 1 });
        if (k > 0 || steps.length === 1) {
          seconds += (performance.now() - t0) / 1000;
          tokens += r.tokens;
        }
      }
    } else if (spec.workload === 'simpo') {
      const pairs = pairsFor(config.vocabSize, spec.batchTokens);
      const ps = pairs.map(pairSequences);
      const o = preferenceOptions({ loss: 'simpo' });
      const cost = ps.map((s) => s.chosen.tokens.length + s.rejected.tokens.length);
      const groups = packGroups(cost, ps.map((_, i) => i), spec.batchTokens).slice(0, spec.steps);
      for (let k = 0; k < groups.length; k++) {
        const micro = choices.microTokens > 0 ? packGroups(cost, groups[k]!, choices.microTokens) : [groups[k]!];
        const t0 = performance.now();
        m.zeroGrad();
        const s = await preferenceForwardBackward(m, micro, ps, o, nativePreferenceLoss, null);
        await m.step({ lr: 1e-6, maxGradNorm: 1 });
        if (k > 0 || groups.length === 1) {
          seconds += (performance.now() - t0) / 1000;
          tokens += s.tokens;
        }
      }
    } else {
      const rng = new Rng(4);
      const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(config.vocabSize - 3));
      const t0 = performance.now();
      let gen = 0;
      if (spec.workload === 'search') {
        const root = await m.cache(ids(div(SEARCH.promptTokens, q)));
        const branches = Array.from({ length: div(SEARCH.branches, q) }, () => root.fork());
        const g = await m.generate(branches, { maxTokens: div(SEARCH.newTokens, q), temperature: 1, seed: 1 });
        gen = g.reduce((n, x) => n + x.tokens.length, 0);
        for (const c of [root, ...branches]) c.dispose();
      } else {
        const caches = [];
        for (let b = 0; b < GENERATE.sequences; b++) caches.push(await m.cache(ids(div(GENERATE.promptTokens, q))));
        const g = await m.generate(caches, { maxTokens: div(GENERATE.newTokens, q), temperature: 1, seed: 1 });
        gen = g.reduce((n, x) => n + x.tokens.length, 0);
        for (const c of caches) c.dispose();
      }
      seconds = (performance.now() - t0) / 1000;
      tokens = gen;
    }
    const native = loadNative();
    const stats = typeof native.allocatorStats === 'function' ? (native.allocatorStats() as { peak: number }) : null;
    return { tokensPerSecond: tokens / seconds, enginePeak: stats ? stats.peak : null, note };
  } finally {
    m.dispose();
  }
}

interface Opts {
  json: boolean;
  quick: boolean;
  shapes: string[];
  rows: Workload[];
  modes: Mode[];
  settings: Setting[];
  steps: number;
  batchTokens: number;
  budget: number;
  /** rows planned above this are not run (the machine's limit per process) */
  skipOver: number;
  child: string | null;
}

function list<T extends string>(v: string | undefined, allowed: readonly T[], flag: string): T[] {
  const xs = (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
  for (const x of xs) if (!allowed.includes(x as T)) throw new Error(`bench memory: ${flag} takes ${allowed.join(', ')}; got '${x}'`);
  if (xs.length === 0) throw new Error(`bench memory: ${flag} needs a value`);
  return xs as T[];
}

function parseArgs(argv: string[]): Opts {
  const o: Opts = { json: false, quick: false, shapes: ['small', 'base', 'qwen2.5-0.5b'], rows: ['sft', 'simpo', 'search', 'generate'], modes: ['lora', 'full'], settings: ['before', 'planned'], steps: 3, batchTokens: 4096, budget: 3e9, skipOver: Infinity, child: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') o.json = true;
    else if (a === '--quick') o.quick = true;
    else if (a === '--shapes') o.shapes = list(argv[++i], ['small', 'base', 'qwen2.5-0.5b', 'tiny'], '--shapes');
    else if (a === '--rows') o.rows = list(argv[++i], ['sft', 'simpo', 'search', 'generate'], '--rows');
    else if (a === '--modes') o.modes = list(argv[++i], ['lora', 'full'], '--modes');
    else if (a === '--configs') o.settings = list(argv[++i], ['before', 'planned'], '--configs');
    else if (a === '--steps') o.steps = Number(argv[++i]);
    else if (a === '--batch-tokens') o.batchTokens = Number(argv[++i]);
    else if (a === '--max-memory') o.budget = parseSize(argv[++i], '--max-memory');
    else if (a === '--skip-over') o.skipOver = parseSize(argv[++i], '--skip-over');
    else if (a === '--child') o.child = argv[++i] ?? null;
    else if (a === '--help' || a === '-h') {
      process.stdout.write(
        'itool bench memory [--json] [--quick] [--shapes small,base,qwen2.5-0.5b,tiny] [--rows sft,simpo,search,generate] [--modes lora,full] [--configs before,planned] [--max-memory 3GB] [--skip-over SIZE] [--steps N] [--batch-tokens N]\n',
      );
      process.exit(0);
    } else throw new Error(`bench memory: unknown option ${a}`);
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error('bench memory: --steps must be a positive integer');
  if (!Number.isInteger(o.batchTokens) || o.batchTokens < 16) throw new Error('bench memory: --batch-tokens must be an integer >= 16');
  if (o.quick) {
    if (!argv.includes('--shapes')) o.shapes = ['tiny'];
    if (!argv.includes('--batch-tokens')) o.batchTokens = 256;
    if (!argv.includes('--steps')) o.steps = 2;
  }
  return o;
}

export async function main(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  if (o.child) {
    const { spec, choices, quick } = JSON.parse(o.child) as { spec: MemoryRowSpec; choices: MemoryPlan['choices']; quick: boolean };
    const r = await runRow(spec, choices, quick);
    process.stdout.write(JSON.stringify({ ...r, measuredPeak: vmHwm() }) + '\n');
    return;
  }
  const rows: MemoryRow[] = [];
  if (!o.json) process.stdout.write(header() + '\n');
  for (const shape of o.shapes)
    for (const mode of o.modes)
      for (const workload of o.rows) {
        // generation and the search do not train: full and LoRA differ only in the frozen weights' dtype
        for (const setting of o.settings) {
          const spec: MemoryRowSpec = { shape, workload, mode, setting, steps: o.steps, batchTokens: o.batchTokens, budget: o.budget };
          const plan = rowPlan(spec, o.quick);
          const base = {
            ...spec,
            weightsDtype: plan.choices.weightsDtype,
            recompute: plan.choices.recompute,
            microTokens: plan.choices.microTokens,
            cacheCapMiB: plan.choices.cacheCap / 2 ** 20,
            plannedPeak: plan.peak,
            fits: plan.fits,
            plannedEnginePeak: plan.enginePeakLive,
          };
          if (plan.peak > o.skipOver) {
            const row: MemoryRow = { ...base, measuredPeak: null, ratio: null, tokensPerSecond: null, enginePeak: null, note: `not run: planned over --skip-over ${formatBytes(o.skipOver)}` };
            rows.push(row);
            (o.json ? process.stderr : process.stdout).write(line(row) + '\n');
            continue;
          }
          const env: NodeJS.ProcessEnv = { ...process.env, ITOOL_CPU_CACHE_MB: String(plan.choices.cacheCap / 2 ** 20) };
          const r = spawnSync(process.execPath, [process.argv[1]!, 'bench', 'memory', '--child', JSON.stringify({ spec, choices: plan.choices, quick: o.quick })], { encoding: 'utf8', env, maxBuffer: 1 << 24 });
          if (r.status !== 0) throw new Error(`bench memory ${shape} ${workload} ${mode} ${setting}: child failed (${r.status ?? r.signal}): ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
          const c = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { tokensPerSecond: number; enginePeak: number | null; note: string | null; measuredPeak: number };
          const row: MemoryRow = { ...base, measuredPeak: c.measuredPeak, ratio: c.measuredPeak / plan.peak, tokensPerSecond: c.tokensPerSecond, enginePeak: c.enginePeak, note: c.note };
          rows.push(row);
          // with --json each row still shows on stderr as it is measured (a long run keeps what it finished)
          (o.json ? process.stderr : process.stdout).write(line(row) + '\n');
        }
      }
  if (o.json) process.stdout.write(JSON.stringify({ device: 'cpu', threads: process.env.ITOOL_THREADS ?? null, budget: o.budget, batchTokens: o.batchTokens, rows }, null, 2) + '\n');
}

function header(): string {
  return `${'shape'.padEnd(13)}${'row'.padEnd(9)}${'mode'.padEnd(5)}${'config'.padEnd(8)}${'weights'.padEnd(8)}${'recomp'.padEnd(7)}${'micro'.padStart(6)}${'cache'.padStart(6)}  ${'planned'.padStart(10)}${'measured'.padStart(10)}${'ratio'.padStart(7)}${'engine peak'.padStart(23)}${'tok/s'.padStart(9)}`;
}

function line(r: MemoryRow): string {
  const eng = r.enginePeak === null ? '-' : `${formatBytes(r.enginePeak)}/${formatBytes(r.plannedEnginePeak)}`;
  return (
    `${r.shape.padEnd(13)}${r.workload.padEnd(9)}${r.mode.padEnd(5)}${r.setting.padEnd(8)}${r.weightsDtype.padEnd(8)}${(r.recompute ? 'on' : 'off').padEnd(7)}${String(r.microTokens || '-').padStart(6)}${String(r.cacheCapMiB).padStart(6)}  ` +
    `${formatBytes(r.plannedPeak).padStart(10)}${(r.measuredPeak === null ? '-' : formatBytes(r.measuredPeak)).padStart(10)}${(r.ratio === null ? '-' : r.ratio.toFixed(2)).padStart(7)}${eng.padStart(23)}${(r.tokensPerSecond === null ? '-' : r.tokensPerSecond.toFixed(0)).padStart(9)}` +
    `${r.fits ? '' : '  (over budget)'}${r.note ? `  [${r.note}]` : ''}`
  );
}
