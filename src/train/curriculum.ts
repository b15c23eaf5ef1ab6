// Easy-to-hard curriculum: samples grouped by difficulty bucket, trained in stages, each
// stage replaying a fraction of the easier stages' samples.
import { Rng } from './rng.js';

/** Default stages, easiest first. A category not listed goes to the last stage. */
export const DEFAULT_STAGES: readonly (readonly string[])[] = [
  ['simple'],
  ['multiple'],
  ['parallel'],
  ['parallel_multiple', 'irrelevance', 'multi_turn', 'nested'],
];

/** Normalises category spellings ('parallel-multiple', 'live_simple', 'simple_python') to a bucket name. */
export function bucketOf(category: string | undefined): string {
  const c = (category ?? '').toLowerCase().replace(/-/g, '_');
  if (/parallel_multiple/.test(c)) return 'parallel_multiple';
  if (/irrelevan/.test(c)) return 'irrelevance';
  if (/multi_turn/.test(c)) return 'multi_turn';
  if (/parallel/.test(c)) return 'parallel';
  if (/multiple/.test(c)) return 'multiple';
  if (/simple/.test(c)) return 'simple';
  return c;
}

export function stageOf(category: string | undefined, stages: readonly (readonly string[])[] = DEFAULT_STAGES): number {
  const b = bucketOf(category);
  for (let i = 0; i < stages.length; i++) if (stages[i]!.includes(b)) return i;
  return stages.length - 1;
}

export interface CurriculumOptions {
  stages?: readonly (readonly string[])[];
  /** fraction of the easier stages' samples replayed in each later stage (0..1), default 0.2 */
  replay?: number;
  seed: number;
}

/**
 * Sample indices of each non-empty stage, easiest first: the stage's own samples plus
 * round(replay * |easier samples|) of the easier ones, drawn without replacement by a
 * seeded RNG (a pure function of seed and stage).
 */
export function curriculumStages(categories: readonly (string | undefined)[], o: CurriculumOptions): number[][] {
  const stages = o.stages ?? DEFAULT_STAGES;
  const replay = o.replay ?? 0.2;
  if (!(replay >= 0 && replay <= 1)) throw new RangeError(`curriculum: replay must be in [0, 1], got ${replay}`);
  const own: number[][] = stages.map(() => []);
  categories.forEach((c, i) => own[stageOf(c, stages)]!.push(i));
  const out: number[][] = [];
  const easier: number[] = [];
  own.forEach((idx, k) => {
    if (idx.length === 0) return;
    const n = Math.round(replay * easier.length);
    const rep = n > 0 ? new Rng(o.seed, 0x5eed, k).shuffle(easier.slice()).slice(0, n).sort((a, b) => a - b) : [];
    out.push([...idx, ...rep]);
    easier.push(...idx);
  });
  return out;
}
