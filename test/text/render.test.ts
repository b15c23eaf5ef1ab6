// Chat templates against renderings recorded with Python jinja2 set up as transformers sets
// it up, loss masks (masked tokens decode exactly to the assistant parts), the prompt/answer
// split for the search, and bad input.
import { describe, expect, it } from 'vitest';
import type { Message, Sample, ToolSchema } from '../../src/data/sample.js';
import { HERMES_TEMPLATE, render, renderForSearch, renderPrompt, renderText, Tokenizer } from '../../src/text/index.js';
import { fixture, hermesTokenizer, qwen3 } from './helpers.js';

interface TemplateCase {
  config: 'qwen3' | 'hermes';
  name: string;
  messages: Message[];
  tools: ToolSchema[];
  add_generation_prompt: boolean;
  kwargs: Record<string, unknown>;
  text: string;
}
const cases = fixture<{ cases: TemplateCase[] }>('chat_template.json').cases;
const byName = (config: string, name: string): TemplateCase => {
  const c = cases.find((x) => x.config === config && x.name === name);
  if (!c) throw new Error(`no fixture case ${config}/${name}`);
  return c;
};
const tokOf = (config: string): Tokenizer => (config === 'qwen3' ? qwen3() : hermesTokenizer());
const sampleOf = (c: TemplateCase): Sample => ({ id: c.name, category: 'test', tools: c.tools, messages: c.messages });

/** The masked tokens, decoded run by run. */
function maskedRuns(tok: Tokenizer, ids: number[], mask: number[]): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i <= ids.length; i++) {
    if (i < ids.length && mask[i] === 1) cur.push(ids[i]);
    else if (cur.length) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  }
  return runs;
}

/** The tool-call text both templates write: <tool_call>\n{"name": ..., "arguments": json}\n</tool_call>. */
function callText(name: string, args: Record<string, unknown>): string {
  return `<tool_call>\n{"name": "${name}", "arguments": ${JSON.stringify(args).replace(/":/g, '": ').replace(/,"/g, ', "')}}\n</tool_call>`;
}

describe('chat templates match Python jinja2 as transformers sets it up (recorded fixture)', () => {
  it('has cases for both templates with tools, parallel calls, tool results and enable_thinking', () => {
    expect(cases.filter((c) => c.config === 'qwen3').length).toBeGreaterThanOrEqual(10);
    expect(cases.filter((c) => c.config === 'hermes').length).toBeGreaterThanOrEqual(5);
    expect(cases.some((c) => c.kwargs.enable_thinking === false)).toBe(true);
  });
  it('uses the template the fixture was recorded with (re-record when HERMES_TEMPLATE changes)', () => {
    expect(hermesTokenizer().chatTemplate!.source).toBe(HERMES_TEMPLATE);
  });
  for (const c of cases) {
    it(`${c.config}: ${c.name}`, () => {
      const text = renderText(tokOf(c.config), c.messages, c.tools, { addGenerationPrompt: c.add_generation_prompt, kwargs: c.kwargs });
      expect(text).toBe(c.text);
    });
  }
});

describe('render: loss masks from character spans', () => {
  for (const config of ['qwen3', 'hermes'] as const) {
    it(`${config}: masks the parallel tool calls and the final answer, each with its turn-end token, nothing else`, () => {
      const tok = tokOf(config);
      const c = byName(config, 'parallel tool calls and results');
      const r = render(tok, sampleOf(c));
      expect(r.text).toBe(c.text);
      expect(tok.decode(r.ids)).toBe(c.text);
      const calls =
        callText('get_weather', { city: 'Paris', unit: 'celsius' }) + '\n' + callText('get_weather', { city: '東京', unit: 'celsius' }) + '<|im_end|>';
      const answer = (config === 'qwen3' ? '<think>\n\n</think>\n\n' : '') + 'Paris: 18 °C and cloudy. Tokyo: 24 °C and sunny.<|im_end|>';
      expect(maskedRuns(tok, r.ids, r.mask)).toEqual([calls, answer]);
      expect(r.spans.map((s) => s.messageIndex)).toEqual([2, 5]);
      // the prompt is everything before the last answer, ending in the generation prompt
      const prompt = tok.decode(r.ids.slice(0, r.promptLength));
      expect(prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
      expect(r.mask.slice(0, r.spans[0].tokenStart).every((m) => m === 0)).toBe(true);
      // nothing from the system prompt, tools, user turn or tool results is trained
      const trained = maskedRuns(tok, r.ids, r.mask).join('');
      for (const s of ['helpful assistant', '<tools>', 'Use celsius', 'temperature', 'sunny ☀', '<|im_start|>']) expect(trained).not.toContain(s);
    });

    it(`${config}: multi-turn samples mask every assistant turn (content + tool call, text, tool call)`, () => {
      const tok = tokOf(config);
      const c = byName(config, 'multi-turn with content and a tool call');
      const r = render(tok, sampleOf(c));
      expect(r.text).toBe(c.text);
      const runs = maskedRuns(tok, r.ids, r.mask);
      const last = (config === 'qwen3' ? '<think>\n\n</think>\n\n' : '') + callText('convert_currency', { amount: 20, from: 'GBP', to: 'JPY' }) + '<|im_end|>';
      expect(runs).toEqual([
        'Let me check.\n' + callText('convert_currency', { amount: 100, from: 'USD', to: 'EUR' }) + '<|im_end|>',
        '100 USD is 92.50 EUR.<|im_end|>',
        last,
      ]);
      expect(r.spans.length).toBe(3);
      expect(r.promptLength).toBe(r.spans[2].tokenStart);
    });

    it(`${config}: plain chat without tools`, () => {
      const tok = tokOf(config);
      const c = byName(config, 'no tools');
      const r = render(tok, sampleOf(c));
      expect(r.text).toBe(c.text);
      const final = (config === 'qwen3' ? '<think>\n\n</think>\n\n' : '') + 'Bye!<|im_end|>';
      expect(maskedRuns(tok, r.ids, r.mask)).toEqual([
        'Soft rain on the roof,\n  whispers of a sleeping town —\npuddles hold the sky.<|im_end|>',
        final,
      ]);
    });
  }

  it('qwen3 enable_thinking=false puts the empty think block into the prompt, not the answer', () => {
    const tok = qwen3();
    const c = byName('qwen3', 'enable_thinking=False, full');
    const r = render(tok, sampleOf(c), { kwargs: { enable_thinking: false } });
    expect(r.text).toBe(c.text);
    const runs = maskedRuns(tok, r.ids, r.mask);
    expect(runs[runs.length - 1]).toBe('Paris: 18 °C and cloudy. Tokyo: 24 °C and sunny.<|im_end|>');
    const s = renderForSearch(tok, sampleOf(c), { kwargs: { enable_thinking: false } });
    expect(s.prompt).toBe(byName('qwen3', 'enable_thinking=False, generation prompt').text);
    expect(s.answer).toBe('Paris: 18 °C and cloudy. Tokyo: 24 °C and sunny.');
  });

  it('qwen3 reasoning in the content is trained with the answer', () => {
    const tok = qwen3();
    const c = byName('qwen3', 'reasoning in content');
    const r = render(tok, sampleOf(c));
    expect(r.text).toBe(c.text);
    expect(maskedRuns(tok, r.ids, r.mask)).toEqual(['<think>\nCheck divisors up to 4.\n</think>\n\nYes, 17 is prime.<|im_end|>']);
  });
});

describe('render: Unicode normalization', () => {
  it("masks follow the tokenizer's NFC normalization (a decomposed é in the answer)", () => {
    const tok = qwen3();
    const sample: Sample = {
      id: 'nfc',
      category: 'simple',
      tools: [],
      messages: [
        { role: 'user', content: 'Cafe\u0301?' },
        { role: 'assistant', content: 'Cafe\u0301 au lait.' },
      ],
    };
    const r = render(tok, sample, { kwargs: { enable_thinking: false } });
    expect(r.text).toContain('Caf\u00e9 au lait.');
    expect(r.ids).toEqual(tok.encode(r.text));
    const trained = r.ids.filter((_, i) => r.mask[i] === 1);
    expect(tok.decode(trained)).toBe('Caf\u00e9 au lait.<|im_end|>');
  });
});

describe('renderForSearch: prompt, answer and steps', () => {
  for (const config of ['qwen3', 'hermes'] as const) {
    it(`${config}: the prompt is the generation prompt rendering; steps tile the answer in characters and tokens`, () => {
      const tok = tokOf(config);
      const c = byName(config, 'parallel tool calls and results');
      const s = renderForSearch(tok, sampleOf(c));
      expect(s.prompt).toBe(byName(config, 'prompt before the answer').text);
      expect(s.promptIds).toEqual(tok.encode(s.prompt));
      expect(s.end).toBe('<|im_end|>');
      expect(s.endIds).toEqual([tok.eosId]);
      const answer = (config === 'qwen3' ? '<think>\n\n</think>\n\n' : '') + 'Paris: 18 °C and cloudy. Tokyo: 24 °C and sunny.';
      expect(s.answer).toBe(answer);
      expect(s.prompt + s.answer + s.end).toBe(c.text.slice(0, c.text.lastIndexOf('<|im_end|>') + '<|im_end|>'.length));
      expect(s.answerIds).toEqual(tok.encode(answer));
      expect(s.steps.map((x) => x.text).join('')).toBe(answer);
      // cut after '. ' and ', ' (this answer has no '=' or '(')
      expect(s.steps.map((x) => x.text)).toEqual([
        (config === 'qwen3' ? '<think>\n\n</think>\n\n' : '') + 'Paris: 18 °C and cloudy. ',
        'Tokyo: 24 °C and sunny.',
      ]);
      let t = 0;
      let ch = 0;
      for (const st of s.steps) {
        expect(st.start).toBe(ch);
        expect(st.tokenStart).toBe(t);
        expect(answer.slice(st.start, st.end)).toBe(st.text);
        ch = st.end;
        t = st.tokenEnd;
      }
      expect(t).toBe(s.answerIds.length);
      // token spans end where the step's text ends (here the cut falls on a token boundary:
      // ' Tokyo' starts with the space that '. ' left in the first step, so that token goes on)
      const first = tok.decode(s.answerIds.slice(s.steps[0].tokenStart, s.steps[0].tokenEnd));
      expect(s.steps[0].text.startsWith(first)).toBe(true);
    });
  }

  it('splits a tool-call answer at =, ( and ", " with token spans, grouping stepLimit fragments', () => {
    const tok = qwen3();
    const sample: Sample = {
      id: 'py',
      category: 'simple',
      tools: [],
      messages: [
        { role: 'user', content: 'Area of a circle of radius 3?' },
        { role: 'assistant', content: 'area = calc(shape="circle", radius=3). Done.' },
      ],
    };
    const s = renderForSearch(tok, sample, { kwargs: { enable_thinking: false } });
    expect(s.answer).toBe('area = calc(shape="circle", radius=3). Done.');
    expect(s.steps.map((x) => x.text)).toEqual(['area =', ' calc(', 'shape=', '"circle", ', 'radius=', '3). ', 'Done.']);
    const two = renderForSearch(tok, sample, { kwargs: { enable_thinking: false }, stepLimit: 2 });
    expect(two.steps.map((x) => x.text)).toEqual(['area = calc(', 'shape="circle", ', 'radius=3). ', 'Done.']);
    // each token belongs to the step in which it ends
    const offs = tok.offsets(s.answer, s.answerIds);
    for (const st of s.steps) for (let t = st.tokenStart; t < st.tokenEnd; t++) expect(offs[t][1]).toBeLessThanOrEqual(st === s.steps[s.steps.length - 1] ? s.answer.length : st.end);
    const custom = renderForSearch(tok, sample, { kwargs: { enable_thinking: false }, pattern: /\. / });
    expect(custom.steps.map((x) => x.text)).toEqual(['area = calc(shape="circle", radius=3). ', 'Done.']);
  });

  it('rejects a sample whose last message is not the assistant', () => {
    const sample: Sample = { id: 'q', category: 'simple', tools: [], messages: [{ role: 'user', content: 'hi' }] };
    expect(() => renderForSearch(qwen3(), sample)).toThrow(/last message must be the assistant's answer/);
  });
});

describe('renderPrompt', () => {
  it('renders the generation prompt and leaves a trailing answer out', () => {
    const tok = qwen3();
    const c = byName('qwen3', 'parallel tool calls and results');
    const p = renderPrompt(tok, c.messages, c.tools);
    expect(p.text).toBe(byName('qwen3', 'prompt before the answer').text);
    expect(p.ids).toEqual(tok.encode(p.text));
  });
});

describe('bad input', () => {
  it('names an unknown role', () => {
    const sample = { id: 'x', category: 'simple', tools: [], messages: [{ role: 'robot', content: 'beep' }] } as unknown as Sample;
    expect(() => render(qwen3(), sample)).toThrow(/message 0 has unknown role "robot"/);
  });

  it('names a template that fails to render, with its file', () => {
    const tok = hermesTokenizer();
    // the Hermes template raises on roles it does not know; force one past the role check
    expect(() =>
      tok.chatTemplate!.renderHf([{ role: 'user', content: 'x' }, { role: 'narrator', content: 'y' }], undefined, false),
    ).toThrow(/chat template in .*tokenizer_config\.json failed to render: .*Unknown message role: narrator/);
  });

  it('names bad tool calls and content', () => {
    const bad = (m: unknown): Sample => ({ id: 'b', category: 'simple', tools: [], messages: [{ role: 'user', content: 'q' }, m as Message] });
    expect(() => render(qwen3(), bad({ role: 'assistant', toolCalls: [{ arguments: {} }] }))).toThrow(/message 1 \(assistant\): tool call 0 has no name/);
    expect(() => render(qwen3(), bad({ role: 'assistant', toolCalls: [{ name: 'f', arguments: [1] }] }))).toThrow(/tool call 0 \(f\) arguments must be an object/);
    expect(() => render(qwen3(), bad({ role: 'assistant', content: 5 }))).toThrow(/message 1 \(assistant\): content must be a string/);
  });

  it('refuses a template that is not prefix-stable instead of masking the wrong text', () => {
    const base = hermesTokenizer();
    const tok = new Tokenizer({
      tokenizerJson: base.tokenizerJson,
      tokenizerConfig: base.config,
      chatTemplate:
        "{%- set ns = namespace(last=-1) %}{%- for m in messages %}{%- if m.role == 'user' %}{%- set ns.last = loop.index0 %}{%- endif %}{%- endfor %}" +
        "{%- for m in messages %}{%- if m.role == 'user' %}{%- if loop.index0 == ns.last %}[TOOLS]{%- endif %}[INST]{{ m.content }}[/INST]" +
        "{%- elif m.role == 'assistant' %}{{ m.content }}<|im_end|>{%- endif %}{%- endfor %}",
      files: { template: 'moving-tools.jinja' },
    });
    const sample: Sample = {
      id: 'm',
      category: 'multi_turn',
      tools: [],
      messages: [
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'A1' },
        { role: 'user', content: 'second question' },
        { role: 'assistant', content: 'A2' },
      ],
    };
    expect(() => render(tok, sample)).toThrow(/moving-tools\.jinja: the rendering of messages before 1 changes when more messages follow/);
  });

  it('refuses an assistant message with nothing before it', () => {
    const sample: Sample = { id: 'a', category: 'simple', tools: [], messages: [{ role: 'assistant', content: 'hi' }] };
    expect(() => render(qwen3(), sample)).toThrow(/cannot be the first message/);
  });
});
