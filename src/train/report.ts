// Reporting: metrics.jsonl (one JSON line per optimizer step) and a cli-progress bar on
// stderr, shown only when stderr is a terminal or when asked, so piped output stays clean.
import cliProgress from 'cli-progress';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomic } from './fsutil.js';

export interface StepMetrics {
  phase: string;
  /** 1-based optimizer step within the phase */
  step: number;
  totalSteps: number;
  epoch: number;
  /** curriculum stage (SFT) */
  stage?: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** tokens processed by this step (all positions) */
  tokens: number;
  /** tokens the loss was taken on */
  lossTokens: number;
  tokensPerSec: number;
  skipped: boolean;
  /** why the step was skipped */
  skipReason?: string;
  /** preference losses: mean rewards, mean margin (chosen - rejected reward) and pair accuracy */
  chosenReward?: number;
  rejectedReward?: number;
  margin?: number;
  accuracy?: number;
  /** seconds since the phase started (this process) */
  elapsed: number;
}

export class MetricsWriter {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }

  /**
   * Keeps only well-formed lines of `phase` with step <= `step` (and all lines of other
   * phases): on resume, the steps after the checkpoint are re-run and written again.
   */
  truncateAfter(phase: string, step: number): void {
    if (!existsSync(this.path)) return;
    const keep: string[] = [];
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        const m = JSON.parse(line) as { phase?: string; step?: number };
        if (m.phase !== phase || (m.step ?? Infinity) <= step) keep.push(line);
      } catch {
        /* a line cut by a kill */
      }
    }
    writeFileAtomic(this.path, keep.length ? keep.join('\n') + '\n' : '');
  }

  /** Removes every line of `phase` (a fresh start of that phase). */
  resetPhase(phase: string): void {
    this.truncateAfter(phase, 0);
  }

  write(m: StepMetrics): void {
    appendFileSync(this.path, JSON.stringify(m, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) + '\n');
  }
}

export interface ProgressOptions {
  /** true: always; false: never; undefined: when stderr is a TTY */
  progress?: boolean;
  stream?: NodeJS.WritableStream;
}

/** A progress bar for one phase; every method is a no-op when the bar is off. */
export class Progress {
  private bar: cliProgress.SingleBar | null = null;

  constructor(label: string, total: number, start: number, opts: ProgressOptions = {}) {
    const stream = (opts.stream ?? process.stderr) as NodeJS.WriteStream;
    const on = opts.progress ?? Boolean(stream.isTTY);
    if (!on) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream,
        format: `${label} |{bar}| {value}/{total} | loss {loss} | {tps} tok/s | ETA {eta_formatted}{extra}`,
        barsize: 24,
        hideCursor: true,
        noTTYOutput: !stream.isTTY,
        notTTYSchedule: 5000,
        etaBuffer: 20,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, start, { loss: '-', tps: '-', extra: '' });
  }

  update(value: number, loss: number, tokensPerSec: number, extra = ''): void {
    this.bar?.update(value, {
      loss: Number.isFinite(loss) ? loss.toFixed(4) : String(loss),
      tps: Number.isFinite(tokensPerSec) ? Math.round(tokensPerSec).toString() : '-',
      extra,
    });
  }

  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }
}
