// The run directory's record of finished phases (state.json, written atomically), so a
// run killed at any moment resumes without repeating a finished phase.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface PhaseRecord {
  name: string;
  finishedAt: string;
  seconds: number;
  /** small JSON summary the later phases and the report read back */
  result: unknown;
}

export interface RunStateFile {
  version: 1;
  /** identifies the data and config the run was started with */
  fingerprint: string;
  phases: PhaseRecord[];
  /** directory of the newest saved policy (null: the model the run started from) */
  model: string | null;
}

/** write temp, fsync, rename, fsync the directory */
export function writeAtomic(file: string, data: string): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  try {
    const dfd = openSync(dirname(file), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* directories cannot be fsynced everywhere */
  }
}

export class RunState {
  readonly file: string;
  private s: RunStateFile;

  constructor(
    readonly dir: string,
    fingerprint: string,
  ) {
    mkdirSync(dir, { recursive: true });
    this.file = join(dir, 'state.json');
    if (existsSync(this.file)) {
      let s: RunStateFile;
      try {
        s = JSON.parse(readFileSync(this.file, 'utf8')) as RunStateFile;
      } catch (e) {
        throw new Error(`${this.file}: not a readable run state (${(e as Error).message}); remove it to start over`);
      }
      if (s.fingerprint !== fingerprint)
        throw new Error(`${dir} holds a run with other data or options (state.json fingerprint ${s.fingerprint}, now ${fingerprint}); use another --out directory or remove it`);
      this.s = s;
    } else {
      this.s = { version: 1, fingerprint, phases: [], model: null };
      this.save();
    }
  }

  private save(): void {
    writeAtomic(this.file, JSON.stringify(this.s, null, 2) + '\n');
  }

  get phases(): readonly PhaseRecord[] {
    return this.s.phases;
  }
  get model(): string | null {
    return this.s.model;
  }

  done(name: string): PhaseRecord | undefined {
    return this.s.phases.find((p) => p.name === name);
  }

  /** records a finished phase (and the newest policy directory when it saved one) */
  finish(name: string, seconds: number, result: unknown, model?: string): void {
    if (this.done(name)) throw new Error(`phase '${name}' is already recorded as finished`);
    this.s.phases.push({ name, finishedAt: new Date().toISOString(), seconds, result });
    if (model !== undefined) this.s.model = model;
    this.save();
  }
}

/** a short stable hash (FNV-1a, 32 bit, hex) */
export function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}
