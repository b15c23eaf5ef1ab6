// The kill -9 harness shared by the stand-in and the native tests: an uninterrupted run,
// then a run SIGKILLed at random moments (after a random number of steps plus a random
// delay, or while a checkpoint is written but not committed), resumed each time.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../src/train/rng.js';

export interface ChildRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  steps: number;
  stderr: string;
  done: boolean;
}

/** Runs the child; `killAt` decides, per stdout line, whether to kill now (and after how many ms). */
export function runChild(script: string, args: string[], env: Record<string, string>, killAt?: (line: string) => number | null): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [script, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    let stderr = '';
    let steps = 0;
    let done = false;
    let armed = false;
    p.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('STEP')) steps++;
        if (line === 'DONE') done = true;
        if (killAt && !armed) {
          const ms = killAt(line);
          if (ms !== null) {
            armed = true;
            if (ms <= 0) p.kill('SIGKILL');
            else setTimeout(() => p.kill('SIGKILL'), ms);
          }
        }
      }
    });
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code, signal) => resolve({ code, signal, steps, stderr, done }));
  });
}

export interface KillReport {
  kills: number;
  duringCommit: number;
  runs: number;
}

/** Kills the child `kills` times at random moments, then lets it finish. */
export async function killAndResume(script: string, out: string, mode: string, kills: number, seed: number): Promise<KillReport> {
  const rng = new Rng(seed);
  const rep: KillReport = { kills: 0, duringCommit: 0, runs: 0 };
  for (let attempt = 0; attempt < kills * 4 && rep.kills < kills; attempt++) {
    const atCommit = rep.kills % 3 === 1; // every third kill lands inside a checkpoint write
    const afterSteps = 1 + rng.int(3);
    const delay = rng.int(25);
    let seen = 0;
    let commits = 0;
    // each step lingers 30 ms after its STEP line, so a kill 0-24 ms later lands before the
    // next step ends: at most 4 steps per run, and 6 kills cannot run out of steps
    const r = await runChild(script, [out, mode], { COMMIT_DELAY_MS: atCommit ? '300' : '0', STEP_DELAY_MS: '30' }, (line) => {
      if (atCommit) return line === 'COMMIT' && ++commits >= afterSteps ? 0 : null;
      return line.startsWith('STEP') && ++seen >= afterSteps ? delay : null;
    });
    rep.runs++;
    if (r.signal === 'SIGKILL') {
      rep.kills++;
      if (atCommit) {
        rep.duringCommit++;
        // the kill left an uncommitted temp checkpoint behind
        if (!readdirSync(join(out, 'checkpoints')).some((e) => e.startsWith('.tmp-'))) throw new Error('expected a .tmp- checkpoint after a kill during commit');
      }
    } else if (r.code !== 0) throw new Error(`child failed (code ${r.code}): ${r.stderr}`);
    else if (r.done) break; // finished before the kill fired
  }
  const last = await runChild(script, [out, mode], {});
  rep.runs++;
  if (last.code !== 0 || !last.done) throw new Error(`final child run failed (code ${last.code}): ${last.stderr}`);
  return rep;
}

export function readTree(dir: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const p = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    m.set(p.slice(dir.length), readFileSync(p));
  }
  return m;
}

export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
