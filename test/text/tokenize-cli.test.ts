// itool tokenize: plain text adds no special tokens; a chat prints the loss mask; --json.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runTokenize } from '../../src/cli/commands/tokenize.js';
import { qwen3, qwen3Dir, tempDir } from './helpers.js';

describe('itool tokenize', () => {
  it('--text --json gives ids and tokens with no special tokens added', () => {
    const out = JSON.parse(runTokenize({ model: qwen3Dir, text: 'Hello world', json: true }, qwen3()));
    expect(out).toEqual({ ids: [9707, 1879], tokens: ['Hello', 'Ġworld'] });
  });

  it('--chat --json gives the loss mask of the rendered chat', () => {
    const dir = tempDir();
    const file = join(dir, 'chat.json');
    writeFileSync(
      file,
      JSON.stringify({
        tools: [{ name: 'f', parameters: { type: 'object', properties: {} } }],
        messages: [
          { role: 'user', content: 'call f' },
          { role: 'assistant', toolCalls: [{ name: 'f', arguments: {} }] },
        ],
      }),
    );
    const tok = qwen3();
    const out = JSON.parse(runTokenize({ model: qwen3Dir, chat: file, json: true, templateKwargs: '{"enable_thinking": false}' }, tok));
    expect(out.ids.length).toBe(out.tokens.length);
    expect(out.mask.length).toBe(out.ids.length);
    const trained = out.ids.filter((_: number, i: number) => out.mask[i] === 1);
    expect(tok.decode(trained)).toBe('<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call><|im_end|>');
  });

  it('prints one line per token with the mask, and a summary', () => {
    const dir = tempDir();
    const file = join(dir, 'chat.json');
    writeFileSync(file, JSON.stringify([{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }]));
    const text = runTokenize({ model: qwen3Dir, chat: file }, qwen3());
    const lines = text.trimEnd().split('\n');
    expect(lines[lines.length - 1]).toMatch(/^\d+ tokens, \d+ trained \(mask 1\), prompt \d+ tokens$/);
    expect(lines.some((l) => / 151645 1 "<\|im_end\|>"$/.test(l))).toBe(true);
  });

  it('names bad input', () => {
    expect(() => runTokenize({ model: qwen3Dir }, qwen3())).toThrow(/exactly one of --text TEXT or --chat FILE.json/);
    expect(() => runTokenize({ model: qwen3Dir, chat: '/nonexistent.json' }, qwen3())).toThrow(/--chat: file not found: \/nonexistent.json/);
    const dir = tempDir();
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"messages": [');
    expect(() => runTokenize({ model: qwen3Dir, chat: bad }, qwen3())).toThrow(/bad\.json is not valid JSON/);
    writeFileSync(bad, '{"turns": []}');
    expect(() => runTokenize({ model: qwen3Dir, chat: bad }, qwen3())).toThrow(/must hold an array of messages/);
    writeFileSync(bad, JSON.stringify([{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }]));
    expect(() => runTokenize({ model: qwen3Dir, chat: bad, templateKwargs: '[1]' }, qwen3())).toThrow(/--template-kwargs must be a JSON object/);
    expect(() => runTokenize({ model: '/nonexistent-model', text: 'x' })).toThrow(/directory not found/);
  });
});
