// Preference pairs: a prompt, a shared prefix of the answer, and two alternative next
// steps. The trainer needs token ids; a pairs file may give them (promptIds, prefixIds,
// chosenIds, rejectedIds, as the search writes them) or only text (prompt, prefix, chosen,
// rejected), which is then encoded with the model's tokenizer, piece by piece.
import { readFileSync } from 'node:fs';

export interface PreferencePair {
  promptIds: readonly number[];
  /** answer tokens before the branching step (context: no loss) */
  prefixIds: readonly number[];
  chosenIds: readonly number[];
  rejectedIds: readonly number[];
  sampleId?: string;
  depth?: number;
}

/** What encoding text pairs needs (the text layer's Tokenizer has it). */
export interface PairTokenizer {
  encode(text: string): number[];
}

const ID_KEYS = [
  ['promptIds', 'prompt_ids'],
  ['prefixIds', 'prefix_ids'],
  ['chosenIds', 'chosen_ids'],
  ['rejectedIds', 'rejected_ids'],
] as const;
const TEXT_KEYS = ['prompt', 'prefix', 'chosen', 'rejected'] as const;

function idsOf(v: unknown, where: string): number[] {
  if (!Array.isArray(v)) throw new Error(`${where} must be an array of token ids`);
  for (const x of v) if (!Number.isInteger(x) || (x as number) < 0) throw new Error(`${where} holds ${JSON.stringify(x)}, not a token id`);
  return v as number[];
}

/** One pair from a parsed JSON object; `where` names it in errors. */
export function pairFromJson(o: unknown, where: string, tok?: PairTokenizer | null): PreferencePair {
  if (!o || typeof o !== 'object' || Array.isArray(o)) throw new Error(`${where}: a pair must be a JSON object`);
  const r = o as Record<string, unknown>;
  const hasIds = ID_KEYS.every(([a, b]) => r[a] !== undefined || r[b] !== undefined);
  let ids: number[][];
  if (hasIds) {
    ids = ID_KEYS.map(([a, b]) => idsOf(r[a] ?? r[b], `${where}: field '${r[a] !== undefined ? a : b}'`));
  } else {
    const missing = TEXT_KEYS.filter((k) => typeof r[k] !== 'string' && !(k === 'prefix' && r[k] === undefined));
    if (missing.length > 0)
      throw new Error(`${where}: needs token ids (${ID_KEYS.map(([a]) => a).join(', ')}) or text fields (${TEXT_KEYS.join(', ')}); missing or not a string: ${missing.join(', ')}`);
    if (!tok) throw new Error(`${where}: the pair is given as text only; a tokenizer (the model directory's tokenizer.json) is needed to encode it`);
    ids = TEXT_KEYS.map((k) => ((r[k] as string | undefined) ? tok.encode(r[k] as string) : []));
  }
  const [promptIds, prefixIds, chosenIds, rejectedIds] = ids as [number[], number[], number[], number[]];
  if (chosenIds.length === 0 || rejectedIds.length === 0) throw new Error(`${where}: chosen and rejected steps must each hold at least one token`);
  if (promptIds.length + prefixIds.length === 0) throw new Error(`${where}: prompt and prefix are both empty (a step needs context to be predicted from)`);
  const p: PreferencePair = { promptIds, prefixIds, chosenIds, rejectedIds };
  const sid = r.sampleId ?? r.sample_id;
  if (typeof sid === 'string') p.sampleId = sid;
  if (typeof r.depth === 'number') p.depth = r.depth;
  return p;
}

export function parsePairs(text: string, file = 'pairs', tok?: PairTokenizer | null): PreferencePair[] {
  const out: PreferencePair[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    out.push(pairFromJson(o, `${file}:${i + 1}`, tok));
  }
  return out;
}

/** Reads a JSONL pairs file (a JSON array is accepted too). */
export function loadPairs(file: string, tok?: PairTokenizer | null): PreferencePair[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`pairs file ${file}: ${(e as Error).message}`);
  }
  const t = text.trimStart();
  if (t.startsWith('[')) {
    let arr: unknown;
    try {
      arr = JSON.parse(t);
    } catch (e) {
      throw new Error(`${file}: not JSON (${(e as Error).message})`);
    }
    return (arr as unknown[]).map((o, i) => pairFromJson(o, `${file}[${i}]`, tok));
  }
  return parsePairs(text, file, tok);
}
