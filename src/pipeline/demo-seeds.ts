// `itool demo --seeds 1,2,3`: the demo once per seed (each in its own seed-N directory) and one
// table of mean and spread per category and arm, with the headroom measures and pair counts.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { plainTable } from '../report/table.js';
import { runDemo, type DemoDeps, type DemoOptions, type DemoResults } from './demo.js';
import { claimDemoDir, DEMO_VERSION } from './demo-dir.js';
import { PAIR_KINDS } from './metrics.js';
import { writeAtomic } from './state.js';

export interface Spread {
  mean: number;
  /** sample standard deviation (0 for one seed) */
  sd: number;
  min: number;
  max: number;
  values: number[];
}

export function spread(values: readonly number[]): Spread {
  const n = values.length;
  const mean = n ? values.reduce((a, b) => a + b, 0) / n : NaN;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values), values: [...values] };
}

interface ArmView {
  label: string;
  pass1: (r: DemoResults, c: string) => { correct: number; total: number } | undefined;
  passK: (r: DemoResults, c: string) => number | undefined;
  copy: (r: DemoResults, c: string) => number | undefined;
}

function arms(rs: readonly DemoResults[]): ArmView[] {
  const n = Math.min(...rs.map((r) => r.itool.iterations.length));
  const out: ArmView[] = [
    { label: 'warm-up', pass1: (r, c) => r.warmup.categories[c], passK: (r, c) => r.warmup.passAtK[c]?.rate, copy: (r, c) => r.warmup.copy[c]?.rate },
  ];
  for (let i = 0; i < n; i++)
    out.push({
      label: `iTool it ${i + 1}`,
      pass1: (r, c) => r.itool.iterations[i].categories[c],
      passK: (r, c) => r.itool.iterations[i].passAtK[c]?.rate,
      copy: (r, c) => r.itool.iterations[i].copy[c]?.rate,
    });
  out.push({ label: 'SFT baseline', pass1: (r, c) => r.baseline.categories[c], passK: (r, c) => r.baseline.passAtK[c]?.rate, copy: (r, c) => r.baseline.copy[c]?.rate });
  return out;
}

const ORDER = ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'multi_turn'];
const fmtPct = (s: Spread) => `${(s.mean * 100).toFixed(1)} ± ${(s.sd * 100).toFixed(1)}`;

export interface SeedsSummary {
  version: number;
  seeds: number[];
  k: number;
  /** per measure, category and arm: mean and spread over the seeds (fractions) */
  table: Record<'pass@1' | 'pass@k' | 'copy', Record<string, Record<string, Spread>>>;
  /** ground-truth copy rate per category (mean over seeds) */
  truthCopy: Record<string, Spread>;
  /** pairs per iteration by kind and total */
  pairs: Array<Record<string, Spread>>;
  /** seconds per phase */
  phases: Record<string, Spread>;
  /** the claim: iTool's last iteration minus the baseline (points) on parallel + parallel_multiple together, and on simple */
  claim: { hardDelta: Spread; simpleDelta: Spread };
  text: string;
}

function pooled(r: DemoResults, view: ArmView, cats: readonly string[]): number {
  let c = 0;
  let t = 0;
  for (const k of cats) {
    const s = view.pass1(r, k);
    if (s) {
      c += s.correct;
      t += s.total;
    }
  }
  return t ? c / t : NaN;
}

/** The mean and spread table over the seeds' results. */
export function summarizeSeeds(seeds: readonly number[], rs: readonly DemoResults[]): SeedsSummary {
  const cats = [...new Set(rs.flatMap((r) => Object.keys(r.warmup.categories)))].sort((a, b) => (ORDER.indexOf(a) + 1 || 99) - (ORDER.indexOf(b) + 1 || 99) || a.localeCompare(b));
  const views = arms(rs);
  const k = rs[0]?.passK.k ?? 8;
  const table: SeedsSummary['table'] = { 'pass@1': {}, 'pass@k': {}, copy: {} };
  for (const c of cats) {
    for (const [m, get] of [
      ['pass@1', (r: DemoResults, v: ArmView) => v.pass1(r, c)?.correct !== undefined ? v.pass1(r, c)!.correct / v.pass1(r, c)!.total : undefined],
      ['pass@k', (r: DemoResults, v: ArmView) => v.passK(r, c)],
      ['copy', (r: DemoResults, v: ArmView) => v.copy(r, c)],
    ] as const) {
      table[m][c] = {};
      for (const v of views) {
        const xs = rs.map((r) => get(r, v)).filter((x): x is number => x !== undefined && Number.isFinite(x));
        if (xs.length) table[m][c][v.label] = spread(xs);
      }
    }
  }
  const truthCopy: Record<string, Spread> = {};
  for (const c of cats) {
    const xs = rs.map((r) => r.warmup.copy[c]).filter((x) => x && x.truthValues > 0).map((x) => x!.truthRate);
    if (xs.length) truthCopy[c] = spread(xs);
  }
  const nIt = views.length - 2;
  const pairs: SeedsSummary['pairs'] = [];
  for (let i = 0; i < nIt; i++) {
    const row: Record<string, Spread> = { total: spread(rs.map((r) => r.itool.iterations[i].pairCounts.total)) };
    for (const kind of PAIR_KINDS) row[kind] = spread(rs.map((r) => r.itool.iterations[i].pairCounts.byKind[kind]));
    pairs.push(row);
  }
  const phaseNames = [...new Set(rs.flatMap((r) => Object.keys(r.phases)))];
  const phases: Record<string, Spread> = {};
  for (const p of phaseNames) phases[p] = spread(rs.map((r) => r.phases[p] ?? 0));
  phases.total = spread(rs.map((r) => r.seconds));
  const last = views[views.length - 2];
  const base = views[views.length - 1];
  const hard = ['parallel', 'parallel_multiple'];
  const claim = {
    hardDelta: spread(rs.map((r) => (pooled(r, last, hard) - pooled(r, base, hard)) * 100)),
    simpleDelta: spread(rs.map((r) => (pooled(r, last, ['simple']) - pooled(r, base, ['simple'])) * 100)),
  };

  const blocks: string[] = [];
  const labels = views.map((v) => v.label);
  for (const [m, title] of [
    ['pass@1', 'pass@1 (greedy accuracy, %)'],
    ['pass@k', `pass@${k} (best of ${k} at the search temperature, %)`],
    ['copy', 'copy rate of argument values (greedy answers, %)'],
  ] as const) {
    const header = ['category', ...labels, ...(m === 'copy' ? ['ground truth'] : [])];
    const rows = cats
      .filter((c) => m !== 'copy' || truthCopy[c])
      .map((c) => [c, ...labels.map((l) => (table[m][c][l] ? fmtPct(table[m][c][l]) : '-')), ...(m === 'copy' ? [fmtPct(truthCopy[c])] : [])]);
    blocks.push(`${title}, mean ± sd over seeds ${seeds.join(', ')}:\n\n${plainTable(header, rows)}`);
  }
  if (pairs.length) {
    const f = (s: Spread) => `${s.mean.toFixed(0)} ± ${s.sd.toFixed(0)}`;
    blocks.push(`pairs per iteration by kind, mean ± sd:\n\n${plainTable(['iteration', 'total', ...PAIR_KINDS], pairs.map((p, i) => [String(i + 1), f(p.total), ...PAIR_KINDS.map((kd) => f(p[kd]))]))}`);
  }
  const loads = rs.map((r) => r.loadAverage).filter(Boolean);
  const loadNote = loads.length ? ` (1-minute load average at start/end per seed: ${loads.map((l) => `${l.start[0].toFixed(1)}/${l.end[0].toFixed(1)}`).join(', ')} on ${availableParallelism()} cores)` : '';
  blocks.push(`seconds per phase, mean ± sd${loadNote}:\n\n${plainTable(['phase', 'seconds'], Object.entries(phases).map(([p, s]) => [p, `${s.mean.toFixed(1)} ± ${s.sd.toFixed(1)}`]))}`);
  const d = (s: Spread) => `${s.mean >= 0 ? '+' : ''}${s.mean.toFixed(1)} ± ${s.sd.toFixed(1)} points (per seed: ${s.values.map((x) => x.toFixed(1)).join(', ')})`;
  blocks.push(`iTool it ${nIt} minus the SFT baseline: parallel + parallel_multiple ${d(claim.hardDelta)}; simple ${d(claim.simpleDelta)}\n`);
  return { version: DEMO_VERSION, seeds: [...seeds], k, table, truthCopy, pairs, phases, claim, text: blocks.join('\n') };
}

/**
 * Runs the demo for each seed into out/seed-N (a seed already finished there is read back, not
 * rerun) and writes out/summary.json and out/summary.txt.
 */
export async function runDemoSeeds(
  deps: DemoDeps,
  o: Omit<DemoOptions, 'seed' | 'out'> & { out: string; seeds: readonly number[] },
): Promise<{ summary: SeedsSummary; results: DemoResults[] }> {
  if (o.seeds.length === 0) throw new Error('runDemoSeeds: no seeds');
  claimDemoDir(o.out, { version: DEMO_VERSION, kind: 'seeds', quick: o.quick, seeds: [...o.seeds] });
  const results: DemoResults[] = [];
  for (const seed of o.seeds) {
    o.log?.(`seed ${seed}: start`);
    const r = await runDemo(deps, { ...o, seed, out: join(o.out, `seed-${seed}`) });
    results.push(r.results);
  }
  const summary = summarizeSeeds(o.seeds, results);
  writeAtomic(join(o.out, 'summary.json'), JSON.stringify({ ...summary, text: undefined }, null, 2) + '\n');
  writeAtomic(join(o.out, 'summary.txt'), summary.text);
  return { summary, results };
}
