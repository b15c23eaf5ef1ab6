// Loaders and writers between the one Sample type and the tool-use data formats users bring:
//   bfcl      BFCL question rows {id, question: [[{role, content}]], function: [...]} with the
//             matching possible_answer rows {id, ground_truth: [{fn: {param: [accepted...]}}]}
//   sharegpt  ShareGPT/ToolACE {system (holds the JSON tool list), conversations: [{from, value}]},
//             assistant calls in Python call syntax `[f(a=1)]`
//   xlam      xLAM/APIGen {id, query, tools, answers} (tools/answers may be JSON strings)
//   openai    OpenAI chat {messages: [... tool_calls ...], tools: [{type: "function", function}]}
//   sample    this project's own Sample rows
// Each row converts on its own; an error names the file, the row and the problem.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Category, GroundTruthCall, Message, Sample, ToolCall, ToolSchema } from './sample.js';
import { parseCalls, parseLiteral } from '../toolcall/parse.js';
import { formatPythonCalls } from '../toolcall/format.js';
import { formatJsonValue } from '../toolcall/values.js';
import { normaliseTool, normaliseTools } from '../toolcall/schema.js';
import { parseRows, readRows, writeRows } from './io.js';
import { bucketOf, categoryOfBfcl, groundTruthOf, truthFromCalls } from './buckets.js';

export type DataFormat = 'bfcl' | 'sharegpt' | 'xlam' | 'openai' | 'sample';

// ---------------------------------------------------------------- detection

/** Which format a row is in (undefined when none fits). */
export function detectFormat(row: unknown): DataFormat | undefined {
  if (row === null || typeof row !== 'object' || Array.isArray(row)) return undefined;
  const r = row as Record<string, unknown>;
  if (Array.isArray(r.question) && 'function' in r) return 'bfcl';
  if (Array.isArray(r.conversations)) return 'sharegpt';
  if ('query' in r && 'answers' in r) return 'xlam';
  if (Array.isArray(r.messages) && 'category' in r && Array.isArray(r.tools) && typeof r.id === 'string' &&
      (r.tools as unknown[]).every((t) => t && typeof t === 'object' && 'parameters' in (t as object))) return 'sample';
  if (Array.isArray(r.messages)) return 'openai';
  return undefined;
}

// ---------------------------------------------------------------- helpers

function asTools(v: unknown, what: string): ToolSchema[] {
  let x = v;
  if (typeof x === 'string') {
    try {
      x = JSON.parse(x) as unknown;
    } catch {
      throw new Error(`${what}: tools string is not valid JSON`);
    }
  }
  if (x === undefined || x === null) return [];
  if (!Array.isArray(x)) x = [x];
  return normaliseTools(x);
}

/** Ground truth from calls: each argument's one accepted value (dicts in BFCL's per-key form). */
export function groundTruthFromCalls(calls: readonly ToolCall[], tools: readonly ToolSchema[] = []): GroundTruthCall[] {
  return truthFromCalls(calls, tools);
}

function decodeAnswer(text: string, tools: readonly ToolSchema[] = []): ToolCall[] | undefined {
  const r = parseCalls(text, { toolNames: tools.map((t) => t.name) });
  if (r.error === undefined && r.complete && r.format !== 'none' && r.calls.length > 0) return r.calls;
  return undefined;
}

function finish(id: string, tools: ToolSchema[], messages: Message[], groundTruth?: GroundTruthCall[], category?: Category): Sample {
  const s: Sample = { id, category: 'simple', tools, messages };
  if (groundTruth) s.groundTruth = groundTruth;
  s.category = category ?? bucketOf(s);
  return s;
}

// ---------------------------------------------------------------- BFCL

/** Reads a BFCL question file and its answers (possible_answer/<same name> beside it, when present). */
export function loadBfclFile(questionFile: string, answerFile?: string): Sample[] {
  const qrows = readRows(questionFile);
  const af = answerFile ?? join(dirname(questionFile), 'possible_answer', basename(questionFile));
  const answers = new Map<string, GroundTruthCall[]>();
  if (existsSync(af)) {
    const lines = readFileSync(af, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (!line) continue;
      // read with float marks so that 2.0 stays a float (the checker's type rules need it)
      const p = parseLiteral(line, { floatMarks: true });
      if (!p.complete) throw new Error(`${af}:${i + 1}: not valid JSON: ${p.error ?? 'cut off'}`);
      const row = p.value as { id?: unknown; ground_truth?: unknown };
      if (typeof row.id !== 'string' || !Array.isArray(row.ground_truth)) throw new Error(`${af}:${i + 1}: needs 'id' and a 'ground_truth' list`);
      answers.set(row.id, row.ground_truth as GroundTruthCall[]);
    }
  }
  const m = /^BFCL_v\d+_(.+)\.json$/.exec(basename(questionFile));
  const fileCategory = m ? m[1] : undefined;
  return qrows.map((row, i) => {
    try {
      return fromBfcl(row, answers.get((row as { id?: string }).id ?? ''), fileCategory);
    } catch (e) {
      throw new Error(`${questionFile}:${i + 1}: ${(e as Error).message}`);
    }
  });
}

/** One BFCL question row (and its ground truth) as a Sample. */
export function fromBfcl(row: unknown, groundTruth?: GroundTruthCall[], bfclCategory?: string): Sample {
  const r = row as { id?: unknown; question?: unknown; function?: unknown };
  if (typeof r.id !== 'string') throw new Error("BFCL row needs a string 'id'");
  if (!Array.isArray(r.question)) throw new Error(`${r.id}: 'question' must be a list of turns`);
  const messages: Message[] = [];
  for (const turn of r.question as unknown[]) {
    const msgs = Array.isArray(turn) ? turn : [turn];
    for (const m of msgs) {
      const mm = m as { role?: unknown; content?: unknown };
      if (typeof mm.role !== 'string' || typeof mm.content !== 'string') throw new Error(`${r.id}: each message needs role and content strings`);
      if (mm.role === 'system' || mm.role === 'user') messages.push({ role: mm.role, content: mm.content });
      else if (mm.role === 'assistant') messages.push({ role: 'assistant', content: mm.content });
      else if (mm.role === 'tool') messages.push({ role: 'tool', content: mm.content });
    }
  }
  const tools = asTools(r.function, r.id);
  const bc = bfclCategory ?? r.id.replace(/_\d+(-\d+)*$/, '');
  const s: Sample = { id: r.id, category: categoryOfBfcl(bc), bfclCategory: bc, tools, messages };
  if (groundTruth) s.groundTruth = groundTruth;
  else if (s.category === 'irrelevance') s.groundTruth = [];
  return s;
}

/** A Sample as a BFCL question row and answer row. */
export function toBfcl(s: Sample): { question: Record<string, unknown>; answer: { id: string; ground_truth: GroundTruthCall[] } } {
  const turns = s.messages.filter((m) => m.role === 'user' || m.role === 'system').map((m) => ({ role: m.role, content: m.content ?? '' }));
  const fns = s.tools.map((t) => ({ name: t.name, description: t.description ?? '', parameters: { ...t.parameters, type: 'dict' } }));
  return { question: { id: s.id, question: [turns], function: fns }, answer: { id: s.id, ground_truth: groundTruthOf(s) } };
}

/** Every BFCL_*.json question file in a folder (answers from its possible_answer/ folder). */
export function loadBfclDir(dir: string): Sample[] {
  const files = readdirSync(dir)
    .filter((f) => /^BFCL_.*\.json$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`${dir}: no BFCL_*.json question files`);
  return files.flatMap((f) => loadBfclFile(join(dir, f)));
}

// ---------------------------------------------------------------- ShareGPT / ToolACE

/** The JSON tool list inside a system prompt: the first `[...]` that parses as a list of named objects. */
export function toolsFromSystemPrompt(system: string): ToolSchema[] {
  for (let i = system.indexOf('['); i >= 0; i = system.indexOf('[', i + 1)) {
    const end = matchBracket(system, i);
    if (end < 0) continue;
    const seg = system.slice(i, end + 1);
    let v: unknown;
    try {
      v = JSON.parse(seg);
    } catch {
      continue;
    }
    if (Array.isArray(v) && v.length > 0 && v.every((t) => t && typeof t === 'object' && (typeof (t as { name?: unknown }).name === 'string' || (t as { type?: unknown }).type === 'function')))
      return normaliseTools(v);
  }
  return [];
}

function matchBracket(s: string, start: number): number {
  let depth = 0;
  let inStr = false;
  for (let i = start; i < s.length; i++) {
    const c = s[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const ROLE: Record<string, Message['role']> = {
  user: 'user',
  human: 'user',
  assistant: 'assistant',
  gpt: 'assistant',
  function_call: 'assistant',
  tool: 'tool',
  observation: 'tool',
  function_response: 'tool',
  function: 'tool',
  system: 'system',
};

/** One ShareGPT/ToolACE row as a Sample. */
export function fromShareGPT(row: unknown, id: string): Sample {
  const r = row as { id?: unknown; system?: unknown; tools?: unknown; conversations?: unknown; category?: unknown; ground_truth?: unknown; bfcl_category?: unknown };
  if (!Array.isArray(r.conversations)) throw new Error("ShareGPT row needs a 'conversations' list");
  const sid = typeof r.id === 'string' || typeof r.id === 'number' ? String(r.id) : id;
  let tools: ToolSchema[] = r.tools !== undefined ? asTools(r.tools, sid) : [];
  if (tools.length === 0 && typeof r.system === 'string') tools = toolsFromSystemPrompt(r.system);
  const messages: Message[] = [];
  // with its tools in their own field, 'system' is the conversation's system message (LLaMA-Factory's
  // ShareGPT); alone, it is ToolACE's tool prompt, which the chat template's own tool rendering replaces
  if (r.tools !== undefined && typeof r.system === 'string' && r.system !== '') messages.push({ role: 'system', content: r.system });
  for (const [i, t] of (r.conversations as unknown[]).entries()) {
    const turn = t as { from?: unknown; value?: unknown; role?: unknown; content?: unknown };
    const from = String(turn.from ?? turn.role ?? '');
    const value = turn.value ?? turn.content;
    const role = ROLE[from];
    if (!role) throw new Error(`${sid}: turn ${i}: unknown speaker '${from}'`);
    if (typeof value !== 'string') throw new Error(`${sid}: turn ${i}: 'value' must be a string`);
    if (role === 'assistant') {
      const calls = decodeAnswer(value, tools);
      messages.push(calls ? { role: 'assistant', toolCalls: calls } : { role: 'assistant', content: value });
    } else if (role === 'system') messages.push({ role: 'system', content: value });
    else messages.push({ role, content: value });
  }
  const cat = typeof r.category === 'string' ? r.category : undefined;
  const gt = Array.isArray(r.ground_truth) ? (r.ground_truth as GroundTruthCall[]) : undefined;
  const out = finish(sid, tools, messages, gt, cat);
  if (typeof r.bfcl_category === 'string') out.bfclCategory = r.bfcl_category;
  return out;
}

/** ToolACE's system prompt (tool list as JSON between the fixed instructions). */
export function shareGPTSystemPrompt(tools: readonly ToolSchema[]): string {
  return (
    'You are an expert in composing functions. You are given a question and a set of possible functions. ' +
    'Based on the question, you will need to make one or more function/tool calls to achieve the purpose. ' +
    'If none of the functions can be used, point it out. ' +
    'If you decide to invoke any of the function(s), you MUST put it in the format of [func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]\n' +
    'You SHOULD NOT include any other text in the response.\n' +
    'Here is a list of functions in JSON format that you can invoke.\n' +
    JSON.stringify(tools) +
    '\n'
  );
}

/**
 * A Sample as a ShareGPT/ToolACE row (calls in Python syntax). Without a system message the
 * tools go into ToolACE's system prompt; with one, the system message is kept as 'system' and
 * the tools go into their own 'tools' field (LLaMA-Factory's ShareGPT), so neither is lost.
 */
export function toShareGPT(s: Sample): Record<string, unknown> {
  const conversations: Array<{ from: string; value: string }> = [];
  const system = s.messages.filter((m) => m.role === 'system').map((m) => m.content ?? '');
  for (const m of s.messages) {
    if (m.role === 'system') continue;
    if (m.role === 'assistant') {
      const value = m.toolCalls && m.toolCalls.length ? formatPythonCalls(m.toolCalls) : (m.content ?? '');
      conversations.push({ from: 'assistant', value });
    } else conversations.push({ from: m.role, value: m.content });
  }
  const row: Record<string, unknown> =
    system.length > 0
      ? { id: s.id, category: s.category, system: system.join('\n'), tools: JSON.stringify(s.tools), conversations }
      : { id: s.id, category: s.category, system: shareGPTSystemPrompt(s.tools), conversations };
  if (s.bfclCategory) row.bfcl_category = s.bfclCategory;
  if (s.groundTruth) row.ground_truth = s.groundTruth;
  return row;
}

// ---------------------------------------------------------------- xLAM / APIGen

/** One xLAM/APIGen row ({query, tools, answers}) as a Sample. */
export function fromXlam(row: unknown, id: string): Sample {
  const r = row as { id?: unknown; query?: unknown; tools?: unknown; answers?: unknown };
  const sid = r.id !== undefined ? String(r.id) : id;
  if (typeof r.query !== 'string') throw new Error(`${sid}: xLAM row needs a string 'query'`);
  const tools = asTools(r.tools, sid);
  let answers = r.answers;
  if (typeof answers === 'string') {
    try {
      answers = JSON.parse(answers) as unknown;
    } catch {
      throw new Error(`${sid}: 'answers' string is not valid JSON`);
    }
  }
  if (!Array.isArray(answers)) throw new Error(`${sid}: 'answers' must be a list of calls`);
  const calls: ToolCall[] = answers.map((a, i) => {
    const c = a as { name?: unknown; arguments?: unknown };
    if (typeof c.name !== 'string') throw new Error(`${sid}: answer ${i} needs a string 'name'`);
    const args = c.arguments ?? {};
    if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error(`${sid}: answer ${i}: 'arguments' must be an object`);
    return { name: c.name, arguments: args as Record<string, unknown> };
  });
  const messages: Message[] = [{ role: 'user', content: r.query }];
  messages.push(calls.length ? { role: 'assistant', toolCalls: calls } : { role: 'assistant', content: '' });
  return finish(sid, tools, messages);
}

/** A Sample as an xLAM row (tools and answers as JSON strings, as APIGen publishes them). */
export function toXlam(s: Sample): Record<string, unknown> {
  const query = s.messages.filter((m) => m.role === 'user').map((m) => m.content).join('\n');
  const last = [...s.messages].reverse().find((m) => m.role === 'assistant');
  const calls = last && last.role === 'assistant' ? (last.toolCalls ?? []) : [];
  return { id: s.id, query, tools: JSON.stringify(s.tools), answers: JSON.stringify(calls) };
}

// ---------------------------------------------------------------- OpenAI messages

/** One OpenAI chat row ({messages, tools}) as a Sample. */
export function fromOpenAI(row: unknown, id: string): Sample {
  const r = row as { id?: unknown; messages?: unknown; tools?: unknown; category?: unknown; ground_truth?: unknown; bfcl_category?: unknown };
  const sid = r.id !== undefined ? String(r.id) : id;
  if (!Array.isArray(r.messages)) throw new Error(`${sid}: needs a 'messages' list`);
  const tools = asTools(r.tools ?? [], sid);
  const messages: Message[] = (r.messages as unknown[]).map((m, i) => {
    const mm = m as { role?: unknown; content?: unknown; tool_calls?: unknown; name?: unknown; tool_call_id?: unknown };
    const content = typeof mm.content === 'string' ? mm.content : mm.content == null ? undefined : JSON.stringify(mm.content);
    switch (mm.role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: content ?? '' };
      case 'user':
        return { role: 'user', content: content ?? '' };
      case 'assistant': {
        const out: Message & { role: 'assistant' } = { role: 'assistant' };
        if (content !== undefined && content !== '') out.content = content;
        const calls = Array.isArray(mm.tool_calls) ? mm.tool_calls : Array.isArray((mm as { toolCalls?: unknown }).toolCalls) ? ((mm as { toolCalls: unknown[] }).toolCalls) : undefined;
        if (calls && calls.length) {
          out.toolCalls = calls.map((tc, j) => {
            const fn = ((tc as { function?: unknown }).function ?? tc) as { name?: unknown; arguments?: unknown };
            if (typeof fn.name !== 'string') throw new Error(`${sid}: message ${i}: tool call ${j} needs a function name`);
            let args: unknown = fn.arguments ?? {};
            if (typeof args === 'string') {
              try {
                args = args.trim() === '' ? {} : (JSON.parse(args) as unknown);
              } catch {
                throw new Error(`${sid}: message ${i}: arguments of '${fn.name}' are not valid JSON`);
              }
            }
            if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new Error(`${sid}: message ${i}: arguments of '${fn.name}' must be an object`);
            return { name: fn.name, arguments: args as Record<string, unknown> };
          });
        }
        return out;
      }
      case 'tool':
      case 'function': {
        const out: Message & { role: 'tool' } = { role: 'tool', content: content ?? '' };
        if (typeof mm.name === 'string') out.name = mm.name;
        if (typeof mm.tool_call_id === 'string') out.toolCallId = mm.tool_call_id;
        return out;
      }
      default:
        throw new Error(`${sid}: message ${i}: unknown role '${String(mm.role)}'`);
    }
  });
  const gt = Array.isArray(r.ground_truth) ? (r.ground_truth as GroundTruthCall[]) : undefined;
  const out = finish(sid, tools, messages, gt, typeof r.category === 'string' ? r.category : undefined);
  if (typeof r.bfcl_category === 'string') out.bfclCategory = r.bfcl_category;
  return out;
}

/** A Sample as an OpenAI chat row. */
export function toOpenAI(s: Sample): Record<string, unknown> {
  let n = 0;
  const messages = s.messages.map((m) => {
    if (m.role === 'assistant') {
      const out: Record<string, unknown> = { role: 'assistant', content: m.content ?? null };
      if (m.toolCalls && m.toolCalls.length)
        out.tool_calls = m.toolCalls.map((c) => ({ id: `call_${n++}`, type: 'function', function: { name: c.name, arguments: formatJsonValue(c.arguments) } }));
      return out;
    }
    if (m.role === 'tool') {
      const out: Record<string, unknown> = { role: 'tool', content: m.content };
      if (m.toolCallId) out.tool_call_id = m.toolCallId;
      if (m.name) out.name = m.name;
      return out;
    }
    return { role: m.role, content: m.content };
  });
  const row: Record<string, unknown> = { id: s.id, category: s.category, messages, tools: s.tools.map((t) => ({ type: 'function', function: t })) };
  if (s.bfclCategory) row.bfcl_category = s.bfclCategory;
  if (s.groundTruth) row.ground_truth = s.groundTruth;
  return row;
}

// ---------------------------------------------------------------- own Sample rows

export function fromSampleRow(row: unknown, id: string): Sample {
  const r = row as Sample;
  if (!Array.isArray(r.messages) || !Array.isArray(r.tools)) throw new Error(`${id}: sample row needs 'messages' and 'tools'`);
  return { ...r, id: String(r.id ?? id), tools: normaliseTools(r.tools) };
}

// ---------------------------------------------------------------- any file

/** One row in any format as a Sample (format detected when not given). */
export function fromRow(row: unknown, id: string, format?: DataFormat): Sample {
  const f = format ?? detectFormat(row);
  switch (f) {
    case 'bfcl':
      return fromBfcl(row);
    case 'sharegpt':
      return fromShareGPT(row, id);
    case 'xlam':
      return fromXlam(row, id);
    case 'openai':
      return fromOpenAI(row, id);
    case 'sample':
      return fromSampleRow(row, id);
    default:
      throw new Error('row matches no known format (bfcl, sharegpt, xlam, openai)');
  }
}

/**
 * Loads samples from a JSON/JSONL file in any format, or a folder of BFCL files. BFCL question
 * files pick up their possible_answer file automatically.
 */
export function loadSamples(path: string, format?: DataFormat): Sample[] {
  if (!existsSync(path)) throw new Error(`${path}: no such file or folder`);
  if (statSync(path).isDirectory()) return loadBfclDir(path);
  if (/^BFCL_.*\.json$/.test(basename(path)) || format === 'bfcl') return loadBfclFile(path);
  const rows = readRows(path);
  const stem = basename(path).replace(/\.[^.]*$/, '');
  return rows.map((row, i) => {
    try {
      return fromRow(row, `${stem}_${i}`, format);
    } catch (e) {
      throw new Error(`${path}: row ${i + 1}: ${(e as Error).message}`);
    }
  });
}

/** Parses samples from JSON/JSONL text in any format. */
export function parseSamples(text: string, format?: DataFormat, name = 'data'): Sample[] {
  return parseRows(text, name).map((row, i) => {
    try {
      return fromRow(row, `${name}_${i}`, format);
    } catch (e) {
      throw new Error(`${name}: row ${i + 1}: ${(e as Error).message}`);
    }
  });
}

/** Converts a Sample to a row of the given format. */
export function toRow(s: Sample, format: DataFormat): unknown {
  switch (format) {
    case 'sharegpt':
      return toShareGPT(s);
    case 'xlam':
      return toXlam(s);
    case 'openai':
      return toOpenAI(s);
    case 'bfcl':
      return toBfcl(s).question;
    case 'sample':
      return s;
  }
}

/** Writes samples in a format, as JSON (.json) or JSONL (anything else), atomically. */
export function saveSamples(file: string, samples: readonly Sample[], format: DataFormat): void {
  writeRows(file, samples.map((s) => toRow(s, format)));
}

export { normaliseTool };
