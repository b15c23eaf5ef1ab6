// A deterministic byte-level BPE trainer for the built-in model. It writes a standard
// Hugging Face tokenizer.json (Qwen-style regex split + ByteLevel pre-tokenizer, ByteLevel
// decoder, BPE model) and a tokenizer_config.json with a Hermes `<tool_call>` chat template,
// so the result loads in @huggingface/tokenizers, Python's tokenizers and transformers.
//
// Training: the corpus is cut at special/added tokens, split with the pre-tokenizer regex,
// and the distinct pieces are counted. Every piece starts as its UTF-8 bytes; the most
// frequent adjacent pair is merged repeatedly (ties broken by a seeded hash of the pair, so
// the output depends only on corpus, options and seed) until the vocabulary is full or no
// pair occurs `minFrequency` times.
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** Qwen2's pre-tokenizer split, as written in its tokenizer.json (Oniguruma syntax). */
export const QWEN_SPLIT_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** The same split in JavaScript syntax. */
const SPLIT_JS = /'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu;

export const DEFAULT_SPECIAL_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
export const DEFAULT_ADDED_TOKENS = ['<tool_call>', '</tool_call>'];

/**
 * Hermes/Qwen-style chat template with tools: the system turn lists the tools as JSON inside
 * <tools></tools>, assistant tool calls are `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>`,
 * tool results are a `tool` turn.
 */
export const HERMES_TEMPLATE = `{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- '# Tools\\n\\nYou may call one or more functions. Function signatures within <tools></tools>:\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nFor each call, return a JSON object within <tool_call></tool_call>:\\n<tool_call>\\n{"name": <function-name>, "arguments": <args-json-object>}\\n</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant\\n' }}
        {%- if message.content %}
            {{- message.content }}
        {%- endif %}
        {%- if message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if (loop.first and message.content) or (not loop.first) %}
                    {{- '\\n' }}
                {%- endif %}
                {%- if tool_call.function %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- else %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {{- '<|im_start|>tool\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role != 'system' %}
        {{- raise_exception('Unknown message role: ' + message.role) }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
`;

export interface TrainBpeOptions {
  /** the training text: one string, or many (lines, documents) */
  corpus: Iterable<string> | string;
  /** total vocabulary: 256 bytes + merges + special and added tokens */
  vocabSize: number;
  /** special tokens (special: true), by default <|endoftext|>, <|im_start|>, <|im_end|> */
  specialTokens?: string[];
  /** added non-special tokens, by default <tool_call>, </tool_call> */
  addedTokens?: string[];
  /** breaks ties between equally frequent pairs (default 0) */
  seed?: number;
  /** stop when the best pair occurs fewer times (default 2) */
  minFrequency?: number;
  /** chat template for tokenizer_config.json (default: HERMES_TEMPLATE) */
  chatTemplate?: string;
  eosToken?: string;
  padToken?: string;
  modelMaxLength?: number;
}

export interface TrainedBpe {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  /** number of merges learned */
  merges: number;
  /** distinct pre-tokenized pieces in the corpus */
  pieces: number;
  /** the trainer's own final segmentation of a piece seen in training (ids), or undefined */
  segment(piece: string): number[] | undefined;
  /** the pre-tokenizer split the trainer used (the Qwen regex) */
  split(text: string): string[];
}

/** GPT-2's byte → printable unicode character table. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const table = new Array<string>(256);
  for (const b of bs) table[b] = String.fromCharCode(b);
  let n = 0;
  for (let b = 0; b < 256; b++) if (table[b] === undefined) table[b] = String.fromCharCode(256 + n++);
  return table;
}

function splitPieces(text: string): string[] {
  return text.match(SPLIT_JS) ?? [];
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** 32-bit mix of a pair key and the seed (splitmix-like, integer arithmetic only). */
function tieHash(key: number, seed: number): number {
  let h = (Math.imul((key ^ (key / 4294967296)) | 0, 0x9e3779b1) ^ seed) | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Max-heap of pairs by (count desc, tie hash desc, key asc). */
class PairHeap {
  private counts: number[] = [];
  private ties: number[] = [];
  private keys: number[] = [];
  get size(): number {
    return this.keys.length;
  }
  private above(i: number, j: number): boolean {
    const c = this.counts, t = this.ties, k = this.keys;
    if (c[i] !== c[j]) return c[i] > c[j];
    if (t[i] !== t[j]) return t[i] > t[j];
    return k[i] < k[j];
  }
  private swap(i: number, j: number): void {
    const c = this.counts, t = this.ties, k = this.keys;
    [c[i], c[j]] = [c[j], c[i]];
    [t[i], t[j]] = [t[j], t[i]];
    [k[i], k[j]] = [k[j], k[i]];
  }
  push(count: number, tie: number, key: number): void {
    this.counts.push(count);
    this.ties.push(tie);
    this.keys.push(key);
    let i = this.keys.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  pop(): { count: number; key: number } {
    const top = { count: this.counts[0], key: this.keys[0] };
    const last = this.keys.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.ties.pop();
    this.keys.pop();
    let i = 0;
    const n = this.keys.length;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < n && this.above(l, m)) m = l;
      if (r < n && this.above(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

export function trainBpe(opts: TrainBpeOptions): TrainedBpe {
  const specials = opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const added = opts.addedTokens ?? DEFAULT_ADDED_TOKENS;
  const seed = (opts.seed ?? 0) | 0;
  const minFrequency = opts.minFrequency ?? 2;
  const vocabSize = opts.vocabSize;
  for (const [name, list] of [['specialTokens', specials], ['addedTokens', added]] as const) {
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s.length === 0)) throw new Error(`trainBpe: ${name} must be non-empty strings`);
  }
  const extra = [...specials, ...added];
  if (new Set(extra).size !== extra.length) throw new Error('trainBpe: special and added tokens must be distinct');
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + extra.length) {
    throw new Error(`trainBpe: vocabSize must be an integer >= ${256 + extra.length} (256 bytes + ${extra.length} special/added tokens), got ${vocabSize}`);
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`trainBpe: minFrequency must be a positive integer, got ${minFrequency}`);
  if (opts.corpus === undefined || opts.corpus === null) throw new Error('trainBpe: corpus is required');
  const docs: Iterable<string> = typeof opts.corpus === 'string' ? [opts.corpus] : opts.corpus;

  // 1. count pieces (text between special/added tokens, split by the regex)
  const cut = new RegExp(extra.map(escapeRegex).join('|'), 'g');
  const counts = new Map<string, number>();
  let nDocs = 0;
  for (const doc of docs) {
    if (typeof doc !== 'string') throw new Error(`trainBpe: corpus item ${nDocs} is not a string`);
    nDocs++;
    for (const part of doc.split(cut)) {
      if (part.length === 0) continue;
      for (const p of splitPieces(part)) counts.set(p, (counts.get(p) ?? 0) + 1);
    }
  }
  // a fixed order of pieces, independent of Map insertion quirks: sort by text
  const pieces = [...counts.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const nWords = pieces.length;
  const wordCount = new Float64Array(nWords);
  const words: Int32Array[] = new Array(nWords);
  const wordLen = new Int32Array(nWords);
  for (let w = 0; w < nWords; w++) {
    wordCount[w] = counts.get(pieces[w])!;
    const bytes = Buffer.from(pieces[w], 'utf8');
    words[w] = Int32Array.from(bytes);
    wordLen[w] = bytes.length;
  }

  // 2. pair statistics: key = a * KEY + b
  const KEY = 1 << 20;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < nWords; w++) {
    const s = words[w], c = wordCount[w];
    for (let i = 0; i + 1 < wordLen[w]; i++) {
      const k = s[i] * KEY + s[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + c);
      let list = pairWords.get(k);
      if (!list) pairWords.set(k, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, tieHash(k, seed), k);

  // 3. merges
  const table = bytesToUnicode();
  const tokenStr: string[] = table.slice();
  const merges: string[] = [];
  const maxMerges = vocabSize - 256 - extra.length;
  const changed = new Map<number, number>();
  const stamp = new Int32Array(nWords).fill(-1);
  while (merges.length < maxMerges && heap.size > 0) {
    const top = heap.pop();
    const current = pairCount.get(top.key) ?? 0;
    if (current !== top.count) continue; // stale entry
    if (current < minFrequency) break;
    const a = Math.floor(top.key / KEY), b = top.key % KEY;
    const id = tokenStr.length;
    tokenStr.push(tokenStr[a] + tokenStr[b]);
    merges.push(`${tokenStr[a]} ${tokenStr[b]}`);
    changed.clear();
    const list = pairWords.get(top.key) ?? [];
    for (const w of list) {
      if (stamp[w] === id) continue;
      stamp[w] = id;
      const s = words[w], n = wordLen[w], c = wordCount[w];
      let has = false;
      for (let i = 0; i + 1 < n; i++) if (s[i] === a && s[i + 1] === b) { has = true; break; }
      if (!has) continue;
      for (let i = 0; i + 1 < n; i++) {
        const k = s[i] * KEY + s[i + 1];
        changed.set(k, (changed.get(k) ?? 0) - c);
      }
      let m = 0;
      for (let i = 0; i < n; i++) {
        if (i + 1 < n && s[i] === a && s[i + 1] === b) {
          s[m++] = id;
          i++;
        } else s[m++] = s[i];
      }
      wordLen[w] = m;
      for (let i = 0; i + 1 < m; i++) {
        const k = s[i] * KEY + s[i + 1];
        changed.set(k, (changed.get(k) ?? 0) + c);
        if (s[i] === id || s[i + 1] === id) {
          let l = pairWords.get(k);
          if (!l) pairWords.set(k, (l = []));
          if (l[l.length - 1] !== w) l.push(w);
        }
      }
    }
    pairWords.delete(top.key);
    for (const [k, d] of changed) {
      if (d === 0) continue;
      const nc = (pairCount.get(k) ?? 0) + d;
      if (nc <= 0) pairCount.delete(k);
      else {
        pairCount.set(k, nc);
        heap.push(nc, tieHash(k, seed), k);
      }
    }
  }

  // 4. the files
  const vocab: Record<string, number> = {};
  for (let i = 0; i < tokenStr.length; i++) vocab[tokenStr[i]] = i;
  const addedTokens = extra.map((content, i) => ({
    id: tokenStr.length + i,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: i < specials.length,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [{ type: 'Split', pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: 'Isolated', invert: false }, byteLevel],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
  const addedDecoder: Record<string, unknown> = {};
  for (const t of addedTokens) {
    addedDecoder[String(t.id)] = { content: t.content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: t.special };
  }
  const eos = opts.eosToken ?? (specials.includes('<|im_end|>') ? '<|im_end|>' : (specials[0] ?? null));
  const pad = opts.padToken ?? (specials.includes('<|endoftext|>') ? '<|endoftext|>' : eos);
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_prefix_space: false,
    added_tokens_decoder: addedDecoder,
    additional_special_tokens: specials.filter((s) => s !== eos && s !== pad),
    bos_token: null,
    chat_template: opts.chatTemplate ?? HERMES_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: eos,
    errors: 'replace',
    model_max_length: opts.modelMaxLength ?? 4096,
    pad_token: pad,
    split_special_tokens: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: null,
  };
  const index = new Map<string, number>();
  for (let w = 0; w < nWords; w++) index.set(pieces[w], w);
  return {
    tokenizerJson,
    tokenizerConfig,
    merges: merges.length,
    pieces: nWords,
    segment(piece: string): number[] | undefined {
      const w = index.get(piece);
      return w === undefined ? undefined : Array.from(words[w].subarray(0, wordLen[w]));
    },
    split: splitPieces,
  };
}

/** Writes a file through a temporary file, fsync and rename: never a half-written file. */
export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}-${Date.now()}`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, file);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    if (existsSync(tmp)) unlinkSync(tmp);
    throw new Error(`cannot write ${file}: ${(e as Error).message}`);
  }
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if needed). */
export function writeTokenizer(dir: string, t: { tokenizerJson: Record<string, unknown>; tokenizerConfig: Record<string, unknown> }): void {
  if (typeof dir !== 'string' || dir === '') throw new Error('writeTokenizer: a directory is required');
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new Error(`writeTokenizer: cannot create directory ${dir}: ${(e as Error).message}`);
  }
  writeFileAtomic(join(dir, 'tokenizer.json'), JSON.stringify(t.tokenizerJson, null, 2) + '\n');
  writeFileAtomic(join(dir, 'tokenizer_config.json'), JSON.stringify(t.tokenizerConfig, null, 2) + '\n');
}
