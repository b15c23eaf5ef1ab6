// Checkpoints that survive kill -9 at any moment.
//
// Layout under the checkpoint root:
//   ckpt-00000007/state.json       trainer state (phase, step, data cursor, RNG states, guards, extra)
//   ckpt-00000007/training/        model.saveTrainingState(): trainable weights + optimizer state + step counter
// A checkpoint is written into `.tmp-…`, every file and directory is fsynced, and only
// then is the directory renamed to its final name (and the root fsynced): a checkpoint
// directory either exists whole or not at all. Old ones are renamed to `.del-…` before
// being removed, so a kill during pruning never leaves a half-deleted checkpoint that
// looks whole. Leftover `.tmp-…`/`.del-…` directories are removed on the next start.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../engine/model-types.js';
import { fsyncPath, fsyncTree, isDir } from './fsutil.js';
import type { RngState } from './rng.js';

export const CHECKPOINT_VERSION = 1;

export interface CheckpointState {
  version: number;
  /** what was running: 'sft', 'preference', or a pipeline phase name */
  phase: string;
  /** optimizer steps completed in this phase (the data cursor: the plan is a pure function of seed and data) */
  step: number;
  /** trainer-specific position (stage, epoch, step in epoch), for humans and checks */
  cursor: Record<string, unknown>;
  /** named RNG states */
  rng: Record<string, RngState>;
  /** consecutive skipped (non-finite) steps at the time of the checkpoint */
  skipsInRow: number;
  /** identifies the data and options the plan was made from; a resume with other data is refused */
  fingerprint: string;
  /** whatever the caller (the pipeline) wants back on resume */
  extra?: unknown;
  /** ISO time of writing (informational) */
  time: string;
}

export interface CheckpointInfo {
  /** ckpt-NNNNNNNN */
  name: string;
  dir: string;
  seq: number;
  state: CheckpointState;
}

export interface CheckpointerOptions {
  /** how many complete checkpoints to keep (oldest removed first); default 2 */
  keepLast?: number;
  /** test hook: runs after every file of a checkpoint is written and fsynced, before the rename that commits it */
  beforeCommit?: (tmpDir: string) => void | Promise<void>;
}

const NAME = /^ckpt-(\d{8,})$/;

export class Checkpointer {
  readonly root: string;
  readonly keepLast: number;
  private readonly beforeCommit?: (tmpDir: string) => void | Promise<void>;

  constructor(root: string, opts: CheckpointerOptions = {}) {
    this.root = root;
    this.keepLast = opts.keepLast ?? 2;
    if (!Number.isInteger(this.keepLast) || this.keepLast < 1)
      throw new RangeError(`Checkpointer: keepLast must be an integer >= 1, got ${opts.keepLast}`);
    this.beforeCommit = opts.beforeCommit;
    mkdirSync(root, { recursive: true });
    this.cleanLeftovers();
  }

  /** Removes `.tmp-…` and `.del-…` directories left by a killed run. */
  private cleanLeftovers(): void {
    for (const e of readdirSync(this.root)) {
      if (e.startsWith('.tmp-') || e.startsWith('.del-')) rmSync(join(this.root, e), { recursive: true, force: true });
    }
  }

  /** Complete checkpoints, oldest first. A directory whose state.json does not parse is ignored. */
  list(): CheckpointInfo[] {
    const out: CheckpointInfo[] = [];
    for (const e of readdirSync(this.root)) {
      const m = NAME.exec(e);
      if (!m) continue;
      const dir = join(this.root, e);
      if (!isDir(dir)) continue;
      try {
        const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as CheckpointState;
        if (state.version !== CHECKPOINT_VERSION) continue;
        out.push({ name: e, dir, seq: Number(m[1]), state });
      } catch {
        continue;
      }
    }
    return out.sort((a, b) => a.seq - b.seq);
  }

  latest(): CheckpointInfo | null {
    const l = this.list();
    return l.length > 0 ? l[l.length - 1]! : null;
  }

  /**
   * Writes a checkpoint: `model.saveTrainingState()` (when a model is given) and the state.
   * Returns once it is durable.
   */
  async save(model: Pick<Model, 'saveTrainingState'> | null, state: Omit<CheckpointState, 'version' | 'time'>): Promise<CheckpointInfo> {
    const all = this.list();
    const seq = all.length > 0 ? all[all.length - 1]!.seq + 1 : 1;
    const name = `ckpt-${String(seq).padStart(8, '0')}`;
    const tmp = join(this.root, `.tmp-${name}-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp);
    const full: CheckpointState = { version: CHECKPOINT_VERSION, ...state, time: new Date().toISOString() };
    try {
      if (model) await model.saveTrainingState(join(tmp, 'training'));
      writeFileSync(join(tmp, 'state.json'), JSON.stringify(full, null, 1) + '\n');
      fsyncTree(tmp);
      if (this.beforeCommit) await this.beforeCommit(tmp);
      const dir = join(this.root, name);
      renameSync(tmp, dir);
      fsyncPath(this.root);
      this.prune();
      return { name, dir, seq, state: full };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      throw new Error(`checkpoint ${name} in ${this.root}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Restores the model's training state from a checkpoint (the caller restores the rest from info.state). */
  async load(model: Pick<Model, 'loadTrainingState'>, info: CheckpointInfo): Promise<void> {
    const t = join(info.dir, 'training');
    if (!existsSync(t)) throw new Error(`checkpoint ${info.dir}: no training/ directory (written without a model)`);
    await model.loadTrainingState(t);
  }

  private prune(): void {
    const all = this.list();
    for (const c of all.slice(0, Math.max(0, all.length - this.keepLast))) {
      const del = join(this.root, `.del-${c.name}-${process.pid}`);
      renameSync(c.dir, del);
      fsyncPath(this.root);
      rmSync(del, { recursive: true, force: true });
    }
  }
}
