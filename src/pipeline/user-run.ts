// `itool train` and `itool ablate` on the user's model and data: load, split off a
// held-out set, run the pipeline, write results.json, report.html and the table.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ADAPTER_CHAIN_FILE, checkLora, isAdapterDir, modelFilesDir } from '../engine/adapter.js';
import type { LoraOptions, Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import { loadSamples } from '../data/formats.js';
import { splitAnswers } from '../data/answers.js';
import { renderReport, type CategoryTable } from '../report/html.js';
import { categoryTableText } from '../report/table.js';
import { loadTokenizer } from '../text/tokenizer.js';
import type { PipelineConfig } from './config.js';
import { resolvePipelineConfig } from './config-schema.js';
import { runPipeline, type PipelineResult } from './pipeline.js';
import { realEnv, type RealEnvOptions } from './real-env.js';
import { writeAtomic } from './state.js';

export interface UserRunOptions {
  modelDir: string;
  dataFiles: string[];
  evalFiles: string[];
  /** fraction of the data held out for evaluation when no eval files are given */
  evalRatio: number;
  out: string;
  /** config file merged over the defaults, then `overrides` over it */
  configFile?: string;
  overrides?: unknown;
  /** the preset under the config file and the overrides (itool, reference); absent: the config file's, else the defaults (itool) */
  preset?: string;
  /** loads a plain model directory (adapters are handled here); recompute from the config or the plan, dtype of the frozen weights from the plan */
  loadModel: (dir: string, opts: { recompute: boolean; dtype?: 'f32' | 'bf16' }) => Promise<Model>;
  /**
   * the memory plan, made once the config is resolved and before the tokenizer or any weight is
   * loaded (it throws when the run cannot fit); its choices are applied to the run
   */
  plan?: (config: PipelineConfig, start: { dir: string; filesDir: string; lora: LoraOptions | null }) => { weightsDtype: 'f32' | 'bf16'; recompute: boolean; microTokens: number } | null;
  /** a LoRA adapter directory to start from, on --model (the run then trains that adapter on) */
  adapter?: string;
  progress?: boolean;
  log?: (line: string) => void;
  title?: string;
  /** SIGINT/SIGTERM handling of the trainers (see real-env.ts) */
  interrupt?: RealEnvOptions['interrupt'];
}

/** deterministic shuffle (xorshift32 on the seed) */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const a = xs.slice();
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  for (let i = a.length - 1; i > 0; i--) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    const j = s % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

export function loadData(files: readonly string[]): Sample[] {
  const out: Sample[] = [];
  for (const f of files) out.push(...loadSamples(f));
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.id)) throw new Error(`sample id '${s.id}' occurs twice in ${files.join(', ')}: ids must be unique`);
    seen.add(s.id);
  }
  return out;
}

/**
 * The defaults, the config file over them, the flags over that; every key known to the schema
 * (config-schema.ts) and every value in range, before anything is loaded or written.
 */
export function resolveConfig(configFile: string | undefined, overrides: unknown, preset?: string): PipelineConfig {
  return resolvePipelineConfig(configFile, overrides, preset).config;
}

/**
 * Where the run starts: a model directory, or an adapter (--model ADAPTER_DIR, or --adapter on
 * --model: copied into the run directory with --model as its base). Starting from an adapter
 * trains it on, with its own rank, alpha and targets unless the config's lora says otherwise.
 */
function startingPoint(o: UserRunOptions, config: PipelineConfig): { dir: string; filesDir: string; lora: LoraOptions | null } {
  let dir = o.modelDir;
  if (!existsSync(o.modelDir)) throw new Error(`--model ${o.modelDir}: no such directory`);
  if (o.adapter !== undefined) {
    if (!isAdapterDir(o.adapter)) throw new Error(`--adapter ${o.adapter}: not an adapter directory (no adapter_config.json)`);
    if (isAdapterDir(o.modelDir)) throw new Error(`--model ${o.modelDir} is an adapter directory itself: give its base model with --model`);
    dir = join(o.out, 'adapter-start');
    mkdirSync(dir, { recursive: true });
    for (const f of ['adapter_config.json', 'adapter_model.safetensors']) copyFileSync(join(o.adapter, f), join(dir, f));
    writeAtomic(join(dir, ADAPTER_CHAIN_FILE), JSON.stringify({ base: resolve(o.modelDir), merged: [] }, null, 2) + '\n');
  }
  const fromAdapter = isAdapterDir(dir);
  const filesDir = modelFilesDir(dir);
  let lora: LoraOptions | null = null;
  if (config.lora) lora = { rank: config.lora.rank, alpha: config.lora.alpha ?? 2 * config.lora.rank, targetModules: (config.lora.targets ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj']) as LoraOptions['targetModules'] };
  else if (fromAdapter) {
    const a = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')) as { r?: unknown; lora_alpha?: unknown; target_modules?: unknown };
    lora = checkLora({ rank: a.r, alpha: a.lora_alpha, targets: a.target_modules }, `${dir}/adapter_config.json`);
  }
  return { dir, filesDir, lora };
}

export interface UserRunResult {
  result: PipelineResult;
  table: string;
  results: { seconds: number; warmup: { categories: CategoryTable } | null; itool: PipelineResult['itool']; baseline: PipelineResult['baseline'] };
}

export async function runOnUserData(o: UserRunOptions): Promise<UserRunResult> {
  const t0 = performance.now();
  const log = o.log ?? (() => {});
  const { config, notes } = resolvePipelineConfig(o.configFile, o.overrides, o.preset);
  for (const n of notes) log(n);
  log(`preset: ${config.preset ?? 'itool'}${config.preset ? '' : ' (the default)'}`);
  if (o.dataFiles.length === 0) throw new Error('no --data files given');
  let train = loadData(o.dataFiles);
  let test: Sample[];
  if (o.evalFiles.length) test = loadData(o.evalFiles);
  else {
    if (!(o.evalRatio > 0 && o.evalRatio < 1)) throw new Error(`--eval-ratio must be in (0, 1) when no --eval files are given, got ${o.evalRatio}`);
    const sh = shuffled(train, config.seed);
    const k = Math.max(1, Math.round(o.evalRatio * sh.length));
    test = sh.slice(0, k);
    const held = new Set(test.map((s) => s.id));
    train = train.filter((s) => !held.has(s.id));
  }
  if (train.length === 0) throw new Error('no training samples left after holding out the evaluation set');
  // conversations are held out whole, then split into their answers (data/answers.ts): every
  // assistant turn is one answer, for the warm-up, the selection, the search and the evaluation
  const conversations = train.length;
  train = splitAnswers(train).filter((s) => s.groundTruth !== undefined || s.messages[s.messages.length - 1]?.role === 'assistant');
  test = splitAnswers(test);
  if (train.length === 0) throw new Error('no training sample has an answer (an assistant turn or a ground truth)');
  log(`data: ${train.length} training answers (of ${conversations} conversations) and ${test.length} held-out answers`);
  const start = startingPoint(o, config);
  let run = config;
  // a warm-up trained whole (lora.warmup false) is the run's largest training phase: planned as full fine-tuning
  const wholeWarmup = !!start.lora && config.warmup && config.lora?.warmup === false;
  const choices = o.plan ? o.plan(config, wholeWarmup ? { ...start, lora: null } : start) : null;
  if (choices) {
    const micro = { microTokens: choices.microTokens };
    run = { ...config, recompute: choices.recompute, sft: { ...config.sft, ...micro }, baselineSft: { ...config.baselineSft, ...micro }, preference: { ...config.preference, ...micro } };
  }
  const tok = loadTokenizer(start.filesDir);
  const recompute = run.recompute ?? false;
  const dtype = choices?.weightsDtype;
  if (start.lora)
    log(`LoRA: rank ${start.lora.rank}, alpha ${start.lora.alpha}, targets ${start.lora.targetModules.join(',')}${config.lora?.merge ? ', merged into the weights between phases' : ''}; ${wholeWarmup ? 'the warm-up trains every weight (lora.warmup false), the iterations train adapters' : 'the run directory holds adapters'}`);
  log(`selection: perplexity over ${config.perplexityScope === 'assistant' ? 'every assistant turn of each sample' : "each sample's answer"} (perplexityScope ${config.perplexityScope ?? 'answer'})`);
  const env = realEnv({
    tokenizer: tok,
    tokenizerDir: start.filesDir,
    loadModel: (dir) => o.loadModel(dir, { recompute, ...(dtype ? { dtype } : {}) }),
    lora: start.lora ? { options: start.lora, merge: config.lora?.merge ?? false, seed: config.seed, warmup: !wholeWarmup } : null,
    dtype: config.dtype,
    perplexityBatchTokens: config.scoreBatchTokens,
    interrupt: o.interrupt,
    progress: o.progress,
    log,
  });
  const result = await runPipeline({ env, config: run, runDir: o.out, modelDir: start.dir, train, test });
  const seconds = (performance.now() - t0) / 1000;
  const results = { seconds, warmup: result.warmup, itool: result.itool, baseline: result.baseline };
  writeAtomic(join(o.out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  writeAtomic(
    join(o.out, 'report.html'),
    renderReport({
      title: o.title ?? `itool train: ${o.modelDir}`,
      subtitle: `${train.length} training / ${test.length} held-out samples · preset ${config.preset ?? 'itool'} · selection perplexity over ${config.perplexityScope === 'assistant' ? 'every assistant turn' : 'the answer'} · ${config.iterations} iteration(s) · ${config.preference.loss ?? 'simpo'}`,
      seconds,
      curves: result.curves,
      evaluations: result.evaluations,
      iterations: result.reportIterations,
      tree: result.tree,
      config: config as unknown as Record<string, unknown>,
    }),
  );
  return { result, table: categoryTableText(result.evaluations), results };
}
