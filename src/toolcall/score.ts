// Scoring many answers: per-sample BFCL checks, per-category accuracy and BFCL's summary rows.
//
// Summary rows (as BFCL reports them):
//   non_live     unweighted mean of simple, multiple, parallel, parallel_multiple, where simple
//                is itself the unweighted mean of its languages (simple_python, simple_java,
//                simple_javascript; or the bucket 'simple' for non-BFCL data);
//   live         count-weighted mean of live_simple, live_multiple, live_parallel,
//                live_parallel_multiple (i.e. correct / total over them);
//   irrelevance, live_irrelevance   apart, as their own accuracies;
//   overall      count-weighted accuracy over every scored sample.
// A row is present only when at least one of its categories was scored.

import type { Sample, ToolCall } from '../data/sample.js';
import { checkAnswer, checkerCategory, type CheckResult } from './checker.js';
import { parseCalls, type ParseResult } from './parse.js';

export interface SampleScore {
  id: string;
  category: string;
  valid: boolean;
  error_type?: string;
  errors?: string[];
}

export interface CategoryScore {
  correct: number;
  total: number;
  accuracy: number;
}

export interface EvalReport {
  categories: Record<string, CategoryScore>;
  summary: Record<string, CategoryScore>;
}

/** A BFCL result value: a string (model text) or, for function-calling models, a list of {name: args}. */
export function decodeResult(result: unknown): string | ParseResult {
  if (typeof result === 'string') return result;
  const items = Array.isArray(result) ? result : [result];
  const calls: ToolCall[] = [];
  for (const it of items) {
    if (it === null || typeof it !== 'object' || Array.isArray(it)) return { format: 'json', calls, complete: false, error: 'result item is not an object' };
    const o = it as Record<string, unknown>;
    let name: string;
    let args: unknown;
    if (typeof o.name === 'string') {
      name = o.name;
      args = o.arguments ?? o.parameters ?? {};
    } else {
      const keys = Object.keys(o);
      if (keys.length !== 1) return { format: 'json', calls, complete: false, error: 'result item needs one function name' };
      name = keys[0]!;
      args = o[name];
    }
    if (typeof args === 'string') {
      const p = parseCalls(`{"name": ${JSON.stringify(name)}, "arguments": ${args}}`, { floatMarks: true });
      if (!p.complete || p.error !== undefined || p.calls.length !== 1) return { format: 'json', calls, complete: false, error: `arguments of '${name}' are not valid JSON` };
      args = p.calls[0]!.arguments;
    }
    if (args === null || typeof args !== 'object' || Array.isArray(args)) return { format: 'json', calls, complete: false, error: `arguments of '${name}' must be an object` };
    calls.push({ name, arguments: args as Record<string, unknown> });
  }
  return { format: 'json', calls, complete: true };
}

/** Scores one answer for one sample. */
export function scoreSample(sample: Sample, result: unknown): SampleScore {
  const cat = checkerCategory(sample);
  let r: CheckResult;
  try {
    r = checkAnswer(sample, decodeResult(result));
  } catch (e) {
    r = { valid: false, errorType: 'checker:internal', errors: [String(e)] };
  }
  const out: SampleScore = { id: sample.id, category: cat, valid: r.valid };
  if (!r.valid) {
    out.error_type = r.errorType ?? 'unknown';
    if (r.errors) out.errors = r.errors;
  }
  return out;
}

export interface ScoreRun {
  scores: SampleScore[];
  report: EvalReport;
  /** prediction ids that match no sample */
  unknownIds: string[];
}

/**
 * Scores predictions (id → result) against samples. A category with no prediction at all is
 * left out (the predictions cover a subset); inside a scored category, a sample without a
 * prediction counts as wrong with error_type 'missing_prediction'.
 */
export function scorePredictions(samples: readonly Sample[], predictions: ReadonlyMap<string, unknown>): ScoreRun {
  const predictedCats = new Set<string>();
  const ids = new Set<string>();
  for (const s of samples) {
    ids.add(s.id);
    if (predictions.has(s.id)) predictedCats.add(checkerCategory(s));
  }
  const scores: SampleScore[] = [];
  for (const s of samples) {
    const cat = checkerCategory(s);
    if (!predictedCats.has(cat)) continue;
    if (!predictions.has(s.id)) scores.push({ id: s.id, category: cat, valid: false, error_type: 'missing_prediction', errors: ['no prediction for this id'] });
    else scores.push(scoreSample(s, predictions.get(s.id)));
  }
  const unknownIds = [...predictions.keys()].filter((k) => !ids.has(k));
  return { scores, report: summarize(scores), unknownIds };
}

function acc(correct: number, total: number): CategoryScore {
  return { correct, total, accuracy: total ? correct / total : 0 };
}

/** Per-category accuracy and the summary rows (see the file head). */
export function summarize(scores: readonly SampleScore[]): EvalReport {
  const categories: Record<string, CategoryScore> = {};
  for (const s of scores) {
    const c = (categories[s.category] ??= { correct: 0, total: 0, accuracy: 0 });
    c.total++;
    if (s.valid) c.correct++;
  }
  for (const c of Object.values(categories)) c.accuracy = c.total ? c.correct / c.total : 0;
  const sorted: Record<string, CategoryScore> = {};
  for (const k of Object.keys(categories).sort(categoryOrder)) sorted[k] = categories[k]!;

  const summary: Record<string, CategoryScore> = {};
  // non-live: unweighted mean of the four, simple = mean of its languages
  const simpleLangs = Object.keys(sorted).filter((k) => k === 'simple' || /^simple_/.test(k));
  const parts: CategoryScore[] = [];
  if (simpleLangs.length) {
    const mean = simpleLangs.reduce((a, k) => a + sorted[k]!.accuracy, 0) / simpleLangs.length;
    const correct = simpleLangs.reduce((a, k) => a + sorted[k]!.correct, 0);
    const total = simpleLangs.reduce((a, k) => a + sorted[k]!.total, 0);
    const row = { correct, total, accuracy: mean };
    if (simpleLangs.length > 1) summary.simple = row;
    parts.push(row);
  }
  for (const k of ['multiple', 'parallel', 'parallel_multiple']) if (sorted[k]) parts.push(sorted[k]!);
  if (parts.length)
    summary.non_live = {
      correct: parts.reduce((a, p) => a + p.correct, 0),
      total: parts.reduce((a, p) => a + p.total, 0),
      accuracy: parts.reduce((a, p) => a + p.accuracy, 0) / parts.length,
    };
  const live = ['live_simple', 'live_multiple', 'live_parallel', 'live_parallel_multiple'].filter((k) => sorted[k]);
  if (live.length)
    summary.live = acc(
      live.reduce((a, k) => a + sorted[k]!.correct, 0),
      live.reduce((a, k) => a + sorted[k]!.total, 0),
    );
  for (const k of ['irrelevance', 'live_irrelevance']) if (sorted[k]) summary[k] = { ...sorted[k]! };
  const correct = scores.filter((s) => s.valid).length;
  if (scores.length) summary.overall = acc(correct, scores.length);
  return { categories: sorted, summary };
}

const ORDER = ['simple', 'simple_python', 'simple_java', 'simple_javascript', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'reply', 'multi_turn', 'live_simple', 'live_multiple', 'live_parallel', 'live_parallel_multiple', 'live_irrelevance'];

function categoryOrder(a: string, b: string): number {
  const ia = ORDER.indexOf(a);
  const ib = ORDER.indexOf(b);
  if (ia >= 0 && ib >= 0) return ia - ib;
  if (ia >= 0) return -1;
  if (ib >= 0) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The report as a plain-text table: categories, then the summary rows. */
export function formatReport(r: EvalReport): string {
  const rows: string[][] = [];
  for (const [k, v] of Object.entries(r.categories)) rows.push([k, `${(v.accuracy * 100).toFixed(2)}%`, `${v.correct}/${v.total}`]);
  const sep = rows.length;
  for (const [k, v] of Object.entries(r.summary)) rows.push([`${k} (summary)`, `${(v.accuracy * 100).toFixed(2)}%`, `${v.correct}/${v.total}`]);
  const header = ['category', 'accuracy', 'correct/total'];
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  const out = [line(header), w.map((x) => '-'.repeat(x)).join('  ')];
  rows.forEach((row, i) => {
    if (i === sep && sep > 0) out.push(w.map((x) => '-'.repeat(x)).join('  '));
    out.push(line(row));
  });
  return out.join('\n') + '\n';
}
