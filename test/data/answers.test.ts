// The answers of a conversation (src/data/answers.ts): every assistant turn is one answer, a
// text answer expects no call. Conversations with a final text reply after a tool result, in
// the three formats users bring them in: OpenAI messages, ShareGPT/ToolACE, xLAM (APIGen-MT's
// function_call/observation turns).
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromOpenAI, fromShareGPT } from '../../src/data/formats.js';
import { answersOf, isSplitAnswer, splitAnswers } from '../../src/data/answers.js';
import type { Sample } from '../../src/data/sample.js';
import { checkAnswer } from '../../src/toolcall/checker.js';
import { reward } from '../../src/toolcall/reward.js';
import { hasToolCall, selectHardest } from '../../src/pipeline/select.js';
import { itool } from '../helpers/cli.js';
import { realEnv } from '../../src/pipeline/real-env.js';
import { hermesTokenizer } from '../text/helpers.js';

const weather = { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const openaiRow = {
  id: 'oa',
  tools: [{ type: 'function', function: weather }],
  messages: [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'Weather in Rome?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '{"temp": 21}' },
    { role: 'assistant', content: 'It is 21 degrees in Rome.' },
  ],
};
const toolaceRow = {
  id: 'ta',
  system: `You are an expert in composing functions. Here is a list of functions in JSON format that you can invoke.\n${JSON.stringify([weather])}\n`,
  conversations: [
    { from: 'user', value: 'Weather in Rome?' },
    { from: 'assistant', value: '[get_weather(city="Rome")]' },
    { from: 'tool', value: '[{"name": "get_weather", "results": {"temp": 21}}]' },
    { from: 'assistant', value: 'It is 21 degrees in Rome.' },
  ],
};
const xlamRow = {
  id: 'xl',
  tools: JSON.stringify([weather]),
  conversations: [
    { from: 'human', value: 'Weather in Rome?' },
    { from: 'function_call', value: '{"name": "get_weather", "arguments": {"city": "Rome"}}' },
    { from: 'observation', value: '{"temp": 21}' },
    { from: 'gpt', value: 'It is 21 degrees in Rome.' },
  ],
};

const conversations: Array<[string, Sample]> = [
  ['OpenAI', fromOpenAI(openaiRow, 'oa')],
  ['ShareGPT/ToolACE', fromShareGPT(toolaceRow, 'ta')],
  ['xLAM (APIGen-MT)', fromShareGPT(xlamRow, 'xl')],
];

describe.each(conversations)('a %s conversation ending in a text reply after a tool result', (_name, conv) => {
  const answers = answersOf(conv);

  it('is two answers: the call (simple) and the reply (no call)', () => {
    expect(answers.map((a) => a.id)).toEqual([`${conv.id}#1`, `${conv.id}#2`]);
    expect(answers.map((a) => a.category)).toEqual(['simple', 'reply']);
    expect(answers[0]!.messages.at(-1)).toEqual({ role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Rome' } }] });
    expect(answers[1]!.messages.at(-1)).toEqual({ role: 'assistant', content: 'It is 21 degrees in Rome.' });
    expect(answers.every(isSplitAnswer)).toBe(true);
    // the conversation's own bucket is its last answer's, no longer multi_turn
    expect(conv.category).toBe('reply');
  });

  it('the right call is correct for the call answer, a wrong call or prose is not', () => {
    expect(checkAnswer(answers[0]!, '[get_weather(city="Rome")]').valid).toBe(true);
    expect(checkAnswer(answers[0]!, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "rome"}}\n</tool_call>').valid).toBe(true);
    expect(checkAnswer(answers[0]!, '[get_weather(city="Paris")]').valid).toBe(false);
    expect(checkAnswer(answers[0]!, 'It is 21 degrees in Rome.').valid).toBe(false);
  });

  it('the reference text (any text) is correct for the reply, a call is not', () => {
    expect(checkAnswer(answers[1]!, 'It is 21 degrees in Rome.').valid).toBe(true);
    expect(checkAnswer(answers[1]!, 'Rome: 21 °C').valid).toBe(true);
    const r = checkAnswer(answers[1]!, '[get_weather(city="Rome")]');
    expect(r.valid).toBe(false);
    expect(r.errorType).toBe('irrelevance_error:decoder_success');
  });

  it('the search reward agrees: +1 for the reference of each answer, -1 for the wrong kind', () => {
    expect(reward('[get_weather(city="Rome")]', answers[0]!)).toBe(1);
    expect(reward('It is 21 degrees in Rome.', answers[0]!)).toBe(-1);
    expect(reward('It is 21 degrees in Rome.', answers[1]!)).toBe(1);
    expect(reward('[get_weather(city="Rome")]', answers[1]!)).toBe(-1);
  });

  it('the perplexity selection puts the call and the reply in their strata', () => {
    expect(answers.map(hasToolCall)).toEqual([true, false]);
    // one of each stratum kept, whatever the perplexities
    expect(selectHardest(answers, [1, 2], 0.3)).toEqual([0, 1]);
  });
});

describe('answers', () => {
  it('the warm-up trains every assistant turn of a conversation once: split answers mask their own turn only', () => {
    const tok = hermesTokenizer();
    const env = realEnv({ tokenizer: tok, tokenizerDir: '', loadModel: () => Promise.reject(new Error('unused')) });
    const conv = conversations[0]![1];
    const whole = env.text.render(conv);
    const parts = answersOf(conv).map((a) => env.text.render(a));
    // each part is a prefix of the whole rendering, with ones from its answer's start only
    for (const p of parts) {
      expect(whole.ids.slice(0, p.ids.length)).toEqual(p.ids);
      expect(p.mask.slice(0, p.promptLength).every((m) => m === 0)).toBe(true);
    }
    const union = new Array<number>(whole.ids.length).fill(0);
    for (const p of parts) p.mask.forEach((m, i) => (union[i]! += m));
    expect(union).toEqual(Array.from(whole.mask));
  });

  it('a one-answer conversation keeps its id and is not marked split; ground-truth samples are never split', () => {
    const one = fromOpenAI({ id: 'one', tools: [{ type: 'function', function: weather }], messages: openaiRow.messages.slice(1, 3) }, 'one');
    expect(answersOf(one).map((a) => [a.id, a.category, isSplitAnswer(a)])).toEqual([['one', 'simple', false]]);
    const gt: Sample = { ...one, id: 'gt', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', toolCalls: [] }, { role: 'user', content: 'y' }], groundTruth: [{ get_weather: { city: ['Rome'] } }] };
    expect(answersOf(gt)).toEqual([gt]);
  });

  it('a call after a tool result is multi_turn; a text answer with no tool result is irrelevance', () => {
    const conv: Sample = {
      id: 'c',
      category: 'simple',
      tools: [weather as Sample['tools'][number]],
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: 'Which city?' },
        { role: 'user', content: 'Rome, then Oslo' },
        { role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Rome' } }] },
        { role: 'tool', content: '21' },
        { role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Oslo' } }] },
      ],
    };
    expect(splitAnswers([conv]).map((a) => [a.id, a.category])).toEqual([
      ['c#1', 'irrelevance'],
      ['c#2', 'multi_turn'],
      ['c#3', 'multi_turn'],
    ]);
  });
});

// ------------------------------------------------------------ the commands

const tmp = mkdtempSync(join(tmpdir(), 'itool-answers-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('itool eval and data stats on conversations with final text replies', () => {
  const data = join(tmp, 'conv.jsonl');
  writeFileSync(data, [openaiRow, toolaceRow, xlamRow].map((r) => JSON.stringify(r)).join('\n') + '\n');

  it('eval --predictions scores the right call and the exact reference text as correct', async () => {
    const preds = join(tmp, 'preds.jsonl');
    const lines: unknown[] = [];
    for (const id of ['oa', 'ta', 'xl']) {
      lines.push({ id: `${id}#1`, result: '[get_weather(city="Rome")]' });
      lines.push({ id: `${id}#2`, result: 'It is 21 degrees in Rome.' });
    }
    writeFileSync(preds, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = await itool(['eval', '--predictions', preds, '--data', data, '--json']);
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out) as { categories: Record<string, { correct: number; total: number }>; summary: Record<string, { correct: number; total: number }> };
    expect(rep.categories.simple).toEqual({ correct: 3, total: 3, accuracy: 1 });
    expect(rep.categories.reply).toEqual({ correct: 3, total: 3, accuracy: 1 });
    expect(rep.summary.overall).toEqual({ correct: 6, total: 6, accuracy: 1 });
  });

  it('eval --predictions fails the swapped answers', async () => {
    const preds = join(tmp, 'swapped.jsonl');
    const lines = ['oa', 'ta', 'xl'].flatMap((id) => [
      { id: `${id}#1`, result: 'It is 21 degrees in Rome.' },
      { id: `${id}#2`, result: '[get_weather(city="Rome")]' },
    ]);
    writeFileSync(preds, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    const r = await itool(['eval', '--predictions', preds, '--data', data, '--json']);
    expect(r.code, r.err).toBe(0);
    const rep = JSON.parse(r.out) as { summary: Record<string, { correct: number; total: number }> };
    expect(rep.summary.overall).toEqual({ correct: 0, total: 6, accuracy: 0 });
  });

  it('data stats counts answers per bucket', async () => {
    const r = await itool(['data', 'stats', data, '--json']);
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toEqual({ samples: 3, answers: 6, buckets: { simple: 3, reply: 3 } });
  });
});
