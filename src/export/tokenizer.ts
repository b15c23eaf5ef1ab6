// A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) as llama.cpp's
// tokenizer.* metadata: the byte-level BPE vocabulary ("gpt2" model), its merges, token
// types, special ids, the pre-tokenizer type (which split regex llama.cpp applies) and the
// chat template. What llama.cpp would tokenize differently is an error naming it.
import type { Tokenizer } from '../text/tokenizer.js';
import { GgufValueType, type GgufMetadataEntry } from './gguf.js';

/** llama_token_type values */
export enum GgufTokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/**
 * The split regexes llama.cpp implements, by the tokenizer.ggml.pre name that selects them
 * (as written in tokenizer.json's Split pre-tokenizer).
 */
export const PRE_TOKENIZERS: ReadonlyArray<{ pre: string; regex: string }> = [
  {
    pre: 'qwen2',
    regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  },
  {
    pre: 'llama-bpe',
    regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  },
];

type Json = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function preTokenizerType(tj: Json, where: string): string {
  const pt = tj.pre_tokenizer;
  if (!isObj(pt)) throw new Error(`${where}: no pre_tokenizer; llama.cpp needs a known byte-level split (${PRE_TOKENIZERS.map((p) => p.pre).join(', ')})`);
  const parts: Json[] = pt.type === 'Sequence' && Array.isArray(pt.pretokenizers) ? (pt.pretokenizers as Json[]) : [pt];
  const split = parts.filter((p) => p.type === 'Split');
  const bl = parts.filter((p) => p.type === 'ByteLevel');
  const other = parts.filter((p) => p.type !== 'Split' && p.type !== 'ByteLevel');
  if (other.length > 0) throw new Error(`${where}: pre-tokenizer ${JSON.stringify(other[0]!.type)} cannot be represented in GGUF (llama.cpp applies a Split regex + ByteLevel)`);
  if (bl.length !== 1) throw new Error(`${where}: the pre-tokenizer is not byte-level (no ByteLevel step); only byte-level BPE tokenizers are exported`);
  if (split.length === 0 && bl[0]!.use_regex !== false) return 'gpt-2';
  if (split.length !== 1 || bl[0]!.use_regex !== false) throw new Error(`${where}: a pre-tokenizer of ${split.length} Split steps (ByteLevel use_regex ${String(bl[0]!.use_regex)}) cannot be represented in GGUF`);
  const s = split[0]!;
  const pattern = isObj(s.pattern) ? s.pattern.Regex : undefined;
  if (typeof pattern !== 'string' || s.behavior !== 'Isolated' || s.invert === true)
    throw new Error(`${where}: the Split pre-tokenizer (${JSON.stringify(s.pattern)}, ${String(s.behavior)}) cannot be represented in GGUF`);
  const known = PRE_TOKENIZERS.find((p) => p.regex === pattern);
  if (!known) throw new Error(`${where}: the pre-tokenizer regex ${JSON.stringify(pattern)} is not one llama.cpp implements (known: ${PRE_TOKENIZERS.map((p) => p.pre).join(', ')})`);
  if (bl[0]!.add_prefix_space === true) throw new Error(`${where}: ByteLevel add_prefix_space = true cannot be represented in GGUF`);
  return known.pre;
}

function addsBos(tok: Tokenizer): boolean {
  if (tok.config.add_bos_token === true) return true;
  if (tok.config.add_bos_token === false) return false;
  // a TemplateProcessing post-processor that puts a special token before the text
  const pp = tok.tokenizerJson.post_processor;
  const procs: Json[] = isObj(pp) ? (pp.type === 'Sequence' && Array.isArray(pp.processors) ? (pp.processors as Json[]) : [pp]) : [];
  for (const p of procs) {
    if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) continue;
    const first = p.single[0] as Json | undefined;
    if (first && isObj(first.SpecialToken)) return true;
  }
  return false;
}

export interface TokenizerExport {
  metadata: GgufMetadataEntry[];
  /** what the metadata says, for reports and tests */
  summary: { pre: string; tokens: number; merges: number; bosId: number | null; eosId: number | null; padId: number | null; addBos: boolean; chatTemplate: boolean };
}

/**
 * tokenizer.* metadata for a model whose embedding has `vocabSize` rows. Ids that the
 * tokenizer does not use (models pad their vocabulary) become unused `[PAD<id>]` tokens.
 */
export function tokenizerMetadata(tok: Tokenizer, vocabSize: number, config: { bosTokenId: number | null; eosTokenId: number[] }): TokenizerExport {
  const where = tok.files.tokenizer;
  const tj = tok.tokenizerJson;
  const model = tj.model as Json;
  if (model.type !== 'BPE') throw new Error(`${where}: tokenizer model type ${JSON.stringify(model.type)} cannot be exported (BPE only)`);
  if (model.byte_fallback === true) throw new Error(`${where}: BPE with byte_fallback (SentencePiece-style) cannot be exported; only byte-level BPE`);
  if ((typeof model.continuing_subword_prefix === 'string' && model.continuing_subword_prefix !== '') || (typeof model.end_of_word_suffix === 'string' && model.end_of_word_suffix !== ''))
    throw new Error(`${where}: BPE continuing_subword_prefix / end_of_word_suffix cannot be represented in GGUF`);
  const norm = tj.normalizer;
  if (isObj(norm) && norm.type !== 'NFC') throw new Error(`${where}: normalizer ${JSON.stringify(norm.type)} cannot be represented in GGUF (none or NFC only)`);
  const pre = preTokenizerType(tj, where);

  const vocab = model.vocab;
  if (!isObj(vocab)) throw new Error(`${where}: model.vocab must be an object of token → id`);
  const tokens: (string | undefined)[] = new Array(vocabSize).fill(undefined);
  const types = new Array<number>(vocabSize).fill(GgufTokenType.NORMAL);
  const put = (content: string, id: number, type: GgufTokenType) => {
    if (!Number.isInteger(id) || id < 0) throw new Error(`${where}: token ${JSON.stringify(content)} has invalid id ${id}`);
    if (id >= vocabSize) throw new Error(`${where}: token ${JSON.stringify(content)} has id ${id}, outside the model's vocabulary of ${vocabSize} (config.json vocab_size)`);
    tokens[id] = content;
    types[id] = type;
  };
  for (const [content, id] of Object.entries(vocab)) put(content, id as number, GgufTokenType.NORMAL);
  for (const t of tok.addedTokens) put(t.content, t.id, t.special ? GgufTokenType.CONTROL : GgufTokenType.USER_DEFINED);
  for (let i = 0; i < vocabSize; i++) {
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = GgufTokenType.UNUSED;
    }
  }
  const seen = new Map<string, number>();
  for (let i = 0; i < vocabSize; i++) {
    const prev = seen.get(tokens[i]!);
    if (prev !== undefined) throw new Error(`${where}: token ${JSON.stringify(tokens[i])} appears at ids ${prev} and ${i}`);
    seen.set(tokens[i]!, i);
  }

  const rawMerges = model.merges;
  if (!Array.isArray(rawMerges)) throw new Error(`${where}: model.merges must be a list`);
  const merges = rawMerges.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') {
      if (m[0].includes(' ') || m[1].includes(' ')) throw new Error(`${where}: merge ${i} (${JSON.stringify(m)}) holds a space, which GGUF's "a b" merge strings cannot represent`);
      return `${m[0]} ${m[1]}`;
    }
    throw new Error(`${where}: merge ${i} is neither "a b" nor ["a", "b"]`);
  });

  const bosId = tok.bosId ?? config.bosTokenId;
  const eosId = tok.eosId ?? config.eosTokenId[0] ?? null;
  const padId = tok.padId;
  const addBos = addsBos(tok);
  if (addBos && bosId === null) throw new Error(`${where}: the tokenizer adds a BOS token but none is known (tokenizer_config.json bos_token / config.json bos_token_id)`);
  for (const [k, v] of [['bos', bosId], ['eos', eosId], ['padding', padId]] as const)
    if (v !== null && (v < 0 || v >= vocabSize)) throw new Error(`${where}: ${k} token id ${v} is outside the model's vocabulary of ${vocabSize}`);
  if (tok.config.add_eos_token === true) throw new Error(`${where}: add_eos_token = true is not exported (llama.cpp would add it to every prompt)`);

  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, value: { type: GgufValueType.UINT32, value } });
  const md: GgufMetadataEntry[] = [
    { key: 'tokenizer.ggml.model', value: { type: GgufValueType.STRING, value: 'gpt2' } },
    { key: 'tokenizer.ggml.pre', value: { type: GgufValueType.STRING, value: pre } },
    { key: 'tokenizer.ggml.tokens', value: { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: tokens as string[] } },
    { key: 'tokenizer.ggml.token_type', value: { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: types } },
    { key: 'tokenizer.ggml.merges', value: { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: merges } },
  ];
  if (bosId !== null) md.push(u32('tokenizer.ggml.bos_token_id', bosId));
  if (eosId !== null) md.push(u32('tokenizer.ggml.eos_token_id', eosId));
  if (padId !== null) md.push(u32('tokenizer.ggml.padding_token_id', padId));
  md.push({ key: 'tokenizer.ggml.add_bos_token', value: { type: GgufValueType.BOOL, value: addBos } });
  md.push({ key: 'tokenizer.ggml.add_eos_token', value: { type: GgufValueType.BOOL, value: false } });
  if (tok.chatTemplate) md.push({ key: 'tokenizer.chat_template', value: { type: GgufValueType.STRING, value: tok.chatTemplate.source } });
  return {
    metadata: md,
    summary: { pre, tokens: vocabSize, merges: merges.length, bosId, eosId, padId, addBos, chatTemplate: tok.chatTemplate !== null },
  };
}
