// The logic behind `itool sft` and `itool prefer` (the command files only parse flags):
// options from --config FILE with flags overriding, the model and tokenizer loaded from
// --model DIR, training with checkpoints in --out DIR, and the result saved as a Hugging
// Face directory (OUT/model) or a PEFT adapter (OUT/adapter).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoraOptions, Model } from '../engine/model-types.js';
import { loadSamples } from '../data/formats.js';
import { resolveDevice, type DeviceRequest } from '../engine/engine.js';
import { checkLora, isAdapterDir, loadWithAdapter, modelFilesDir, saveAdapterWithChain, type AdapterChain } from '../engine/adapter.js';
import { loadTokenizer } from '../text/index.js';
import { writeFileAtomic } from './fsutil.js';
import type { TrainHooks, TrainResult } from './loop.js';
import { Checkpointer } from './checkpoint.js';
import type { PreferenceOptions, SftOptions } from './options.js';
import { loadPairs, type PairTokenizer } from './pairs.js';
import { applyPlanEnvironment, formatPlan, loraShapeOf, planLimits, runShapeOf, planRun, type MemoryFlags } from './plan-cli.js';
import type { MemoryPlan } from './plan.js';
import { trainPreference } from './preference.js';
import { trainSft, type SftRenderer } from './sft.js';

export interface CommonCliOptions {
  model: string;
  out: string;
  config?: string;
  device?: string;
  loraRank?: number;
  loraAlpha?: number;
  loraTargets?: string;
  /** a LoRA adapter to put on --model and train on */
  adapter?: string;
  /** dtype of the saved model (not adapters): f32 or bf16 */
  dtype?: string;
  /** the memory plan's flags (plan-cli.ts) */
  maxMemory?: string;
  weightsDtype?: string;
  recompute?: boolean;
  microTokens?: string | number;
}

/** Reads a JSON config file: an object whose keys are trainer options (camelCase). */
export function readConfig(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  if (!existsSync(file)) throw new Error(`--config: file not found: ${file}`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--config: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error(`--config: ${file} must hold a JSON object of options`);
  return v as Record<string, unknown>;
}

/** config < flags; flags left undefined do not override. */
export function mergeOptions<T>(config: Record<string, unknown>, flags: Record<string, unknown>, known: readonly string[], what: string): Partial<T> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(config)) {
    if (!known.includes(k)) throw new Error(`${what}: unknown option '${k}' in the config file (known: ${known.join(', ')})`);
    out[k] = v;
  }
  for (const [k, v] of Object.entries(flags)) if (v !== undefined && known.includes(k)) out[k] = v;
  return out as Partial<T>;
}

export const SFT_KEYS = [
  'lr', 'schedule', 'warmupRatio', 'minLrRatio', 'beta1', 'beta2', 'eps', 'weightDecay', 'maxGradNorm', 'epochs', 'maxSteps',
  'gradAccum', 'seed', 'saveEvery', 'keepLast', 'maxSkipsInRow', 'batchTokens', 'microTokens', 'maxLength', 'curriculum', 'stages', 'replay',
  'data', 'lora', 'device',
] as const;
export const PREFERENCE_KEYS = [
  'lr', 'schedule', 'warmupRatio', 'minLrRatio', 'beta1', 'beta2', 'eps', 'weightDecay', 'maxGradNorm', 'epochs', 'maxSteps',
  'gradAccum', 'seed', 'saveEvery', 'keepLast', 'maxSkipsInRow', 'loss', 'beta', 'gamma', 'labelSmoothing', 'lambda',
  'batchPairs', 'batchTokens', 'microTokens', 'pairs', 'lora', 'device',
] as const;

export function loraFrom(o: { loraRank?: number; loraAlpha?: number; loraTargets?: string }, config: unknown): LoraOptions | null {
  const c = (config && typeof config === 'object' ? config : {}) as Partial<LoraOptions>;
  const rank = o.loraRank ?? c.rank;
  if (rank === undefined || rank === null) {
    if (o.loraAlpha !== undefined || o.loraTargets !== undefined) throw new Error('--lora-alpha / --lora-targets need --lora-rank');
    return null;
  }
  // a rank of 0 (or less) is an error, never a silent full fine-tune
  return checkLora({ rank, alpha: o.loraAlpha ?? c.alpha, targets: o.loraTargets ?? c.targetModules }, '--lora-rank');
}

/**
 * --model (a model or an adapter directory) with --adapter on it, or a fresh adapter of `lora`;
 * training an adapter given trains it on.
 */
/** The device of sft/prefer: --device, else the config file's "device", else auto (as every command). */
export function deviceOf(flags: { device?: unknown }, config: { device?: unknown }): string {
  const d = config.device ?? flags.device ?? 'auto';
  if (typeof d !== 'string') throw new Error(`device must be a string ('auto', 'cpu', 'cuda' or 'cuda:N'), got ${JSON.stringify(d)}`);
  return d;
}

async function openModel(flags: CommonCliOptions, device: string, lora: LoraOptions | null, plan: MemoryPlan | null): Promise<{ model: Model; chain: AdapterChain | null }> {
  const dir = flags.model;
  if (!isAdapterDir(dir) && !existsSync(join(dir, 'config.json'))) throw new Error(`--model: ${dir} is not a model directory (no config.json)`);
  const given = flags.adapter !== undefined || isAdapterDir(dir);
  if (given && lora) throw new Error('--lora-rank (or "lora" in --config) with an adapter given: the adapter is trained on with its own rank, alpha and targets');
  const memory = plan ? { dtype: plan.choices.weightsDtype, recompute: plan.choices.recompute, limits: planLimits(plan) } : {};
  const { model, chain, adapter } = await loadWithAdapter(dir, { device: device as DeviceRequest, ...memory, ...(flags.adapter !== undefined ? { adapter: flags.adapter } : {}) });
  if (lora) model.addLora(lora);
  return { model, chain: adapter || lora ? chain : null };
}

/**
 * The memory plan of `itool sft | prefer` on the CPU, printed on stderr before anything heavy (the
 * tokenizer, the weights) is loaded; a run that cannot fit stops here with PlanError. On CUDA there
 * is none (it plans host memory).
 */
function planOf(what: 'sft' | 'prefer', flags: CommonCliOptions, device: string, merged: Record<string, unknown>, lora: LoraOptions | null): MemoryPlan | null {
  if (resolveDevice(device as DeviceRequest) !== 'cpu') return null;
  const adapterDir = flags.adapter ?? (isAdapterDir(flags.model) ? flags.model : undefined);
  const shape = lora ? { rank: lora.rank, targets: lora.targetModules } : loraShapeOf({}, adapterDir);
  const mem: MemoryFlags = { maxMemory: flags.maxMemory, weightsDtype: flags.weightsDtype, recompute: flags.recompute, microTokens: flags.microTokens ?? (merged.microTokens as number | undefined) };
  const run = runShapeOf(what, { model: flags.model, batchTokens: merged.batchTokens as number | undefined, maxLength: merged.maxLength as number | undefined, loss: merged.loss as string | undefined, data: (merged.data as string[] | undefined) ?? [] }, shape);
  if (what === 'prefer') run.maxSequence = run.batchTokens; // a pair's two sequences share a micro-batch; their length is not known before the pairs are read
  const plan = planRun(mem, run);
  process.stderr.write(`itool ${what}: memory plan\n${formatPlan(plan).replace(/^/gm, '  ')}\n`);
  applyPlanEnvironment(plan);
  return plan;
}

function dtypeOf(flags: CommonCliOptions): 'f32' | 'bf16' {
  const d = flags.dtype ?? 'f32';
  if (d !== 'f32' && d !== 'bf16') throw new Error(`--dtype must be 'f32' or 'bf16', got '${d}'`);
  return d;
}

async function finish(model: Model, chain: AdapterChain | null, modelDir: string, out: string, res: TrainResult, what: string, dtype: 'f32' | 'bf16'): Promise<string> {
  let saved: string;
  if (model.lora) {
    saved = join(out, 'adapter');
    await saveAdapterWithChain(model, saved, chain ?? { base: modelFilesDir(modelDir), merged: [] });
  } else {
    saved = join(out, 'model');
    await model.save(saved, { copyFrom: modelFilesDir(modelDir), dtype });
  }
  const losses = res.losses.filter((x) => Number.isFinite(x));
  const summary = {
    phase: res.phase,
    steps: res.steps,
    totalSteps: res.totalSteps,
    resumedFrom: res.resumedFrom,
    skipped: res.skipped,
    stopped: res.stopped,
    finalLoss: losses.length ? losses[losses.length - 1] : null,
    saved,
    checkpoint: res.checkpoint?.dir ?? null,
  };
  writeFileAtomic(join(out, 'result.json'), JSON.stringify(summary, null, 1) + '\n');
  return `${what}: ${res.steps}/${res.totalSteps} steps${res.resumedFrom ? ` (resumed at ${res.resumedFrom})` : ''}, ${res.skipped} skipped, final loss ${summary.finalLoss === null ? '-' : summary.finalLoss.toFixed(4)}; saved ${saved}`;
}

/** A run stopped by SIGINT/SIGTERM after writing its checkpoint; exitCode 130 / 143 as a shell reports them. */
export class InterruptedError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = 'InterruptedError';
  }
}

/**
 * SIGINT/SIGTERM while training: the first lets the current step finish, then the trainer writes
 * a checkpoint (atomically) and stops; a second ends the process at once (no checkpoint is ever
 * half-written: they are committed by a rename).
 */
export function interruptible(what: string, training: () => boolean = () => true): { hooks: TrainHooks; signal(): NodeJS.Signals | null; dispose(): void } {
  let got: NodeJS.Signals | null = null;
  const on = (sig: NodeJS.Signals) => {
    if (!got && !training()) {
      // outside a trainer (search, evaluation): nothing to checkpoint, finished phases are recorded
      process.stderr.write(`\n${what}: ${sig} outside a training phase: stopping now; the phases recorded in state.json are kept, run the same command again to go on\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    if (got) {
      process.stderr.write(`\n${what}: second ${sig}: stopping now, without a checkpoint of the step in flight\n`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    got = sig;
    process.stderr.write(`\n${what}: ${sig}: finishing the current step, then writing a checkpoint (${sig === 'SIGINT' ? 'Ctrl-C' : sig} again stops at once)\n`);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    hooks: { shouldStop: () => got !== null },
    signal: () => got,
    dispose: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}

/** --resume: says what it resumes from, or refuses when there is nothing to resume. */
function announceResume(out: string, resume: boolean | undefined, what: string): void {
  if (!resume) return;
  const root = join(out, 'checkpoints');
  const latest = existsSync(root) ? new Checkpointer(root).latest() : null;
  if (!latest) throw new Error(`--resume: no checkpoint in ${root}: nothing to resume (run without --resume to start)`);
  process.stderr.write(`${what}: resuming from ${latest.dir} (step ${latest.state.step})\n`);
}

function stoppedBy(sig: NodeJS.Signals | null, res: TrainResult, what: string): void {
  if (!res.stopped || !sig) return;
  const where = res.checkpoint ? `checkpoint ${res.checkpoint.dir}` : 'no checkpoint (no output directory)';
  throw new InterruptedError(`${what} stopped by ${sig} after step ${res.steps} of ${res.totalSteps}: wrote ${where}; run the same command with --resume to continue`, sig === 'SIGINT' ? 130 : 143);
}

export interface SftCliOptions extends CommonCliOptions, Record<string, unknown> {
  data?: string[];
  resume?: boolean;
  progress?: boolean;
}

/** `itool sft`; returns the summary line. */
export async function runSftCli(flags: SftCliOptions): Promise<string> {
  const config = readConfig(flags.config);
  const merged = mergeOptions<SftOptions & { data: string[]; lora: unknown; device: string }>(config, flags, SFT_KEYS, 'sft');
  const files = (merged.data ?? []) as string[];
  if (files.length === 0) throw new Error('give the training data with --data FILE... (or "data" in --config)');
  const samples = files.flatMap((f) => loadSamples(f));
  const lora = loraFrom(flags, merged.lora);
  const dtype = dtypeOf(flags);
  const plan = planOf('sft', flags, deviceOf(flags, merged), merged, lora);
  const tok = loadTokenizer(modelFilesDir(flags.model));
  const { model, chain } = await openModel(flags, deviceOf(flags, merged), lora, plan);
  try {
    const { data: _d, lora: _l, device: _dev, ...opts } = merged;
    if (plan) opts.microTokens = plan.choices.microTokens;
    const renderer: SftRenderer = (s) => tok.render(s);
    announceResume(flags.out, flags.resume, 'sft');
    const sig = interruptible('sft');
    let res: TrainResult;
    try {
      res = await trainSft(model, samples, renderer, { ...opts, outDir: flags.out, resume: !!flags.resume, progress: flags.progress }, sig.hooks);
    } finally {
      sig.dispose();
    }
    stoppedBy(sig.signal(), res, 'sft');
    return await finish(model, chain, flags.model, flags.out, res, 'sft', dtype);
  } finally {
    model.dispose();
  }
}

export interface PreferCliOptions extends CommonCliOptions, Record<string, unknown> {
  pairs?: string;
  resume?: boolean;
  progress?: boolean;
}

/** `itool prefer`; returns the summary line. */
export async function runPreferCli(flags: PreferCliOptions): Promise<string> {
  const config = readConfig(flags.config);
  const merged = mergeOptions<PreferenceOptions & { pairs: string; lora: unknown; device: string }>(config, flags, PREFERENCE_KEYS, 'prefer');
  const file = merged.pairs as string | undefined;
  if (!file) throw new Error('give the pairs with --pairs FILE (or "pairs" in --config)');
  const lora = loraFrom(flags, merged.lora);
  const dtype = dtypeOf(flags);
  const plan = planOf('prefer', flags, deviceOf(flags, merged), merged, lora);
  let tok: PairTokenizer | null = null;
  try {
    if (existsSync(join(modelFilesDir(flags.model), 'tokenizer.json'))) tok = loadTokenizer(modelFilesDir(flags.model));
  } catch (e) {
    throw new Error(`--model: tokenizer of ${flags.model}: ${(e as Error).message}`);
  }
  const pairs = loadPairs(file, tok);
  const { model, chain } = await openModel(flags, deviceOf(flags, merged), lora, plan);
  try {
    const { pairs: _p, lora: _l, device: _dev, ...opts } = merged;
    if (plan) opts.microTokens = plan.choices.microTokens;
    announceResume(flags.out, flags.resume, 'prefer');
    const sig = interruptible('prefer');
    let res: TrainResult;
    try {
      res = await trainPreference(model, pairs, { ...opts, outDir: flags.out, resume: !!flags.resume, progress: flags.progress }, sig.hooks);
    } finally {
      sig.dispose();
    }
    stoppedBy(sig.signal(), res, 'prefer');
    return await finish(model, chain, flags.model, flags.out, res, `prefer (${res.phase})`, dtype);
  } finally {
    model.dispose();
  }
}
