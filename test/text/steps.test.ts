// splitSteps: the cut points of the paper (after '. ', ', ', '=', '('), a configurable
// pattern, and stepLimit grouping; steps always join back to the answer.
import { describe, expect, it } from 'vitest';
import { splitStepSpans, splitSteps } from '../../src/text/index.js';

describe('splitSteps', () => {
  it("cuts after '. ', ', ', '=' and '('", () => {
    expect(splitSteps('get_weather(city="Paris", unit="celsius"). Then done.')).toEqual([
      'get_weather(',
      'city=',
      '"Paris", ',
      'unit=',
      '"celsius"). ',
      'Then done.',
    ]);
  });

  it('does not cut at a period without a following space, nor at the very end', () => {
    expect(splitSteps('pi is 3.14.')).toEqual(['pi is 3.14.']);
    expect(splitSteps('a=')).toEqual(['a=']);
    expect(splitSteps('')).toEqual([]);
  });

  it('keeps consecutive cut points as separate fragments, never empty ones', () => {
    expect(splitSteps('f((x==1')).toEqual(['f(', '(', 'x=', '=', '1']);
  });

  it('groups stepLimit fragments per step', () => {
    const text = 'a, b, c, d, e';
    expect(splitSteps(text, { stepLimit: 2 })).toEqual(['a, b, ', 'c, d, ', 'e']);
    expect(splitSteps(text, { stepLimit: 10 })).toEqual([text]);
  });

  it('takes a custom pattern as a RegExp (with or without g) or a string', () => {
    expect(splitSteps('a;b;c', { pattern: /;/ })).toEqual(['a;', 'b;', 'c']);
    expect(splitSteps('a;b;c', { pattern: ';' })).toEqual(['a;', 'b;', 'c']);
    expect(splitSteps('x\ny\nz', { pattern: '\\n' })).toEqual(['x\n', 'y\n', 'z']);
  });

  it('spans tile the text in UTF-16 units (emoji, CJK)', () => {
    const text = '東京=晴れ😀, 大阪(雨). end';
    const spans = splitStepSpans(text);
    expect(spans.map((s) => s.text)).toEqual(['東京=', '晴れ😀, ', '大阪(', '雨). ', 'end']);
    let at = 0;
    for (const s of spans) {
      expect(s.start).toBe(at);
      expect(text.slice(s.start, s.end)).toBe(s.text);
      at = s.end;
    }
    expect(at).toBe(text.length);
  });

  it('names bad options', () => {
    expect(() => splitSteps('a', { stepLimit: 0 })).toThrow(/stepLimit must be a positive integer/);
    expect(() => splitSteps('a', { pattern: '(' })).toThrow(/not a valid regular expression/);
    expect(() => splitSteps('a', { pattern: '' })).toThrow(/must not be empty/);
    expect(() => splitSteps(5 as unknown as string)).toThrow(/text must be a string/);
  });
});
