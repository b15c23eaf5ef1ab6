// Measures that say whether the search has anything to find: best-of-k accuracy (pass@k) at
// the search temperature, the copy rate of argument values (how many of the answers' string
// and number values occur verbatim in the user's turns, against the same fraction in the
// ground truth), and the pairs of an iteration by depth and by kind (a pair about an argument
// value, the function name, the call / no-call decision, an argument's name, or the structure).
import type { Sample, ToolCall } from '../data/sample.js';
import { parseCalls } from '../toolcall/parse.js';

export interface RateCell {
  /** what was counted as a hit (may be fractional for the unbiased pass@k estimate) */
  hits: number;
  total: number;
  /** hits / total (0 when total is 0) */
  rate: number;
}
export type RateTable = Record<string, RateCell>;

function cell(hits: number, total: number): RateCell {
  return { hits, total, rate: total ? hits / total : 0 };
}

/** log C(n, k) */
function logChoose(n: number, k: number): number {
  let s = 0;
  for (let i = 0; i < k; i++) s += Math.log(n - i) - Math.log(i + 1);
  return s;
}

/**
 * pass@k of one sample from n ≥ k answers of which c are correct: the probability that k
 * answers drawn without replacement include a correct one, 1 − C(n − c, k) / C(n, k) (the
 * unbiased estimator of Chen et al., 2021). With n = k it is 1 when any answer is correct.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k) || k < 1 || n < k || c < 0 || c > n)
    throw new Error(`passAtK: needs integers 1 <= k <= n and 0 <= c <= n, got n ${n}, c ${c}, k ${k}`);
  if (n - c < k) return 1;
  return 1 - Math.exp(logChoose(n - c, k) - logChoose(n, k));
}

/** pass@k by category: each row is one sample's category and the correctness of its n answers. */
export function passAtKTable(rows: ReadonlyArray<{ category: string; correct: readonly boolean[] }>, k: number): RateTable {
  const acc: Record<string, { hits: number; total: number }> = {};
  for (const r of rows) {
    const a = (acc[r.category] ??= { hits: 0, total: 0 });
    a.hits += passAtK(r.correct.length, r.correct.filter(Boolean).length, k);
    a.total++;
  }
  return Object.fromEntries(Object.entries(acc).map(([c, a]) => [c, cell(a.hits, a.total)]));
}

/** The string and number values of calls' arguments, through lists and objects (booleans and null left out). */
export function argumentValues(calls: readonly ToolCall[]): Array<string | number> {
  const out: Array<string | number> = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) out.push(v);
    else if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') Object.values(v as Record<string, unknown>).forEach(walk);
  };
  for (const c of calls) walk(c.arguments);
  return out;
}

/** whether a value occurs verbatim in the text (a number as JavaScript writes it: 12, 3.5) */
export function occursIn(value: string | number, text: string): boolean {
  const s = String(value);
  return s !== '' && text.includes(s);
}

/** The text of a sample's user turns, joined. */
export function userText(s: Sample): string {
  return s.messages
    .filter((m) => m.role === 'user')
    .map((m) => ('content' in m && typeof m.content === 'string' ? m.content : ''))
    .join('\n');
}

/** The reference answer's calls: the sample's last assistant message. */
export function referenceCalls(s: Sample): ToolCall[] {
  for (let i = s.messages.length - 1; i >= 0; i--) {
    const m = s.messages[i];
    if (m.role === 'assistant') return m.toolCalls ? [...m.toolCalls] : [];
  }
  return [];
}

export interface CopyCell {
  /** string and number values in the answers, and how many occur verbatim in the user's turns */
  values: number;
  copied: number;
  rate: number;
  /** the same for the ground truth answers of the same samples */
  truthValues: number;
  truthCopied: number;
  truthRate: number;
}
export type CopyTable = Record<string, CopyCell>;

/**
 * Copy rate by category: of the string and number argument values in the answers (calls
 * parsed from each answer text), the fraction found verbatim in the sample's user turns,
 * beside the same fraction for the reference calls. A model that invents values has a rate
 * well below the ground truth's.
 */
export function copyRateTable(items: ReadonlyArray<{ sample: Sample; answer: string }>): CopyTable {
  const acc: CopyTable = {};
  for (const { sample, answer } of items) {
    const a = (acc[String(sample.category)] ??= { values: 0, copied: 0, rate: 0, truthValues: 0, truthCopied: 0, truthRate: 0 });
    const text = userText(sample);
    let calls: ToolCall[] = [];
    try {
      calls = parseCalls(answer).calls;
    } catch {
      calls = [];
    }
    for (const v of argumentValues(calls)) {
      a.values++;
      if (occursIn(v, text)) a.copied++;
    }
    for (const v of argumentValues(referenceCalls(sample))) {
      a.truthValues++;
      if (occursIn(v, text)) a.truthCopied++;
    }
  }
  for (const a of Object.values(acc)) {
    a.rate = a.values ? a.copied / a.values : 0;
    a.truthRate = a.truthValues ? a.truthCopied / a.truthValues : 0;
  }
  return acc;
}

// ---------------------------------------------------------------- pairs by kind

export type PairKind = 'value' | 'function' | 'decision' | 'key' | 'structure';
export const PAIR_KINDS: readonly PairKind[] = ['value', 'function', 'decision', 'key', 'structure'];

/** text that starts a call (Hermes tag, a JSON object or list) rather than a reply in prose */
function startsCall(t: string): boolean {
  const s = t.trimStart();
  return s.startsWith('<tool_call>') || s.startsWith('{') || s.startsWith('[') || (s.length > 0 && '<tool_call>'.startsWith(s));
}

/**
 * Where position `d` of a call text lies in its JSON: inside the value of the call's "name",
 * inside its "arguments" at a value or at an argument's name, or elsewhere (the tags, the
 * space between calls, the keys of the call object).
 */
function jsonContext(text: string, d: number): 'function' | 'value' | 'key' | 'structure' {
  // start from the last call's opening: the tag, or the first brace of a bare JSON answer
  const tag = text.lastIndexOf('<tool_call>', d);
  let i = tag >= 0 ? tag + '<tool_call>'.length : 0;
  interface Frame {
    kind: 'obj' | 'arr';
    key: string | null;
    /** obj: 'key' (a key may start), 'colon', 'value', 'after' (a value ended) */
    state: 'key' | 'colon' | 'value' | 'after';
  }
  const stack: Frame[] = [];
  let inString = false;
  let stringIsKey = false;
  let buf = '';
  let escaped = false;
  for (; i < d && i < text.length; i++) {
    const ch = text[i];
    const top = stack[stack.length - 1];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') {
        inString = false;
        if (stringIsKey && top) {
          top.key = buf;
          top.state = 'colon';
        } else if (top) top.state = 'after';
        continue;
      }
      buf += ch;
      continue;
    }
    if (ch === '"') {
      inString = true;
      buf = '';
      stringIsKey = !!top && top.kind === 'obj' && top.state === 'key';
      if (top && !stringIsKey) top.state = 'value';
      continue;
    }
    if (ch === '{' || ch === '[') {
      if (top) top.state = 'value';
      stack.push({ kind: ch === '{' ? 'obj' : 'arr', key: null, state: ch === '{' ? 'key' : 'value' });
      continue;
    }
    if (ch === '}' || ch === ']') {
      stack.pop();
      const up = stack[stack.length - 1];
      if (up) up.state = 'after';
      continue;
    }
    if (!top) continue;
    if (ch === ':') top.state = 'value';
    else if (ch === ',') top.state = top.kind === 'obj' ? 'key' : 'value';
  }
  if (stack.length === 0) return 'structure';
  const call = stack[0];
  if (call.kind !== 'obj') return stack.length > 1 ? 'value' : 'structure';
  if (stack.length === 1) {
    if (call.key === 'name' && ((inString && !stringIsKey) || (!inString && call.state === 'value'))) return 'function';
    return 'structure';
  }
  if (call.key !== 'arguments' && call.key !== 'parameters') return call.key === 'name' ? 'function' : 'structure';
  if (stack.length === 2) {
    const args = stack[1];
    if (args.kind === 'obj' && (args.state === 'key' || args.state === 'after' || args.state === 'colon' || (inString && stringIsKey))) return 'key';
  }
  return 'value';
}

/**
 * What a step pair is about, from where its two texts (prefix + chosen, prefix + rejected)
 * first differ: 'decision' when one starts a call and the other does not, else by the JSON
 * position of the first differing character: 'function' (the call's name), 'value' (an
 * argument's value, at any depth), 'key' (which argument comes next, or whether one does),
 * 'structure' (anything else: the tags, a further call or the end of the answer).
 */
export function pairKind(p: { prefix: string; chosen: string; rejected: string }): PairKind {
  const a = p.prefix + p.chosen;
  const b = p.prefix + p.rejected;
  if (startsCall(a) !== startsCall(b)) return 'decision';
  let d = 0;
  while (d < a.length && d < b.length && a[d] === b[d]) d++;
  // the context of the first differing character is read from the text before it, the same in both
  return jsonContext(a, d);
}

export interface PairCounts {
  total: number;
  /** pairs by the depth of the node they branch from ("0" is the answer's first step) */
  byDepth: Record<string, number>;
  byKind: Record<PairKind, number>;
}

export function pairCounts(pairs: ReadonlyArray<{ depth: number; prefix: string; chosen: string; rejected: string }>): PairCounts {
  const byDepth: Record<string, number> = {};
  const byKind = Object.fromEntries(PAIR_KINDS.map((k) => [k, 0])) as Record<PairKind, number>;
  for (const p of pairs) {
    byDepth[String(p.depth)] = (byDepth[String(p.depth)] ?? 0) + 1;
    byKind[pairKind(p)]++;
  }
  return { total: pairs.length, byDepth, byKind };
}
