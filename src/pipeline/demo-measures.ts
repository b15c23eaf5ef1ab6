// The demo's headroom measures, read after the pipeline has run: for the warm-up model, each
// iteration and the baseline, greedy accuracy (pass@1, the evaluation's own), best-of-k
// accuracy over k answers sampled at the search temperature (pass@k) and the copy rate of
// argument values; for each iteration, the pairs by depth and by kind. Each arm's measures are
// kept beside its evaluation (measures.json), so a rerun on the same directory reuses them.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Sample } from '../data/sample.js';
import type { CategoryTable, ReportTable } from '../report/html.js';
import { parsePairsJsonl } from '../search/pairs.js';
import type { PipelineEnv } from './env.js';
import { sampleAnswers } from './evaluate.js';
import { copyRateTable, PAIR_KINDS, pairCounts, passAtKTable, type CopyTable, type PairCounts, type RateTable } from './metrics.js';
import { writeAtomic } from './state.js';

export interface ArmMeasures {
  /** greedy accuracy by category (the evaluation phase's table) */
  passAt1: CategoryTable;
  /** best-of-k accuracy by category */
  passAtK: RateTable;
  /** copy rate of the greedy answers' argument values by category, beside the ground truth's */
  copy: CopyTable;
  /** seconds spent sampling and scoring the k answers */
  seconds: number;
}

export interface MeasureSettings {
  k: number;
  temperature: number;
  maxTokens: number;
  /** rows decoded together */
  batchRows: number;
  seed: number;
}

export interface DemoArm {
  /** column label ("warm-up", "iTool it 1", "SFT baseline") */
  label: string;
  /** the evaluation phase's directory (eval.json, predictions.jsonl) */
  evalDir: string;
  /** the arm's model directory */
  modelDir: string;
}

function readJson<T>(file: string): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

/** pass@1 / pass@k / copy rate of one arm (cached in evalDir/measures.json for the same settings). */
export async function measureArm(env: PipelineEnv, arm: DemoArm, samples: readonly Sample[], s: MeasureSettings): Promise<ArmMeasures> {
  const cacheFile = join(arm.evalDir, 'measures.json');
  const key = JSON.stringify({ k: s.k, temperature: s.temperature, maxTokens: s.maxTokens, seed: s.seed, n: samples.length });
  if (existsSync(cacheFile)) {
    const c = readJson<{ key: string; measures: ArmMeasures }>(cacheFile);
    if (c.key === key) return c.measures;
  }
  const t0 = performance.now();
  const evalJson = readJson<{ categories: CategoryTable }>(join(arm.evalDir, 'eval.json'));
  const preds = new Map(
    readFileSync(join(arm.evalDir, 'predictions.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { id: string; result: string })
      .map((p) => [p.id, p.result]),
  );
  const copy = copyRateTable(samples.map((sample) => ({ sample, answer: preds.get(sample.id) ?? '' })));
  const model = await env.loadModel(arm.modelDir);
  let answers: string[][];
  try {
    const bar = env.progress?.(`pass@${s.k} ${arm.label}`, samples.length);
    try {
      answers = (await sampleAnswers(model, env, samples, { ...s, onProgress: (d) => bar?.update(d) })).answers;
    } finally {
      bar?.stop();
    }
  } finally {
    model.dispose();
  }
  const flat = samples.flatMap((sample, i) => answers[i].map((answer) => ({ sample, answer })));
  const valid = env.score(flat).valid;
  const rows = samples.map((sample, i) => ({ category: String(sample.category), correct: valid.slice(i * s.k, (i + 1) * s.k) }));
  const measures: ArmMeasures = { passAt1: evalJson.categories, passAtK: passAtKTable(rows, s.k), copy, seconds: (performance.now() - t0) / 1000 };
  writeAtomic(cacheFile, JSON.stringify({ key, measures }, null, 1) + '\n');
  return measures;
}

/** pairs of one iteration by depth and kind (from its pairs.jsonl) */
export function iterationPairCounts(iterationDir: string): PairCounts {
  const file = join(iterationDir, 'pairs.jsonl');
  return pairCounts(parsePairsJsonl(readFileSync(file, 'utf8'), file));
}

/**
 * The model directory a finished phase recorded (warmup, iteration-N/optimize, baseline/train):
 * an iteration without pairs records the model it started from rather than a copy of it.
 */
export function phaseModel(runDir: string, phase: string): string {
  const s = readJson<{ phases: Array<{ name: string; result: { model?: string } | null }> }>(join(runDir, 'state.json'));
  const m = s.phases.find((p) => p.name === phase)?.result?.model;
  if (!m) throw new Error(`${join(runDir, 'state.json')}: phase '${phase}' recorded no model directory`);
  return m;
}

/**
 * Seconds a demo directory's phases took in earlier processes (a resumed run): the copy stage's
 * (its copy-stage.json) and every phase state.json records as finished. Read before the run
 * resumes, so they are the phases this process will skip; a phase that was interrupted counts
 * only its resumed part (its state is recorded when it finishes). 0 for a new directory.
 */
export function secondsDoneEarlier(demoDir: string): number {
  const stamp = join(demoDir, 'copy-model', 'copy-stage.json');
  const copy = existsSync(stamp) ? readJson<{ seconds: number }>(stamp).seconds : 0;
  const state = join(demoDir, 'run', 'state.json');
  const phases = existsSync(state) ? readJson<{ phases: Array<{ seconds: number }> }>(state).phases.reduce((a, p) => a + p.seconds, 0) : 0;
  return copy + phases;
}

/** seconds of every finished phase of a run directory, in the order they finished */
export function phaseSeconds(runDir: string): Record<string, number> {
  const s = readJson<{ phases: Array<{ name: string; seconds: number }> }>(join(runDir, 'state.json'));
  return Object.fromEntries(s.phases.map((p) => [p.name, Math.round(p.seconds * 10) / 10]));
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** the pass@k, copy-rate and pair tables (header + rows) for the text output and the report */
export function measureTables(
  cats: readonly string[],
  arms: ReadonlyArray<{ label: string; m: ArmMeasures }>,
  pairs: ReadonlyArray<{ iteration: number; counts: PairCounts }>,
  k: number,
  temperature: number,
): ReportTable[] {
  const out: ReportTable[] = [];
  out.push({
    title: `Best of ${k} at temperature ${temperature} (pass@${k}) beside greedy (pass@1)`,
    note: 'The gap between the two is what the search can find: a sample the policy sometimes answers correctly.',
    header: ['category', ...arms.flatMap((a) => [`${a.label} @1`, `${a.label} @${k}`])],
    rows: cats.map((c) => [c, ...arms.flatMap((a) => [a.m.passAt1[c] ? pct(a.m.passAt1[c].accuracy) : '-', a.m.passAtK[c] ? pct(a.m.passAtK[c].rate) : '-'])]),
  });
  const truth = arms[0]?.m.copy ?? {};
  out.push({
    title: 'Copy rate: string and number argument values found verbatim in the user turns',
    note: 'Greedy answers of each arm; the last column is the same fraction in the ground truth (values / copied).',
    header: ['category', ...arms.map((a) => a.label), 'ground truth'],
    rows: cats
      .filter((c) => (truth[c]?.truthValues ?? 0) > 0)
      .map((c) => [c, ...arms.map((a) => (a.m.copy[c]?.values ? `${pct(a.m.copy[c].rate)} (${a.m.copy[c].copied}/${a.m.copy[c].values})` : 'no values')), `${pct(truth[c].truthRate)} (${truth[c].truthCopied}/${truth[c].truthValues})`]),
  });
  if (pairs.length) {
    const depths = [...new Set(pairs.flatMap((p) => Object.keys(p.counts.byDepth)))].sort((a, b) => Number(a) - Number(b));
    out.push({
      title: 'Pairs per iteration by kind and by depth',
      note: 'Kind: where the chosen and rejected texts first differ (an argument value, the function name, call vs. no call, which argument comes next, the structure). Depth: the node the two steps branch from (0: the first step).',
      header: ['iteration', 'pairs', ...PAIR_KINDS, ...depths.map((d) => `depth ${d}`)],
      rows: pairs.map((p) => [String(p.iteration), String(p.counts.total), ...PAIR_KINDS.map((k) => String(p.counts.byKind[k])), ...depths.map((d) => String(p.counts.byDepth[d] ?? 0))]),
    });
  }
  return out;
}
