import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Sample, ToolSchema } from '../../src/data/sample.js';
import { synthesize } from '../../src/data/synth.js';
import { formatHermesCalls, formatPythonCalls, overlapReward, referenceAnswer, reward } from '../../src/toolcall/index.js';

const tools: ToolSchema[] = [
  { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } },
  { name: 'get_time', parameters: { type: 'object', properties: { tz: { type: 'string' } }, required: ['tz'] } },
];
const sample: Sample = {
  id: 's',
  category: 'parallel_multiple',
  tools,
  messages: [
    { role: 'user', content: 'weather in Paris in f and the time in UTC' },
    { role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris', unit: 'f' } }, { name: 'get_time', arguments: { tz: 'UTC' } }] },
  ],
};
const irrelevant: Sample = { id: 'i', category: 'irrelevance', tools, messages: [{ role: 'user', content: 'tell a joke' }, { role: 'assistant', content: 'No tool fits.' }] };

describe('graded AST reward', () => {
  it('full match is 1 in every syntax and order; graded credit below', () => {
    expect(reward('[get_weather(city="Paris", unit="f"), get_time(tz="UTC")]', sample)).toBe(1);
    expect(reward('[get_time(tz="utc"), get_weather(city="paris", unit="F")]', sample)).toBe(1);
    expect(reward(formatHermesCalls(sample.messages[1]!.role === 'assistant' ? sample.messages[1].toolCalls! : []), sample)).toBe(1);
    // one wrong parameter value: credit (1 + (0.3 + 0.7 * 1/2)) / 2 = 0.825 → -0.6 + 1.4 * 0.825
    expect(reward('[get_weather(city="Paris", unit="c"), get_time(tz="UTC")]', sample)).toBeCloseTo(-0.6 + 1.4 * 0.825, 12);
    // one call missing: credit 1 / 2
    expect(reward('[get_time(tz="UTC")]', sample)).toBeCloseTo(-0.6 + 1.4 * 0.5, 12);
    // right names, all values wrong: (0.3 + 0.3) / 2
    expect(reward('[get_weather(city="Rome", unit="c"), get_time(tz="CET")]', sample)).toBeCloseTo(-0.6 + 1.4 * 0.3, 12);
    // an undeclared parameter counts as a wrong one
    expect(reward('[get_weather(city="Paris", unit="f", x=1), get_time(tz="UTC")]', sample)).toBeCloseTo(-0.6 + 1.4 * ((0.3 + 0.7 * (2 / 3) + 1) / 2), 12);
    // wrong names: -0.6; unparsable and prose: -1
    expect(reward('[foo(a=1)]', sample)).toBeCloseTo(-0.6, 12);
    expect(reward('[get_weather(city="Paris"', sample)).toBeLessThanOrEqual(0);
    expect(reward('[get_weather(city=Paris")]', sample)).toBe(-1);
    expect(reward('The weather is nice.', sample)).toBe(-1);
  });

  it('prefixes: 0 while undecided, graded by what is complete, never a full 1', () => {
    expect(reward('', sample, { partial: true })).toBe(0);
    expect(reward('[', sample, { partial: true })).toBe(0);
    expect(reward('[get_weather(city="Paris", ', sample, { partial: true })).toBeCloseTo(0.9, 12);
    expect(reward('[get_weather(city="Rome", ', sample, { partial: true })).toBeCloseTo(-0.6 + 1.5 * 0.3, 12);
    expect(reward('[get_weather(city="Paris", unit="f"), get_time(tz="UTC")]', sample, { partial: true })).toBe(1);
    expect(reward('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris", "unit"', sample, { partial: true })).toBeCloseTo(0.9, 12);
    expect(reward('[get_weather(city=@', sample, { partial: true })).toBe(-1);
  });

  it('no-call samples: 1 without a call, -1 with one', () => {
    expect(reward('No tool fits.', irrelevant)).toBe(1);
    expect(reward('[get_time(tz="UTC")]', irrelevant)).toBe(-1);
    expect(reward('[get_time(', irrelevant, { partial: true })).toBe(-1);
    expect(reward('No tool', irrelevant, { partial: true })).toBe(0.5);
  });

  it('no-call samples: broken or cut-off call syntax is an attempted call, not a refusal', () => {
    // complete answers that begin a call and never name one: -1 (BFCL's evaluation would
    // count them as no call; the search must not prefer them to a refusal)
    for (const t of ['[', '[(', '{]', '{"na', '<tool_call>\n{"name": ']) expect(reward(t, irrelevant), t).toBe(-1);
    // as prefixes: malformed already -1, merely unfinished 0 (undecided)
    expect(reward('[(', irrelevant, { partial: true })).toBe(-1);
    expect(reward('{]', irrelevant, { partial: true })).toBe(-1);
    expect(reward('[', irrelevant, { partial: true })).toBe(0);
    expect(reward('<tool_call>\n{"name": ', irrelevant, { partial: true })).toBe(0);
    // an empty call list says "no call"
    expect(reward('[]', irrelevant)).toBe(1);
    expect(reward('[]', irrelevant, { partial: true })).toBe(1);
  });

  it('is always within [-1, 1] and pure (property test over synthetic samples and random cuts)', () => {
    const samples = synthesize({ n: 60, seed: 7 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: samples.length - 1 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.boolean(), (i, frac, hermes) => {
        const s = samples[i]!;
        const last = s.messages[s.messages.length - 1]!;
        const full = last.role === 'assistant' && last.toolCalls ? (hermes ? formatHermesCalls(last.toolCalls) : formatPythonCalls(last.toolCalls)) : (last.content ?? '');
        expect(reward(full, s)).toBe(1);
        const cut = full.slice(0, Math.floor(full.length * frac));
        for (const opts of [{ partial: true }, {}, { kind: 'overlap' as const }, { kind: 'overlap' as const, partial: true }]) {
          const r = reward(cut, s, opts);
          expect(r).toBeGreaterThanOrEqual(-1);
          expect(r).toBeLessThanOrEqual(1);
          expect(reward(cut, s, opts)).toBe(r);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe('token-overlap reward', () => {
  it('is 2·F1 − 1 against the reference in the answer\'s syntax', () => {
    expect(overlapReward('a b c', 'a b c')).toBe(1);
    expect(overlapReward('x y', 'a b')).toBe(-1);
    // tokens a ( b ) vs a ( c ): common 3 of 4 each → F1 0.75
    expect(overlapReward('a(b)', 'a(c)')).toBeCloseTo(0.5, 12);
    // prefix: precision only
    expect(overlapReward('a(', 'a(c)', true)).toBe(1);
    const ref = referenceAnswer(sample, 'python');
    expect(ref).toBe('[get_weather(city="Paris", unit="f"), get_time(tz="UTC")]');
    expect(reward(ref, sample, { kind: 'overlap' })).toBe(1);
    expect(reward('[get_time(tz="UTC")]', sample, { kind: 'overlap' })).toBeLessThan(1);
  });
});
