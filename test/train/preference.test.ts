import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PreferencePair } from '../../src/train/pairs.js';
import { pairLogprobSums, pairSequences, preferenceForwardBackward, trainPreference } from '../../src/train/preference.js';
import { preferenceOptions } from '../../src/train/options.js';
import { BigramModel } from './fake-model.js';
import { refLoss, refLossFn } from './ref-losses.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function pairs(n: number): PreferencePair[] {
  const out: PreferencePair[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ promptIds: [i % 5, 5 + (i % 3)], prefixIds: i % 2 ? [10] : [], chosenIds: [12 + (i % 3), 20], rejectedIds: [16 + (i % 4), 21, 22], sampleId: `s${i}` });
  }
  return out;
}

describe('reference losses (float64 closed forms) are self-consistent', () => {
  it('their derivatives match central differences', () => {
    const q = { beta: 0.7, gamma: 0.3, labelSmoothing: 0.1, lambda: 0.4 };
    for (const kind of ['dpo', 'ipo', 'simpo', 'orpo'] as const) {
      for (const p of [
        { c: -3.1, r: -5.2, lc: 3, lr: 5, rc: -3.5, rr: -4.9 },
        { c: -9.0, r: -2.0, lc: 4, lr: 2, rc: -8.0, rr: -2.5 },
      ]) {
        const r = refLoss(kind, q, p);
        const h = 1e-6;
        const fc = (refLoss(kind, q, { ...p, c: p.c + h }).loss - refLoss(kind, q, { ...p, c: p.c - h }).loss) / (2 * h);
        const fr = (refLoss(kind, q, { ...p, r: p.r + h }).loss - refLoss(kind, q, { ...p, r: p.r - h }).loss) / (2 * h);
        expect(r.dc).toBeCloseTo(fc, 7);
        expect(r.dr).toBeCloseTo(fr, 7);
      }
    }
  });
});

describe('preference pairs become two step-only sequences', () => {
  it('targets only the step tokens; context is prompt + prefix', () => {
    const s = pairSequences({ promptIds: [1, 2], prefixIds: [3], chosenIds: [7, 8], rejectedIds: [9] });
    expect(Array.from(s.chosen.tokens)).toEqual([1, 2, 3, 7, 8]);
    expect(Array.from(s.chosen.targets)).toEqual([-1, -1, 7, 8, -1]);
    expect(Array.from(s.rejected.tokens)).toEqual([1, 2, 3, 9]);
    expect(Array.from(s.rejected.targets)).toEqual([-1, -1, 9, -1]);
    expect([s.chosenLen, s.rejectedLen]).toEqual([2, 1]);
  });

  it('spreads d loss / d sum over the step tokens, divided by the pairs of the step', async () => {
    const m = new BigramModel(32, 2);
    const ps = pairs(3);
    const seqs = ps.map(pairSequences);
    const o = preferenceOptions({ loss: 'simpo' });
    const sums = await pairLogprobSums(m, ps);
    await preferenceForwardBackward(m, [[0, 1, 2]], seqs, o, refLossFn, null);
    const dl = m.dlogprobsSeen[0]!;
    let off = 0;
    ps.forEach((p, j) => {
      const r = refLoss('simpo', o, { c: sums.chosen[j]!, r: sums.rejected[j]!, lc: p.chosenIds.length, lr: p.rejectedIds.length });
      for (const [seq, d] of [[seqs[j]!.chosen, r.dc], [seqs[j]!.rejected, r.dr]] as const) {
        for (let i = 0; i < seq.tokens.length; i++) expect(dl[off + i]).toBeCloseTo(seq.targets[i]! >= 0 ? d / 3 : 0, 6);
        off += seq.tokens.length;
      }
    });
  });
});

describe('preference training on a stand-in model', () => {
  for (const loss of ['simpo', 'dpo', 'ipo', 'orpo'] as const) {
    it(`${loss}: raises the chosen-minus-rejected margin and the pair accuracy`, async () => {
      const m = new BigramModel(32, 6);
      const ps = pairs(12);
      const before = await pairLogprobSums(m, ps);
      const out = mkdtempSync(join(tmpdir(), 'itool-pref-'));
      dirs.push(out);
      const steps: { margin: number; accuracy: number }[] = [];
      const res = await trainPreference(
        m,
        ps,
        { loss, lr: 0.05, epochs: 6, batchPairs: 4, batchTokens: 20, lossFn: refLossFn, progress: false, outDir: out, beta: loss === 'simpo' ? 2.5 : 0.5 },
        { onStep: (s) => void steps.push({ margin: s.margin!, accuracy: s.accuracy! }) },
      );
      expect(res.steps).toBe(18);
      const after = await pairLogprobSums(m, ps);
      const acc = (s: typeof before) => ps.filter((p, i) => s.chosen[i]! / p.chosenIds.length > s.rejected[i]! / p.rejectedIds.length).length / ps.length;
      const gap = (s: typeof before) => ps.reduce((a, p, i) => a + s.chosen[i]! / p.chosenIds.length - s.rejected[i]! / p.rejectedIds.length, 0);
      expect(gap(after)).toBeGreaterThan(gap(before) + 1);
      expect(acc(after)).toBe(1);
      expect(steps.at(-1)!.margin).toBeGreaterThan(steps[0]!.margin);
      expect(steps.at(-1)!.accuracy).toBe(1);
      expect(existsSync(join(out, `reference-preference.json`))).toBe(loss === 'dpo' || loss === 'ipo');
    });
  }

  it('DPO rewards start at 0 (the policy is its own reference) and resume uses the stored reference', async () => {
    const ps = pairs(8);
    const out = mkdtempSync(join(tmpdir(), 'itool-pref-'));
    dirs.push(out);
    const o = { loss: 'dpo' as const, beta: 0.5, lr: 0.05, epochs: 2, batchPairs: 2, lossFn: refLossFn, progress: false as const, saveEvery: 1 };
    const full = new BigramModel(32, 6);
    const first: number[] = [];
    await trainPreference(full, ps, { ...o, outDir: join(out, 'a') }, { onStep: (s) => void first.push(s.margin!) });
    expect(first[0]).toBeCloseTo(0, 6);
    const b = new BigramModel(32, 6);
    let n = 0;
    await trainPreference(b, ps, { ...o, outDir: join(out, 'b') }, { shouldStop: () => ++n >= 3 });
    const c = new BigramModel(32, 1);
    const r = await trainPreference(c, ps, { ...o, outDir: join(out, 'b'), resume: true });
    expect(r.resumedFrom).toBe(3);
    expect(Buffer.from(c.w.buffer).equals(Buffer.from(full.w.buffer))).toBe(true);
  });
});
