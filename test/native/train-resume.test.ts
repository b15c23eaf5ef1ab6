// kill -9 on the real CPU engine: a child trains a tiny Llama with a checkpoint after every
// step; it is SIGKILLed at random moments (after a random number of steps plus a random
// delay, and inside checkpoint writes), resumed each time, and must end with training
// state (weights, AdamW moments, step counter) bitwise equal to an uninterrupted run.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, killAndResume, readTree, runChild } from '../train/kill-harness.js';
import { repoRoot, transpileTree } from '../train/transpile.js';

const work = join(repoRoot, 'build', `train-kill-native-${process.pid}`);
afterAll(() => cleanup(work));

describe('resume after SIGKILL on the CPU engine', () => {
  it('killed 6 times (2 inside a checkpoint write) and resumed, ends bitwise equal to an uninterrupted run', async () => {
    mkdirSync(work, { recursive: true });
    transpileTree(join(work, 'js'), ['src/engine', 'src/data', 'src/train', 'test/train']);
    const script = join(work, 'js', 'test', 'train', 'kill-child.js');
    const ref = await runChild(script, [join(work, 'ref'), 'native'], {});
    expect(ref.stderr).toBe('');
    expect(ref.done).toBe(true);
    const rep = await killAndResume(script, join(work, 'killed'), 'native', 6, 4321);
    process.stdout.write(`kill -9 test (native): ${rep.kills} kills (${rep.duringCommit} inside a checkpoint write) over ${rep.runs} runs of ${ref.steps} steps\n`);
    expect(rep.kills).toBe(6);
    expect(rep.duringCommit).toBe(2);
    const a = readTree(join(work, 'ref', 'final'));
    const b = readTree(join(work, 'killed', 'final'));
    expect(a.size).toBeGreaterThan(0);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);
  });
});
