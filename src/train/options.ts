// Trainer options and their defaults. Every option is documented here; the CLI and the
// pipeline pass partial objects and get these defaults for the rest.
import type { Checkpointer } from './checkpoint.js';
import type { Rng } from './rng.js';
import type { ScheduleKind } from './schedule.js';

/** Options every trainer shares. */
export interface CommonTrainOptions {
  /** peak learning rate */
  lr: number;
  /** 'cosine' (default) | 'linear' | 'constant', with linear warm-up */
  schedule: ScheduleKind;
  /** fraction of the optimizer steps spent warming up from lr 0 (ceil); default 0.1 */
  warmupRatio: number;
  /** decay floor as a fraction of lr; default 0 */
  minLrRatio: number;
  /** AdamW moments; defaults 0.9, 0.999, 1e-8 */
  beta1: number;
  beta2: number;
  eps: number;
  /** decoupled weight decay; default 0 */
  weightDecay: number;
  /** clip the global gradient norm to this (0: off); default 1.0 */
  maxGradNorm: number;
  /** passes over the data (per curriculum stage for SFT) */
  epochs: number;
  /** stop after this many optimizer steps (0: no limit; the schedule spans the shorter of the two) */
  maxSteps: number;
  /** micro-batches per optimizer step (gradient accumulation); default 1 */
  gradAccum: number;
  /** seed of every random choice (data order per epoch, curriculum replay) */
  seed: number;
  /** directory for metrics.jsonl and checkpoints/ (null: neither is written) */
  outDir: string | null;
  /** write a checkpoint every this many optimizer steps (0: only at the end); default 50 */
  saveEvery: number;
  /** complete checkpoints kept; default 2 */
  keepLast: number;
  /** continue from the latest checkpoint of the same phase in outDir (or `checkpointer`) */
  resume: boolean;
  /** after this many skipped (non-finite) steps in a row, stop with an error; default 5 */
  maxSkipsInRow: number;
  /** progress bar on stderr: true always, false never, undefined when stderr is a TTY */
  progress: boolean | undefined;
  /** name of the phase in checkpoints and metrics.jsonl */
  phase: string;
  /** use this checkpointer instead of one at outDir/checkpoints (the pipeline shares one) */
  checkpointer: Checkpointer | null;
  /** stored in every checkpoint's state.json (the pipeline's own resume data) */
  extra: unknown;
  /**
   * the caller's RNGs: their states go into every checkpoint and are restored on resume
   * (the trainers' own choices need none: data order is a pure function of seed and epoch)
   */
  rngs: Record<string, Rng> | null;
}

export interface SftOptions extends CommonTrainOptions {
  /** tokens per micro-batch (samples are packed whole up to this); default 4096 */
  batchTokens: number;
  /**
   * memory only: run each micro-batch as smaller ones of at most this many tokens (samples whole;
   * 0: no split, default). A step keeps its samples and its loss (normalised by the step's target
   * count), so the result is the unsplit one within f32 rounding; the memory planner sets it.
   */
  microTokens: number;
  /** truncate each rendered sample to this many tokens (0: no limit); default 2048 */
  maxLength: number;
  /** train easy to hard by difficulty bucket; default true */
  curriculum: boolean;
  /** curriculum stages (bucket names, easiest first); default DEFAULT_STAGES */
  stages: string[][] | null;
  /** fraction of the easier stages' samples replayed in each later stage; default 0.2 */
  replay: number;
}

export type PreferenceLossKind = 'simpo' | 'dpo' | 'ipo' | 'orpo';

export interface PreferenceOptions extends CommonTrainOptions {
  loss: PreferenceLossKind;
  /** DPO/IPO/SimPO beta; default 2.5 for SimPO (the paper's run), 0.1 otherwise */
  beta: number;
  /** SimPO target margin gamma; default 0.5 */
  gamma: number;
  /** DPO label smoothing (conservative DPO); default 0 */
  labelSmoothing: number;
  /** ORPO weight lambda of the odds-ratio term; default 0.1 */
  lambda: number;
  /** pairs per optimizer step (per micro-batch group); default 16 */
  batchPairs: number;
  /** token budget of one micro-batch (pairs are split into micro-batches by it); default 4096 */
  batchTokens: number;
  /** memory only: run each micro-batch as smaller ones of at most this many tokens (pairs whole; 0: no split) */
  microTokens: number;
}

const COMMON: Omit<CommonTrainOptions, 'lr' | 'epochs' | 'phase'> = {
  schedule: 'cosine',
  warmupRatio: 0.1,
  minLrRatio: 0,
  beta1: 0.9,
  beta2: 0.999,
  eps: 1e-8,
  weightDecay: 0,
  maxGradNorm: 1.0,
  maxSteps: 0,
  gradAccum: 1,
  seed: 42,
  outDir: null,
  saveEvery: 50,
  keepLast: 2,
  resume: false,
  maxSkipsInRow: 5,
  progress: undefined,
  checkpointer: null,
  extra: undefined,
  rngs: null,
};

export const SFT_DEFAULTS: SftOptions = {
  ...COMMON,
  lr: 1e-5,
  epochs: 1,
  phase: 'sft',
  batchTokens: 4096,
  microTokens: 0,
  maxLength: 2048,
  curriculum: true,
  stages: null,
  replay: 0.2,
};

/** The iTool paper's SimPO run: beta 2.5, gamma 0.5, lr 1e-6, 2 epochs, cosine, warm-up 0.1. */
export const PREFERENCE_DEFAULTS: PreferenceOptions = {
  ...COMMON,
  lr: 1e-6,
  epochs: 2,
  phase: 'preference',
  loss: 'simpo',
  beta: 2.5,
  gamma: 0.5,
  labelSmoothing: 0,
  lambda: 0.1,
  batchPairs: 16,
  batchTokens: 4096,
  microTokens: 0,
};

function drop<T extends object>(o: Partial<T> | undefined): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

function checkCommon(o: CommonTrainOptions, who: string): void {
  const num = (k: keyof CommonTrainOptions, lo: number, hi = Infinity, int = false): void => {
    const v = o[k] as unknown;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (int && !Number.isInteger(v)))
      throw new RangeError(`${who}: option ${k} must be ${int ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${JSON.stringify(v)}`);
  };
  num('lr', 0);
  num('warmupRatio', 0, 1);
  num('minLrRatio', 0, 1);
  num('beta1', 0, 1);
  num('beta2', 0, 1);
  num('eps', 0);
  num('weightDecay', 0);
  num('maxGradNorm', 0);
  num('epochs', 1, Infinity, true);
  num('maxSteps', 0, Infinity, true);
  num('gradAccum', 1, Infinity, true);
  num('seed', 0, Number.MAX_SAFE_INTEGER, true);
  num('saveEvery', 0, Infinity, true);
  num('keepLast', 1, Infinity, true);
  num('maxSkipsInRow', 1, Infinity, true);
  if (!['cosine', 'linear', 'constant'].includes(o.schedule))
    throw new RangeError(`${who}: option schedule must be cosine, linear or constant, got ${JSON.stringify(o.schedule)}`);
}

export function sftOptions(o?: Partial<SftOptions>): SftOptions {
  const r = { ...SFT_DEFAULTS, ...drop(o) };
  checkCommon(r, 'sft');
  if (!(Number.isInteger(r.batchTokens) && r.batchTokens > 0)) throw new RangeError(`sft: option batchTokens must be a positive integer, got ${r.batchTokens}`);
  if (!(Number.isInteger(r.microTokens) && r.microTokens >= 0)) throw new RangeError(`sft: option microTokens must be an integer >= 0, got ${r.microTokens}`);
  if (!(Number.isInteger(r.maxLength) && r.maxLength >= 0)) throw new RangeError(`sft: option maxLength must be an integer >= 0, got ${r.maxLength}`);
  if (!(r.replay >= 0 && r.replay <= 1)) throw new RangeError(`sft: option replay must be in [0, 1], got ${r.replay}`);
  return r;
}

export function preferenceOptions(o?: Partial<PreferenceOptions>): PreferenceOptions {
  const given = drop(o);
  const loss = given.loss ?? 'simpo';
  if (!['simpo', 'dpo', 'ipo', 'orpo'].includes(loss)) throw new RangeError(`preference: option loss must be simpo, dpo, ipo or orpo, got ${JSON.stringify(loss)}`);
  const r: PreferenceOptions = { ...PREFERENCE_DEFAULTS, beta: loss === 'simpo' ? 2.5 : 0.1, ...given, loss };
  checkCommon(r, 'preference');
  const pos = (k: 'beta' | 'batchPairs' | 'batchTokens'): void => {
    if (!(r[k] > 0) || !Number.isFinite(r[k])) throw new RangeError(`preference: option ${k} must be > 0, got ${r[k]}`);
  };
  pos('beta');
  pos('batchPairs');
  pos('batchTokens');
  if (!(Number.isInteger(r.microTokens) && r.microTokens >= 0)) throw new RangeError(`preference: option microTokens must be an integer >= 0, got ${r.microTokens}`);
  if (!Number.isFinite(r.gamma)) throw new RangeError(`preference: option gamma must be a number, got ${r.gamma}`);
  if (!(r.labelSmoothing >= 0 && r.labelSmoothing < 0.5)) throw new RangeError(`preference: option labelSmoothing must be in [0, 0.5), got ${r.labelSmoothing}`);
  if (!(r.lambda >= 0) || !Number.isFinite(r.lambda)) throw new RangeError(`preference: option lambda must be >= 0, got ${r.lambda}`);
  return r;
}
