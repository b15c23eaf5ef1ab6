// The iTool loop's options: every phase's knobs with the paper's defaults, readable
// from a JSON config file (flags override it).
import { readFileSync } from 'node:fs';
import type { PairOptions } from '../search/pairs.js';
import type { PreferenceOptions, SftOptions } from '../train/options.js';
import { checkLora } from '../engine/adapter.js';

export interface SearchConfig extends PairOptions {
  numActions: number;
  temperature: number;
  maxTokens: number;
  maxDepth: number;
  simulations: number;
  c: number;
  stepLimit: number;
  /** source of the step boundary RegExp; null: the text layer's default */
  stepPattern: string | null;
  rolloutSteps: number;
  rolloutMaxTokens: number;
  rolloutTemperature: number;
  batchSize: number;
  /** weight of the policy's self-judgement in the value (0: rewards only) */
  judgeWeight: number;
}

export interface PipelineConfig {
  /** iTool iterations (select → search → pairs → optimize → evaluate) */
  iterations: number;
  /** fraction of training samples kept as the hardest by answer perplexity (0.3) */
  selectRatio: number;
  /** cap on selected samples per iteration (0: none) */
  maxSelected: number;
  /** run the warm-up SFT (false: the model given is already warmed up) */
  warmup: boolean;
  sft: Partial<SftOptions>;
  preference: Partial<PreferenceOptions>;
  search: SearchConfig;
  /** evaluation: greedy answers to the held-out samples */
  eval: { maxTokens: number; batchSize: number; maxSamples: number };
  /** also continue the warm-up model with plain SFT on the same steps and tokens (equal-compute baseline) */
  baseline: boolean;
  baselineSft: Partial<SftOptions>;
  /**
   * balance the root-level call vs. no-call pairs: at most as many reject the no-call answer
   * as choose it (optional; absent: off)
   */
  balanceDecisionPairs?: boolean;
  /** perplexity scoring batch (tokens) */
  scoreBatchTokens: number;
  seed: number;
  /**
   * train a LoRA adapter through the warm-up and every iteration instead of every weight
   * (absent or null: full fine-tuning); the run directory then holds adapters, not models
   */
  lora?: LoraConfig | null;
  /** recompute each layer's activations in backward instead of keeping them (less memory, more time); false */
  recompute?: boolean;
  /** dtype of the full models the run saves (f32, or bf16 at half the disk); f32 */
  dtype?: 'f32' | 'bf16';
}

export interface LoraConfig {
  rank: number;
  /** scaling numerator (scale = alpha / rank); default 2 x rank */
  alpha?: number | null;
  /** modules adapted: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj; default the attention four */
  targets?: string[];
  /**
   * merge the adapter into the weights at the start of each training phase and train a fresh
   * one (the run keeps the chain of adapters); false: one adapter trained from the warm-up
   * through the last iteration
   */
  merge?: boolean;
}

export const DEFAULT_SEARCH: SearchConfig = {
  numActions: 3,
  temperature: 1.5,
  maxTokens: 50,
  maxDepth: 3,
  simulations: 5,
  c: 1,
  stepLimit: 1,
  stepPattern: null,
  rolloutSteps: 0,
  rolloutMaxTokens: 256,
  rolloutTemperature: 0,
  batchSize: 64,
  judgeWeight: 0,
  valueThreshold: 0.1,
  overlapLimit: 0.95,
  acceptValue: -0.3,
};

export const DEFAULT_PIPELINE: PipelineConfig = {
  iterations: 2,
  selectRatio: 0.3,
  maxSelected: 0,
  warmup: true,
  sft: {},
  preference: { loss: 'simpo', beta: 2.5, gamma: 0.5, lr: 1e-6, epochs: 2 },
  search: DEFAULT_SEARCH,
  eval: { maxTokens: 256, batchSize: 32, maxSamples: 0 },
  baseline: false,
  baselineSft: {},
  scoreBatchTokens: 8192,
  seed: 42,
};

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** deep merge of plain objects (arrays and scalars replace) */
export function mergeConfig<T>(base: T, over: unknown): T {
  if (!isObj(over)) return base;
  const out: Obj = { ...(base as Obj) };
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined) continue;
    out[k] = isObj(v) && isObj(out[k]) ? mergeConfig(out[k], v) : v;
  }
  return out as T;
}

export function checkConfig(c: PipelineConfig): PipelineConfig {
  const int = (v: unknown, name: string, lo: number) => {
    if (!Number.isInteger(v) || (v as number) < lo) throw new Error(`config '${name}' must be an integer >= ${lo}, got ${JSON.stringify(v)}`);
  };
  int(c.iterations, 'iterations', 0);
  int(c.maxSelected, 'maxSelected', 0);
  int(c.seed, 'seed', 0);
  if (!(typeof c.selectRatio === 'number' && c.selectRatio > 0 && c.selectRatio <= 1)) throw new Error(`config 'selectRatio' must be in (0, 1], got ${JSON.stringify(c.selectRatio)}`);
  for (const k of ['numActions', 'maxTokens', 'maxDepth', 'simulations', 'stepLimit', 'rolloutMaxTokens', 'batchSize'] as const) int(c.search[k], `search.${k}`, 1);
  int(c.search.rolloutSteps, 'search.rolloutSteps', 0);
  const range = (v: unknown, name: string, lo: number, hi = Infinity) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi)
      throw new Error(`config '${name}' must be a number in [${lo}, ${hi === Infinity ? '∞' : hi}], got ${JSON.stringify(v)}`);
  };
  range(c.search.temperature, 'search.temperature', 0);
  range(c.search.rolloutTemperature, 'search.rolloutTemperature', 0);
  range(c.search.c, 'search.c', 0);
  range(c.search.judgeWeight, 'search.judgeWeight', 0, 1);
  range(c.search.valueThreshold, 'search.valueThreshold', 0);
  range(c.search.overlapLimit, 'search.overlapLimit', 0, 1);
  range(c.search.acceptValue, 'search.acceptValue', -1, 1);
  if (c.search.stepPattern !== null) {
    try {
      new RegExp(c.search.stepPattern, 'g');
    } catch (e) {
      throw new Error(`config 'search.stepPattern' is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  int(c.eval.maxTokens, 'eval.maxTokens', 1);
  int(c.eval.batchSize, 'eval.batchSize', 1);
  int(c.eval.maxSamples, 'eval.maxSamples', 0);
  if (c.lora !== undefined && c.lora !== null) {
    if (!isObj(c.lora)) throw new Error(`config 'lora' must be an object {rank, alpha, targets, merge} or null, got ${JSON.stringify(c.lora)}`);
    const l = checkLora({ rank: c.lora.rank, alpha: c.lora.alpha ?? undefined, targets: c.lora.targets }, "config 'lora'");
    if (c.lora.merge !== undefined && typeof c.lora.merge !== 'boolean') throw new Error(`config 'lora.merge' must be true or false, got ${JSON.stringify(c.lora.merge)}`);
    c = { ...c, lora: { rank: l.rank, alpha: l.alpha, targets: l.targetModules, merge: c.lora.merge ?? false } };
  }
  if (c.recompute !== undefined && typeof c.recompute !== 'boolean') throw new Error(`config 'recompute' must be true or false, got ${JSON.stringify(c.recompute)}`);
  if (c.dtype !== undefined && c.dtype !== 'f32' && c.dtype !== 'bf16') throw new Error(`config 'dtype' must be 'f32' or 'bf16', got ${JSON.stringify(c.dtype)}`);
  return c;
}

export function loadConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`config file ${file}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`config file ${file}: not JSON (${(e as Error).message})`);
  }
}
