// The iTool loop's options: every phase's knobs with the paper's defaults, readable
// from a JSON config file (flags override it).
import { readFileSync } from 'node:fs';
import type { PairOptions } from '../search/pairs.js';
import type { PreferenceOptions, SftOptions } from '../train/options.js';

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
  if (!(c.search.temperature >= 0)) throw new Error(`config 'search.temperature' must be >= 0`);
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
