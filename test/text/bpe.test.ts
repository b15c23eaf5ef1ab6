// The byte-level BPE trainer: deterministic for corpus + seed, its tokenizer.json gives the
// ids Python's tokenizers gives (recorded fixture) and the trainer's own segmentation, held-out
// text round-trips, the chat template works with tools, and bad options are named.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Sample } from '../../src/data/sample.js';
import { loadTokenizer, render, trainBpe, writeTokenizer } from '../../src/text/index.js';
import { fixture, tempDir } from './helpers.js';

interface BpeFixture {
  bpe: {
    vocabSize: number;
    seed: number;
    corpusStrings: string[];
    tokenizerJsonSha256: string;
    vocabSizeLoaded: number;
    cases: Array<{ text: string; ids: number[] }>;
  };
}
const fx = fixture<BpeFixture>('token_ids.json').bpe;
const chats = fixture<{ cases: Array<{ text: string }> }>('chat_template.json').cases;
// the corpus the recording script trained on (see scripts/fixtures/record_token_ids.py)
const corpus = [...fx.corpusStrings, ...chats.map((c) => c.text), ...fx.corpusStrings.map((s) => s.toUpperCase())];

function serialized(t: { tokenizerJson: Record<string, unknown> }): string {
  return JSON.stringify(t.tokenizerJson, null, 2) + '\n'; // what writeTokenizer writes
}

describe('trainBpe', () => {
  it('is deterministic: the same corpus and seed give the byte-identical tokenizer.json recorded by the fixture', () => {
    const a = trainBpe({ corpus, vocabSize: fx.vocabSize, seed: fx.seed });
    const b = trainBpe({ corpus: corpus.values(), vocabSize: fx.vocabSize, seed: fx.seed }); // any iterable
    expect(serialized(a)).toBe(serialized(b));
    expect(createHash('sha256').update(serialized(a)).digest('hex')).toBe(fx.tokenizerJsonSha256);
    expect(a.tokenizerConfig).toEqual(b.tokenizerConfig);
  });

  it('fills the vocabulary: 256 bytes + merges + special and added tokens', () => {
    const t = trainBpe({ corpus, vocabSize: fx.vocabSize, seed: fx.seed });
    expect(256 + t.merges + 5).toBe(fx.vocabSize);
    expect(fx.vocabSizeLoaded).toBe(fx.vocabSize);
    const model = t.tokenizerJson.model as { vocab: Record<string, number>; merges: string[] };
    expect(Object.keys(model.vocab).length).toBe(256 + t.merges);
    expect(new Set(Object.values(model.vocab)).size).toBe(256 + t.merges);
  });

  it("its tokenizer.json gives Python tokenizers' ids in @huggingface/tokenizers (recorded fixture) and round-trips held-out text", () => {
    const dir = tempDir();
    const t = trainBpe({ corpus, vocabSize: fx.vocabSize, seed: fx.seed });
    writeTokenizer(dir, t);
    const tok = loadTokenizer(dir);
    expect(tok.vocabSize).toBe(fx.vocabSize);
    for (const c of fx.cases) {
      expect(tok.encode(c.text), JSON.stringify(c.text.slice(0, 50))).toEqual(c.ids);
      expect(tok.decode(c.ids)).toBe(c.text);
    }
  });

  it("the trainer's own segmentation equals @huggingface/tokenizers' encoding", () => {
    const dir = tempDir();
    const t = trainBpe({ corpus, vocabSize: fx.vocabSize, seed: fx.seed });
    writeTokenizer(dir, t);
    const tok = loadTokenizer(dir);
    const sample = chats[0].text; // a whole chat rendering, special and added tokens included
    const own = sample.split(/(<\|im_start\|>|<\|im_end\|>|<tool_call>|<\/tool_call>)/).flatMap((part, i) => {
      if (i % 2 === 1) return [tok.tokenToId(part)!];
      return t.split(part).flatMap((p) => {
        const seg = t.segment(p);
        if (!seg) throw new Error(`piece ${JSON.stringify(p)} was not seen in training`);
        return seg;
      });
    });
    expect(own.length).toBeGreaterThan(100);
    expect(tok.encode(sample)).toEqual(own);
  });

  it('gives special tokens and added tokens their ids and roles; the Hermes template renders tools and masks the calls', () => {
    const dir = tempDir();
    writeTokenizer(dir, trainBpe({ corpus, vocabSize: 600, seed: 1 }));
    expect(readdirSync(dir).sort()).toEqual(['tokenizer.json', 'tokenizer_config.json']); // no temp files left
    const tok = loadTokenizer(dir);
    expect(tok.specialTokens.map((s) => s.content)).toEqual(['<|endoftext|>', '<|im_start|>', '<|im_end|>']);
    expect(tok.addedTokens.filter((s) => !s.special).map((s) => s.content)).toEqual(['<tool_call>', '</tool_call>']);
    expect(tok.eosToken).toBe('<|im_end|>');
    expect(tok.padToken).toBe('<|endoftext|>');
    expect(tok.turnEndIds).toEqual([tok.tokenToId('<|im_end|>')]);
    expect(tok.encode('<tool_call>')).toEqual([tok.tokenToId('<tool_call>')]);
    const sample: Sample = {
      id: 's',
      category: 'simple',
      tools: [{ name: 'add', description: 'Add numbers', parameters: { type: 'object', properties: { a: { type: 'number' } } } }],
      messages: [
        { role: 'user', content: 'Add 2 and 3' },
        { role: 'assistant', toolCalls: [{ name: 'add', arguments: { a: 2, b: 3 } }] },
        { role: 'tool', content: '5' },
        { role: 'assistant', content: 'It is 5.' },
      ],
    };
    const r = render(tok, sample);
    expect(r.text).toContain('<tools>\n{"type": "function", "function": {"name": "add"');
    expect(r.text).toContain('<|im_start|>tool\n5<|im_end|>');
    const masked: string[] = [];
    let cur: number[] = [];
    r.mask.forEach((m, i) => {
      if (m) cur.push(r.ids[i]);
      else if (cur.length) {
        masked.push(tok.decode(cur));
        cur = [];
      }
    });
    expect(masked).toEqual(['<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>', 'It is 5.<|im_end|>']);
  });

  it('a different seed still gives a valid tokenizer of the same size', () => {
    const t = trainBpe({ corpus, vocabSize: fx.vocabSize, seed: fx.seed + 1 });
    expect(256 + t.merges + 5).toBe(fx.vocabSize);
    const dir = tempDir();
    writeTokenizer(dir, t);
    const tok = loadTokenizer(dir);
    for (const c of fx.cases) expect(tok.decode(tok.encode(c.text))).toBe(c.text);
  });

  it('stops early when no pair is frequent enough', () => {
    const t = trainBpe({ corpus: ['abc'], vocabSize: 1000 });
    expect(t.merges).toBe(0);
    const t2 = trainBpe({ corpus: ['abab abab'], vocabSize: 1000, minFrequency: 1 });
    expect(t2.merges).toBeGreaterThan(0);
  });

  it('names bad options', () => {
    expect(() => trainBpe({ corpus: ['x'], vocabSize: 100 })).toThrow(/vocabSize must be an integer >= 261/);
    expect(() => trainBpe({ corpus: ['x'], vocabSize: 300, specialTokens: [''] })).toThrow(/specialTokens must be non-empty strings/);
    expect(() => trainBpe({ corpus: ['x'], vocabSize: 300, specialTokens: ['<a>'], addedTokens: ['<a>'] })).toThrow(/distinct/);
    expect(() => trainBpe({ corpus: [1 as unknown as string], vocabSize: 300 })).toThrow(/corpus item 0 is not a string/);
    expect(() => trainBpe({ corpus: ['x'], vocabSize: 300, minFrequency: 0 })).toThrow(/minFrequency/);
  });

  it('writeTokenizer names a directory it cannot create and leaves existing files whole', () => {
    const dir = tempDir();
    writeTokenizer(dir, trainBpe({ corpus: ['x'], vocabSize: 300 }));
    const before = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
    const under = join(dir, 'tokenizer.json', 'sub');
    expect(() => writeTokenizer(under, trainBpe({ corpus: ['x'], vocabSize: 300 }))).toThrow(`writeTokenizer: cannot create directory ${under}`);
    expect(readFileSync(join(dir, 'tokenizer.json'), 'utf8')).toBe(before);
    expect(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')).eos_token).toBe('<|im_end|>');
  });
});
