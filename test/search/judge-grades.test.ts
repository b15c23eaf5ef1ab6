// The A/B/C/D self-grading read-out of the reference preset against probabilities worked by hand.
import { describe, expect, it } from 'vitest';
import { GRADES_TEMPLATE, gradesPrompt, gradesValue, makeSelfJudge } from '../../src/search/judge.js';
import type { SearchTask } from '../../src/search/mcts.js';

const ids = { A: 1, B: 2, C: 3, D: 4 };
/** log-probabilities of a 6-token vocabulary with the given probabilities (rest on tokens 0 and 5) */
function lp(p: { A: number; B: number; C: number; D: number }): Float32Array {
  const rest = (1 - p.A - p.B - p.C - p.D) / 2;
  return Float32Array.from([rest, p.A, p.B, p.C, p.D, rest].map((x) => Math.log(x)));
}

describe('A/B/C/D grades: (pA + 0.1·pB − pC − 2·pD)/4', () => {
  it('hand-computed values', () => {
    // 0.5 + 0.1·0.2 − 0.1 − 2·0.05 = 0.32; / 4 = 0.08
    expect(gradesValue(lp({ A: 0.5, B: 0.2, C: 0.1, D: 0.05 }), ids)).toBeCloseTo(0.08, 6);
    // all the mass on one letter: the extremes 0.25 (A) and −0.5 (D); B 0.025, C −0.25
    expect(gradesValue(lp({ A: 0.999999, B: 0, C: 0, D: 0 }), ids)).toBeCloseTo(0.25, 5);
    expect(gradesValue(lp({ A: 0, B: 0, C: 0, D: 0.999999 }), ids)).toBeCloseTo(-0.5, 5);
    expect(gradesValue(lp({ A: 0, B: 0.999999, C: 0, D: 0 }), ids)).toBeCloseTo(0.025, 5);
    expect(gradesValue(lp({ A: 0, B: 0, C: 0.999999, D: 0 }), ids)).toBeCloseTo(-0.25, 5);
    // probabilities are used as given, not renormalised over the letters: 0.1 on A and 0.9 elsewhere
    // is 0.025, not 0.25
    expect(gradesValue(lp({ A: 0.1, B: 0, C: 0, D: 0 }), ids)).toBeCloseTo(0.025, 6);
    // 0.3 + 0.1·0.3 − 0.2 − 2·0.1 = −0.07; / 4 = −0.0175
    expect(gradesValue(lp({ A: 0.3, B: 0.3, C: 0.2, D: 0.1 }), ids)).toBeCloseTo(-0.0175, 6);
  });

  it('a grade id outside the vocabulary is a clear error', () => {
    expect(() => gradesValue(lp({ A: 0.25, B: 0.25, C: 0.25, D: 0.2 }), { ...ids, D: 6 })).toThrow(/grade token D id 6 outside the vocabulary \(6\)/);
  });

  it('through makeSelfJudge: one next-token read per answer, batched', async () => {
    const table: Record<string, Float32Array> = { good: lp({ A: 0.5, B: 0.2, C: 0.1, D: 0.05 }), bad: lp({ A: 0.05, B: 0.05, C: 0.3, D: 0.5 }) };
    const calls: number[] = [];
    const live = new Set<object>();
    const model = {
      async cache(p: readonly number[]) {
        const c = { tokens: p.slice(), dispose: () => void live.delete(c) };
        live.add(c);
        return c as never;
      },
      async nextLogprobs(caches: readonly { tokens: readonly number[] }[]) {
        calls.push(caches.length);
        const out = new Float32Array(caches.length * 6);
        caches.forEach((c, b) => out.set(table[c.tokens[0] === 1 ? 'good' : 'bad'], b * 6));
        return out;
      },
    };
    const task = { sampleId: 's', prompt: '', promptIds: [0], reward: () => 0 } as SearchTask;
    const judge = makeSelfJudge(model, (_t, answer) => [answer === 'good' ? 1 : 0], (l) => gradesValue(l, ids), 2);
    const v = await judge([{ task, answer: 'good' }, { task, answer: 'bad' }, { task, answer: 'good' }]);
    // bad: 0.05 + 0.005 − 0.3 − 1.0 = −1.245; / 4 = −0.31125
    expect(v[0]).toBeCloseTo(0.08, 6);
    expect(v[1]).toBeCloseTo(-0.31125, 6);
    expect(v[2]).toBeCloseTo(0.08, 6);
    expect(calls).toEqual([2, 1]);
    expect(live.size).toBe(0);
  });

  it('the template: both placeholders filled once, the answer taken literally, the grade letter next', () => {
    const p = gradesPrompt('[f(a=1)]', 'answer with $& and {ground_truth}');
    expect(p).toContain('Reference answer: [f(a=1)]\n');
    expect(p).toContain('Answer to grade: answer with $& and {ground_truth}\n');
    expect(p.endsWith('option (')).toBe(true);
    for (const g of ['(A)', '(B)', '(C)', '(D)']) expect(GRADES_TEMPLATE).toContain(g);
    expect(() => gradesPrompt('t', 'a', 'no placeholders')).toThrow(/\{ground_truth\} and \{answer\}/);
  });
});
