import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/train/checkpoint.js';
import { BigramModel } from './fake-model.js';

const root = mkdtempSync(join(tmpdir(), 'itool-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const state = (step: number) => ({ phase: 'sft', step, cursor: {}, rng: {}, skipsInRow: 0, fingerprint: 'f' });

describe('Checkpointer', () => {
  it('keeps the last N, newest last, and loads the training state back', async () => {
    const dir = join(root, 'a');
    const c = new Checkpointer(dir, { keepLast: 2 });
    const m = new BigramModel(8, 1);
    for (let s = 1; s <= 4; s++) {
      m.t = s;
      await c.save(m, state(s));
    }
    expect(c.list().map((x) => [x.name, x.state.step])).toEqual([['ckpt-00000003', 3], ['ckpt-00000004', 4]]);
    const back = new BigramModel(8, 2);
    await c.load(back, c.latest()!);
    expect(back.t).toBe(4);
    expect(Buffer.from(back.w.buffer).equals(Buffer.from(m.w.buffer))).toBe(true);
  });

  it('never exposes a checkpoint whose write failed, and cleans leftovers on start', async () => {
    const dir = join(root, 'b');
    const c = new Checkpointer(dir, {
      beforeCommit: () => {
        throw new Error('disk full (simulated)');
      },
    });
    await expect(c.save(new BigramModel(8), state(1))).rejects.toThrow(/checkpoint ckpt-00000001 .*disk full/);
    expect(c.list()).toEqual([]);
    expect(readdirSync(dir)).toEqual([]);
    // what a kill leaves behind: a temp dir, a half-deleted old one, a dir without state.json
    mkdirSync(join(dir, '.tmp-ckpt-00000002-123'));
    mkdirSync(join(dir, '.del-ckpt-00000001-123'));
    mkdirSync(join(dir, 'ckpt-00000009'));
    writeFileSync(join(dir, 'ckpt-00000009', 'state.json'), '{"version":1,"pha');
    const c2 = new Checkpointer(dir);
    expect(c2.latest()).toBeNull();
    expect(readdirSync(dir).sort()).toEqual(['ckpt-00000009']);
  });
});
