// The Hugging Face tokenizer wrapper on the real Qwen3 tokenizer: ids against Python's
// `tokenizers`, round trips, special tokens, character offsets, and bad input.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer, Tokenizer, TokenizerError, trainBpe, writeTokenizer } from '../../src/text/index.js';
import { fixture, qwen3, qwen3Dir, sharedTokenizerDir, tempDir } from './helpers.js';

interface IdsFixture {
  qwen3: Array<{ text: string; ids: number[] }>;
}

const hasShared = existsSync(join(sharedTokenizerDir, 'qwen2.inp')) && existsSync(join(sharedTokenizerDir, 'qwen2.out'));

describe('Qwen3 tokenizer', () => {
  it('exposes the special tokens, BOS/EOS/pad ids and the turn-end token', () => {
    const tok = qwen3();
    expect(tok.bosId).toBeNull(); // Qwen has no BOS
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.eosId).toBe(151645);
    expect(tok.padToken).toBe('<|endoftext|>');
    expect(tok.padId).toBe(151643);
    expect(tok.turnEndTokens).toEqual(['<|im_end|>']);
    expect(tok.turnEndIds).toEqual([151645]);
    expect(tok.vocabSize).toBe(151669);
    expect(tok.tokenToId('<|im_start|>')).toBe(151644);
    expect(tok.specialTokens.map((t) => t.content)).toContain('<|im_start|>');
    // <tool_call> is an added token but not a special one (decoding keeps it)
    const tc = tok.addedTokens.find((t) => t.content === '<tool_call>');
    expect(tc).toEqual({ id: 151657, content: '<tool_call>', special: false });
    expect(tok.isSpecial(151645)).toBe(true);
    expect(tok.isSpecial(151657)).toBe(false);
    expect(tok.chatTemplate).not.toBeNull();
  });

  it('gives the ids Python tokenizers gives (recorded fixture: English, CJK, emoji, code, JSON, whitespace, tool calls, chats)', () => {
    const tok = qwen3();
    const fx = fixture<IdsFixture>('token_ids.json');
    expect(fx.qwen3.length).toBeGreaterThan(20);
    for (const c of fx.qwen3) expect(tok.encode(c.text), JSON.stringify(c.text.slice(0, 60))).toEqual(c.ids);
  });

  it.skipIf(!hasShared)('gives the ids of ../shared/data/tokenizer (46 strings from Python tokenizers; skipped when that folder is absent)', () => {
    const tok = qwen3();
    const inputs = readFileSync(join(sharedTokenizerDir, 'qwen2.inp'), 'utf8').split('\n__ggml_vocab_test__\n');
    const outputs = readFileSync(join(sharedTokenizerDir, 'qwen2.out'), 'utf8').split('\n');
    // the input file ends with a separator: the last piece is empty
    if (inputs[inputs.length - 1] === '') inputs.pop();
    expect(inputs.length).toBe(46);
    for (let i = 0; i < inputs.length; i++) {
      const expected = outputs[i].trim() === '' ? [] : outputs[i].trim().split(/\s+/).map(Number);
      expect(tok.encode(inputs[i]), `string ${i}: ${JSON.stringify(inputs[i])}`).toEqual(expected);
    }
  });

  it('round-trips text through encode and decode', () => {
    const tok = qwen3();
    const fx = fixture<IdsFixture>('token_ids.json');
    const extra = ['\u00a0non-breaking\u2009thin', 'a\r\nb\rc\n', '```json\n{"k": [1, 2.5e-3, "x\\"y"]}\n```', '  \t\n  \n'];
    for (const s of [...fx.qwen3.map((c) => c.text), ...extra]) {
      expect(tok.decode(tok.encode(s))).toBe(s.normalize('NFC'));
    }
  });

  it('skips special tokens when asked, keeps added non-special ones', () => {
    const tok = qwen3();
    const ids = tok.encode('<|im_start|>user\n<tool_call>x</tool_call><|im_end|>');
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe('user\n<tool_call>x</tool_call>');
  });

  it('adds no special tokens by default', () => {
    const tok = qwen3();
    expect(tok.encode('Hello')).toEqual([9707]);
  });

  it('maps every token to its characters (offsets tile the text; multi-byte pieces share a character)', () => {
    const tok = qwen3();
    const text = '<|im_start|>user\nHi 😀 東京, f(x)=1<|im_end|>\n  \n';
    const ids = tok.encode(text);
    const offs = tok.offsets(text, ids);
    expect(offs.length).toBe(ids.length);
    expect(offs[0][0]).toBe(0);
    expect(offs[offs.length - 1][1]).toBe(text.length);
    for (let i = 0; i < offs.length; i++) {
      const [s, e] = offs[i];
      expect(e).toBeGreaterThan(s);
      if (i > 0) expect(s).toBeGreaterThanOrEqual(offs[i - 1][0]);
      const piece = tok.decode([ids[i]]);
      if (!piece.includes('\ufffd')) {
        expect(text.slice(s, e)).toBe(piece); // whole characters: exactly the token's text
        if (i > 0) expect(s).toBe(offs[i - 1][1]);
      }
    }
    // the emoji's bytes are split over tokens that all point at the emoji
    const emojiAt = text.indexOf('😀');
    const onEmoji = offs.filter(([s]) => s >= emojiAt - 1 && s <= emojiAt);
    expect(onEmoji.some(([s, e]) => text.slice(s, e).includes('😀'))).toBe(true);
  });

  it('rejects offsets for ids that do not spell the text', () => {
    const tok = qwen3();
    expect(() => tok.offsets('Hello world', tok.encode('Hello there'))).toThrow(/cannot map token 1/);
  });

  it('rejects ids outside the vocabulary on decode', () => {
    expect(() => qwen3().decode([1, 999999])).toThrow(/token id 999999 is outside the vocabulary/);
    expect(() => qwen3().decode([1.5])).toThrow(/token id 1.5/);
  });
});

/** a small directory from the project's trainer (fast to load), with the given config edits */
function smallDir(edit?: (cfg: Record<string, unknown>) => void): string {
  const dir = tempDir();
  const t = trainBpe({ corpus: ['hello world, hello tools'], vocabSize: 300 });
  edit?.(t.tokenizerConfig);
  writeTokenizer(dir, t);
  return dir;
}

describe('loadTokenizer: bad input', () => {
  it('names a missing directory', () => {
    expect(() => loadTokenizer('/nonexistent/model')).toThrow(/directory not found: \/nonexistent\/model/);
  });

  it('names a missing tokenizer.json', () => {
    const dir = tempDir();
    expect(() => loadTokenizer(dir)).toThrow(new RegExp(`file not found: .*${dir}/tokenizer.json`));
  });

  it('names a malformed tokenizer.json and the JSON problem', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", ');
    try {
      loadTokenizer(dir);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(TokenizerError);
      expect((e as Error).message).toMatch(/tokenizer\.json is not valid JSON/);
    }
  });

  it('names a tokenizer.json without a model section', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json: no "model" section/);
  });

  it('names a malformed tokenizer_config.json', () => {
    const dir = smallDir();
    writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2');
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer_config\.json is not valid JSON/);
  });

  it('names a chat template that does not parse', () => {
    const dir = smallDir((cfg) => {
      cfg.chat_template = '{% for m in messages %}{{ m.content }';
    });
    expect(() => loadTokenizer(dir)).toThrow(/chat template in .*tokenizer_config\.json does not parse/);
  });

  it('prefers chat_template.jinja over tokenizer_config.json', () => {
    const dir = smallDir();
    writeFileSync(join(dir, 'chat_template.jinja'), '{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}');
    const tok = loadTokenizer(dir);
    expect(tok.chatTemplate!.file).toMatch(/chat_template\.jinja$/);
    expect(tok.chatTemplate!.render([{ role: 'user', content: 'hi' }])).toBe('[user]hi<|im_end|>');
  });

  it('reads extra end-of-turn ids from generation_config.json', () => {
    const dir = smallDir();
    const first = loadTokenizer(dir);
    expect(first.turnEndTokens).toEqual(['<|im_end|>']);
    const eot = first.tokenToId('<|endoftext|>')!;
    writeFileSync(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [first.eosId, eot] }));
    const tok = loadTokenizer(dir);
    expect(tok.turnEndIds).toEqual([first.eosId!, eot].sort((a, b) => a - b));
  });

  it('builds from in-memory JSON too', () => {
    const tj = JSON.parse(readFileSync(join(qwen3Dir, 'tokenizer.json'), 'utf8'));
    const tok = new Tokenizer({ tokenizerJson: tj, tokenizerConfig: { eos_token: '<|endoftext|>' } });
    expect(tok.eosId).toBe(151643);
    expect(tok.chatTemplate).toBeNull();
  });
});

describe('a SentencePiece-style tokenizer (Metaspace, byte fallback; Llama 2 / Mistral shape)', () => {
  // hand-made: the offsets take the non-byte-level path ('▁' is a space, <0xNN> a byte)
  function spTokenizer(): Tokenizer {
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
    for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
    let id = 259;
    for (const t of ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd', '[', ']', 'I', 'N', 'S', 'T', '/', '▁h', 'll', '▁w', 'he', '▁he', '▁hell', 'hell']) vocab[t] = id++;
    const special = (i: number, content: string) => ({ id: i, content, special: true, normalized: false, lstrip: false, rstrip: false, single_word: false });
    const tokenizerJson = {
      version: '1.0',
      added_tokens: [special(0, '<unk>'), special(1, '<s>'), special(2, '</s>')],
      normalizer: null,
      pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
      },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true, byte_fallback: true, vocab, merges: ['▁ h', 'l l', '▁ w', 'h e', '▁h e', 'he ll', '▁he ll'] },
    };
    const tokenizerConfig = {
      bos_token: '<s>',
      eos_token: '</s>',
      chat_template: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}[INST] {{ m.content }} [/INST]{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
    };
    return new Tokenizer({ tokenizerJson, tokenizerConfig });
  }

  it('maps tokens to characters through the prepended space and byte pieces', () => {
    const tok = spTokenizer();
    const text = 'hello wörld';
    const ids = tok.encode(text);
    expect(tok.tokens(ids)).toEqual(['▁hell', 'o', '▁w', '<0xC3>', '<0xB6>', 'r', 'l', 'd']);
    expect(tok.decode(ids)).toBe(text);
    expect(tok.offsets(text, ids).map(([s, e]) => text.slice(s, e))).toEqual(['hell', 'o', ' w', 'ö', 'ö', 'r', 'l', 'd']);
  });

  it('masks each assistant turn with its </s> and nothing of [INST] ... [/INST]', () => {
    const tok = spTokenizer();
    expect(tok.bosId).toBe(1);
    expect(tok.turnEndIds).toEqual([2]);
    const r = tok.render({
      id: 'sp',
      category: 'test',
      tools: [],
      messages: [
        { role: 'user', content: 'hello' },
        { role: 'assistant', content: 'world' },
        { role: 'user', content: 'hell' },
        { role: 'assistant', content: 'wörld' },
      ],
    });
    expect(r.text).toBe('<s>[INST] hello [/INST] world</s>[INST] hell [/INST] wörld</s>');
    const runs: string[][] = [];
    let cur: string[] = [];
    r.mask.forEach((m, i) => {
      if (m) cur.push(tok.idToToken(r.ids[i])!);
      else if (cur.length) {
        runs.push(cur);
        cur = [];
      }
    });
    if (cur.length) runs.push(cur);
    expect(runs).toEqual([
      ['▁w', 'o', 'r', 'l', 'd', '</s>'],
      ['▁w', '<0xC3>', '<0xB6>', 'r', 'l', 'd', '</s>'],
    ]);
  });
});

describe('named chat templates in tokenizer_config.json', () => {
  it("uses 'default' without tools and 'tool_use' with tools, as transformers does", () => {
    const t = trainBpe({ corpus: ['hello world'], vocabSize: 300 });
    t.tokenizerConfig.chat_template = [
      { name: 'default', template: '{% for m in messages %}D:{{ m.content }}{% endfor %}' },
      { name: 'tool_use', template: '{% for m in messages %}T{{ tools | length }}:{{ m.content }}{% endfor %}' },
    ];
    const dir = tempDir();
    writeTokenizer(dir, t);
    const tok = loadTokenizer(dir);
    const msgs = [{ role: 'user' as const, content: 'hi' }];
    expect(tok.chatTemplate!.render(msgs)).toBe('D:hi');
    expect(tok.chatTemplate!.render(msgs, { tools: [{ name: 'f', parameters: { type: 'object' } }] })).toBe('T1:hi');
  });
});
