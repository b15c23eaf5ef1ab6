// The demo's copy stage samples and the warm-up data levers (no model): what the copy stage
// repeats, and that renamed / noisy warm-up samples keep their answers.
import { describe, expect, it } from 'vitest';
import { synthesize } from '../../src/data/index.js';
import { noisePhrasing } from '../../src/data/synth.js';
import { copySamples } from '../../src/pipeline/demo.js';
import { checkAnswer, formatHermesCalls } from '../../src/toolcall/index.js';
import type { Sample } from '../../src/data/sample.js';

const train = synthesize({ n: 400, seed: 3 });
const turns = train.flatMap((s) => s.messages.flatMap((m) => (m.role === 'user' && typeof m.content === 'string' ? [m.content] : [])));

function answerOf(s: Sample): string {
  const last = s.messages[s.messages.length - 1]!;
  return last.role === 'assistant' && last.toolCalls ? formatHermesCalls(last.toolCalls) : last.role === 'assistant' ? (last.content ?? '') : '';
}

describe('demo copy stage samples', () => {
  it('repeat every user turn, and with scramble also a scrambled copy of each', () => {
    const plain = copySamples(train);
    expect(plain.map((s) => s.messages[0]!.content)).toEqual(turns);
    const sc = copySamples(train, 0.5, 3);
    expect(sc.length).toBe(2 * turns.length);
    expect(sc.slice(0, turns.length).map((s) => s.messages[0]!.content)).toEqual(turns);
    for (const s of sc) {
      expect(s.tools).toEqual([]);
      expect(s.messages.map((m) => m.role)).toEqual(['user', 'assistant']);
      expect(s.messages[1]!.content).toBe(s.messages[0]!.content);
    }
    const changed = sc.slice(turns.length).filter((s, i) => s.messages[0]!.content !== turns[i]).length;
    expect(changed / turns.length).toBeGreaterThan(0.9);
    expect(new Set(sc.map((s) => s.id)).size).toBe(sc.length);
  });
});

describe('noisePhrasing', () => {
  it('replaces phrasing words only: every value stays in the query and every answer is still judged correct', () => {
    expect(noisePhrasing(train, 0, 0.5, 1)).toEqual(train);
    const noisy = noisePhrasing(train, 1, 0.3, 1);
    expect(noisePhrasing(train, 1, 0.3, 1)).toEqual(noisy);
    let words = 0;
    let changed = 0;
    noisy.forEach((s, i) => {
      const o = train[i]!;
      expect(s.groundTruth).toEqual(o.groundTruth);
      expect(s.messages.filter((m) => m.role !== 'user')).toEqual(o.messages.filter((m) => m.role !== 'user'));
      expect(checkAnswer(s, answerOf(s)).valid, s.id).toBe(true);
      const q = s.messages.filter((m) => m.role === 'user').map((m) => m.content).join(' ');
      const oq = o.messages.filter((m) => m.role === 'user').map((m) => m.content).join(' ');
      // each string and number value of the calls is still written in the query
      for (const m of s.messages)
        if (m.role === 'assistant' && m.toolCalls)
          for (const c of m.toolCalls)
            for (const v of Object.values(c.arguments)) if ((typeof v === 'string' || typeof v === 'number') && oq.includes(String(v))) expect(q.includes(String(v)), `${s.id} ${String(v)}`).toBe(true);
      const a = q.split(/\s+/);
      const b = oq.split(/\s+/);
      expect(a.length).toBe(b.length);
      words += a.length;
      changed += a.filter((w, k) => w !== b[k]).length;
    });
    expect(changed / words).toBeGreaterThan(0.1);
    expect(changed / words).toBeLessThan(0.3);
    expect(() => noisePhrasing(train, 2, 0.1, 1)).toThrow(/phrasing noise share must be a probability/);
  });
});
