// The category table printed at the end of `itool train` and `itool demo`.
import { categoryNames, type CategoryTable, type ReportEvaluation } from './html.js';

function cell(s: { correct: number; total: number; accuracy: number } | undefined): string {
  return s ? `${(s.accuracy * 100).toFixed(1)}% (${s.correct}/${s.total})` : '-';
}

function overall(t: CategoryTable): { correct: number; total: number; accuracy: number } {
  let correct = 0;
  let total = 0;
  for (const v of Object.values(t)) {
    correct += v.correct;
    total += v.total;
  }
  return { correct, total, accuracy: total ? correct / total : 0 };
}

/** Plain-text columns: the first left-aligned, the rest right-aligned, a rule under the header. */
export function plainTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}

/** A plain-text table: one row per category (and "all"), one column per evaluation. */
export function categoryTableText(evals: readonly ReportEvaluation[]): string {
  const cats = categoryNames([...evals]);
  const header = ['category', ...evals.map((e) => e.label)];
  const rows = cats.map((c) => [c, ...evals.map((e) => cell(e.categories[c]))]);
  rows.push(['all', ...evals.map((e) => cell(overall(e.categories)))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((v, i) => (i === 0 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n') + '\n';
}
