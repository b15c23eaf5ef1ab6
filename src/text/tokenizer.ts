// Loading a Hugging Face tokenizer directory (tokenizer.json + tokenizer_config.json,
// optional chat_template.jinja and generation_config.json). Encoding and decoding are done
// by @huggingface/tokenizers; this file adds what training needs on top: the special and
// added tokens, BOS/EOS/pad ids, the turn-end tokens, the chat template, and the
// character offsets of each token (computed from the tokens' bytes, checked against the
// text, so that loss masks come from character spans).
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Message, Sample, ToolSchema } from '../data/sample.js';
import { render, renderForSearch, renderPrompt, type RenderOptions, type Rendered, type RenderedForSearch, type SearchOptions } from './render.js';
import { ChatTemplate } from './template.js';

export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}

export interface AddedTokenInfo {
  id: number;
  content: string;
  special: boolean;
}

export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (BOS/EOS). Default false: chat templates add their own. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

/** Known turn-end tokens of common chat formats; those present in the vocabulary count. */
const KNOWN_TURN_END = ['<|im_end|>', '<|eot_id|>', '<|eom_id|>', '<|end|>', '<end_of_turn>', '<|end_of_turn|>'];

type Json = Record<string, unknown>;

function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  return null;
}

/** GPT-2's byte → printable-unicode table, inverted: unicode char code → byte. */
function byteLevelDecoder(): Map<number, number> {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const m = new Map<number, number>();
  for (let i = 0; i < bs.length; i++) m.set(cs[i], bs[i]);
  return m;
}
let BYTE_DECODER: Map<number, number> | null = null;

function hasType(node: unknown, type: string): boolean {
  if (!node || typeof node !== 'object') return false;
  const o = node as Json;
  if (o.type === type) return true;
  for (const key of ['decoders', 'pretokenizers', 'normalizers', 'processors']) {
    const list = o[key];
    if (Array.isArray(list) && list.some((x) => hasType(x, type))) return true;
  }
  return false;
}

/** The Unicode normalization form the tokenizer's normalizer applies, if that is all it does. */
function unicodeForm(node: unknown): 'NFC' | 'NFD' | 'NFKC' | 'NFKD' | null {
  if (!node || typeof node !== 'object') return null;
  const o = node as Json;
  if (o.type === 'NFC' || o.type === 'NFD' || o.type === 'NFKC' || o.type === 'NFKD') return o.type;
  if (o.type === 'Sequence' && Array.isArray(o.normalizers)) {
    const forms = (o.normalizers as unknown[]).map(unicodeForm).filter((x) => x !== null);
    return forms.length === 1 ? forms[0] : null;
  }
  return null;
}

function readJson(file: string, what: string): Json {
  if (!existsSync(file)) throw new TokenizerError(`${what}: file not found: ${file}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new TokenizerError(`${what}: cannot read ${file}: ${(e as Error).message}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TokenizerError(`${what}: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new TokenizerError(`${what}: ${file} must hold a JSON object`);
  return v as Json;
}

export interface TokenizerSources {
  tokenizerJson: Json;
  tokenizerConfig?: Json;
  /** chat_template.jinja's text, which wins over tokenizer_config.json's chat_template */
  chatTemplate?: string;
  generationConfig?: Json;
  /** names used in error messages */
  files?: { tokenizer?: string; config?: string; template?: string };
}

export class Tokenizer {
  readonly hf: HfTokenizer;
  readonly tokenizerJson: Json;
  readonly config: Json;
  readonly files: { tokenizer: string; config: string; template: string };
  /** every added token (special or not), by id */
  readonly addedTokens: AddedTokenInfo[];
  readonly specialTokens: AddedTokenInfo[];
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly padId: number | null;
  /** the tokens that end an assistant turn (the model stops generating at any of them) */
  readonly turnEndTokens: string[];
  readonly turnEndIds: number[];
  /** the largest id + 1 (vocabulary plus added tokens) */
  readonly vocabSize: number;
  readonly chatTemplate: ChatTemplate | null;
  private readonly byteLevel: boolean;
  private readonly form: 'NFC' | 'NFD' | 'NFKC' | 'NFKD' | null;
  private readonly addedById = new Map<number, AddedTokenInfo>();
  private readonly idToTokenCache: (string | undefined)[] = [];
  private readonly bytesCache = new Map<number, Uint8Array>();

  constructor(src: TokenizerSources) {
    this.tokenizerJson = src.tokenizerJson;
    this.config = src.tokenizerConfig ?? {};
    this.files = {
      tokenizer: src.files?.tokenizer ?? 'tokenizer.json',
      config: src.files?.config ?? 'tokenizer_config.json',
      template: src.files?.template ?? src.files?.config ?? 'tokenizer_config.json',
    };
    const tj = this.tokenizerJson;
    const model = tj.model as Json | undefined;
    if (!model || typeof model !== 'object') throw new TokenizerError(`${this.files.tokenizer}: no "model" section`);
    if (typeof model.type !== 'string' && !model.vocab) throw new TokenizerError(`${this.files.tokenizer}: "model" has no type or vocab`);
    try {
      this.hf = new HfTokenizer(tj, this.config);
    } catch (e) {
      throw new TokenizerError(`${this.files.tokenizer}: @huggingface/tokenizers cannot load it: ${(e as Error).message}`);
    }
    const added = Array.isArray(tj.added_tokens) ? (tj.added_tokens as Json[]) : [];
    this.addedTokens = added
      .filter((t) => typeof t.id === 'number' && typeof t.content === 'string')
      .map((t) => ({ id: t.id as number, content: t.content as string, special: t.special === true }));
    for (const t of this.addedTokens) this.addedById.set(t.id, t);
    this.specialTokens = this.addedTokens.filter((t) => t.special);

    const idOf = (s: string | null): number | null => (s === null ? null : (this.tokenToId(s) ?? null));
    this.bosToken = tokenContent(this.config.bos_token);
    this.eosToken = tokenContent(this.config.eos_token);
    this.padToken = tokenContent(this.config.pad_token);
    this.bosId = idOf(this.bosToken);
    this.eosId = idOf(this.eosToken);
    this.padId = idOf(this.padToken);

    const ends = new Set<number>();
    if (this.eosId !== null) ends.add(this.eosId);
    const gen = src.generationConfig?.eos_token_id;
    for (const id of Array.isArray(gen) ? gen : gen !== undefined ? [gen] : []) if (typeof id === 'number') ends.add(id);
    for (const s of KNOWN_TURN_END) {
      const id = this.tokenToId(s);
      if (id !== undefined && this.addedById.has(id)) ends.add(id);
    }
    this.turnEndIds = [...ends].sort((a, b) => a - b);
    this.turnEndTokens = this.turnEndIds.map((id) => this.idToToken(id) ?? '');

    let maxId = -1;
    const vocab = model.vocab;
    if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
      for (const v of Object.values(vocab as Record<string, number>)) if (v > maxId) maxId = v;
    } else if (Array.isArray(vocab)) maxId = vocab.length - 1;
    for (const t of this.addedTokens) if (t.id > maxId) maxId = t.id;
    this.vocabSize = maxId + 1;

    this.byteLevel = hasType(tj.decoder, 'ByteLevel') || hasType(tj.pre_tokenizer, 'ByteLevel');
    this.form = unicodeForm(tj.normalizer);

    let template: string | null = src.chatTemplate ?? null;
    let templateFile = this.files.template;
    if (template === null) {
      const ct = this.config.chat_template;
      if (typeof ct === 'string') template = ct;
      else if (Array.isArray(ct)) {
        // named templates: 'default' (HF picks 'tool_use' when tools are given; see ChatTemplate)
        const named = new Map<string, string>();
        for (const e of ct as Json[]) if (typeof e.name === 'string' && typeof e.template === 'string') named.set(e.name, e.template);
        template = named.get('default') ?? [...named.values()][0] ?? null;
        if (template !== null) {
          this.chatTemplate = new ChatTemplate(template, templateFile, this.templateGlobals(), named.get('tool_use'));
          return;
        }
      }
      templateFile = this.files.config;
    }
    this.chatTemplate = template === null ? null : new ChatTemplate(template, templateFile, this.templateGlobals());
  }

  /** Special-token strings as Hugging Face passes them to chat templates. */
  private templateGlobals(): Record<string, unknown> {
    const g: Record<string, unknown> = {};
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token', 'sep_token', 'cls_token', 'mask_token']) {
      const c = tokenContent(this.config[key]);
      if (c !== null) g[key] = c;
    }
    const extra = this.config.additional_special_tokens;
    if (Array.isArray(extra)) g.additional_special_tokens = extra.map(tokenContent).filter((x) => x !== null);
    return g;
  }

  /** Ids, loss mask and prompt length of a sample (see render.ts). */
  render(sample: Sample, opts?: RenderOptions): Rendered {
    return render(this, sample, opts);
  }

  /** Prompt ids, answer and answer steps of a sample's last assistant turn (see render.ts). */
  renderForSearch(sample: Sample, opts?: SearchOptions): RenderedForSearch {
    return renderForSearch(this, sample, opts);
  }

  /** The generation prompt for messages (a trailing assistant message is left out). */
  renderPrompt(messages: readonly Message[], tools?: readonly ToolSchema[], opts?: RenderOptions): { text: string; ids: number[] } {
    return renderPrompt(this, messages, tools, opts);
  }

  /** The text as the tokenizer's normalizer sees it when that normalizer is a Unicode form (NFC...). */
  normalize(text: string): string {
    return this.form ? text.normalize(this.form) : text;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    if (typeof text !== 'string') throw new TokenizerError(`encode: text must be a string, got ${typeof text}`);
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? false }).ids;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const arr = Array.from(ids);
    for (const id of arr) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`decode: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    }
    if (arr.length === 0) return '';
    return this.hf.decode(arr, { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: false });
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    let t = this.idToTokenCache[id];
    if (t === undefined) {
      t = this.hf.id_to_token(id);
      this.idToTokenCache[id] = t;
    }
    return t;
  }

  tokens(ids: ArrayLike<number>): string[] {
    return Array.from(ids, (id) => this.idToToken(id) ?? `<unk:${id}>`);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  /** The bytes a token stands for in the text (before decoding cleanups). */
  tokenBytes(id: number): Uint8Array {
    let b = this.bytesCache.get(id);
    if (b === undefined) {
      b = this.computeTokenBytes(id);
      this.bytesCache.set(id, b);
    }
    return b;
  }

  private computeTokenBytes(id: number): Uint8Array {
    const added = this.addedById.get(id);
    if (added) return Buffer.from(added.content, 'utf8');
    const tok = this.idToToken(id);
    if (tok === undefined) throw new TokenizerError(`token id ${id} is not in the vocabulary`);
    if (this.byteLevel) {
      BYTE_DECODER ??= byteLevelDecoder();
      const out = new Uint8Array(tok.length);
      let n = 0;
      for (const ch of tok) {
        const b = BYTE_DECODER.get(ch.codePointAt(0)!);
        if (b === undefined) return Buffer.from(tok, 'utf8'); // not a byte-level token
        out[n++] = b;
      }
      return out.subarray(0, n);
    }
    const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(tok);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    return Buffer.from(tok.replace(/\u2581/g, ' '), 'utf8');
  }

  /**
   * Character offsets [start, end) in `text` (UTF-16 units) of each token of `ids`, which must
   * be the encoding of `text`. Tokens that cover part of a character (byte-level BPE splits
   * emoji into bytes) get the whole character's range. Throws when the tokens do not spell
   * the text (a normalizer that rewrites text).
   */
  offsets(text: string, ids: ArrayLike<number>): Array<[number, number]> {
    const bytes = Buffer.from(text, 'utf8');
    // byte position → UTF-16 index of the character holding that byte (and the end)
    const charAt = new Int32Array(bytes.length + 1);
    {
      let b = 0;
      for (let i = 0; i < text.length; i++) {
        const c = text.codePointAt(i)!;
        const n = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        for (let k = 0; k < n; k++) charAt[b + k] = i;
        b += n;
        if (c >= 0x10000) i++;
      }
      charAt[bytes.length] = text.length;
    }
    // the first character boundary at or after byte p
    const endChar = (p: number): number => {
      if (p <= 0 || p >= bytes.length) return charAt[p];
      let q = p;
      while (q < bytes.length && charAt[q] === charAt[p - 1]) q++;
      return charAt[q];
    };
    const matches = (p: number, tb: Uint8Array): boolean => {
      if (bytes.length - p < tb.length) return false;
      for (let k = 0; k < tb.length; k++) if (bytes[p + k] !== tb[k]) return false;
      return true;
    };
    const out: Array<[number, number]> = [];
    let pos = 0;
    for (let t = 0; t < ids.length; t++) {
      let tb = this.tokenBytes(ids[t]);
      if (!matches(pos, tb)) {
        // SentencePiece-style prefix space that the normalizer/pre-tokenizer added
        if (tb.length > 0 && tb[0] === 0x20 && matches(pos, tb.subarray(1))) tb = tb.subarray(1);
        else {
          throw new TokenizerError(
            `cannot map token ${t} (${JSON.stringify(this.idToToken(ids[t]))}) to the text at byte ${pos}: the tokenizer's normalizer changes the text`,
          );
        }
      }
      out.push([charAt[pos], endChar(pos + tb.length)]);
      pos += tb.length;
    }
    if (pos !== bytes.length) throw new TokenizerError(`tokens spell ${pos} of the text's ${bytes.length} bytes`);
    return out;
  }
}

/**
 * Loads a Hugging Face model directory's tokenizer: tokenizer.json (required),
 * tokenizer_config.json (special tokens, chat template), chat_template.jinja and
 * generation_config.json (extra end-of-turn ids) when present.
 */
export function loadTokenizer(dir: string): Tokenizer {
  if (typeof dir !== 'string' || dir === '') throw new TokenizerError('loadTokenizer: a model directory is required');
  if (!existsSync(dir)) throw new TokenizerError(`loadTokenizer: directory not found: ${dir}`);
  const tokFile = join(dir, 'tokenizer.json');
  const cfgFile = join(dir, 'tokenizer_config.json');
  const tplFile = join(dir, 'chat_template.jinja');
  const genFile = join(dir, 'generation_config.json');
  const tokenizerJson = readJson(tokFile, 'tokenizer');
  const tokenizerConfig = existsSync(cfgFile) ? readJson(cfgFile, 'tokenizer config') : {};
  let chatTemplate: string | undefined;
  if (existsSync(tplFile)) chatTemplate = readFileSync(tplFile, 'utf8');
  let generationConfig: Json | undefined;
  if (existsSync(genFile)) {
    try {
      generationConfig = readJson(genFile, 'generation config');
    } catch {
      generationConfig = undefined; // optional; a broken one only loses extra end ids
    }
  }
  return new Tokenizer({
    tokenizerJson,
    tokenizerConfig,
    chatTemplate,
    generationConfig,
    files: { tokenizer: tokFile, config: cfgFile, template: chatTemplate !== undefined ? tplFile : cfgFile },
  });
}
