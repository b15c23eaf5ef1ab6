// OpenAI chats as users bring them: `tokenize --chat` renders the assistant's tool_calls (and
// trains them) with OpenAI-wrapped tools; `data convert` OpenAI -> ShareGPT keeps the system
// message (and the tools) and reads back the same conversation.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { runTokenize } from '../../src/cli/commands/tokenize.js';
import { register as registerData } from '../../src/cli/commands/data.js';
import { loadSamples, normaliseTool } from '../../src/data/formats.js';
import { renderText } from '../../src/text/render.js';
import { qwen3, qwen3Dir } from '../text/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-chat-convert-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const weather = { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
const chat = {
  tools: [{ type: 'function', function: weather }],
  messages: [
    { role: 'system', content: 'You are a weather bot. Answer in one sentence.' },
    { role: 'user', content: 'Weather in Rome?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } }] },
    { role: 'tool', tool_call_id: 'c1', content: '{"temp": 21}' },
    { role: 'assistant', content: 'It is 21 degrees in Rome.' },
  ],
};

describe('tokenize --chat with OpenAI tool_calls', () => {
  it('renders the call (trained, mask 1) exactly as the chat template renders the converted messages', () => {
    const file = join(tmp, 'chat.json');
    writeFileSync(file, JSON.stringify(chat));
    const tok = qwen3();
    const out = JSON.parse(runTokenize({ model: qwen3Dir, chat: file, json: true, templateKwargs: '{"enable_thinking": false}' }, tok)) as { ids: number[]; mask: number[] };
    // the reference: the same conversation written by hand in the template's own shape
    const ref = renderText(
      tok,
      [
        { role: 'system', content: chat.messages[0]!.content! },
        { role: 'user', content: 'Weather in Rome?' },
        { role: 'assistant', toolCalls: [{ name: 'get_weather', arguments: { city: 'Rome' } }] },
        { role: 'tool', content: '{"temp": 21}', toolCallId: 'c1' },
        { role: 'assistant', content: 'It is 21 degrees in Rome.' },
      ],
      [normaliseTool(weather)],
      { kwargs: { enable_thinking: false } },
    );
    expect(tok.decode(out.ids, { skipSpecialTokens: false })).toBe(ref);
    expect(ref).toMatch(/<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "Rome"\}\}\n<\/tool_call>/);
    // the call's tokens are trained
    const trained = tok.decode(out.ids.filter((_, i) => out.mask[i] === 1), { skipSpecialTokens: false });
    expect(trained).toContain('"name": "get_weather"');
    expect(trained).toContain('It is 21 degrees in Rome.');
  });

  it('a bare message array works too; a bad call names the message', () => {
    const file = join(tmp, 'bare.json');
    writeFileSync(file, JSON.stringify(chat.messages.slice(1, 3)));
    const tok = qwen3();
    const out = JSON.parse(runTokenize({ model: qwen3Dir, chat: file, json: true }, tok)) as { ids: number[] };
    expect(tok.decode(out.ids, { skipSpecialTokens: false })).toContain('"name": "get_weather"');
    const bad = join(tmp, 'bad.json');
    writeFileSync(bad, JSON.stringify([{ role: 'assistant', tool_calls: [{ function: { arguments: '{}' } }] }]));
    expect(() => runTokenize({ model: qwen3Dir, chat: bad, json: true }, tok)).toThrow(/--chat: .*message 0: tool call 0 needs a function name/);
  });
});

async function data(args: string[]): Promise<{ err: string; code: number }> {
  const program = new Command();
  program.exitOverride();
  registerData(program);
  let err = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((err += String(c)), true));
  const prev = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'itool', 'data', ...args]);
  } finally {
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = prev;
  return { err, code };
}

describe('data convert OpenAI -> ShareGPT', () => {
  it('keeps the system message and the tools, and reads back the same conversation', async () => {
    const src = join(tmp, 'openai.jsonl');
    writeFileSync(src, JSON.stringify({ id: 'w1', ...chat }) + '\n');
    const dst = join(tmp, 'sharegpt.jsonl');
    const r = await data(['convert', '--in', src, '--out', dst, '--to', 'sharegpt']);
    expect(r.code, r.err).toBe(0);
    const row = JSON.parse(readFileSync(dst, 'utf8').trim()) as { system: string; tools: string };
    expect(row.system).toBe('You are a weather bot. Answer in one sentence.');
    const [a] = loadSamples(src);
    const [b] = loadSamples(dst);
    expect(b!.messages[0]).toEqual({ role: 'system', content: 'You are a weather bot. Answer in one sentence.' });
    expect(b!.tools).toEqual(a!.tools);
    expect(b!.messages.map((m) => m.role)).toEqual(a!.messages.map((m) => m.role));
    expect(b!.messages[2]).toEqual(a!.messages[2]);
    expect(b!.messages[4]).toEqual(a!.messages[4]);
  });
});
