// The BFCL AST checker, written from BFCL's published rules; where those words and BFCL's
// reference checker (bfcl_eval/eval_checker/ast_eval/ast_checker.py) differ, this follows
// the reference checker. The rules, in order:
//
//  decoding   The answer is decoded into calls (Python, JSON or Hermes syntax). A decoding
//             failure fails the sample ("ast_decoder:decoder_failed"), except in irrelevance
//             categories, where no call (a failure or an empty list) is correct and any
//             decoded call is wrong ("irrelevance_error:decoder_success").
//  dispatch   A category whose name contains "parallel" is checked without order; else one
//             containing "multiple" by the multiple rule; else the simple rule.
//  simple     Exactly one call, checked against the FIRST offered function.
//  multiple   As many calls as expected (one), checked against the function named by the
//             ground truth.
//  parallel   As many calls as expected; ground-truth calls are taken in order and each is
//             matched greedily to the first not-yet-matched model call that passes (so an
//             earlier greedy match can block a later one, as in BFCL).
//  one call   name equal; every required parameter present; each given parameter must be
//             declared AND appear in the ground truth; its value must have the declared type
//             (an int where "float" is declared is converted; "tuple" is a list; "any" is a
//             string; a value of the ground truth's own type marks a "variable" and skips the
//             special comparisons), then:
//               dict          key by key, string values standardised, missing keys allowed
//                             only where "" is accepted;
//               list of dict  same length, each dict as above, in order;
//               string        standardised (spaces and ,./-_*^ removed, lower-cased, ' → ")
//                             and one of the standardised accepted strings;
//               list          strings standardised element-wise, then equal (in order) to an
//                             accepted list;
//               otherwise     Python equality with an accepted value (1 == 1.0 == True);
//             and every ground-truth parameter the call leaves out must accept "".
//  Java/JS    BFCL's Java/JavaScript categories expect each value as a source-code string and
//             convert it by the declared type. This checker converts such strings the same way
//             for the common cases (booleans, numbers, arrays, maps) and also accepts values
//             already typed (as the Python syntax gives them).

import type { GroundTruthCall, JsonSchema, Sample, ToolCall, ToolSchema } from '../data/sample.js';
import { groundTruthOf } from '../data/buckets.js';
import { parseCalls, parseLiteral, type ParseResult } from './parse.js';
import { PyFloat, pyEquals, pyIn, pyType, type PyType } from './values.js';

export interface CheckResult {
  valid: boolean;
  /** BFCL's error type, e.g. 'simple_function_checker:missing_required' (absent when valid) */
  errorType?: string;
  /** human-readable reasons (absent when valid) */
  errors?: string[];
}

type Lang = 'python' | 'java' | 'javascript';

const PY_TYPE: Record<string, PyType> = {
  string: 'str',
  integer: 'int',
  float: 'float',
  boolean: 'bool',
  array: 'list',
  tuple: 'list',
  dict: 'dict',
  any: 'str',
};

const JAVA_JS_TYPE: Record<string, PyType> = {
  String: 'str',
  string: 'str',
  char: 'str',
  any: 'str',
  int: 'int',
  integer: 'int',
  Integer: 'int',
  long: 'int',
  Long: 'int',
  short: 'int',
  byte: 'int',
  float: 'float',
  double: 'float',
  Double: 'float',
  Float: 'float',
  number: 'float',
  boolean: 'bool',
  Boolean: 'bool',
  Array: 'list',
  ArrayList: 'list',
  List: 'list',
  array: 'list',
  tuple: 'list',
  HashMap: 'dict',
  Map: 'dict',
  dict: 'dict',
  object: 'dict',
};

const NESTED = new Set(['array', 'tuple', 'Array', 'ArrayList', 'List']);

/** The type name as the schema wrote it (BFCL's dialect), from a normalised property. */
export function writtenType(p: JsonSchema | undefined): string {
  if (!p) return 'any';
  const x = p['x-bfcl-type'];
  if (typeof x === 'string') return x;
  const t = Array.isArray(p.type) ? p.type[0] : p.type;
  switch (t) {
    case 'object':
      return 'dict';
    case 'number':
      return 'float';
    case 'integer':
    case 'string':
    case 'boolean':
    case 'array':
      return t;
    default:
      return 'any';
  }
}

function languageOf(category: string): Lang {
  if (/javascript/.test(category)) return 'javascript';
  if (/java/.test(category)) return 'java';
  return 'python';
}

function repr(v: unknown): string {
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------- comparisons

/** BFCL's string standardisation: drop spaces and ,./-_*^, lower-case, single → double quotes. */
export function standardize(s: string): string {
  return s.replace(/[ ,./\-_*^]/g, '').toLowerCase().replace(/'/g, '"');
}

function firstAnswerType(possible: readonly unknown[]): PyType | undefined {
  for (const a of possible) if (a !== '') return pyType(a);
  return undefined;
}

interface TypeResult extends CheckResult {
  isVariable: boolean;
}

function typeCheck(param: string, value: unknown, possible: readonly unknown[], desc: string, expected: PyType, nested: PyType | undefined): TypeResult {
  let isVariable = false;
  const paType = firstAnswerType(possible);
  if (paType !== undefined && paType !== expected) isVariable = true;
  let res: TypeResult = { valid: true, isVariable: false };
  if (pyType(value) === expected) {
    if (nested === undefined) return { valid: true, isVariable };
    for (const item of possible) {
      let flag = true;
      if (Array.isArray(item)) {
        for (const v of value as unknown[]) {
          if (!typeCheck(param, v, item, nested, nested, undefined).valid) {
            flag = false;
            break;
          }
        }
      }
      if (flag) return { valid: true, isVariable };
    }
    res = {
      valid: false,
      isVariable: false,
      errorType: 'type_error:nested',
      errors: [`Nested type checking failed for parameter '${param}'. Expected outer type ${desc} with inner type ${nested}. Parameter value: ${repr(value)}.`],
    };
  }
  if (paType !== undefined && pyType(value) === paType) return { ...res, isVariable: true };
  return {
    valid: false,
    isVariable: false,
    errorType: 'type_error:simple',
    errors: [...(res.errors ?? []), `Incorrect type for parameter '${param}'. Expected type ${desc}, got ${pyType(value)}. Parameter value: ${repr(value)}.`],
  };
}

function stringCheck(param: string, value: string, possible: readonly unknown[]): CheckResult {
  const v = standardize(value);
  for (const a of possible) if (typeof a === 'string' && standardize(a) === v) return { valid: true };
  return {
    valid: false,
    errorType: 'value_error:string',
    errors: [`Invalid value for parameter '${param}': ${repr(value)}. Expected one of ${repr(possible)}. Case insensitive.`],
  };
}

function stdList(v: unknown): unknown[] {
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? standardize(x) : x));
  // Python iterates a string's characters; anything else cannot match a list
  if (typeof v === 'string') return Array.from(v).map(standardize);
  return [Symbol('no list')];
}

function listCheck(param: string, value: unknown[], possible: readonly unknown[]): CheckResult {
  const v = stdList(value);
  for (const a of possible) if (pyEquals(v, stdList(a))) return { valid: true };
  return {
    valid: false,
    errorType: 'value_error:list/tuple',
    errors: [`Invalid value for parameter '${param}': ${repr(value)}. Expected one of ${repr(possible)}.`],
  };
}

function dictCheck(param: string, value: Record<string, unknown>, possible: readonly unknown[]): CheckResult {
  let result: CheckResult = { valid: false, errorType: 'dict_checker:unclear', errors: [] };
  for (const pa of possible) {
    if (pa === '') continue;
    result = { valid: false, errorType: 'dict_checker:unclear', errors: [] };
    if (pa === null || typeof pa !== 'object' || Array.isArray(pa)) continue;
    const ans = pa as Record<string, unknown>;
    let flag = true;
    for (const [k, v] of Object.entries(value)) {
      if (!Object.prototype.hasOwnProperty.call(ans, k)) {
        result = { valid: false, errorType: 'value_error:dict_key', errors: [`Unexpected dict key parameter: '${k}'.`] };
        flag = false;
        break;
      }
      const sv = typeof v === 'string' ? standardize(v) : v;
      const acc = Array.isArray(ans[k]) ? (ans[k] as unknown[]) : [];
      const sacc = acc.map((a) => (typeof a === 'string' ? standardize(a) : a));
      if (!pyIn(sv, sacc)) {
        result = { valid: false, errorType: 'value_error:dict_value', errors: [`Invalid value for parameter '${k}': ${repr(v)}. Expected one of ${repr(sacc)}.`] };
        flag = false;
        break;
      }
    }
    if (flag) {
      for (const [k, acc] of Object.entries(ans)) {
        if (!Object.prototype.hasOwnProperty.call(value, k) && !(Array.isArray(acc) && pyIn('', acc))) {
          result = { valid: false, errorType: 'value_error:dict_key', errors: [`Missing dict key parameter: '${k}'.`] };
          flag = false;
          break;
        }
      }
    }
    if (flag) return { valid: true };
  }
  if (result.errors && result.errors.length === 0) result.errors = [`No accepted value for parameter '${param}' matches ${repr(value)}.`];
  return result;
}

function listDictCheck(param: string, value: unknown[], possible: readonly unknown[]): CheckResult {
  let result: CheckResult = { valid: false, errorType: 'list_dict_checker:unclear', errors: [`No accepted value for parameter '${param}' matches ${repr(value)}.`] };
  for (const ans of possible) {
    if (!Array.isArray(ans) || ans.length !== value.length) {
      result = { valid: false, errorType: 'value_error:list_dict_count', errors: ['Wrong number of dictionaries in the list.'] };
      continue;
    }
    let flag = true;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      result = v !== null && typeof v === 'object' && !Array.isArray(v) ? dictCheck(param, v as Record<string, unknown>, [ans[i]]) : { valid: false, errorType: 'value_error:dict_value', errors: [`Element ${i} of '${param}' is not a dict.`] };
      if (!result.valid) {
        flag = false;
        break;
      }
    }
    if (flag) return { valid: true };
  }
  return result;
}

// ---------------------------------------------------------------- Java / JavaScript values

/** Converts a Java/JavaScript source-text value to the value its declared type means. */
function convertSourceValue(v: unknown, written: string, expected: PyType): unknown {
  if (typeof v !== 'string' || expected === 'str') return v;
  const t = v.trim();
  switch (expected) {
    case 'bool':
      if (t === 'true') return true;
      if (t === 'false') return false;
      return v;
    case 'int': {
      const m = /^([+-]?\d+)[lL]?$/.exec(t);
      return m ? Number(m[1]) : v;
    }
    case 'float': {
      const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)[fFdD]?$/.exec(t);
      if (!m) return v;
      const n = Number(m[1]);
      return Number.isInteger(n) ? new PyFloat(n) : n;
    }
    case 'list': {
      // [1, 2], new int[]{1, 2}, Arrays.asList(1, 2), new ArrayList<>(Arrays.asList("a"))
      let inner: string | undefined;
      let m = /^\[(.*)\]$/s.exec(t);
      if (m) inner = m[1];
      m = m ?? /^new\s+[\w<>[\]]+\s*\{(.*)\}$/s.exec(t);
      if (m && inner === undefined) inner = m[1];
      const m2 = /(?:Arrays\.asList|List\.of)\((.*)\)\)?$/s.exec(t);
      if (inner === undefined && m2) inner = m2[1];
      if (inner === undefined) return v;
      const p = parseLiteral(`[${inner}]`, { floatMarks: true });
      return p.complete ? p.value : v;
    }
    case 'dict': {
      const m = /Map\.of\((.*)\)\)?$/s.exec(t);
      if (m) {
        const p = parseLiteral(`[${m[1]}]`, { floatMarks: true });
        if (p.complete && Array.isArray(p.value) && p.value.length % 2 === 0) {
          const out: Record<string, unknown> = {};
          for (let i = 0; i < p.value.length; i += 2) out[String(p.value[i])] = p.value[i + 1];
          return out;
        }
      }
      if (t.startsWith('{')) {
        const p = parseLiteral(t, { floatMarks: true });
        if (p.complete) return p.value;
      }
      return v;
    }
    default:
      void written;
      return v;
  }
}

// ---------------------------------------------------------------- one call

/** Checks one model call against one expected call (BFCL's simple_function_checker). */
export function checkOneCall(tool: ToolSchema | undefined, call: ToolCall, expected: GroundTruthCall, lang: Lang = 'python'): CheckResult {
  const possibleAll = Object.values(expected)[0] ?? {};
  if (!tool) return { valid: false, errorType: 'simple_function_checker:wrong_func_name', errors: [`Function '${Object.keys(expected)[0]}' is not among the offered tools.`] };
  const props = tool.parameters.properties ?? {};
  const required = tool.parameters.required ?? [];
  if (call.name !== tool.name)
    return { valid: false, errorType: 'simple_function_checker:wrong_func_name', errors: [`Function name '${tool.name}' not found in model output.`] };
  const args = call.arguments ?? {};
  for (const p of required)
    if (!Object.prototype.hasOwnProperty.call(args, p))
      return { valid: false, errorType: 'simple_function_checker:missing_required', errors: [`Missing required parameter: '${p}'.`] };

  for (const [param, raw] of Object.entries(args)) {
    if (!Object.prototype.hasOwnProperty.call(props, param) || !Object.prototype.hasOwnProperty.call(possibleAll, param))
      return { valid: false, errorType: 'simple_function_checker:unexpected_param', errors: [`Unexpected parameter: '${param}'.`] };
    const possible = Array.isArray(possibleAll[param]) ? possibleAll[param]! : [possibleAll[param]];
    const desc = writtenType(props[param]);
    let expectedType: PyType;
    let nested: PyType | undefined;
    let value = raw;
    if (lang === 'python') {
      expectedType = PY_TYPE[desc] ?? 'str';
      if (NESTED.has(desc)) {
        const it = props[param]!.items;
        nested = it ? (PY_TYPE[writtenType(it)] ?? 'str') : undefined;
      }
    } else {
      expectedType = JAVA_JS_TYPE[desc] ?? 'str';
      if (NESTED.has(desc)) {
        const it = props[param]!.items;
        nested = it ? (JAVA_JS_TYPE[writtenType(it)] ?? 'str') : undefined;
      }
      value = convertSourceValue(value, desc, expectedType);
      // JavaScript has one number type: a whole number written for a float is that float
      if (expectedType === 'float' && pyType(value) === 'int') value = new PyFloat(value as number);
    }
    // BFCL turns a tuple into a list where "tuple" is declared (elsewhere a tuple is no list)
    if (desc === 'tuple' && pyType(value) === 'tuple') value = [...(value as unknown[])];
    // Python's automatic int → float conversion where "float" is declared
    if (desc === 'float' && pyType(value) === 'int' && lang === 'python') value = new PyFloat(value as number);

    const tr = typeCheck(param, value, possible, desc, expectedType, nested);
    if (!tr.valid) return { valid: false, errorType: tr.errorType!, errors: tr.errors! };
    if (!tr.isVariable) {
      let r: CheckResult | undefined;
      if (expectedType === 'dict') r = dictCheck(param, value as Record<string, unknown>, possible);
      else if (expectedType === 'list' && nested === 'dict') r = listDictCheck(param, value as unknown[], possible);
      else if (expectedType === 'str') r = stringCheck(param, value as string, possible);
      else if (expectedType === 'list') r = listCheck(param, value as unknown[], possible);
      if (r) {
        if (!r.valid) return r;
        continue;
      }
    }
    if (!pyIn(value, possible))
      return { valid: false, errorType: 'value_error:others', errors: [`Invalid value for parameter '${param}': ${repr(value)}. Expected one of ${repr(possible)}.`] };
  }
  for (const [param, acc] of Object.entries(possibleAll)) {
    if (!Object.prototype.hasOwnProperty.call(args, param) && !pyIn('', Array.isArray(acc) ? acc : [acc]))
      return { valid: false, errorType: 'simple_function_checker:missing_optional', errors: [`Optional parameter '${param}' not provided and not marked as optional.`] };
  }
  return { valid: true };
}

// ---------------------------------------------------------------- a whole answer

function findTool(tools: readonly ToolSchema[], name: string): ToolSchema | undefined {
  return tools.find((t) => t.name === name);
}

/**
 * Checks decoded calls against a ground truth, dispatching on the category name as BFCL does
 * ('parallel' → no-order matching, 'multiple' → the multiple rule, else the simple rule).
 */
export function checkCalls(tools: readonly ToolSchema[], calls: readonly ToolCall[], truth: readonly GroundTruthCall[], category: string): CheckResult {
  const lang = languageOf(category);
  if (category.includes('parallel')) {
    if (calls.length !== truth.length)
      return { valid: false, errorType: 'parallel_function_checker_no_order:wrong_count', errors: ['Wrong number of functions.'] };
    const matched = new Set<number>();
    for (let i = 0; i < truth.length; i++) {
      const name = Object.keys(truth[i]!)[0] ?? '';
      const tool = findTool(tools, name);
      let ok = false;
      const errs: string[] = [];
      for (let j = 0; j < calls.length; j++) {
        if (matched.has(j)) continue;
        const r = checkOneCall(tool, calls[j]!, truth[i]!, lang);
        if (r.valid) {
          matched.add(j);
          ok = true;
          break;
        }
        errs.push(`model call ${j}: ${r.errorType}: ${(r.errors ?? []).join(' ')}`);
      }
      if (!ok)
        return {
          valid: false,
          errorType: 'parallel_function_checker_no_order:cannot_find_match',
          errors: [`Could not find a matching function among the unmatched model calls for expected call ${i} (${name}).`, ...errs],
        };
    }
    return { valid: true };
  }
  if (category.includes('multiple')) {
    if (calls.length !== truth.length) return { valid: false, errorType: 'multiple_function_checker:wrong_count', errors: ['Wrong number of functions.'] };
    if (truth.length === 0) return { valid: true };
    const name = Object.keys(truth[0]!)[0] ?? '';
    return checkOneCall(findTool(tools, name), calls[0]!, truth[0]!, lang);
  }
  if (calls.length !== 1) return { valid: false, errorType: 'simple_function_checker:wrong_count', errors: ['Wrong number of functions.'] };
  if (truth.length === 0) return { valid: false, errorType: 'simple_function_checker:wrong_count', errors: ['The ground truth expects no call.'] };
  return checkOneCall(tools[0], calls[0]!, truth[0]!, lang);
}

/** The category name the checker dispatches on: BFCL's own where known, else the bucket. */
export function checkerCategory(s: Sample): string {
  return s.bfclCategory ?? s.category;
}

/** True for categories where the correct answer is no call. */
export function isIrrelevance(category: string): boolean {
  return category.includes('irrelevance');
}

/**
 * True when the sample's answer is no call (rule 2 of data/answers.ts): an irrelevance
 * category, or a sample outside BFCL whose answer is text (its ground truth is empty), such as
 * the final reply after a tool result.
 */
export function expectsNoCall(sample: Sample): boolean {
  if (isIrrelevance(checkerCategory(sample))) return true;
  return !sample.bfclCategory && groundTruthOf(sample).length === 0;
}

/**
 * Scores one answer (model output text) for one sample by BFCL's AST rules. Also accepts an
 * already-decoded ParseResult. Where no call is expected (expectsNoCall), any answer without a
 * decoded call is correct.
 */
export function checkAnswer(sample: Sample, answer: string | ParseResult): CheckResult {
  const cat = checkerCategory(sample);
  const decoded = typeof answer === 'string' ? parseCalls(answer, { floatMarks: true, toolNames: sample.tools.map((t) => t.name) }) : answer;
  const failed = decoded.error !== undefined || !decoded.complete || decoded.format === 'none';
  if (expectsNoCall(sample)) {
    if (failed || decoded.calls.length === 0) return { valid: true };
    return { valid: false, errorType: 'irrelevance_error:decoder_success', errors: [`Valid syntax: ${decoded.calls.length} call(s) decoded where none was expected.`] };
  }
  if (failed)
    return {
      valid: false,
      errorType: 'ast_decoder:decoder_failed',
      errors: [decoded.error ?? (decoded.format === 'none' ? 'no tool call in the answer' : 'the answer is cut off')],
    };
  const truth = groundTruthOf(sample);
  // samples without BFCL's category name (loaded or synthetic data) dispatch on their shape
  let dispatch = cat;
  if (!sample.bfclCategory) {
    if (truth.length > 1) dispatch = 'parallel';
    else if (sample.tools.length > 1 || cat === 'multiple') dispatch = 'multiple';
    else dispatch = 'simple';
  }
  return checkCalls(sample.tools, decoded.calls, truth, dispatch);
}
