// The pipeline on a stand-in environment: every phase recorded, and a run killed with
// SIGKILL after each recorded phase resumes without repeating any finished phase and ends
// with the same results and files as an uninterrupted run.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');
const dist = join(root, 'dist');
const child = join(import.meta.dirname, 'fixtures', 'child.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'itool-pipeline-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** runs the child; kills it with SIGKILL at its first PHASE line when `kill` */
function runChild(runDir: string, logFile: string, kill: boolean): Promise<{ killed: boolean; code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, dist, runDir, logFile, ...(kill ? ['pause'] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (kill && !killed && out.includes('PHASE ')) {
        killed = true;
        p.kill('SIGKILL');
      }
    });
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ killed, code, out, err }));
  });
}

const PHASES = [
  'warmup',
  'eval-0',
  'iteration-1/select',
  'iteration-1/search',
  'iteration-1/optimize',
  'iteration-1/evaluate',
  'iteration-2/select',
  'iteration-2/search',
  'iteration-2/optimize',
  'iteration-2/evaluate',
  'baseline/train',
  'baseline/evaluate',
];

describe('pipeline phases and resume', () => {
  it.skipIf(!existsSync(join(dist, 'pipeline', 'pipeline.js')))('resumes after SIGKILL between phases without repeating finished phases (skipped when dist/ is not built)', async () => {
    // uninterrupted reference run
    const a = join(tmp, 'a', 'run');
    const ra = await runChild(a, join(tmp, 'a.log'), false);
    expect(ra.err).toBe('');
    expect(ra.code).toBe(0);
    const resultA = ra.out.split('\n').find((l) => l.startsWith('RESULT '));
    expect(resultA).toBeDefined();
    const stateA = JSON.parse(readFileSync(join(a, 'state.json'), 'utf8')) as { phases: Array<{ name: string }> };
    expect(stateA.phases.map((p) => p.name)).toEqual(PHASES);

    // killed after every recorded phase, restarted each time
    const b = join(tmp, 'b', 'run');
    const logB = join(tmp, 'b.log');
    let kills = 0;
    let last;
    for (let round = 0; round < 40; round++) {
      last = await runChild(b, logB, true);
      if (!last.killed) break;
      kills++;
    }
    expect(last!.code).toBe(0);
    expect(kills).toBe(PHASES.length);
    const noTime = (l: string | undefined) => JSON.parse(l!.slice(7), (k, v) => (k === 'seconds' ? 0 : v)) as unknown;
    expect(noTime(last!.out.split('\n').find((l) => l.startsWith('RESULT ')))).toEqual(noTime(resultA));

    const lines = readFileSync(logB, 'utf8').split('\n');
    for (const name of PHASES) {
      const finished = lines.map((l, i) => (l.startsWith(`${name}: finished`) ? i : -1)).filter((i) => i >= 0);
      expect(finished.length, `${name} finished once`).toBe(1);
      const laterStarts = lines.slice(finished[0] + 1).filter((l) => l === `${name}: start`);
      expect(laterStarts, `${name} not started again after it finished`).toEqual([]);
    }
    // the expensive operations ran once per phase they belong to, plus at most the killed repeats
    const sft = lines.filter((l) => l === 'op sft warmup').length;
    expect(sft).toBeGreaterThanOrEqual(1);
    expect(sft).toBeLessThanOrEqual(2);

    const stateB = JSON.parse(readFileSync(join(b, 'state.json'), 'utf8')) as { phases: Array<{ name: string }> };
    expect(stateB.phases.map((p) => p.name)).toEqual(PHASES);
    for (const f of ['iteration-1/pairs.jsonl', 'iteration-2/pairs.jsonl', 'iteration-2/trees.jsonl', 'iteration-2/evaluate/predictions.jsonl', 'baseline/evaluate/predictions.jsonl'])
      expect(readFileSync(join(b, f), 'utf8'), f).toBe(readFileSync(join(a, f), 'utf8'));
    const r = JSON.parse(resultA!.slice(7)) as { warmup: { categories: Record<string, { accuracy: number }> }; itool: { iterations: unknown[]; categories: Record<string, { accuracy: number }> }; baseline: { steps: number } };
    expect(r.itool.iterations.length).toBe(2);
    // fake model: w = 1 after warm-up (answers "y"), 3 after two iterations (answers "x")
    expect(r.warmup.categories.simple.accuracy).toBe(0);
    expect(r.itool.categories.simple.accuracy).toBe(1);
    expect(r.baseline.steps).toBe(4); // two preference phases of 2 steps each
  });

  it.skipIf(!existsSync(join(dist, 'pipeline', 'pipeline.js')))('refuses a run directory started with other data (skipped when dist/ is not built)', async () => {
    const a = join(tmp, 'a', 'run');
    const { runPipeline } = (await import(join(dist, 'pipeline', 'pipeline.js'))) as typeof import('../../src/pipeline/pipeline.js');
    const fx = (await import(join(import.meta.dirname, 'fixtures', 'fake-env.mjs'))) as {
      fakeEnv: (f: string) => never;
      config: () => never;
      samples: (n: number, p: string) => never[];
    };
    await expect(
      runPipeline({ env: fx.fakeEnv(join(tmp, 'c.log')), config: fx.config(), runDir: a, modelDir: join(tmp, 'a', 'init-model'), train: fx.samples(5, 'other'), test: fx.samples(2, 't') }),
    ).rejects.toThrow(/holds a run with other data or options/);
  });
});
