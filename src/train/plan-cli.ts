// The memory plan on the command line: the options every long run shares (--max-memory,
// --weights-dtype, --recompute/--no-recompute, --micro-tokens), the plan made from a model
// directory's config.json before anything heavy is loaded, its table, and the error of a run
// that cannot fit. `itool plan`, `itool sft`, `itool prefer` and `itool train` use it; `itool generate`,
// `itool score` and `itool eval --model` use planInference (weights' dtype and budget only).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { adapterChain, isAdapterDir, modelFilesDir } from '../engine/adapter.js';
import { resolveDevice, type DeviceRequest } from '../engine/engine.js';
import { parseHfConfig } from '../engine/config.js';
import type { MemoryLimits, ModelConfig } from '../engine/model-types.js';
import { planMemory, weightsBytes, type CheckpointDtype, type MemoryPlan, type PlanRequest } from './plan.js';
import type { LoraShape, WeightsDtype } from './plan-memory.js';
import { formatBytes, memoryBudget } from './size.js';

/** The memory flags of a command. */
export function memoryOptions(cmd: Command): Command {
  return cmd
    .option('--max-memory <size>', 'memory budget of the run: 8GB (1e9 bytes), 8G or 8GiB (2^30), 512MiB, or bytes (default: 80% of MemAvailable)')
    .option('--weights-dtype <dtype>', "frozen weights in memory: 'auto' (default: bf16 when the checkpoint is bf16, or when f32 would not fit), 'f32' or 'bf16'")
    .option('--recompute', 'recompute activations in backward (default: when keeping them does not fit)')
    .option('--no-recompute', 'keep every layer\'s activations (default: chosen from the budget)')
    .option('--micro-tokens <n>', "tokens per micro-batch run at once ('auto', default: chosen from the budget; 0: no split); the step's samples and result are the same");
}

/** The memory flags of a command that loads a model only to run it (generate, score, eval --model). */
export function inferenceMemoryOptions(cmd: Command): Command {
  return cmd
    .option('--max-memory <size>', 'memory budget: 8GB (1e9 bytes), 8G or 8GiB (2^30), 512MiB, or bytes (default: 80% of MemAvailable); checked before the weights are loaded')
    .option('--weights-dtype <dtype>', "weights in memory: 'auto' (default: bf16 when the checkpoint is bf16 and no adapter is merged into it, or when f32 would not fit), 'f32' or 'bf16'");
}

export interface MemoryFlags {
  maxMemory?: string;
  weightsDtype?: string;
  recompute?: boolean;
  microTokens?: string | number;
}

/** Bytes of the process outside the engine (measured, see README "Memory"): node with the addon. */
export const RUNTIME_BASE = 64 * 2 ** 20;
/** The tokenizer in memory per byte of tokenizer.json (measured on Qwen2.5's: 130 MB for 11.4 MB). */
export const TOKENIZER_FACTOR = 12;

export class PlanError extends Error {
  constructor(
    message: string,
    readonly plan: MemoryPlan | null,
  ) {
    super(message);
    this.name = 'PlanError';
  }
}

function fileSize(f: string): number {
  try {
    return statSync(f).size;
  } catch {
    return 0;
  }
}

/** node + addon + tokenizer (+ data files held as JS objects: 3x their size) */
export function runtimeBytes(filesDir: string | null, dataFiles: readonly string[] = []): number {
  const tok = filesDir ? fileSize(join(filesDir, 'tokenizer.json')) : 0;
  return RUNTIME_BASE + TOKENIZER_FACTOR * tok + 3 * dataFiles.reduce((n, f) => n + fileSize(f), 0);
}

/** The checkpoint's dtype from config.json's torch_dtype, else the first safetensors header (read in JS). */
export function checkpointDtype(dir: string, json: Record<string, unknown>): CheckpointDtype {
  const t = json.torch_dtype ?? json.dtype;
  if (t === 'bfloat16') return 'bf16';
  if (t === 'float16') return 'f16';
  if (t === 'float32') return 'f32';
  return headerDtype(dir);
}

/** The dtype of the first weight in model.safetensors' header (8-byte length + JSON; the values are not read). */
function headerDtype(dir: string): CheckpointDtype {
  let fd: number | null = null;
  try {
    const f = join(dir, 'model.safetensors');
    if (!existsSync(f)) return null;
    fd = openSync(f, 'r');
    const len = Buffer.alloc(8);
    if (readSync(fd, len, 0, 8, 0) !== 8) return null;
    const n = Number(len.readBigUInt64LE(0));
    if (!(n > 0 && n < 2 ** 26)) return null;
    const head = Buffer.alloc(n);
    if (readSync(fd, head, 0, n, 8) !== n) return null;
    const j = JSON.parse(head.toString('utf8')) as Record<string, { dtype?: string }>;
    const first = Object.entries(j).find(([k]) => k !== '__metadata__')?.[1]?.dtype;
    return first === 'BF16' ? 'bf16' : first === 'F16' ? 'f16' : first === 'F32' ? 'f32' : null;
  } catch {
    return null; // the engine's load names what is wrong with the file; the plan only reads its header
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** config.json of a model (or an adapter's base) directory, parsed; no weight is read. */
export function modelConfigOf(modelDir: string): { config: ModelConfig; dtype: CheckpointDtype; filesDir: string } {
  if (!existsSync(modelDir)) throw new Error(`--model ${modelDir}: no such directory`);
  const filesDir = modelFilesDir(modelDir);
  const where = join(filesDir, 'config.json');
  if (!existsSync(where)) throw new Error(`--model: ${modelDir} is not a model directory (no config.json${isAdapterDir(modelDir) ? ` in its base ${filesDir}` : ''})`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(where, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
  }
  return { config: parseHfConfig(json, where), dtype: checkpointDtype(filesDir, json), filesDir };
}

function weightsDtypeOf(v: unknown): 'auto' | WeightsDtype {
  const d = v ?? 'auto';
  if (d !== 'auto' && d !== 'f32' && d !== 'bf16') throw new Error(`--weights-dtype must be auto, f32 or bf16, got '${String(d)}'`);
  return d;
}

export function microTokensOf(v: unknown): 'auto' | number {
  if (v === undefined || v === 'auto') return 'auto';
  const n = typeof v === 'number' ? v : /^\d+$/.test(String(v)) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 0) throw new Error(`--micro-tokens must be 'auto' or an integer >= 0, got '${String(v)}'`);
  return n;
}

export interface RunShape {
  modelDir: string;
  lora: LoraShape | null;
  batchTokens: number;
  maxSequence: number;
  workloads: PlanRequest['workloads'];
  dataFiles?: readonly string[];
}

/** The plan of a run from its flags; throws PlanError (before anything heavy is loaded) when it cannot fit. */
export function planRun(flags: MemoryFlags, run: RunShape): MemoryPlan {
  const budget = memoryBudget(flags.maxMemory);
  const { config, dtype, filesDir } = modelConfigOf(run.modelDir);
  const req: PlanRequest = {
    config,
    checkpointDtype: dtype,
    lora: run.lora,
    weightsDtype: weightsDtypeOf(flags.weightsDtype),
    recompute: flags.recompute === undefined ? 'auto' : flags.recompute,
    microTokens: microTokensOf(flags.microTokens),
    batchTokens: run.batchTokens,
    maxSequence: run.maxSequence > 0 ? Math.min(run.maxSequence, run.batchTokens) : run.batchTokens,
    workloads: run.workloads,
    budget: budget.bytes,
    runtime: runtimeBytes(filesDir, run.dataFiles ?? []),
    cacheCap: envCacheCap(),
  };
  const plan = planMemory(req);
  plan.budgetSource = budget.source;
  if (!plan.fits) throw new PlanError(planErrorText(req, plan), plan);
  return plan;
}

function both(n: number): string {
  return `${formatBytes(n)} (${n} bytes)`;
}

/** The error of a plan that does not fit: what it needs, what there is, what would fit. */
export function planErrorText(req: PlanRequest, plan: MemoryPlan): string {
  const w = weightsBytes(req.config, plan.choices.weightsDtype);
  const lines: string[] = [];
  const training = !!(req.workloads.sft || req.workloads.preference);
  const minWeights = Math.min(w, training && !req.lora ? w : weightsBytes(req.config, 'bf16'));
  const dt = plan.choices.weightsDtype === 'f32' && minWeights < w ? 'in bf16' : plan.choices.weightsDtype;
  if (minWeights > req.budget) lines.push(`the model's weights alone need ${both(minWeights)} (${dt}), more than the budget of ${both(req.budget)}`);
  else if (minWeights + req.runtime > req.budget)
    lines.push(`the model's weights alone need ${both(minWeights)} (${dt}) and the process around them (node, tokenizer, data) ${both(req.runtime)}: more than the budget of ${both(req.budget)}`);
  else lines.push(`this run needs ${both(plan.peak)} at its peak (with the choices that need the least), the budget is ${both(req.budget)}`);
  lines.push(...formatPlan(plan).split('\n').map((l) => '  ' + l));
  if (plan.advice.length) {
    lines.push('what would fit:');
    for (const a of plan.advice) lines.push(`  ${a}`);
  }
  return `memory plan: ${lines.join('\n')}`;
}

const LABELS: Array<[keyof MemoryPlan['categories'], string]> = [
  ['weights', 'weights'],
  ['adapters', 'LoRA adapters'],
  ['gradients', 'gradients (f32)'],
  ['optimizer', 'AdamW state (2 x f32)'],
  ['activations', 'activations kept for backward'],
  ['temporaries', 'temporaries (layer, attention)'],
  ['logprob', 'log-prob scratch'],
  ['kvCache', 'KV cache'],
  ['allocatorCache', 'allocator block cache'],
  ['loading', 'loading (file pages, staging)'],
  ['runtime', 'runtime (node, tokenizer, data)'],
];

/** The plan as a table: bytes by category at the expected peak, the choices, the peak and the budget. */
export function formatPlan(p: MemoryPlan): string {
  const rows = LABELS.map(([k, label]) => [label, formatBytes(p.categories[k]), String(p.categories[k])]);
  rows.push(['expected peak', formatBytes(p.peak), String(p.peak)]);
  rows.push(['peak if batch lengths vary (block cache full)', formatBytes(p.worstPeak), String(p.worstPeak)]);
  rows.push(['budget' + (p.budgetSource ? ` (${p.budgetSource})` : ''), formatBytes(p.budget), String(p.budget)]);
  const w0 = Math.max(...rows.map((r) => r[0]!.length)), w1 = Math.max(...rows.map((r) => r[1]!.length)), w2 = Math.max(...rows.map((r) => r[2]!.length));
  const out = rows.map((r) => `${r[0]!.padEnd(w0)}  ${r[1]!.padStart(w1)}  ${r[2]!.padStart(w2)} B`);
  out.splice(LABELS.length, 0, '-'.repeat(w0 + w1 + w2 + 6));
  const c = p.choices;
  out.push(
    `choices: weights ${c.weightsDtype}, recompute ${c.recompute ? 'on' : 'off'}, micro-batch ${c.microTokens > 0 ? `${c.microTokens} tokens` : 'not split'}, allocator cache cap ${c.cacheCap / 2 ** 20} MiB, KV pool cap ${c.kvCacheBlocks} blocks, log-prob chunk ${c.logprobChunkRows > 0 ? `${c.logprobChunkRows} rows` : "the backend's"}`,
  );
  for (const r of c.reasons) out.push(`  ${r}`);
  out.push(`peak by phase: ${p.phases.map((x) => `${x.phase} ${formatBytes(x.engine + p.categories.runtime)}`).join(', ')}; parameters ${p.parameters.base} (trainable ${p.parameters.trainable})`);
  return out.join('\n');
}

/** The plan's JSON (itool plan --json). */
export function planJson(p: MemoryPlan): Record<string, unknown> {
  return { ...p };
}

/** ITOOL_CPU_CACHE_MB as an earlier plan of this process set it (not the user's) */
let capSetByPlan: string | null = null;

/** The block cache cap the user set (ITOOL_CPU_CACHE_MB, kept by applyPlanEnvironment), else 'auto'. */
function envCacheCap(): 'auto' | number {
  const e = process.env.ITOOL_CPU_CACHE_MB;
  return e !== undefined && e !== capSetByPlan && /^\d+$/.test(e) ? Number(e) * 2 ** 20 : 'auto';
}

/**
 * Puts the plan's allocator choice in force: the block cache cap is read by the engine at its
 * first allocation (ITOOL_CPU_CACHE_MB), so this runs before the model is loaded. A cap the user
 * set in the environment is kept (and planned with).
 */
export function applyPlanEnvironment(p: MemoryPlan): void {
  const e = process.env.ITOOL_CPU_CACHE_MB;
  if (e === undefined || e === capSetByPlan) process.env.ITOOL_CPU_CACHE_MB = capSetByPlan = String(Math.floor(p.choices.cacheCap / 2 ** 20));
}

/** The engine knobs of a plan (model.setMemoryLimits / loadModel's limits). */
export function planLimits(p: MemoryPlan): MemoryLimits {
  return { kvCacheBlocks: p.choices.kvCacheBlocks, logprobChunkRows: p.choices.logprobChunkRows };
}

/** The flags that shape a planned run (itool plan; sft, prefer and train pass theirs). */
export interface ShapeFlags {
  for?: string;
  loss?: string;
  loraRank?: number;
  loraTargets?: string;
  batchTokens?: number;
  maxLength?: number;
  batchSize?: number;
  maxTokens?: number;
  maxDepth?: number;
  data?: string[];
}

const DEFAULT_TARGETS = ['q_proj', 'k_proj', 'v_proj', 'o_proj'];

/** LoRA of the run: --lora-rank/--lora-targets, else the adapter directory's adapter_config.json, else none. */
export function loraShapeOf(f: { loraRank?: number; loraTargets?: string | string[] }, adapterDir?: string): LoraShape | null {
  if (f.loraRank !== undefined) {
    if (!(Number.isInteger(f.loraRank) && f.loraRank >= 1)) throw new Error(`--lora-rank must be an integer >= 1, got ${f.loraRank}`);
    const t = f.loraTargets === undefined ? DEFAULT_TARGETS : Array.isArray(f.loraTargets) ? f.loraTargets : f.loraTargets.split(',').map((x) => x.trim());
    return { rank: f.loraRank, targets: t };
  }
  if (adapterDir && existsSync(join(adapterDir, 'adapter_config.json'))) {
    const a = JSON.parse(readFileSync(join(adapterDir, 'adapter_config.json'), 'utf8')) as { r?: number; target_modules?: string[] };
    if (typeof a.r === 'number') return { rank: a.r, targets: a.target_modules ?? DEFAULT_TARGETS };
  }
  return null;
}

/** The workloads of `itool train | sft | prefer` with the trainers' and the search's defaults. */
export function runShapeOf(what: 'train' | 'sft' | 'prefer', f: ShapeFlags & { model: string }, lora: LoraShape | null): RunShape {
  const batchTokens = f.batchTokens ?? 4096;
  const maxLength = f.maxLength ?? 2048;
  const loss = f.loss ?? 'simpo';
  const search = what === 'train' ? { branches: f.batchSize ?? 64, promptTokens: Math.min(maxLength, 2048), newTokens: (f.maxTokens ?? 50) * (f.maxDepth ?? 3) } : null;
  return {
    modelDir: f.model,
    lora,
    batchTokens,
    maxSequence: maxLength,
    dataFiles: f.data ?? [],
    workloads: {
      sft: what !== 'prefer',
      preference: what !== 'sft',
      search,
      // perplexity selection (train: 8192-token batches); the DPO/IPO reference sums (batchTokens)
      scoring: what === 'train' ? { batchTokens: 8192 } : what === 'prefer' && (loss === 'dpo' || loss === 'ipo') ? { batchTokens } : null,
    },
  };
}

/** What `itool train`'s plan reads of the resolved pipeline config (structurally; train does not import pipeline). */
export interface LoopShape {
  recompute?: boolean;
  scoreBatchTokens: number;
  sft: { batchTokens?: number; maxLength?: number; microTokens?: number };
  preference: { loss?: string; batchTokens?: number };
  search: { batchSize: number; maxTokens: number; maxDepth: number };
}

/**
 * The plan of `itool train` (warm-up SFT, scoring, the search, preference steps) on the CPU, printed
 * with `log` before the tokenizer or any weight is loaded; null on CUDA. Throws PlanError when the
 * run cannot fit.
 */
export function planLoop(flags: MemoryFlags, device: string, config: LoopShape, start: { dir: string; lora: { rank: number; targetModules: readonly string[] } | null }, dataFiles: readonly string[], log: (text: string) => void): MemoryPlan | null {
  if (resolveDevice(device as DeviceRequest) !== 'cpu') return null;
  const lora = start.lora ? { rank: start.lora.rank, targets: start.lora.targetModules } : null;
  const shape = runShapeOf(
    'train',
    { model: start.dir, batchTokens: config.sft.batchTokens, maxLength: config.sft.maxLength, loss: config.preference.loss, batchSize: config.search.batchSize, maxTokens: config.search.maxTokens, maxDepth: config.search.maxDepth, data: [...dataFiles] },
    lora,
  );
  shape.workloads.scoring = { batchTokens: config.scoreBatchTokens };
  const plan = planRun({ ...flags, recompute: flags.recompute ?? config.recompute, microTokens: flags.microTokens ?? config.sft.microTokens }, shape);
  log(`memory plan\n${formatPlan(plan).replace(/^/gm, '  ')}`);
  applyPlanEnvironment(plan);
  return plan;
}

/** What a command that loads a model only to run it (generate, score, eval --model) does with it. */
export interface InferenceShape {
  /** the command, for the plan's line ('itool generate') */
  what: string;
  modelDir: string;
  adapter?: string;
  device?: string;
  /** independent sequences generated together */
  generate?: { sequences: number; promptTokens: number; newTokens: number } | null;
  /** one gradient-free forward of this many tokens (log-probabilities) */
  scoring?: { tokens: number } | null;
  dataFiles?: readonly string[];
}

/**
 * The memory plan of a command that only runs a model, made from config.json (and the adapter's
 * adapter_config.json) before the weights are loaded: the frozen weights' dtype ('auto': bf16
 * when the checkpoint is bf16 and no adapter is merged into it, or when f32 would not fit) and
 * the expected peak, in one line on `log`. --weights-dtype and --max-memory are checked on every
 * device (an error names the flag); on CUDA there is no plan (null: it plans host memory) and
 * the weights load as the device holds them. Throws PlanError when the run cannot fit.
 */
export function planInference(flags: MemoryFlags, shape: InferenceShape, log: (line: string) => void): MemoryPlan | null {
  const weightsDtype = weightsDtypeOf(flags.weightsDtype);
  const budget = memoryBudget(flags.maxMemory);
  if (resolveDevice((shape.device ?? 'auto') as DeviceRequest) !== 'cpu') return null;
  const { config, dtype, filesDir } = modelConfigOf(shape.modelDir);
  const own = isAdapterDir(shape.modelDir);
  // loadWithAdapter: --model's own adapter (and the ones beneath it) are merged when --adapter is given
  const mergesAdapters = own && (shape.adapter !== undefined || adapterChain(shape.modelDir).merged.length > 0);
  const top = shape.adapter ?? (own ? shape.modelDir : undefined);
  const gen = shape.generate ?? null;
  const scoreTokens = shape.scoring?.tokens ?? 0;
  const tokens = Math.max(1, scoreTokens, gen ? gen.promptTokens : 0);
  const req: PlanRequest = {
    config,
    checkpointDtype: dtype,
    lora: loraShapeOf({}, top),
    weightsDtype,
    recompute: false,
    microTokens: 0,
    batchTokens: tokens,
    maxSequence: tokens,
    workloads: { generate: gen, scoring: scoreTokens > 0 ? { batchTokens: scoreTokens } : null },
    budget: budget.bytes,
    runtime: runtimeBytes(filesDir, shape.dataFiles ?? []),
    mergesAdapters,
    cacheCap: envCacheCap(),
  };
  const plan = planMemory(req);
  plan.budgetSource = budget.source;
  if (!plan.fits) throw new PlanError(planErrorText(req, plan), plan);
  log(`${shape.what}: memory plan: ${plan.choices.reasons.join('; ')}; weights ${formatBytes(plan.categories.weights)}, expected peak ${formatBytes(plan.peak)} of the budget of ${formatBytes(plan.budget)} (${budget.source})`);
  applyPlanEnvironment(plan);
  return plan;
}
