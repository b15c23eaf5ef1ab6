import { describe, expect, it } from 'vitest';
import { curriculumStages, bucketOf, stageOf } from '../../src/train/curriculum.js';
import { preferenceOptions, sftOptions } from '../../src/train/options.js';
import { packGroups, packSequences, sftSequence, countTargets, chunk } from '../../src/train/pack.js';
import { parsePairs } from '../../src/train/pairs.js';
import { Rng, permutation } from '../../src/train/rng.js';
import { learningRate, warmupStepsOf } from '../../src/train/schedule.js';

describe('Rng', () => {
  it('is deterministic per (seed, stream) and resumes from its state', () => {
    const a = new Rng(7, 1, 2);
    const b = new Rng(7, 1, 2);
    const c = new Rng(7, 1, 3);
    const xs = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c.nextU32())).not.toEqual(xs);
    const st = a.state();
    const more = Array.from({ length: 10 }, () => a.next());
    const r = Rng.fromState(st);
    expect(Array.from({ length: 10 }, () => r.next())).toEqual(more);
    expect(() => Rng.fromState([1, 2, 3] as never)).toThrow(/four unsigned/);
  });
  it('draws uniform integers and permutations', () => {
    const r = new Rng(3);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 60000; i++) counts[r.int(6)]++;
    // 10000 expected per bin; 5 sigma is about 456
    for (const c of counts) expect(Math.abs(c - 10000)).toBeLessThan(460);
    const p = permutation(100, 5, 1);
    expect([...p].sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(permutation(100, 5, 1)).toEqual(p);
    expect(permutation(100, 5, 2)).not.toEqual(p);
    const x = new Rng(1).next();
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThan(1);
  });
});

describe('learning-rate schedules (transformers conventions)', () => {
  it('warms up linearly from 0 and decays by cosine or linearly', () => {
    const o = { kind: 'cosine' as const, lr: 1e-3, totalSteps: 20, warmupRatio: 0.1 };
    expect(warmupStepsOf(o)).toBe(2);
    expect(learningRate(o, 0)).toBe(0);
    expect(learningRate(o, 1)).toBeCloseTo(5e-4, 15);
    expect(learningRate(o, 2)).toBeCloseTo(1e-3, 15);
    // progress (s - 2) / 18
    expect(learningRate(o, 11)).toBeCloseTo(1e-3 * 0.5 * (1 + Math.cos(Math.PI * 0.5)), 15);
    expect(learningRate(o, 20)).toBeCloseTo(0, 15);
    const l = { ...o, kind: 'linear' as const };
    expect(learningRate(l, 11)).toBeCloseTo(1e-3 * (1 - 9 / 18), 15);
    expect(learningRate({ ...o, kind: 'constant' as const }, 15)).toBe(1e-3);
    expect(learningRate({ ...o, minLrRatio: 0.1 }, 20)).toBeCloseTo(1e-4, 15);
    expect(warmupStepsOf({ ...o, warmupRatio: 0.03, totalSteps: 100 })).toBe(3);
  });
});

describe('packing', () => {
  it('sets targets only where the next token is masked in, -1 at sequence ends', () => {
    const s = sftSequence({ ids: [5, 6, 7, 8, 9], mask: [0, 0, 1, 1, 0] });
    expect(Array.from(s.tokens)).toEqual([5, 6, 7, 8, 9]);
    expect(Array.from(s.targets)).toEqual([-1, 7, 8, -1, -1]);
    expect(countTargets(s)).toBe(2);
    const t = sftSequence({ ids: [5, 6, 7, 8, 9], mask: [0, 0, 1, 1, 1] }, 4);
    expect(Array.from(t.targets)).toEqual([-1, 7, 8, -1]);
    expect(() => sftSequence({ ids: [1, 2], mask: [1] })).toThrow(/differ in length/);
  });
  it('lays sequences end to end with boundaries and per-sequence positions', () => {
    const a = sftSequence({ ids: [1, 2, 3], mask: [0, 1, 1] });
    const b = sftSequence({ ids: [4, 5], mask: [0, 1] });
    const p = packSequences([a, b]);
    expect(Array.from(p.tokens)).toEqual([1, 2, 3, 4, 5]);
    expect(Array.from(p.targets)).toEqual([2, 3, -1, 5, -1]);
    expect(Array.from(p.cuSeqlens)).toEqual([0, 3, 5]);
    expect(Array.from(p.positions!)).toEqual([0, 1, 2, 0, 1]);
  });
  it('groups greedily into a token budget', () => {
    expect(packGroups([3, 4, 2, 5, 9], [0, 1, 2, 3, 4], 7)).toEqual([[0, 1], [2, 3], [4]]);
    expect(packGroups([3, 4, 2], [2, 1, 0], 6)).toEqual([[2, 1], [0]]);
    expect(chunk([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
  });
});

describe('curriculum', () => {
  it('maps category spellings to buckets and stages', () => {
    expect(bucketOf('parallel-multiple')).toBe('parallel_multiple');
    expect(bucketOf('live_simple')).toBe('simple');
    expect(bucketOf('simple_python')).toBe('simple');
    expect(stageOf('irrelevance')).toBe(3);
    expect(stageOf('unknown_thing')).toBe(3);
    expect(stageOf('parallel')).toBe(2);
  });
  it('orders stages easy to hard and replays a fraction of the easier samples', () => {
    const cats = ['parallel', 'simple', 'simple', 'multiple', 'simple', 'simple', 'multiple', 'irrelevance', 'multiple', 'parallel'];
    const st = curriculumStages(cats, { replay: 0.5, seed: 1 });
    expect(st.length).toBe(4);
    expect(st[0]).toEqual([1, 2, 4, 5]);
    // stage 1: its 3 + round(0.5 * 4) = 2 replayed simple samples
    expect(st[1]!.slice(0, 3)).toEqual([3, 6, 8]);
    expect(st[1]!.length).toBe(5);
    for (const i of st[1]!.slice(3)) expect(cats[i]).toBe('simple');
    // stage 2: 2 + round(0.5 * 7) = 4 replayed from simple/multiple
    expect(st[2]!.length).toBe(2 + 4);
    for (const i of st[2]!.slice(2)) expect(['simple', 'multiple']).toContain(cats[i]);
    expect(st[3]!.length).toBe(1 + 5);
    expect(curriculumStages(cats, { replay: 0.5, seed: 1 })).toEqual(st);
    expect(curriculumStages(cats, { replay: 0, seed: 1 }).map((s) => s.length)).toEqual([4, 3, 2, 1]);
  });
});

describe('options', () => {
  it('fills defaults and names a bad option', () => {
    const p = preferenceOptions({});
    expect([p.loss, p.beta, p.gamma, p.lr, p.epochs, p.schedule, p.warmupRatio]).toEqual(['simpo', 2.5, 0.5, 1e-6, 2, 'cosine', 0.1]);
    expect(preferenceOptions({ loss: 'dpo' }).beta).toBe(0.1);
    expect(() => preferenceOptions({ loss: 'kto' as never })).toThrow(/loss must be/);
    expect(() => sftOptions({ lr: -1 })).toThrow(/option lr/);
    expect(() => sftOptions({ epochs: 1.5 })).toThrow(/option epochs/);
    expect(sftOptions({ lr: undefined }).lr).toBe(1e-5);
  });
});

describe('pairs file', () => {
  it('reads token-id and text pairs, and names the line of a bad one', () => {
    const tok = { encode: (s: string) => Array.from(s, (ch) => ch.charCodeAt(0) % 50) };
    const text = [
      JSON.stringify({ promptIds: [1, 2], prefixIds: [], chosenIds: [3], rejectedIds: [4, 5], sampleId: 's1', depth: 0 }),
      '',
      JSON.stringify({ prompt: 'ab', prefix: 'c', chosen: 'd', rejected: 'ef' }),
    ].join('\n');
    const ps = parsePairs(text, 'p.jsonl', tok);
    expect(ps[0]).toEqual({ promptIds: [1, 2], prefixIds: [], chosenIds: [3], rejectedIds: [4, 5], sampleId: 's1', depth: 0 });
    expect(ps[1]!.chosenIds).toEqual(tok.encode('d'));
    expect(() => parsePairs(text, 'p.jsonl')).toThrow(/p.jsonl:3: .*tokenizer/);
    expect(() => parsePairs('{"promptIds":[1],"prefixIds":[],"chosenIds":[],"rejectedIds":[2]}', 'q')).toThrow(/q:1: chosen and rejected/);
    expect(() => parsePairs('{x', 'q')).toThrow(/q:1: not JSON/);
  });
});

describe('progress bar', () => {
  function fakeStream(tty: boolean) {
    const chunks: string[] = [];
    const s = {
      isTTY: tty,
      columns: 120,
      write: (c: string) => (chunks.push(String(c)), true),
      cursorTo: () => true,
      clearLine: () => true,
      moveCursor: () => true,
      on: () => s,
      removeListener: () => s,
    };
    return { s: s as unknown as NodeJS.WritableStream, chunks };
  }
  it('stays silent when stderr is not a terminal (piped output is never garbled)', async () => {
    const { Progress } = await import('../../src/train/report.js');
    const f = fakeStream(false);
    const p = new Progress('sft', 10, 0, { stream: f.s });
    p.update(5, 1.25, 1000);
    p.stop();
    expect(f.chunks).toEqual([]);
    const off = fakeStream(true);
    const q = new Progress('sft', 10, 0, { stream: off.s, progress: false });
    q.update(5, 1.25, 1000);
    q.stop();
    expect(off.chunks).toEqual([]);
  });
  it('shows loss, tokens/s and ETA on a terminal', async () => {
    const { Progress } = await import('../../src/train/report.js');
    const f = fakeStream(true);
    const p = new Progress('sft', 10, 0, { stream: f.s });
    p.update(5, 1.25, 1234.4);
    p.stop();
    const text = f.chunks.join('');
    expect(text).toMatch(/sft \|.*\| 5\/10 \| loss 1\.2500 \| 1234 tok\/s \| ETA /);
  });
});
