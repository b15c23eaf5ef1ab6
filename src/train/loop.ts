// The optimizer-step loop both trainers share: schedule, guards against non-finite
// losses and gradients, metrics, progress, checkpoints and exact resume.
//
// Exact resume rests on one rule: the whole plan of steps (which samples or pairs go into
// which micro-batch of which step) is a pure function of the seed and the data, so the
// data cursor is just the number of completed steps; the model's trainable weights,
// optimizer moments and step counter come back bitwise from saveTrainingState.
import { join } from 'node:path';
import type { Model } from '../engine/model-types.js';
import { Checkpointer, type CheckpointInfo } from './checkpoint.js';
import type { CommonTrainOptions } from './options.js';
import { MetricsWriter, Progress, type StepMetrics } from './report.js';
import { learningRate, type ScheduleOptions } from './schedule.js';

export interface TrainHooks {
  /** after every optimizer step (skipped ones included) */
  onStep?: (m: StepMetrics) => void | Promise<void>;
  /** after every checkpoint */
  onCheckpoint?: (info: CheckpointInfo) => void | Promise<void>;
  /** asked after every step; true stops the run after writing a checkpoint */
  shouldStop?: () => boolean;
}

export interface TrainResult {
  phase: string;
  /** optimizer steps completed (including those of earlier runs when resumed) */
  steps: number;
  totalSteps: number;
  /** step this run resumed from (0: fresh) */
  resumedFrom: number;
  /** steps skipped for non-finite loss or gradient, in this run */
  skipped: number;
  /** loss of each step this run executed, in order (NaN for skipped steps) */
  losses: number[];
  /** true when shouldStop ended the run before the last step */
  stopped: boolean;
  /** the last checkpoint written (null without outDir/checkpointer) */
  checkpoint: CheckpointInfo | null;
}

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** What one step's forward/backward produced; gradients are left accumulated in the model. */
export interface StepOutcome {
  /** mean loss of the step (NaN/Inf: the step is skipped) */
  loss: number;
  tokens: number;
  lossTokens: number;
  /** extra fields for metrics (preference rewards) */
  metrics?: Partial<StepMetrics>;
}

export interface StepInfo {
  epoch: number;
  stage?: number;
}

export interface LoopSpec {
  model: Model;
  opts: CommonTrainOptions;
  hooks?: TrainHooks;
  /** the plan: one entry per optimizer step (before maxSteps) */
  steps: readonly StepInfo[];
  /** forward + backward of plan step k (0-based); the loop has zeroed the gradients */
  run: (k: number) => Promise<StepOutcome>;
  /** identifies data + plan options; a checkpoint with another fingerprint is not resumed */
  fingerprint: string;
  /** label of the progress bar */
  label: string;
  /** called once the start step is known (0 or the resumed step), before any step runs */
  prepare?: (resumed: CheckpointInfo | null) => Promise<void>;
}

export function checkpointerFor(opts: CommonTrainOptions): Checkpointer | null {
  if (opts.checkpointer) return opts.checkpointer;
  if (opts.outDir) return new Checkpointer(join(opts.outDir, 'checkpoints'), { keepLast: opts.keepLast });
  return null;
}

export async function runLoop(spec: LoopSpec): Promise<TrainResult> {
  const { model, opts, hooks = {} } = spec;
  const phase = opts.phase;
  const total = opts.maxSteps > 0 ? Math.min(opts.maxSteps, spec.steps.length) : spec.steps.length;
  const sched: ScheduleOptions = { kind: opts.schedule, lr: opts.lr, totalSteps: total, warmupRatio: opts.warmupRatio, minLrRatio: opts.minLrRatio };
  const ckpt = checkpointerFor(opts);
  const metrics = opts.outDir ? new MetricsWriter(join(opts.outDir, 'metrics.jsonl')) : null;

  let start = 0;
  let skipsInRow = 0;
  let resumed: CheckpointInfo | null = null;
  if (opts.resume && ckpt) {
    const c = ckpt.latest();
    if (c && c.state.phase === phase) {
      if (c.state.fingerprint !== spec.fingerprint)
        throw new Error(
          `resume: checkpoint ${c.dir} was written for other data or options (fingerprint ${c.state.fingerprint.slice(0, 12)}, now ${spec.fingerprint.slice(0, 12)}); ` +
            `use the same data, seed and batching options, or start without --resume`,
        );
      await ckpt.load(model, c);
      start = Math.min(c.state.step, total);
      skipsInRow = c.state.skipsInRow;
      for (const [k, r] of Object.entries(opts.rngs ?? {})) {
        const st = c.state.rng[k];
        if (!st) throw new Error(`resume: checkpoint ${c.dir} holds no state for RNG '${k}'`);
        r.setState(st);
      }
      resumed = c;
    }
  }
  if (metrics) {
    if (resumed) metrics.truncateAfter(phase, start);
    else metrics.resetPhase(phase);
  }
  // every phase starts from fresh AdamW moments and step counter, as it would in a new process:
  // the same model object trained by an earlier phase (the warm-up SFT before a preference
  // phase, one iteration before the next) otherwise carried that phase's moments into this one
  // (a resumed phase has its checkpoint's, loaded above)
  if (!resumed) model.resetOptimizer();
  await spec.prepare?.(resumed);

  const result: TrainResult = { phase, steps: start, totalSteps: total, resumedFrom: start, skipped: 0, losses: [], stopped: false, checkpoint: resumed };
  const save = async (step: number): Promise<void> => {
    if (!ckpt) return;
    const s = spec.steps[Math.max(0, step - 1)];
    result.checkpoint = await ckpt.save(model, {
      phase,
      step,
      cursor: { step, totalSteps: total, epoch: s?.epoch ?? 0, stage: s?.stage ?? null },
      rng: Object.fromEntries(Object.entries(opts.rngs ?? {}).map(([k, r]) => [k, r.state()])),
      skipsInRow,
      fingerprint: spec.fingerprint,
      extra: opts.extra,
    });
    await hooks.onCheckpoint?.(result.checkpoint);
  };

  const bar = new Progress(spec.label, total, start, { progress: opts.progress });
  const t0 = performance.now();
  try {
    for (let k = start; k < total; k++) {
      const ts = performance.now();
      const lr = learningRate(sched, k);
      model.zeroGrad();
      let out: StepOutcome;
      let skipReason: string | undefined;
      let gradNorm = NaN;
      try {
        out = await spec.run(k);
      } catch (e) {
        throw new Error(`${phase} step ${k + 1}: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (!Number.isFinite(out.loss)) {
        skipReason = `non-finite loss (${out.loss})`;
        model.zeroGrad();
      } else {
        const r = await model.step({ lr, beta1: opts.beta1, beta2: opts.beta2, eps: opts.eps, weightDecay: opts.weightDecay, maxGradNorm: opts.maxGradNorm, gradScale: 1 });
        gradNorm = r.gradNorm;
        if (r.skipped) skipReason = `non-finite gradient (norm ${r.gradNorm})`;
      }
      const secs = Math.max(1e-9, (performance.now() - ts) / 1000);
      const info = spec.steps[k]!;
      const m: StepMetrics = {
        phase,
        step: k + 1,
        totalSteps: total,
        epoch: info.epoch,
        ...(info.stage !== undefined ? { stage: info.stage } : {}),
        loss: out.loss,
        lr,
        gradNorm,
        tokens: out.tokens,
        lossTokens: out.lossTokens,
        tokensPerSec: out.tokens / secs,
        skipped: skipReason !== undefined,
        ...(skipReason ? { skipReason } : {}),
        ...(out.metrics ?? {}),
        elapsed: (performance.now() - t0) / 1000,
      };
      result.losses.push(skipReason ? NaN : out.loss);
      result.steps = k + 1;
      if (skipReason) {
        result.skipped++;
        skipsInRow++;
        process.stderr.write(`itool ${phase}: step ${k + 1} skipped: ${skipReason}\n`);
      } else skipsInRow = 0;
      metrics?.write(m);
      bar.update(k + 1, out.loss, m.tokensPerSec, m.accuracy !== undefined ? ` | acc ${m.accuracy.toFixed(2)}` : '');
      await hooks.onStep?.(m);
      if (skipsInRow >= opts.maxSkipsInRow) {
        const last = result.checkpoint ? `the last good checkpoint is ${result.checkpoint.dir} (step ${result.checkpoint.state.step})` : 'no checkpoint was written';
        throw new TrainingDivergedError(
          `${phase}: ${skipsInRow} steps in a row skipped (last at step ${k + 1}: ${skipReason}); stopped. ` +
            `${last}. Lower the learning rate or check the data, then resume.`,
        );
      }
      const last = k + 1 === total;
      const stop = !last && hooks.shouldStop?.() === true;
      if (last || stop || (opts.saveEvery > 0 && (k + 1) % opts.saveEvery === 0)) await save(k + 1);
      if (stop) {
        result.stopped = true;
        break;
      }
    }
    // a phase with nothing left to do still leaves a checkpoint of its end when resumed into
    if (total === 0 && ckpt && !resumed) await save(0);
  } finally {
    bar.stop();
  }
  return result;
}
