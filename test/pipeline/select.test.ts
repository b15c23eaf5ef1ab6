import { describe, expect, it } from 'vitest';
import type { Sample } from '../../src/data/sample.js';
import { balanceDecisionPairs, hasToolCall, selectHardest } from '../../src/pipeline/select.js';
import { DEFAULT_PIPELINE, checkConfig, mergeConfig } from '../../src/pipeline/config.js';

const mk = (id: number, call: boolean): Sample => ({
  id: `s${id}`,
  category: call ? 'simple' : 'irrelevance',
  tools: [],
  messages: [{ role: 'user', content: 'q' }, call ? { role: 'assistant', toolCalls: [{ name: 'f', arguments: {} }] } : { role: 'assistant', content: 'no' }],
});

describe('deficiency selection', () => {
  // calls: 0..9, no-call: 10..13; perplexity rises with the index within each stratum, except s3
  const samples = [...Array.from({ length: 10 }, (_, i) => mk(i, true)), ...Array.from({ length: 4 }, (_, i) => mk(10 + i, false))];
  const ppl = samples.map((_, i) => (i === 3 ? 100 : i));

  it('keeps the hardest ratio of each stratum, highest perplexity first', () => {
    expect(hasToolCall(samples[0])).toBe(true);
    expect(hasToolCall(samples[12])).toBe(false);
    // ceil(0.3·10) = 3 calls: s3 (100), s9, s8; ceil(0.3·4) = 2 no-calls: s13, s12
    expect(selectHardest(samples, ppl, 0.3)).toEqual([3, 8, 9, 12, 13]);
  });

  it('a cap splits in proportion and never exceeds the cap', () => {
    for (const max of [1, 2, 3, 4, 5]) expect(selectHardest(samples, ppl, 0.3, max).length).toBeLessThanOrEqual(max);
    // quotas 3 and 2 scaled by 4/5: round(2.4) = 2 calls (s3, s9), round(1.6) = 2 no-calls (s13, s12)
    expect(selectHardest(samples, ppl, 0.3, 4)).toEqual([3, 9, 12, 13]);
    // 1.2 → 1 and 0.8 → 1
    expect(selectHardest(samples, ppl, 0.3, 2)).toEqual([3, 13]);
  });

  it('a NaN perplexity counts as hardest; a length mismatch is an error', () => {
    const p2 = ppl.slice();
    p2[0] = NaN;
    expect(selectHardest(samples, p2, 0.1)).toEqual([0, 13]);
    expect(() => selectHardest(samples, [1], 0.3)).toThrow(/1 perplexities for 14 samples/);
  });
});

describe('pipeline config', () => {
  it('merges deeply and checks values', () => {
    const c = mergeConfig(DEFAULT_PIPELINE, { search: { simulations: 7 }, preference: { loss: 'dpo' } });
    expect(c.search.simulations).toBe(7);
    expect(c.search.numActions).toBe(3);
    expect(c.preference.loss).toBe('dpo');
    expect(c.preference.beta).toBe(2.5);
    expect(DEFAULT_PIPELINE.search.simulations).toBe(5);
    expect(() => checkConfig(mergeConfig(DEFAULT_PIPELINE, { selectRatio: 0 }))).toThrow(/selectRatio/);
    expect(() => checkConfig(mergeConfig(DEFAULT_PIPELINE, { search: { maxDepth: 0 } }))).toThrow(/search.maxDepth/);
    expect(() => checkConfig(mergeConfig(DEFAULT_PIPELINE, { search: { stepPattern: '(' } }))).toThrow(/stepPattern/);
  });
});

describe('balanceDecisionPairs', () => {
  const prose = (t: string) => t.startsWith('None');
  const pair = (id: string, depth: number, chosen: string, rejected: string, cv: number, rv: number) => ({ id, depth, chosen, rejected, chosenValue: cv, rejectedValue: rv });
  it('keeps at most as many root pairs rejecting the no-call answer as choosing it, widest gap first', () => {
    const pairs = [
      pair('a', 0, '<call f', 'None of', 0.2, -1), // gap 1.2
      pair('b', 0, 'None of', '<call g', 1, -1), // favours no call
      pair('c', 0, '<call f', 'None of', 0.9, -1), // gap 1.9: kept
      pair('d', 1, 'x', 'None of', 0.5, -1), // not a root pair: kept
      pair('e', 0, '<call f', '<call g', 0.5, -1), // no no-call side: kept
      pair('f', 0, 'None of', 'None at', 1, 0.5), // both prose: kept
    ];
    expect(balanceDecisionPairs(pairs, prose).map((p) => p.id)).toEqual(['b', 'c', 'd', 'e', 'f']);
  });
  it('drops every pair rejecting the no-call answer when none chooses it', () => {
    const pairs = [pair('a', 0, '<call f', 'None of', 0.2, -1), pair('e', 0, '<call f', '<call g', 0.5, -1)];
    expect(balanceDecisionPairs(pairs, prose).map((p) => p.id)).toEqual(['e']);
  });
});

describe('deficiency selection by category', () => {
  // 12 simple calls (perplexity 10..21), 4 parallel calls (1..4), 4 irrelevance answers without a call (0.5..2)
  const mkc = (id: number, category: string, call: boolean): Sample => ({ ...mk(id, call), category });
  const samples = [
    ...Array.from({ length: 12 }, (_, i) => mkc(i, 'simple', true)),
    ...Array.from({ length: 4 }, (_, i) => mkc(12 + i, 'parallel', true)),
    ...Array.from({ length: 4 }, (_, i) => mkc(16 + i, 'irrelevance', false)),
  ];
  const ppl = samples.map((_, i) => (i < 12 ? 10 + i : i < 16 ? i - 11 : (i - 15) * 0.5));

  it("'call' lets the category that reads hardest take the calls' share; 'category' gives each its own", () => {
    // calls: ceil(0.25·16) = 4, all simple (the highest perplexities); no call: ceil(0.25·4) = 1
    expect(selectHardest(samples, ppl, 0.25, 0, 'call')).toEqual([8, 9, 10, 11, 19]);
    // simple ceil(3) = 3 (s9..s11), parallel ceil(1) = 1 (s15), irrelevance 1 (s19)
    expect(selectHardest(samples, ppl, 0.25, 0, 'category')).toEqual([9, 10, 11, 15, 19]);
  });

  it('a cap splits the strata by the largest remainders and keeps one of each', () => {
    // quotas 3 (simple), 1 (parallel), 1 (irrelevance) scaled by 4/5: 2.4, 0.8, 0.8 -> 2, 1, 1
    expect(selectHardest(samples, ppl, 0.25, 4, 'category')).toEqual([10, 11, 15, 19]);
    // ratio 0.5: 6, 2, 2 over 10, cap 5 -> 3, 1, 1
    expect(selectHardest(samples, ppl, 0.5, 5, 'category')).toEqual([9, 10, 11, 15, 19]);
    for (const max of [1, 2, 3]) expect(selectHardest(samples, ppl, 0.5, max, 'category').length).toBe(max);
  });

  it('the config refuses an unknown strata name', () => {
    expect(() => checkConfig(mergeConfig(DEFAULT_PIPELINE, { selectStrata: 'topic' }))).toThrow(/selectStrata' must be 'call' or 'category', got "topic"/);
    expect(checkConfig(mergeConfig(DEFAULT_PIPELINE, { selectStrata: 'category' })).selectStrata).toBe('category');
  });
});
