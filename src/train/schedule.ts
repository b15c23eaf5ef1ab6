// Learning-rate schedules, as Hugging Face transformers defines them
// (get_{cosine,linear,constant}_schedule_with_warmup): `step` is the 0-based index of
// the optimizer step about to run, so the first step of a warm-up runs at lr 0.

export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** peak learning rate */
  lr: number;
  /** total optimizer steps of the run */
  totalSteps: number;
  /** fraction of totalSteps spent warming up linearly from 0 (ceil, as transformers does) */
  warmupRatio?: number;
  /** explicit warm-up step count; overrides warmupRatio */
  warmupSteps?: number;
  /** floor of the decay as a fraction of lr (0: decays to 0) */
  minLrRatio?: number;
}

export function warmupStepsOf(o: ScheduleOptions): number {
  if (o.warmupSteps !== undefined) return Math.max(0, Math.floor(o.warmupSteps));
  const r = o.warmupRatio ?? 0;
  if (!(r >= 0 && r <= 1)) throw new RangeError(`schedule: warmupRatio must be in [0, 1], got ${r}`);
  return Math.ceil(r * o.totalSteps);
}

export function learningRate(o: ScheduleOptions, step: number): number {
  if (!(o.lr >= 0) || !Number.isFinite(o.lr)) throw new RangeError(`schedule: lr must be a finite number >= 0, got ${o.lr}`);
  const warm = warmupStepsOf(o);
  if (step < warm) return (o.lr * step) / Math.max(1, warm);
  const floor = o.minLrRatio ?? 0;
  const progress = Math.min(1, (step - warm) / Math.max(1, o.totalSteps - warm));
  let f: number;
  switch (o.kind) {
    case 'constant':
      return o.lr;
    case 'linear':
      f = 1 - progress;
      break;
    case 'cosine':
      f = 0.5 * (1 + Math.cos(Math.PI * progress));
      break;
    default:
      throw new TypeError(`schedule: kind must be 'cosine', 'linear' or 'constant', got '${String(o.kind)}'`);
  }
  return o.lr * (floor + (1 - floor) * f);
}
