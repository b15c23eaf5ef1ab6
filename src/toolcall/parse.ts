// Tool-call syntax: decoding model answers into calls, with no eval of any kind.
//
// Three surface forms are read:
//   python  `[f(a=1, b="x"), mod.g(c=[1, 2], d={"k": None})]` (brackets optional), the form of
//           BFCL's ground truths and of ToolACE answers;
//   json    `{"name": "f", "arguments": {...}}` or a list of them ("parameters" is accepted
//           for "arguments", and "arguments" may itself be a JSON string as in OpenAI's API);
//   hermes  one or more `<tool_call>{json}</tool_call>` blocks, the form Qwen/Hermes chat
//           templates produce (text around the blocks is ignored).
// A prefix of an answer (what the tree search holds mid-generation) parses into the calls
// completed so far, the call being written (its name and finished arguments) and
// `complete: false`. Nothing here throws on any input string.

import type { ToolCall } from '../data/sample.js';
import { PyFloat, markTuple, setKey } from './values.js';

export type CallFormat = 'python' | 'json' | 'hermes' | 'none';

export interface PartialCall {
  /** '' while the name itself is still being written */
  name: string;
  /** arguments whose values are complete */
  arguments: Record<string, unknown>;
}

export interface ParseResult {
  /** which syntax the text was read as ('none': empty text, or text that starts no call) */
  format: CallFormat;
  /** calls that are complete */
  calls: ToolCall[];
  /** true when the whole text was read as a finished answer (false for a cut-off prefix or an error) */
  complete: boolean;
  /** the call cut off by the end of the text, when there is one */
  partial?: PartialCall;
  /** set when the text is malformed (not merely cut off): what was wrong and where */
  error?: string;
}

export interface ParseOptions {
  /** keep whole-valued floats (`2.0`) as PyFloat so int and float stay apart (the BFCL checker) */
  floatMarks?: boolean;
  /**
   * function names that are not Python identifiers (ToolACE has names such as
   * "Market Trends API"): read as call names where a call may start
   */
  toolNames?: readonly string[];
}

/** Thrown inside the parser when the text ends where more was needed. */
class Incomplete {
  readonly incomplete = true;
}
/** Thrown inside the parser on malformed text. */
class SyntaxErr {
  constructor(readonly message: string) {}
}

const MAX_DEPTH = 200;
const ID_START = /[\p{L}_$]/u;
const ID_CONT = /[\p{L}\p{N}_$]/u;

/**
 * Recursive-descent reader for Python literals and calls (a superset of JSON: `true`,
 * `false`, `null` are read too). Bare names (`x`, `a.b`) become their text, as BFCL reads
 * variables; a nested call with keyword arguments becomes `{name: {args}}`.
 */
class Reader {
  pos = 0;
  depth = 0;
  /** the call currently being read at the top level (for partial results) */
  current: PartialCall | undefined;
  /** non-identifier call names, longest first */
  odd: string[] = [];
  constructor(
    readonly s: string,
    readonly floatMarks: boolean,
  ) {}

  eof(): boolean {
    return this.pos >= this.s.length;
  }
  ws(): void {
    const s = this.s;
    while (this.pos < s.length) {
      const c = s.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else break;
    }
  }
  peek(): string {
    this.ws();
    if (this.pos >= this.s.length) throw new Incomplete();
    return this.s[this.pos]!;
  }
  expect(ch: string): void {
    const c = this.peek();
    if (c !== ch) throw new SyntaxErr(`expected '${ch}' at ${this.pos}, found '${c}'`);
    this.pos++;
  }
  fail(what: string): never {
    throw new SyntaxErr(`${what} at ${this.pos}`);
  }

  identifier(): string {
    this.ws();
    const s = this.s;
    const start = this.pos;
    if (start >= s.length) throw new Incomplete();
    if (!ID_START.test(s[start]!)) this.fail(`expected a name, found '${s[start]}'`);
    let p = start + 1;
    while (p < s.length && ID_CONT.test(s[p]!)) p++;
    this.pos = p;
    return s.slice(start, p);
  }

  /** name(.name)* ; a trailing '.' at the end of the text is incomplete */
  dottedName(): string {
    let name = this.identifier();
    for (;;) {
      // no whitespace skipping inside dotted names except around dots
      const save = this.pos;
      this.ws();
      if (this.eof()) {
        this.pos = save;
        return name;
      }
      if (this.s[this.pos] === '.') {
        this.pos++;
        name += '.' + this.identifier();
      } else {
        this.pos = save;
        return name;
      }
    }
  }

  /**
   * A value: a literal, a name, a call, or arithmetic on numbers (BFCL evaluates binary
   * operations such as `10**6` or `5/100`; here only numbers, and + on strings, are allowed).
   */
  value(): unknown {
    if (++this.depth > MAX_DEPTH) this.fail('nesting too deep');
    try {
      let v = this.term();
      for (let op = this.peekOp(); op === '+' || op === '-'; op = this.peekOp()) {
        this.pos += 1;
        v = this.arith(op, v, this.term());
      }
      return v;
    } finally {
      this.depth--;
    }
  }

  /** the binary operator at the cursor, if any (never throws at the end of the text) */
  peekOp(): string | undefined {
    this.ws();
    const s = this.s;
    const c = s[this.pos];
    if (c === '*') return s[this.pos + 1] === '*' ? '**' : '*';
    if (c === '/') return s[this.pos + 1] === '/' ? '//' : '/';
    if (c === '+' || c === '-' || c === '%') return c;
    return undefined;
  }

  term(): unknown {
    let v = this.unary();
    for (let op = this.peekOp(); op === '*' || op === '/' || op === '//' || op === '%'; op = this.peekOp()) {
      this.pos += op.length;
      v = this.arith(op, v, this.unary());
    }
    return v;
  }

  unary(): unknown {
    const c = this.peek();
    if (c === '-' || c === '+') {
      this.pos++;
      if (++this.depth > MAX_DEPTH) this.fail('nesting too deep');
      let v: unknown;
      try {
        v = this.unary();
      } finally {
        this.depth--;
      }
      if (typeof v === 'number') return c === '-' ? -v : v;
      if (v instanceof PyFloat) return new PyFloat(c === '-' ? -v.value : v.value);
      if (typeof v === 'boolean') return c === '-' ? -Number(v) : Number(v);
      this.fail(`unary '${c}' on a non-number`);
    }
    const base = this.primary();
    if (this.peekOp() === '**') {
      this.pos += 2;
      return this.arith('**', base, this.unary());
    }
    return base;
  }

  arith(op: string, a: unknown, b: unknown): unknown {
    if (op === '+' && typeof a === 'string' && typeof b === 'string') return a + b;
    const num = (x: unknown): [number, boolean] | undefined =>
      x instanceof PyFloat ? [x.value, true] : typeof x === 'number' ? [x, !Number.isInteger(x)] : typeof x === 'boolean' ? [Number(x), false] : undefined;
    const x = num(a);
    const y = num(b);
    if (!x || !y) this.fail(`operator '${op}' needs numbers`);
    let isFloat = x[1] || y[1];
    let v: number;
    switch (op) {
      case '+':
        v = x[0] + y[0];
        break;
      case '-':
        v = x[0] - y[0];
        break;
      case '*':
        v = x[0] * y[0];
        break;
      case '/':
        if (y[0] === 0) this.fail('division by zero');
        v = x[0] / y[0];
        isFloat = true;
        break;
      case '//':
        if (y[0] === 0) this.fail('division by zero');
        v = Math.floor(x[0] / y[0]);
        break;
      case '%':
        if (y[0] === 0) this.fail('division by zero');
        v = ((x[0] % y[0]) + y[0]) % y[0];
        break;
      default:
        v = x[0] ** y[0];
        if (!isFloat && y[0] < 0) isFloat = true;
    }
    if (!Number.isFinite(v)) this.fail('arithmetic overflow');
    if (isFloat && Number.isInteger(v) && this.floatMarks) return new PyFloat(v);
    return v;
  }

  primary(): unknown {
    const c = this.peek();
    if (c === '"' || c === "'") return this.string();
    if (c === '[') return this.sequence('[', ']');
    if (c === '(') return this.sequence('(', ')');
    if (c === '{') return this.dict();
    if (/[0-9.]/.test(c)) return this.number();
    if (ID_START.test(c)) return this.nameOrCall();
    if (c === '`') this.fail("unexpected '`'");
    this.fail(`unexpected '${c}'`);
  }

  nameOrCall(): unknown {
    const start = this.pos;
    const name = this.dottedName();
    // keywords
    switch (name) {
      case 'True':
      case 'true':
        return true;
      case 'False':
      case 'false':
        return false;
      case 'None':
      case 'null':
        return null;
      case 'inf':
      case 'Infinity':
        return Infinity;
      case 'nan':
      case 'NaN':
        return NaN;
    }
    // text ends right after a name that could still grow: incomplete
    this.ws();
    if (this.eof()) {
      if (ID_CONT.test(this.s[this.s.length - 1] ?? '')) throw new Incomplete();
      return name;
    }
    if (this.s[this.pos] === '(') {
      const args = this.callArgs(undefined);
      if (Object.keys(args).length === 0) return this.s.slice(start, this.pos).replace(/\s+/g, '');
      const out: Record<string, unknown> = {};
      setKey(out, name, args);
      return out;
    }
    return name;
  }

  number(): number | PyFloat {
    const s = this.s;
    const start = this.pos;
    const m = /^(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|(?:\d[\d_]*)?(?:\.\d[\d_]*|\.)?(?:[eE][+-]?\d+)?)/.exec(s.slice(start, start + 400));
    const text = m ? m[0] : '';
    if (text === '' || text === '.') this.fail('malformed number');
    this.pos = start + text.length;
    // an exponent cut off at the very end of the text ("1e", "-7.7e-") is a number still
    // being written (the regex took the digits before it, so the "e" is left over)
    if (/^[eE][+-]?$/.test(s.slice(this.pos)) && !/^0[xXoObB]/.test(text)) throw new Incomplete();
    if (this.pos < s.length && /[eE]/.test(s[this.pos]!) && !/[xX]/.test(text)) {
      // "1e" followed by something that is not a digit
      this.fail('malformed number');
    }
    if (/[A-Za-z_]/.test(s[this.pos] ?? '') && !/^0[xXoObB]/.test(text)) this.fail('malformed number');
    const clean = text.replace(/_/g, '');
    if (/^0[xXoObB]/.test(clean)) return Number(clean);
    const isFloat = /[.eE]/.test(clean);
    const v = Number(clean.endsWith('.') ? clean + '0' : clean.startsWith('.') ? '0' + clean : clean);
    if (Number.isNaN(v)) this.fail('malformed number');
    if (isFloat && this.floatMarks && Number.isInteger(v)) return new PyFloat(v);
    return v;
  }

  string(): string {
    const s = this.s;
    const q = s[this.pos]!;
    // triple-quoted strings
    if (s.startsWith(q + q + q, this.pos)) {
      const end = s.indexOf(q + q + q, this.pos + 3);
      if (end < 0) throw new Incomplete();
      const body = s.slice(this.pos + 3, end);
      this.pos = end + 3;
      return unescape(body, this);
    }
    let p = this.pos + 1;
    let out = '';
    let chunk = p;
    while (p < s.length) {
      const c = s[p]!;
      if (c === q) {
        out += s.slice(chunk, p);
        this.pos = p + 1;
        return this.concat(out);
      }
      if (c === '\\') {
        out += s.slice(chunk, p);
        if (p + 1 >= s.length) throw new Incomplete();
        const [txt, len] = escapeAt(s, p);
        if (len < 0) throw new Incomplete();
        out += txt;
        p += len;
        chunk = p;
        continue;
      }
      if (c === '\n') {
        this.pos = p;
        this.fail('newline inside a string');
      }
      p++;
    }
    throw new Incomplete();
  }

  /** Python joins adjacent string literals: "a" "b" == "ab" */
  concat(first: string): string {
    const save = this.pos;
    this.ws();
    if (!this.eof() && (this.s[this.pos] === '"' || this.s[this.pos] === "'")) return first + this.string();
    this.pos = save;
    return first;
  }

  sequence(open: string, close: string): unknown {
    this.expect(open);
    const out: unknown[] = [];
    let trailingComma = false;
    for (;;) {
      if (this.peek() === close) {
        this.pos++;
        // Python: (x) is x, not a tuple; (x,) is a tuple
        if (open === '(' && out.length === 1 && !trailingComma) return out[0];
        // the checker needs tuples told apart from lists (BFCL: a tuple only passes where "tuple" is declared)
        if (open === '(' && this.floatMarks) markTuple(out);
        return out;
      }
      out.push(this.value());
      trailingComma = false;
      const c = this.peek();
      if (c === ',') {
        this.pos++;
        trailingComma = true;
      } else if (c !== close) this.fail(`expected ',' or '${close}', found '${c}'`);
    }
  }

  dict(): Record<string, unknown> {
    this.expect('{');
    const out: Record<string, unknown> = {};
    for (;;) {
      if (this.peek() === '}') {
        this.pos++;
        return out;
      }
      const k = this.value();
      this.expect(':');
      const v = this.value();
      setKey(out, typeof k === 'string' ? k : JSON.stringify(k), v);
      const c = this.peek();
      if (c === ',') this.pos++;
      else if (c === '}') {
        this.pos++;
        return out;
      } else this.fail(`expected ',' or '}', found '${c}'`);
    }
  }

  /** `( k=v, ... )`; positional arguments are read and dropped, as BFCL's decoder does. */
  callArgs(track: PartialCall | undefined): Record<string, unknown> {
    this.expect('(');
    const args: Record<string, unknown> = track ? track.arguments : {};
    for (;;) {
      if (this.peek() === ')') {
        this.pos++;
        return args;
      }
      // keyword or positional?
      const save = this.pos;
      let key: string | undefined;
      if (ID_START.test(this.peek())) {
        const id = this.identifier();
        this.ws();
        if (this.eof()) throw new Incomplete();
        if (this.s[this.pos] === '=' && this.s[this.pos + 1] !== '=') {
          this.pos++;
          key = id;
        } else this.pos = save;
      } else if (this.peek() === '*') this.fail("'*' arguments are not allowed");
      const v = this.value();
      // a value counts as finished only once the ',' or ')' after it is seen ("1" may become "12")
      const c = this.peek();
      if (key !== undefined) {
        if (Object.prototype.hasOwnProperty.call(args, key)) this.fail(`keyword argument '${key}' repeated`);
        setKey(args, key, v);
      }
      if (c === ',') this.pos++;
      else if (c === ')') {
        this.pos++;
        return args;
      } else this.fail(`expected ',' or ')', found '${c}'`);
    }
  }

  /** one top-level call `name(args)` */
  call(): ToolCall {
    this.ws();
    const cur: PartialCall = { name: '', arguments: {} };
    this.current = cur;
    let name: string | undefined;
    for (const n of this.odd) {
      if (this.s.startsWith(n, this.pos) && /^\s*\(/.test(this.s.slice(this.pos + n.length, this.pos + n.length + 8))) {
        name = n;
        this.pos += n.length;
        break;
      }
    }
    name ??= this.dottedName();
    this.ws();
    if (this.eof()) throw new Incomplete();
    if (this.s[this.pos] !== '(') this.fail(`expected '(' after '${name}'`);
    // the name counts as written once its '(' is seen ("get" may become "get_weather")
    cur.name = name;
    this.callArgs(cur);
    this.current = undefined;
    return { name: cur.name, arguments: cur.arguments };
  }
}

/** Decodes one escape at s[p] === '\\'; returns [text, length] or length -1 when cut off. */
function escapeAt(s: string, p: number): [string, number] {
  const c = s[p + 1];
  switch (c) {
    case 'n':
      return ['\n', 2];
    case 't':
      return ['\t', 2];
    case 'r':
      return ['\r', 2];
    case 'b':
      return ['\b', 2];
    case 'f':
      return ['\f', 2];
    case 'v':
      return ['\v', 2];
    case 'a':
      return ['\x07', 2];
    case '0':
      return ['\0', 2];
    case '\\':
      return ['\\', 2];
    case "'":
      return ["'", 2];
    case '"':
      return ['"', 2];
    case '/':
      return ['/', 2];
    case '\n':
      return ['', 2];
    case 'x':
    case 'u':
    case 'U': {
      const n = c === 'x' ? 2 : c === 'u' ? 4 : 8;
      const hex = s.slice(p + 2, p + 2 + n);
      if (hex.length < n && /^[0-9a-fA-F]*$/.test(hex)) return ['', -1];
      if (!/^[0-9a-fA-F]+$/.test(hex)) return ['\\' + c, 2];
      const cp = parseInt(hex, 16);
      if (cp > 0x10ffff) return ['\\' + c, 2];
      return [String.fromCodePoint(cp), 2 + n];
    }
    default:
      // Python keeps unknown escapes as written
      return ['\\' + (c ?? ''), 2];
  }
}

function unescape(body: string, r: Reader): string {
  let out = '';
  for (let p = 0; p < body.length; ) {
    if (body[p] === '\\' && p + 1 < body.length) {
      const [t, n] = escapeAt(body, p);
      if (n < 0) r.fail('bad escape');
      out += t;
      p += n;
    } else out += body[p++];
  }
  return out;
}

function errorText(e: unknown): string {
  if (e instanceof SyntaxErr) return e.message;
  if (e instanceof RangeError) return 'nesting too deep';
  return String(e);
}

/** Strips ``` fences (```python, ```json, ```) and surrounding whitespace. */
export function stripFences(text: string): string {
  let t = text.trim();
  const m = /^```[A-Za-z]*\s*\n?/.exec(t);
  if (m) {
    t = t.slice(m[0].length);
    const end = t.lastIndexOf('```');
    if (end >= 0) t = t.slice(0, end);
    t = t.trim();
  }
  // a lone leading/trailing backtick pair, as some models write `[f(x=1)]`
  if (t.length >= 2 && t.startsWith('`') && t.endsWith('`') && !t.startsWith('``')) t = t.slice(1, -1).trim();
  return t;
}

/** Parses Python-style calls: `[f(a=1), g(b=2)]`, or without the brackets `f(a=1), g(b=2)`. */
const IDENT_PATH = /^[\p{L}_$][\p{L}\p{N}_$]*(\.[\p{L}_$][\p{L}\p{N}_$]*)*$/u;

function oddNames(names: readonly string[] | undefined): string[] {
  if (!names) return [];
  return names.filter((n) => typeof n === 'string' && n !== '' && !IDENT_PATH.test(n)).sort((a, b) => b.length - a.length);
}

export function parsePythonCalls(text: string, opts: ParseOptions = {}): ParseResult {
  const r = new Reader(text, opts.floatMarks ?? false);
  r.odd = oddNames(opts.toolNames);
  const calls: ToolCall[] = [];
  try {
    r.ws();
    if (r.eof()) return { format: 'python', calls, complete: false };
    const bracket = r.s[r.pos] === '[';
    if (bracket) r.pos++;
    for (;;) {
      if (bracket) {
        if (r.peek() === ']') {
          r.pos++;
          break;
        }
      }
      calls.push(r.call());
      r.ws();
      if (r.eof()) {
        if (bracket) throw new Incomplete();
        break;
      }
      const c = r.s[r.pos]!;
      if (c === ',') {
        r.pos++;
        if (!bracket) {
          r.ws();
          if (r.eof()) throw new Incomplete();
        }
        continue;
      }
      if (bracket && c === ']') {
        r.pos++;
        break;
      }
      r.fail(`expected ',' or '${bracket ? ']' : 'end'}', found '${c}'`);
    }
    r.ws();
    if (!r.eof()) r.fail(`unexpected text after the calls: '${r.s.slice(r.pos, r.pos + 20)}'`);
    return { format: 'python', calls, complete: true };
  } catch (e) {
    if (e instanceof Incomplete) {
      const res: ParseResult = { format: 'python', calls, complete: false };
      if (r.current) res.partial = r.current;
      return res;
    }
    return { format: 'python', calls, complete: false, error: errorText(e) };
  }
}

/** A call from a JSON object {"name", "arguments"|"parameters"} (or BFCL's {name: {args}}). */
function jsonCall(o: unknown): ToolCall | string {
  if (o === null || typeof o !== 'object' || Array.isArray(o)) return 'a call must be a JSON object';
  const obj = o as Record<string, unknown>;
  let call: unknown = obj;
  // OpenAI {"type": "function", "function": {...}}
  if (typeof obj.function === 'object' && obj.function !== null && !('name' in obj)) call = obj.function;
  const c = call as Record<string, unknown>;
  if (typeof c.name === 'string') {
    let args = 'arguments' in c ? c.arguments : 'parameters' in c ? c.parameters : {};
    if (typeof args === 'string') {
      const p = parseLiteral(args);
      if (p.error !== undefined || !p.complete) return `arguments of '${c.name}' are not valid JSON`;
      args = p.value;
    }
    if (args === null || args === undefined) args = {};
    if (typeof args !== 'object' || Array.isArray(args)) return `arguments of '${c.name}' must be an object`;
    return { name: c.name, arguments: args as Record<string, unknown> };
  }
  const keys = Object.keys(c);
  if (keys.length === 1 && !['name', 'arguments', 'parameters', 'function'].includes(keys[0]!)) {
    const args = c[keys[0]!];
    if (args !== null && typeof args === 'object' && !Array.isArray(args))
      return { name: keys[0]!, arguments: args as Record<string, unknown> };
  }
  return "a call needs a string 'name'";
}

export interface LiteralResult {
  value?: unknown;
  complete: boolean;
  error?: string;
}

/** Parses one Python or JSON literal (the whole text). */
export function parseLiteral(text: string, opts: ParseOptions = {}): LiteralResult {
  const r = new Reader(text, opts.floatMarks ?? false);
  try {
    const v = r.value();
    r.ws();
    if (!r.eof()) r.fail(`unexpected text after the value: '${r.s.slice(r.pos, r.pos + 20)}'`);
    return { value: v, complete: true };
  } catch (e) {
    if (e instanceof Incomplete) return { complete: false };
    return { complete: false, error: errorText(e) };
  }
}

/**
 * Reads JSON-style calls: an object or a list of objects. For a prefix, the calls finished so
 * far are kept and a partial call is recovered from the cut-off object when its name is known.
 */
export function parseJsonCalls(text: string, opts: ParseOptions = {}): ParseResult {
  const t = text.trim();
  const lit = parseLiteral(t, opts);
  if (lit.complete) {
    const items = Array.isArray(lit.value) ? lit.value : [lit.value];
    const calls: ToolCall[] = [];
    for (const it of items) {
      const c = jsonCall(it);
      if (typeof c === 'string') return { format: 'json', calls, complete: false, error: c };
      calls.push(c);
    }
    return { format: 'json', calls, complete: true };
  }
  if (lit.error !== undefined) return { format: 'json', calls: [], complete: false, error: lit.error };
  return partialJson(t, opts);
}

/** A cut-off JSON answer: parse whole elements of a top-level list, then salvage the last one. */
function partialJson(t: string, opts: ParseOptions): ParseResult {
  const calls: ToolCall[] = [];
  const r = new Reader(t, opts.floatMarks ?? false);
  let lastStart = 0;
  try {
    r.ws();
    const list = r.s[r.pos] === '[';
    if (list) {
      r.pos++;
      for (;;) {
        if (r.peek() === ']') {
          r.pos++;
          break;
        }
        lastStart = r.pos;
        const v = r.value();
        const c = jsonCall(v);
        if (typeof c === 'string') return { format: 'json', calls, complete: false, error: c };
        calls.push(c);
        lastStart = -1; // nothing cut off yet
        const ch = r.peek();
        if (ch === ',') r.pos++;
        else if (ch !== ']') r.fail(`expected ',' or ']', found '${ch}'`);
      }
    } else {
      lastStart = r.pos;
      r.value();
    }
    return { format: 'json', calls, complete: false };
  } catch (e) {
    if (!(e instanceof Incomplete)) return { format: 'json', calls, complete: false, error: errorText(e) };
    if (lastStart < 0) return { format: 'json', calls, complete: false };
    const partial = salvageObject(t.slice(lastStart), opts);
    const res: ParseResult = { format: 'json', calls, complete: false };
    if (partial) res.partial = partial;
    return res;
  }
}

/** From a cut-off `{"name": "f", "arguments": {"a": 1, "b": ...`, recover the name and finished arguments. */
function salvageObject(t: string, opts: ParseOptions): PartialCall | undefined {
  const r = new Reader(t, opts.floatMarks ?? false);
  const out: PartialCall = { name: '', arguments: {} };
  try {
    r.expect('{');
    for (;;) {
      if (r.peek() === '}') return out;
      const k = r.value();
      r.expect(':');
      if ((k === 'arguments' || k === 'parameters') && r.peek() === '{') {
        r.pos++;
        for (;;) {
          if (r.peek() === '}') {
            r.pos++;
            break;
          }
          const ak = r.value();
          r.expect(':');
          const av = r.value();
          // a value is finished only once the next ',' or '}' is seen
          const ch = r.peek();
          setKey(out.arguments, String(ak), av);
          if (ch === ',') r.pos++;
          else if (ch === '}') {
            r.pos++;
            break;
          } else return out;
        }
      } else {
        const v = r.value();
        if (k === 'name' && typeof v === 'string') {
          // the name is finished only once the closing quote was read
          out.name = v;
        }
      }
      const ch = r.peek();
      if (ch === ',') r.pos++;
      else return out;
    }
  } catch {
    return out.name || Object.keys(out.arguments).length ? out : { name: '', arguments: {} };
  }
}

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/** Reads Hermes `<tool_call>{json}</tool_call>` blocks; text outside the blocks is ignored. */
export function parseHermesCalls(text: string, opts: ParseOptions = {}): ParseResult {
  const calls: ToolCall[] = [];
  let p = 0;
  for (;;) {
    const a = text.indexOf(OPEN, p);
    if (a < 0) {
      // a cut-off "<tool_ca" at the very end
      const tail = text.slice(p);
      for (let k = OPEN.length - 1; k > 0; k--)
        if (tail.endsWith(OPEN.slice(0, k))) return { format: 'hermes', calls, complete: false };
      return { format: 'hermes', calls, complete: true };
    }
    const b = text.indexOf(CLOSE, a + OPEN.length);
    const body = text.slice(a + OPEN.length, b < 0 ? undefined : b);
    if (b < 0) {
      // cut off inside the block (possibly inside "</tool_call>")
      let inner = body;
      for (let k = CLOSE.length - 1; k > 0; k--)
        if (inner.endsWith(CLOSE.slice(0, k))) {
          inner = inner.slice(0, -k);
          break;
        }
      const r = parseJsonCalls(inner, opts);
      if (r.error !== undefined) return { format: 'hermes', calls, complete: false, error: r.error };
      calls.push(...r.calls);
      const res: ParseResult = { format: 'hermes', calls, complete: false };
      if (r.partial) res.partial = r.partial;
      return res;
    }
    const r = parseJsonCalls(body, opts);
    if (r.error !== undefined || !r.complete) {
      return { format: 'hermes', calls, complete: false, error: r.error ?? 'a <tool_call> block holds no complete call' };
    }
    calls.push(...r.calls);
    p = b + CLOSE.length;
  }
}

/**
 * Decodes a model answer in any of the three forms. Empty text, or text that starts no call
 * (plain prose), gives format 'none' with no calls; prose is reported with an `error` since
 * it is not a call (irrelevance scoring treats both as "no call").
 */
export function parseCalls(text: string, opts: ParseOptions = {}): ParseResult {
  try {
    if (typeof text !== 'string') return { format: 'none', calls: [], complete: false, error: 'answer is not a string' };
    const lead = text.trim();
    // any non-empty prefix of "<tool_call>", "<" included, may be a call cut off at its start
    if (text.includes(OPEN) || (lead.length > 0 && OPEN.startsWith(lead))) {
      return parseHermesCalls(text, opts);
    }
    const t = stripFences(text);
    if (t === '') return { format: 'none', calls: [], complete: text.trim() === '' };
    if (t.startsWith('{') || /^\[\s*(\{|$)/.test(t)) return parseJsonCalls(t, opts);
    if (
      t.startsWith('[') ||
      /^[\p{L}_$][\p{L}\p{N}_$]*(\s*\.\s*[\p{L}_$][\p{L}\p{N}_$]*)*\s*(\(|$)/u.test(t) ||
      oddNames(opts.toolNames).some((n) => t.startsWith(n))
    ) {
      const r = parsePythonCalls(t, opts);
      // a lone word ("Sorry", "The") is prose, not a cut-off call, once a space follows
      return r;
    }
    return { format: 'none', calls: [], complete: false, error: 'no tool call found in the answer' };
  } catch (e) {
    // the readers above do not throw; this guards against stack exhaustion on hostile input
    return { format: 'none', calls: [], complete: false, error: errorText(e) };
  }
}
