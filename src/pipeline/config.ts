// The iTool loop's options: every phase's knobs with the paper's defaults, readable
// from a JSON config file (flags override it).
import { readFileSync } from 'node:fs';
import type { PairOptions } from '../search/pairs.js';
import type { PreferenceOptions, SftOptions } from '../train/options.js';
import { checkLora } from '../engine/adapter.js';
import { PERPLEXITY_SCOPES, type PerplexityScope } from '../train/perplexity.js';
import type { SelectStrata } from './select.js';

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
  // The knobs below are absent from the defaults (absent: the project's own choice, named
  // first); the `reference` preset sets each to the authors' choice (see PRESETS).
  /** 'step': one node per sampled step (default); 'chain': one sampled continuation of up to maxTokens becomes a chain of nodes, one per step, the rest merged into the node at maxDepth + 1 */
  expansion?: 'step' | 'chain';
  /** 'leaf': descend by UCT while a node has children (default); 'widen': descend only from a node with more than numActions children, otherwise expand it again */
  selection?: 'leaf' | 'widen';
  /** 'none' (default) or 'heuristic': a new node's summed value starts from ±0.1 (call made or not, as in the ground truth) + word-set overlap with the ground truth − 0.5 */
  initialValue?: 'none' | 'heuristic';
  /** 'sample' (default): each new node is valued by a rollout sampled from it; 'tree': one rollout per expansion, at most rolloutSteps steps down the best existing children, else one sampled continuation */
  rollout?: 'sample' | 'tree';
  /** self-judgement read-out: 'yes-no' (default; Yes = 1, No = −1) or 'grades' (A/B/C/D: (pA + 0.1·pB − pC − 2·pD)/4 with the ground truth in the prompt) */
  judge?: 'yes-no' | 'grades';
  /** a pair's values: 'mean' back-propagated value of visited children (default) or 'sum' of every child's summed value */
  pairValue?: 'mean' | 'sum';
  /** overlap of a pair's two steps: 'tokens' (Dice of the token multisets, default) or 'words' (word sets, intersection over the smaller set) */
  overlap?: 'tokens' | 'words';
  /** what a pair's chosen and rejected hold (and the loss covers): 'step' (default; the earlier steps are context) or 'partial-answer' (the earlier steps + the step) */
  pairCoverage?: 'step' | 'partial-answer';
  /** vLLM's repetition penalty on every token of the prompt and the answer so far (1: off, default; < 1 favours repeats) */
  repetitionPenalty?: number;
}

export interface PipelineConfig {
  /** iTool iterations (select → search → pairs → optimize → evaluate) */
  iterations: number;
  /** fraction of training samples kept as the hardest by perplexity (0.3) */
  selectRatio: number;
  /**
   * the tokens the selection's perplexity is taken over: 'answer' (absent: the last assistant
   * turn, the project's choice) or 'assistant' (every assistant turn of the sample, the authors'
   * scripts/cal_ppl.py)
   */
  perplexityScope?: PerplexityScope;
  /** cap on selected samples per iteration (0: none) */
  maxSelected: number;
  /**
   * what the hardest `selectRatio` is taken of: 'call' (absent: the samples with a tool call
   * and those without, each) or 'category' (those two within each category: every kind of
   * sample gets its share of the selection)
   */
  selectStrata?: SelectStrata;
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
  /** at most this many pairs per iteration, a seeded random subset (0 or absent: all) */
  maxPairs?: number;
  /** the preset the run started from (absent: 'itool'); set by resolveConfig, for the report */
  preset?: PresetName;
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
  /**
   * the warm-up SFT trains the adapter too (absent or true); false: the warm-up trains every
   * weight and the adapter starts at the first iteration (the authors' code puts LoRA on the
   * preference step only)
   */
  warmup?: boolean;
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

/** The optional search knobs' values when absent: the project's own choices. */
export const SEARCH_OPTIONAL_DEFAULTS = {
  expansion: 'step',
  selection: 'leaf',
  initialValue: 'none',
  rollout: 'sample',
  judge: 'yes-no',
  pairValue: 'mean',
  overlap: 'tokens',
  pairCoverage: 'step',
  repetitionPenalty: 1,
} as const satisfies Partial<SearchConfig>;

export type PresetName = 'itool' | 'reference';

export interface Preset {
  name: PresetName;
  doc: string;
  /** merged over the defaults, under the config file and the flags */
  config: DeepPartial<PipelineConfig>;
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]> | null) : T[K] };

/**
 * The two presets. `itool` is the defaults above (the project's own choices: a rule-based AST
 * reward, one node per step, loss on the step's tokens only); `reference` is the authors' code
 * (zeng-yirong/iTool at 871eceb: mcts/mcts_vllm.py, mcts/utils.py, mcts/run_mcts_dpo.sh,
 * mcts/dpo_train.py), each knob with the authors' value; the train README maps each one to the
 * line it was read from.
 */
export const PRESETS: Record<PresetName, Preset> = {
  itool: {
    name: 'itool',
    doc: "the project's own choices (the defaults): one node per sampled step, rollouts scored by the rule-based AST reward, pairs of visited children by mean value, loss on the step's tokens",
    config: {},
  },
  reference: {
    name: 'reference',
    doc: "the authors' code: selection by perplexity over every assistant turn, chains of steps from 50-token continuations, heuristic start values, rollouts down the best children scored by the policy grading itself (A/B/C/D), pairs by summed value over whole partial answers, SimPO with LoRA r 8 merged after the iteration (the warm-up trains every weight), 1 iteration",
    config: {
      iterations: 1,
      selectRatio: 0.3,
      perplexityScope: 'assistant',
      // the authors rank every sample together; 'call' is the nearest (the project's split of
      // answers with and without a call), and keeps a sized config's 'category' out of the preset
      selectStrata: 'call',
      maxPairs: 4000,
      balanceDecisionPairs: false,
      preference: { loss: 'simpo', beta: 2.5, gamma: 0.5, lr: 1e-6, epochs: 2, schedule: 'cosine', warmupRatio: 0.1 },
      lora: { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], merge: true, warmup: false },
      search: {
        numActions: 3,
        temperature: 1.5,
        repetitionPenalty: 0.75,
        maxTokens: 50,
        maxDepth: 3,
        simulations: 5,
        c: 1,
        stepLimit: 2,
        stepPattern: null,
        expansion: 'chain',
        selection: 'widen',
        initialValue: 'heuristic',
        rollout: 'tree',
        rolloutSteps: 2,
        rolloutMaxTokens: 50,
        rolloutTemperature: 1.5,
        judge: 'grades',
        judgeWeight: 1,
        pairValue: 'sum',
        overlap: 'words',
        pairCoverage: 'partial-answer',
        valueThreshold: 0.1,
        overlapLimit: 0.95,
        acceptValue: -0.3,
      },
    },
  },
};

/** The preset of that name; an unknown name is an error that lists the known ones. */
export function presetOf(name: unknown): Preset {
  if (typeof name === 'string' && Object.prototype.hasOwnProperty.call(PRESETS, name)) return PRESETS[name as PresetName];
  throw new Error(`unknown preset ${JSON.stringify(name)}; known presets: ${Object.keys(PRESETS).join(', ')}`);
}

/**
 * The keys that a preset leaves to a run's scale when it is applied over a sized config (the
 * demo's, sized for a model trained from scratch on 2 CPU cores): the iteration count and the
 * selection, the pair cap, the adapter (the demo trains every weight), the preference learning
 * rate, epochs and batches, and the search's width and batching. Every other key the preset sets
 * (the method) applies.
 */
export const PRESET_SCALE_KEYS: readonly string[] = [
  'iterations',
  'selectRatio',
  'maxSelected',
  'maxPairs',
  'lora',
  'preference.lr',
  'preference.epochs',
  'preference.batchPairs',
  'preference.batchTokens',
  'search.numActions',
  'search.simulations',
  'search.batchSize',
];

/** `config` with the preset's method keys over it (its PRESET_SCALE_KEYS left as they are), the preset named. */
export function presetAtScale(config: PipelineConfig, name: string): PipelineConfig {
  const p = presetOf(name);
  const method = JSON.parse(JSON.stringify(p.config)) as Record<string, Record<string, unknown> | unknown>;
  for (const key of PRESET_SCALE_KEYS) {
    const [a, b] = key.split('.');
    if (b === undefined) delete method[a];
    else if (isObj(method[a])) delete (method[a] as Record<string, unknown>)[b];
  }
  return { ...mergeConfig(config, method), preset: p.name };
}

/**
 * The keys that `over` sets to another value than the preset does, as 'key preset → given'
 * (dotted paths; leaves only; undefined entries of `over` set nothing).
 */
export function presetConflicts(preset: unknown, over: unknown, path = ''): string[] {
  if (!isObj(preset) || !isObj(over)) return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(over)) {
    if (v === undefined || !(k in preset)) continue;
    const p = preset[k];
    const key = path ? `${path}.${k}` : k;
    if (isObj(p) && isObj(v)) out.push(...presetConflicts(p, v, key));
    else if (JSON.stringify(p) !== JSON.stringify(v)) out.push(`${key} ${JSON.stringify(p)} → ${JSON.stringify(v)}`);
  }
  return out;
}

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
  const oneOf = (v: unknown, name: string, allowed: readonly string[]) => {
    if (v !== undefined && !allowed.includes(v as string)) throw new Error(`config '${name}' must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(v)}`);
  };
  oneOf(c.search.expansion, 'search.expansion', ['step', 'chain']);
  oneOf(c.search.selection, 'search.selection', ['leaf', 'widen']);
  oneOf(c.search.initialValue, 'search.initialValue', ['none', 'heuristic']);
  oneOf(c.search.rollout, 'search.rollout', ['sample', 'tree']);
  oneOf(c.search.judge, 'search.judge', ['yes-no', 'grades']);
  oneOf(c.search.pairValue, 'search.pairValue', ['mean', 'sum']);
  oneOf(c.search.overlap, 'search.overlap', ['tokens', 'words']);
  oneOf(c.search.pairCoverage, 'search.pairCoverage', ['step', 'partial-answer']);
  if (c.search.repetitionPenalty !== undefined) range(c.search.repetitionPenalty, 'search.repetitionPenalty', 1e-3, 100);
  if (c.maxPairs !== undefined) int(c.maxPairs, 'maxPairs', 0);
  oneOf(c.perplexityScope, 'perplexityScope', PERPLEXITY_SCOPES);
  oneOf(c.selectStrata, 'selectStrata', ['call', 'category']);
  if (c.preset !== undefined) presetOf(c.preset);
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
    if (!isObj(c.lora)) throw new Error(`config 'lora' must be an object {rank, alpha, targets, merge, warmup} or null, got ${JSON.stringify(c.lora)}`);
    const l = checkLora({ rank: c.lora.rank, alpha: c.lora.alpha ?? undefined, targets: c.lora.targets }, "config 'lora'");
    if (c.lora.merge !== undefined && typeof c.lora.merge !== 'boolean') throw new Error(`config 'lora.merge' must be true or false, got ${JSON.stringify(c.lora.merge)}`);
    if (c.lora.warmup !== undefined && typeof c.lora.warmup !== 'boolean') throw new Error(`config 'lora.warmup' must be true or false, got ${JSON.stringify(c.lora.warmup)}`);
    // warmup only when given: a run directory made before the key existed keeps its fingerprint
    c = { ...c, lora: { rank: l.rank, alpha: l.alpha, targets: l.targetModules, merge: c.lora.merge ?? false, ...(c.lora.warmup !== undefined ? { warmup: c.lora.warmup } : {}) } };
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
