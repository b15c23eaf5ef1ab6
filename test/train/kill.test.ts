// kill -9 at random moments, resume, and end bitwise equal to an uninterrupted run
// (stand-in model; test/native/train-resume.test.ts runs the same on the real engine).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, killAndResume, readTree, runChild } from './kill-harness.js';
import { repoRoot, transpileTree } from './transpile.js';

const work = join(repoRoot, 'build', `train-kill-fake-${process.pid}`);
afterAll(() => cleanup(work));

describe('resume after SIGKILL (stand-in model)', () => {
  it('killed 6 times (2 inside a checkpoint write) and resumed, ends bitwise equal to an uninterrupted run', async () => {
    mkdirSync(work, { recursive: true });
    transpileTree(join(work, 'js'), ['src/engine', 'src/data', 'src/train', 'test/train']);
    const script = join(work, 'js', 'test', 'train', 'kill-child.js');
    const ref = await runChild(script, [join(work, 'ref'), 'fake'], {});
    expect(ref.stderr).toBe('');
    expect(ref.done).toBe(true);
    const rep = await killAndResume(script, join(work, 'killed'), 'fake', 6, 1234);
    expect(rep.kills).toBe(6);
    expect(rep.duringCommit).toBe(2);
    const a = readTree(join(work, 'ref', 'final'));
    const b = readTree(join(work, 'killed', 'final'));
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);
  });
});
