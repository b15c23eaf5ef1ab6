// The one schema of `itool train`'s config (file and flags): every key with its default and
// meaning (`itool train --help-config` prints it), unknown keys refused with the nearest known
// key suggested, and every value range-checked before a model is loaded.
import { PREFERENCE_DEFAULTS, SFT_DEFAULTS, preferenceOptions, sftOptions, type PreferenceOptions, type SftOptions } from '../train/options.js';
import { checkConfig, DEFAULT_PIPELINE, DEFAULT_SEARCH, loadConfigFile, mergeConfig, presetConflicts, presetOf, PRESETS, SEARCH_OPTIONAL_DEFAULTS, type PipelineConfig, type PresetName } from './config.js';

export interface ConfigKey {
  /** dotted path, e.g. 'search.numActions' */
  key: string;
  default: unknown;
  doc: string;
}

const TOP: Record<string, string> = {
  preset: "the preset the other keys go over: 'itool' (the project's own choices, the default) or 'reference' (the authors' code); the file's and the flags' keys override it",
  iterations: 'iTool iterations (select → search → pairs → optimize → evaluate); raise it on a finished run directory to extend the run',
  selectRatio: 'fraction of the training answers kept as the hardest by perplexity, in (0, 1]',
  perplexityScope: "the tokens the selection's perplexity is taken over: 'answer' (the last assistant turn) or 'assistant' (every assistant turn of the sample, as the authors' scripts/cal_ppl.py); the same for one-turn samples",
  maxSelected: 'cap on the answers searched per iteration (0: none)',
  selectStrata: "what the hardest selectRatio is taken of: 'call' (the answers with a tool call and those without, each) or 'category' (those two within each category of the data)",
  warmup: 'run the warm-up SFT (false: the model given is already warmed up)',
  baseline: 'also train the equal-compute SFT baseline from the warm-up model',
  balanceDecisionPairs: 'balance root-level call vs. no-call pairs (at most as many reject the no-call answer as choose it)',
  scoreBatchTokens: 'tokens per perplexity-scoring batch',
  seed: 'seed of every random choice (data order, search, adapters)',
  recompute: 'recompute activations in backward instead of keeping them (less memory, more time); unset: the memory plan chooses',
  dtype: "dtype of the full models the run saves: 'f32' or 'bf16' (half the disk)",
  maxPairs: 'at most this many pairs per iteration, a seeded random subset (0: all)',
  lora: 'train a LoRA adapter instead of every weight: {rank, alpha, targets, merge, warmup}; null: full fine-tuning',
};
const OPTIONAL_DEFAULTS: Record<string, unknown> = { preset: 'itool', perplexityScope: 'answer', selectStrata: 'call', balanceDecisionPairs: false, recompute: false, dtype: 'f32', maxPairs: 0, lora: null };

const LORA: Record<string, [unknown, string]> = {
  rank: [null, 'adapter rank r, an integer in [1, 4096] (required when lora is set)'],
  alpha: [null, 'scaling numerator (scale alpha / r); default 2 x rank'],
  targets: [['q_proj', 'k_proj', 'v_proj', 'o_proj'], 'adapted projections: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj'],
  merge: [false, 'merge the adapter into the weights before each training phase and train a fresh one (the run keeps the chain of adapters)'],
  warmup: [true, 'the warm-up SFT trains the adapter too; false: the warm-up trains every weight and the adapter starts at the first iteration'],
};

const SEARCH: Record<string, string> = {
  numActions: 'continuations sampled per expansion (children of a node)',
  temperature: 'expansion sampling temperature (>= 0)',
  maxTokens: 'tokens per step at most',
  maxDepth: 'tree depth in steps',
  simulations: 'MCTS simulations per searched answer',
  c: 'UCT exploration constant (>= 0)',
  stepLimit: 'step fragments grouped into one action',
  stepPattern: "step boundary regular expression (null: the default '. ', ', ', '=', '(' )",
  rolloutSteps: 'greedy rollout steps after an expansion (0: none)',
  rolloutMaxTokens: 'tokens of a rollout at most',
  rolloutTemperature: 'rollout temperature (0: greedy)',
  batchSize: 'generation branches decoded together',
  judgeWeight: "weight of the policy's self-judgement in a node's value, in [0, 1] (0: rewards only)",
  valueThreshold: 'minimum chosen − rejected value for a pair (>= 0)',
  overlapLimit: 'maximum token overlap of the two steps of a pair, in [0, 1]',
  acceptValue: 'minimum value of a chosen step, in [-1, 1]',
  expansion: "'step': one node per sampled step; 'chain': one continuation of up to maxTokens becomes a chain of nodes, one per step, the rest merged into the node below maxDepth",
  selection: "'leaf': descend by UCT while a node has children; 'widen': descend only from a node with more than numActions children, else expand it again",
  initialValue: "'none' or 'heuristic': a new node's value starts from ±0.1 (call made as in the ground truth or not) + word-set overlap with the ground truth − 0.5",
  rollout: "'sample': every new node valued by a rollout sampled from it; 'tree': one rollout per expansion, at most rolloutSteps steps down the best children, else one sample",
  judge: "self-judgement read-out: 'yes-no' (Yes 1, No −1) or 'grades' (A/B/C/D, (pA + 0.1·pB − pC − 2·pD)/4, ground truth in the prompt; src/search/judge.ts GRADES_TEMPLATE)",
  pairValue: "a pair's values: 'mean' value of visited children or 'sum' of every child's summed value",
  overlap: "overlap of a pair's steps: 'tokens' (Dice of token multisets) or 'words' (word sets over the smaller one)",
  pairCoverage: "what chosen/rejected hold and the loss covers: 'step' or 'partial-answer' (earlier steps + the step)",
  repetitionPenalty: "vLLM's repetition penalty on the prompt's and answer's tokens when sampling (1: off; < 1 favours repeats)",
};

const EVAL: Record<string, string> = {
  maxTokens: 'tokens per evaluated answer at most',
  batchSize: 'answers generated together',
  maxSamples: 'evaluate only the first N held-out answers (0: all)',
};

const TRAINER: Record<string, string> = {
  lr: 'peak learning rate (> 0)',
  schedule: 'learning-rate schedule after the warm-up: cosine, linear or constant',
  warmupRatio: 'fraction of the optimizer steps warming up from 0, in [0, 1]',
  minLrRatio: 'decay floor as a fraction of lr, in [0, 1]',
  beta1: 'AdamW first-moment decay, in [0, 1]',
  beta2: 'AdamW second-moment decay, in [0, 1]',
  eps: 'AdamW epsilon (>= 0)',
  weightDecay: 'decoupled weight decay (>= 0)',
  maxGradNorm: 'clip the global gradient norm to this (0: off)',
  epochs: 'passes over the data (per curriculum stage for SFT)',
  maxSteps: 'stop after this many optimizer steps (0: no limit)',
  gradAccum: 'micro-batches per optimizer step',
  saveEvery: 'checkpoint every N optimizer steps (0: only at the end)',
  keepLast: 'complete checkpoints kept',
  maxSkipsInRow: 'stop with an error after this many non-finite steps in a row',
};
const SFT_ONLY: Record<string, string> = {
  batchTokens: 'tokens per micro-batch (samples packed whole)',
  microTokens: 'memory only: run each micro-batch as smaller ones of at most this many tokens, samples whole (0: no split; the memory plan sets it)',
  maxLength: 'truncate each rendered sample to this many tokens (0: no limit)',
  curriculum: 'train easy to hard by bucket',
  stages: 'curriculum stages, lists of bucket names easiest first (null: simple | multiple | parallel | the rest)',
  replay: 'fraction of the easier stages replayed in each later stage, in [0, 1]',
};
const PREF_ONLY: Record<string, string> = {
  loss: 'preference loss: simpo, dpo, ipo or orpo',
  beta: 'DPO/IPO/SimPO beta (> 0; default 2.5 for SimPO, 0.1 otherwise)',
  gamma: 'SimPO target margin',
  labelSmoothing: 'DPO label smoothing, in [0, 0.5)',
  lambda: 'ORPO weight of the odds-ratio term (>= 0)',
  batchPairs: 'pairs per optimizer step',
  batchTokens: 'token budget of one micro-batch',
  microTokens: 'memory only: run each micro-batch as smaller ones of at most this many tokens, pairs whole (0: no split; the memory plan sets it)',
};

type Section = { keys: Record<string, string>; defaults: (k: string) => unknown };
function sections(): Record<string, Section> {
  const sft = { ...TRAINER, ...SFT_ONLY };
  const pref = { ...TRAINER, ...PREF_ONLY };
  const sftDef = (k: string) => (DEFAULT_PIPELINE.sft as Record<string, unknown>)[k] ?? (SFT_DEFAULTS as unknown as Record<string, unknown>)[k];
  return {
    search: { keys: SEARCH, defaults: (k) => (k in DEFAULT_SEARCH ? (DEFAULT_SEARCH as unknown as Record<string, unknown>)[k] : (SEARCH_OPTIONAL_DEFAULTS as Record<string, unknown>)[k]) },
    eval: { keys: EVAL, defaults: (k) => (DEFAULT_PIPELINE.eval as Record<string, unknown>)[k] },
    sft: { keys: sft, defaults: sftDef },
    baselineSft: { keys: sft, defaults: (k) => `sft.${k}` },
    preference: {
      keys: pref,
      defaults: (k) => (DEFAULT_PIPELINE.preference as Record<string, unknown>)[k] ?? (PREFERENCE_DEFAULTS as unknown as Record<string, unknown>)[k],
    },
    lora: { keys: Object.fromEntries(Object.entries(LORA).map(([k, [, d]]) => [k, d])), defaults: (k) => LORA[k]![0] },
  };
}

const SECTION_DOCS: Record<string, string> = {
  search: 'the step-wise tree search',
  eval: 'the evaluation on the held-out answers',
  sft: 'the warm-up SFT',
  baselineSft: 'the SFT baseline: sft with these keys over it (the step count is matched to the iterations)',
  preference: 'the preference optimization of each iteration',
};

/** Every key of the config, with its default and meaning. */
export function configReference(): ConfigKey[] {
  const out: ConfigKey[] = [];
  const secs = sections();
  for (const [k, doc] of Object.entries(TOP)) {
    if (k === 'lora') continue;
    if (k === 'preset') {
      out.push({ key: k, default: 'itool', doc: `${doc}; ${Object.values(PRESETS).map((p) => `${p.name}: ${p.doc}`).join('; ')}` });
      continue;
    }
    out.push({ key: k, default: k in DEFAULT_PIPELINE ? (DEFAULT_PIPELINE as unknown as Record<string, unknown>)[k] : OPTIONAL_DEFAULTS[k], doc });
  }
  out.push({ key: 'lora', default: null, doc: TOP.lora! });
  for (const [name, sec] of Object.entries(secs)) {
    if (SECTION_DOCS[name]) out.push({ key: name, default: '{…}', doc: SECTION_DOCS[name]! });
    for (const [k, doc] of Object.entries(sec.keys)) out.push({ key: `${name}.${k}`, default: sec.defaults(k), doc });
  }
  return out;
}

/** The reference as text: one key a line, its default and meaning. */
export function configReferenceText(): string {
  const rows = configReference();
  const fmt = (v: unknown) => (typeof v === 'string' && v.startsWith('sft.') ? `(${v})` : v === '{…}' ? '' : JSON.stringify(v));
  const w = Math.max(...rows.map((r) => r.key.length));
  const dw = Math.min(16, Math.max(...rows.map((r) => fmt(r.default).length)));
  return (
    'itool train --config FILE: a JSON object with these keys (flags override them):\n\n' +
    rows.map((r) => `  ${r.key.padEnd(w)}  ${fmt(r.default).padEnd(dw)}  ${r.doc}`).join('\n') +
    '\n'
  );
}

// ------------------------------------------------------------------ unknown keys

const ALIASES: Record<string, string> = {
  learning_rate: 'lr',
  learningrate: 'lr',
  num_train_epochs: 'epochs',
  num_epochs: 'epochs',
  max_steps: 'maxSteps',
  num_iterations: 'iterations',
  lora_r: 'rank',
  r: 'rank',
  lora_alpha: 'alpha',
  target_modules: 'targets',
  gradient_accumulation_steps: 'gradAccum',
  warmup_ratio: 'warmupRatio',
  weight_decay: 'weightDecay',
  max_grad_norm: 'maxGradNorm',
};

function norm(s: string): string {
  return s.toLowerCase().replace(/[_\-\s]/g, '');
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length]!;
}

/** The known key nearest to `given` (undefined when none is close). */
export function nearestKey(given: string, known: readonly string[]): string | undefined {
  const alias = ALIASES[given] ?? ALIASES[norm(given)];
  if (alias && known.includes(alias)) return alias;
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = distance(norm(given), norm(k));
    if (d < bestD) {
      bestD = d;
      best = k;
    }
  }
  const tol = Math.max(2, Math.floor(norm(given).length / 3));
  if (best !== undefined && bestD <= tol) return best;
  // a known key inside the given name (numiterations ⊃ iterations)
  return known.find((k) => norm(k).length >= 4 && norm(given).includes(norm(k)));
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Throws on the first key the schema does not know, naming where it is and the nearest known key. */
export function checkKeys(config: unknown, where: string): void {
  if (config === undefined) return;
  if (!isObj(config)) throw new Error(`${where}: the config must be a JSON object, got ${JSON.stringify(config)}`);
  const top = Object.keys(TOP).concat(Object.keys(SECTION_DOCS));
  const secs = sections();
  const unknown = (path: string, given: string, known: readonly string[], extra = ''): never => {
    const near = nearestKey(given, known);
    const prefix = path.includes('.') ? path.slice(0, path.lastIndexOf('.') + 1) : '';
    throw new Error(`${where}: unknown key '${path}'${near ? ` (did you mean '${prefix}${near}'?)` : ''}${extra}; \`itool train --help-config\` lists every key`);
  };
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) continue;
    if (!top.includes(k)) unknown(k, k, top);
    const sec = secs[k];
    if (!sec || v === null || !isObj(v)) continue;
    const known = Object.keys(sec.keys);
    for (const [kk, vv] of Object.entries(v)) {
      if (vv === undefined || known.includes(kk)) continue;
      if (top.includes(kk)) unknown(`${k}.${kk}`, kk, known, ` ('${kk}' is a top-level key)`);
      unknown(`${k}.${kk}`, kk, known);
    }
  }
}

// ------------------------------------------------------------------ values

function typeIs(v: unknown, t: 'boolean' | 'object'): boolean {
  return t === 'object' ? isObj(v) : typeof v === t;
}

/** Range checks of the sections the trainers take (before any model is loaded). */
export function checkTrainerSections(c: { sft?: unknown; baselineSft?: unknown; preference?: unknown; warmup?: unknown; baseline?: unknown; balanceDecisionPairs?: unknown; scoreBatchTokens?: unknown }): void {
  for (const k of ['sft', 'baselineSft', 'preference'] as const) if (c[k] !== undefined && !typeIs(c[k], 'object')) throw new Error(`config '${k}' must be an object, got ${JSON.stringify(c[k])}`);
  for (const k of ['warmup', 'baseline', 'balanceDecisionPairs'] as const)
    if (c[k] !== undefined && !typeIs(c[k], 'boolean')) throw new Error(`config '${k}' must be true or false, got ${JSON.stringify(c[k])}`);
  if (!(Number.isInteger(c.scoreBatchTokens) && (c.scoreBatchTokens as number) >= 1)) throw new Error(`config 'scoreBatchTokens' must be an integer >= 1, got ${JSON.stringify(c.scoreBatchTokens)}`);
  const sft = (c.sft ?? {}) as Partial<SftOptions>;
  const at = (section: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      throw new Error(`config '${section}': ${(e as Error).message.replace(/^[a-z]+: /, '')}`);
    }
  };
  at('sft', () => sftOptions(sft));
  at('baselineSft', () => sftOptions({ ...sft, ...((c.baselineSft ?? {}) as Partial<SftOptions>) }));
  at('preference', () => preferenceOptions((c.preference ?? {}) as Partial<PreferenceOptions>));
  for (const [k, lo] of [['sft', 0], ['preference', 0]] as const) {
    const lr = ((c[k] ?? {}) as { lr?: unknown }).lr;
    if (lr !== undefined && !((lr as number) > lo)) throw new Error(`config '${k}.lr' must be > 0, got ${JSON.stringify(lr)}`);
  }
}

// ------------------------------------------------------------------ presets

/** the value of dotted `key` in a config (undefined when absent) */
function at(config: unknown, key: string): unknown {
  let v: unknown = config;
  for (const part of key.split('.')) v = isObj(v) ? v[part] : undefined;
  return v;
}

/** Every key of the config with the itool and reference presets' values (the README's knob table). */
export function presetTable(): Array<{ key: string; itool: unknown; reference: unknown; doc: string }> {
  const ref = mergeConfig(DEFAULT_PIPELINE, { ...PRESETS.reference.config, preset: 'reference' });
  return configReference()
    .filter((r) => r.default !== '{…}' && !r.key.startsWith('baselineSft.'))
    .map((r) => {
      const rv = at(ref, r.key);
      const lora = r.key.startsWith('lora.');
      return { key: r.key, itool: lora ? null : r.default, reference: rv === undefined ? r.default : rv, doc: r.doc };
    });
}

export interface ResolvedConfig {
  config: PipelineConfig;
  /** what to tell the user once: the preset's keys that the config file or the flags override */
  notes: string[];
}

/**
 * The defaults, the preset over them (from `preset`, else the config file's 'preset' key), the
 * config file over that, the flags over that; every key known to the schema and every value in
 * range, before anything is loaded or written. A key the preset sets and the file or a flag
 * gives another value is applied and named in one note.
 */
export function resolvePipelineConfig(configFile: string | undefined, overrides: unknown, preset?: string): ResolvedConfig {
  let file: unknown;
  if (configFile) {
    file = loadConfigFile(configFile);
    checkKeys(file, `config file ${configFile}`);
  }
  checkKeys(overrides, 'flags');
  const fromFile = isObj(file) ? file.preset : undefined;
  const name = preset ?? (fromFile as string | undefined);
  const notes: string[] = [];
  let c = DEFAULT_PIPELINE;
  if (name !== undefined) {
    const p = presetOf(name);
    if (preset !== undefined && fromFile !== undefined && fromFile !== preset) notes.push(`--preset ${preset} applies, not the config file's preset '${String(fromFile)}'`);
    c = mergeConfig(c, { ...p.config, preset: p.name as PresetName });
    const over: string[] = [];
    if (file !== undefined) over.push(...presetConflicts(p.config, file).map((x) => `${x} (config file)`));
    over.push(...presetConflicts(p.config, overrides).map((x) => `${x} (flag)`));
    if (over.length) notes.push(`preset '${p.name}' overridden: ${over.join(', ')}`);
  }
  if (file !== undefined) c = mergeConfig(c, { ...(file as object), preset: c.preset });
  c = mergeConfig(c, overrides);
  const checked = checkConfig(c);
  checkTrainerSections(checked);
  return { config: checked, notes };
}
