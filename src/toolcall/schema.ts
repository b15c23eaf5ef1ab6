// Tool schemas: OpenAI's function format, BFCL's dialect and xLAM's flat parameter maps,
// normalised to one internal type (ToolSchema with a JSON Schema `parameters` object), and
// argument validation with ajv.
//
// BFCL writes the top-level type as "dict" and uses "float", "tuple", "any" and, for Java and
// JavaScript, type names such as "HashMap", "ArrayList", "long", "String". Each normalised
// property keeps the type as written in `x-bfcl-type`, which the BFCL checker reads (its
// rules depend on the written type: "tuple" accepts lists, "float" accepts ints, ...).

import { Ajv, type ValidateFunction } from 'ajv';
import type { JsonSchema, ToolCall, ToolSchema } from '../data/sample.js';
import { plain } from './values.js';

/** JSON Schema type for a type name as written in BFCL, OpenAI, xLAM or Java/JavaScript schemas. */
export function jsonTypeOf(written: string): string | undefined {
  const t = written.trim();
  const lower = t.toLowerCase();
  if (/^(list|array|arraylist|tuple|set|sequence)\b/.test(lower) || /\[\]$/.test(t)) return 'array';
  if (/^(dict|hashmap|map|object|mapping)\b/.test(lower)) return 'object';
  switch (lower) {
    case 'string':
    case 'str':
    case 'char':
    case 'character':
      return 'string';
    case 'integer':
    case 'int':
    case 'long':
    case 'short':
    case 'byte':
    case 'bigint':
      return 'integer';
    case 'float':
    case 'double':
    case 'number':
    case 'decimal':
      return 'number';
    case 'boolean':
    case 'bool':
      return 'boolean';
    case 'null':
    case 'none':
      return 'null';
    case 'any':
    case 'object?':
      return undefined;
  }
  return undefined;
}

function normaliseSchema(s: unknown, where: string): JsonSchema {
  if (s === null || typeof s !== 'object' || Array.isArray(s)) return {};
  const src = s as Record<string, unknown>;
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(src)) {
    if (k === 'type' || k === 'properties' || k === 'items' || k === 'required') continue;
    out[k] = v;
  }
  if (typeof src.type === 'string') {
    const jt = jsonTypeOf(src.type);
    if (jt !== undefined) out.type = jt;
    if (jt !== src.type) out['x-bfcl-type'] = src.type;
  } else if (Array.isArray(src.type)) {
    out.type = src.type.map((t) => (typeof t === 'string' ? (jsonTypeOf(t) ?? t) : String(t)));
  }
  if (src.properties && typeof src.properties === 'object') {
    const props: Record<string, JsonSchema> = {};
    for (const [k, v] of Object.entries(src.properties as Record<string, unknown>)) props[k] = normaliseSchema(v, `${where}.${k}`);
    out.properties = props;
    if (out.type === undefined) out.type = 'object';
  }
  if (src.items !== undefined) out.items = normaliseSchema(src.items, `${where}[]`);
  if (Array.isArray(src.required)) out.required = src.required.filter((x): x is string => typeof x === 'string');
  return out;
}

/**
 * Normalises one tool from any of the dialects:
 *  - OpenAI `{type: "function", function: {name, description, parameters}}` or the bare function;
 *  - BFCL `{name, description, parameters: {type: "dict", properties, required}}`;
 *  - xLAM `{name, description, parameters: {p: {type: "str, optional", description, default}}}`.
 * Throws an Error naming the problem when the input is not a tool.
 */
export function normaliseTool(raw: unknown): ToolSchema {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('tool schema must be an object');
  let t = raw as Record<string, unknown>;
  if (t.type === 'function' && t.function && typeof t.function === 'object') t = t.function as Record<string, unknown>;
  if (typeof t.name !== 'string' || t.name === '') throw new Error("tool schema needs a non-empty string 'name'");
  const name = t.name;
  const params = (t.parameters ?? t.arguments ?? { type: 'object', properties: {} }) as unknown;
  if (params === null || typeof params !== 'object' || Array.isArray(params))
    throw new Error(`tool '${name}': 'parameters' must be an object`);
  const p = params as Record<string, unknown>;
  let parameters: JsonSchema;
  const looksLikeSchema = typeof p.type === 'string' || 'properties' in p;
  if (looksLikeSchema) {
    parameters = normaliseSchema(p, name);
    if (parameters.type !== 'object') {
      if (parameters['x-bfcl-type'] === undefined && typeof p.type === 'string') parameters['x-bfcl-type'] = p.type;
      parameters.type = 'object';
    }
    parameters.properties ??= {};
    parameters.required ??= [];
  } else {
    // xLAM: a flat map of parameter name -> {type, description, default}
    const props: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const [k, v] of Object.entries(p)) {
      const spec = v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
      let written = typeof spec.type === 'string' ? spec.type : 'any';
      const optional = /,\s*optional\s*$/i.test(written) || /^optional\[/i.test(written) || 'default' in spec;
      written = written.replace(/,\s*optional\s*$/i, '').replace(/^Optional\[(.*)\]$/i, '$1');
      const s = normaliseSchema({ ...spec, type: written }, `${name}.${k}`);
      const inner = /^(?:list|List|Set|set|Tuple|tuple)\[(\w+)/.exec(written);
      if (s.type === 'array' && inner) {
        const it = jsonTypeOf(inner[1]!);
        if (it) s.items = { type: it };
      }
      props[k] = s;
      if (!optional) required.push(k);
    }
    parameters = { type: 'object', properties: props, required };
  }
  const out: ToolSchema = { name, parameters };
  if (typeof t.description === 'string') out.description = t.description;
  return out;
}

/** Normalises a list of tools (an error names the index of a bad one). */
export function normaliseTools(raw: unknown): ToolSchema[] {
  if (!Array.isArray(raw)) throw new Error('tool list must be an array');
  return raw.map((t, i) => {
    try {
      return normaliseTool(t);
    } catch (e) {
      throw new Error(`tool ${i}: ${e instanceof Error ? e.message : String(e)}`);
    }
  });
}

/** The tool in OpenAI's API form (`{type: "function", function: {...}}`), `x-bfcl-type` kept. */
export function toOpenAITool(t: ToolSchema): { type: 'function'; function: ToolSchema } {
  return { type: 'function', function: t };
}

// ---- validation ----

const ajv = new Ajv({ strict: false, allErrors: true, validateSchema: false, logger: false });
const cache = new WeakMap<ToolSchema, ValidateFunction | Error>();

function stripCustom(s: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-')) continue;
    if (k === 'properties' && v && typeof v === 'object') {
      const props: Record<string, JsonSchema> = {};
      for (const [pk, pv] of Object.entries(v as Record<string, JsonSchema>)) props[pk] = stripCustom(pv);
      out.properties = props;
    } else if (k === 'items' && v && typeof v === 'object' && !Array.isArray(v)) out.items = stripCustom(v as JsonSchema);
    else out[k] = v;
  }
  return out;
}

function validatorFor(tool: ToolSchema): ValidateFunction | Error {
  let v = cache.get(tool);
  if (v) return v;
  try {
    const schema = stripCustom(tool.parameters);
    if (schema.additionalProperties === undefined) schema.additionalProperties = false;
    v = ajv.compile(schema);
  } catch (e) {
    v = new Error(`tool '${tool.name}': schema does not compile: ${e instanceof Error ? e.message : String(e)}`);
  }
  cache.set(tool, v);
  return v;
}

export interface ArgumentCheck {
  valid: boolean;
  /** one line per problem, naming the argument */
  errors: string[];
}

/**
 * Validates a call's arguments against its tool's schema with ajv (undeclared arguments are
 * errors). BFCL-specific leniencies (int for float, tuple as list) are JSON Schema's own:
 * an integer is a number.
 */
export function validateArguments(tool: ToolSchema, args: Record<string, unknown>): ArgumentCheck {
  const v = validatorFor(tool);
  if (v instanceof Error) return { valid: false, errors: [v.message] };
  const ok = v(plain(args));
  if (ok) return { valid: true, errors: [] };
  const errors = (v.errors ?? []).map((e) => {
    const at = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
    if (e.keyword === 'additionalProperties')
      return `${at ? at + ': ' : ''}undeclared argument '${String((e.params as { additionalProperty?: string }).additionalProperty)}'`;
    if (e.keyword === 'required')
      return `${at ? at + ': ' : ''}missing required argument '${String((e.params as { missingProperty?: string }).missingProperty)}'`;
    return `${at || '(arguments)'}: ${e.message ?? e.keyword}`;
  });
  return { valid: false, errors };
}

/** Validates a call against a list of tools: the name must be offered and the arguments valid. */
export function validateCall(tools: readonly ToolSchema[], call: ToolCall): ArgumentCheck {
  const tool = tools.find((t) => t.name === call.name);
  if (!tool) return { valid: false, errors: [`function '${call.name}' is not among the offered tools`] };
  return validateArguments(tool, call.arguments);
}
