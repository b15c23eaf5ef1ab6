// The BFCL AST rules on small hand-written samples (no shared data needed).
import { describe, expect, it } from 'vitest';
import { fromBfcl } from '../../src/data/formats.js';
import type { GroundTruthCall, Sample } from '../../src/data/sample.js';
import { PyFloat, checkAnswer, scorePredictions, standardize, summarize, validateArguments, normaliseTool } from '../../src/toolcall/index.js';

const weatherFn = {
  name: 'weather.get',
  description: 'weather',
  parameters: {
    type: 'dict',
    properties: {
      city: { type: 'string' },
      days: { type: 'integer' },
      scale: { type: 'float' },
      unit: { type: 'string', enum: ['c', 'f'] },
      coords: { type: 'tuple', items: { type: 'float' } },
      tags: { type: 'array', items: { type: 'string' } },
      opts: { type: 'dict', properties: { a: { type: 'string' }, b: { type: 'integer' } } },
      rows: { type: 'array', items: { type: 'dict' } },
      flag: { type: 'boolean' },
    },
    required: ['city'],
  },
};
const timeFn = { name: 'time.now', description: 'time', parameters: { type: 'dict', properties: { tz: { type: 'string' } }, required: ['tz'] } };

function bfcl(category: string, fns: unknown[], truth: GroundTruthCall[]): Sample {
  return fromBfcl({ id: `${category}_0`, question: [[{ role: 'user', content: 'q' }]], function: fns }, truth, category);
}

const gt: GroundTruthCall = {
  'weather.get': {
    city: ['San Francisco, CA', 'SF'],
    days: [3, ''],
    scale: [1.5, ''],
    unit: ['c', ''],
    coords: [[new PyFloat(1), 2.5], ''], // as read from a file: 1.0 stays a float
    tags: [['Sunny Day', 'rain'], ''],
    opts: [{ a: ['x y'], b: [2, ''] }, ''],
    rows: [[{ k: ['v'] }], ''],
    flag: [true, ''],
  },
};

const simple = bfcl('simple_python', [weatherFn], [gt]);
const ok = (s: Sample, t: string) => checkAnswer(s, t);

describe('one call', () => {
  it('accepts the ground truth and its standardised string variants', () => {
    expect(ok(simple, '[weather.get(city="San Francisco, CA")]')).toEqual({ valid: true });
    expect(ok(simple, '[weather.get(city="san francisco ca")]').valid).toBe(true);
    expect(ok(simple, "[weather.get(city='SanFrancisco,CA')]").valid).toBe(true);
    expect(ok(simple, '[weather.get(city="S.F.")]').valid).toBe(true);
    // only spaces are removed, not tabs (as BFCL's standardisation)
    expect(ok(simple, '[weather.get(city="San\\tFrancisco, CA")]').valid).toBe(false);
    expect(standardize("A-b_c.d/e*f^g, h'")).toBe('abcdefgh"');
  });

  it('rejects a wrong name, a missing required, an undeclared or unexpected parameter', () => {
    expect(ok(simple, '[weather.gets(city="SF")]').errorType).toBe('simple_function_checker:wrong_func_name');
    expect(ok(simple, '[weather.get(days=3)]').errorType).toBe('simple_function_checker:missing_required');
    expect(ok(simple, '[weather.get(city="SF", nope=1)]').errorType).toBe('simple_function_checker:unexpected_param');
    // declared but absent from the ground truth is unexpected too
    const s2 = bfcl('simple_python', [weatherFn], [{ 'weather.get': { city: ['SF'] } }]);
    expect(ok(s2, '[weather.get(city="SF", days=3)]').errorType).toBe('simple_function_checker:unexpected_param');
  });

  it('leaves out an optional parameter only where "" is accepted', () => {
    const s = bfcl('simple_python', [weatherFn], [{ 'weather.get': { city: ['SF'], days: [3] } }]);
    expect(ok(s, '[weather.get(city="SF")]').errorType).toBe('simple_function_checker:missing_optional');
    expect(ok(s, '[weather.get(city="SF", days=3)]').valid).toBe(true);
  });

  it('types: int for float is fine, float for int is not, tuple is a list, bool is not an int', () => {
    expect(ok(simple, '[weather.get(city="SF", days=3)]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", days=3.0)]').errorType).toBe('type_error:simple');
    expect(ok(simple, '[weather.get(city="SF", days="3")]').errorType).toBe('type_error:simple');
    const sc = bfcl('simple_python', [weatherFn], [{ 'weather.get': { city: ['SF'], scale: [2.0] } }]);
    expect(ok(sc, '[weather.get(city="SF", scale=2)]').valid).toBe(true);
    expect(ok(sc, '[weather.get(city="SF", scale=2.0)]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", coords=(1.0, 2.5))]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", coords=[1.0, 2.5])]').valid).toBe(true);
    // a tuple where "array" is declared is not a list (Python types differ)
    expect(ok(simple, '[weather.get(city="SF", tags=("Sunny Day", "rain"))]').errorType).toBe('type_error:simple');
    // nested type: a tuple of floats given ints fails BFCL's one-level nested check
    const co = bfcl('simple_python', [weatherFn], [{ 'weather.get': { city: ['SF'], coords: [[new PyFloat(1), 2.5]] } }]);
    expect(ok(co, '[weather.get(city="SF", coords=[1, 2.5])]').errorType).toBe('type_error:nested');
    expect(ok(co, '[weather.get(city="SF", coords=[1.0, 2.5])]').valid).toBe(true);
    // as in BFCL's checker, an accepted "" (not a list) lets the one-level nested check pass
    expect(ok(simple, '[weather.get(city="SF", coords=[1, 2.5])]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", flag=1)]').errorType).toBe('type_error:simple');
    expect(ok(simple, '[weather.get(city="SF", flag=True)]').valid).toBe(true);
  });

  it('values: lists in order, element strings standardised; dicts key by key', () => {
    expect(ok(simple, '[weather.get(city="SF", tags=["sunny day", "Rain"])]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", tags=["rain", "sunny day"])]').errorType).toBe('value_error:list/tuple');
    expect(ok(simple, '[weather.get(city="SF", opts={"a": "X Y"})]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", opts={"a": "x y", "b": 2})]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", opts={"a": "x y", "b": 3})]').errorType).toBe('value_error:dict_value');
    expect(ok(simple, '[weather.get(city="SF", opts={"a": "x y", "c": 3})]').errorType).toBe('value_error:dict_key');
    expect(ok(simple, '[weather.get(city="SF", opts={"b": 2})]').errorType).toBe('value_error:dict_key');
    expect(ok(simple, '[weather.get(city="SF", rows=[{"k": "V"}])]').valid).toBe(true);
    expect(ok(simple, '[weather.get(city="SF", rows=[{"k": "v"}, {"k": "v"}])]').errorType).toBe('value_error:list_dict_count');
    expect(ok(simple, '[weather.get(city="SF", days=4)]').errorType).toBe('value_error:others');
    expect(ok(simple, '[weather.get(city="LA")]').errorType).toBe('value_error:string');
  });

  it('a variable (value of the ground truth\'s own type where another is declared) skips the special comparison', () => {
    const s = bfcl('simple_python', [weatherFn], [{ 'weather.get': { city: ['SF'], days: ['n_days'] } }]);
    expect(ok(s, '[weather.get(city="SF", days=n_days)]').valid).toBe(true);
    expect(ok(s, '[weather.get(city="SF", days="N_DAYS")]').valid).toBe(false); // exact compare for variables
  });
});

describe('answers and categories', () => {
  it('decoding failures fail, except in irrelevance where no call is right', () => {
    expect(ok(simple, 'I think the weather is nice').errorType).toBe('ast_decoder:decoder_failed');
    expect(ok(simple, '[weather.get(city="SF"').errorType).toBe('ast_decoder:decoder_failed');
    const irr = bfcl('irrelevance', [weatherFn], []);
    expect(ok(irr, 'No function fits.').valid).toBe(true);
    expect(ok(irr, '[]').valid).toBe(true);
    expect(ok(irr, '').valid).toBe(true);
    expect(ok(irr, '[weather.get(city="SF")]').errorType).toBe('irrelevance_error:decoder_success');
  });

  it('all three syntaxes are read', () => {
    expect(ok(simple, '{"name": "weather.get", "arguments": {"city": "SF"}}').valid).toBe(true);
    expect(ok(simple, '<tool_call>\n{"name": "weather.get", "arguments": {"city": "SF", "scale": 1.5}}\n</tool_call>').valid).toBe(true);
  });

  it('simple and multiple want exactly one call; multiple checks the named function', () => {
    expect(ok(simple, '[weather.get(city="SF"), weather.get(city="SF")]').errorType).toBe('simple_function_checker:wrong_count');
    const multi = bfcl('multiple', [timeFn, weatherFn], [{ 'weather.get': { city: ['SF'] } }]);
    expect(ok(multi, '[weather.get(city="SF")]').valid).toBe(true);
    expect(ok(multi, '[time.now(tz="UTC")]').errorType).toBe('simple_function_checker:wrong_func_name');
    expect(ok(multi, '[weather.get(city="SF"), time.now(tz="UTC")]').errorType).toBe('multiple_function_checker:wrong_count');
  });

  it('parallel: same count, any order, greedy one-to-one matching', () => {
    const par = bfcl('parallel_multiple', [weatherFn, timeFn], [{ 'weather.get': { city: ['SF'] } }, { 'time.now': { tz: ['UTC'] } }]);
    expect(ok(par, '[time.now(tz="UTC"), weather.get(city="SF")]').valid).toBe(true);
    expect(ok(par, '[weather.get(city="SF"), time.now(tz="UTC")]').valid).toBe(true);
    expect(ok(par, '[weather.get(city="SF")]').errorType).toBe('parallel_function_checker_no_order:wrong_count');
    expect(ok(par, '[weather.get(city="SF"), weather.get(city="SF")]').errorType).toBe('parallel_function_checker_no_order:cannot_find_match');
    // greedy: truth 0 accepts A or B, truth 1 only A; model [A-variant-B first] blocks truth 1
    const greedy = bfcl('parallel', [timeFn], [{ 'time.now': { tz: ['UTC', 'CET'] } }, { 'time.now': { tz: ['UTC'] } }]);
    expect(ok(greedy, '[time.now(tz="CET"), time.now(tz="UTC")]').valid).toBe(true);
    expect(ok(greedy, '[time.now(tz="UTC"), time.now(tz="CET")]').valid).toBe(false);
  });

  it('Java/JavaScript values may be typed or source strings', () => {
    const fn = { name: 'A.b', description: '', parameters: { type: 'dict', properties: { on: { type: 'boolean' }, n: { type: 'long' }, xs: { type: 'Array', items: { type: 'integer' } }, s: { type: 'String' } }, required: ['on'] } };
    const s = bfcl('simple_java', [fn], [{ 'A.b': { on: [true], n: [5, ''], xs: [[1, 2], ''], s: ['hi', ''] } }]);
    expect(ok(s, '[A.b(on=True, n=5, xs=[1, 2], s="HI")]').valid).toBe(true);
    expect(ok(s, '[A.b(on="true", n="5L", xs="new int[]{1, 2}")]').valid).toBe(true);
    expect(ok(s, '[A.b(on="false")]').valid).toBe(false);
  });

  it('summary rows: non-live is the unweighted mean with simple as the mean of its languages; live is count-weighted', () => {
    const scores = [
      ...Array.from({ length: 4 }, (_, i) => ({ id: `p${i}`, category: 'simple_python', valid: i < 2 })), // 0.5
      ...Array.from({ length: 2 }, (_, i) => ({ id: `j${i}`, category: 'simple_java', valid: true })), // 1.0
      { id: 'm0', category: 'multiple', valid: true }, // 1.0
      { id: 'a0', category: 'parallel', valid: false }, // 0
      { id: 'b0', category: 'parallel_multiple', valid: true }, // 1
      ...Array.from({ length: 3 }, (_, i) => ({ id: `ls${i}`, category: 'live_simple', valid: i === 0 })),
      { id: 'lm0', category: 'live_multiple', valid: true },
      { id: 'i0', category: 'irrelevance', valid: true },
    ];
    const r = summarize(scores);
    expect(r.categories.simple_python!.accuracy).toBe(0.5);
    expect(r.summary.simple!.accuracy).toBeCloseTo(0.75, 12);
    expect(r.summary.non_live!.accuracy).toBeCloseTo((0.75 + 1 + 0 + 1) / 4, 12);
    expect(r.summary.live!.accuracy).toBeCloseTo(2 / 4, 12);
    expect(r.summary.irrelevance!.accuracy).toBe(1);
    expect(r.summary.overall!.total).toBe(scores.length);
  });

  it('scorePredictions: missing predictions in a scored category count as wrong; unpredicted categories are left out', () => {
    const a = bfcl('simple_python', [timeFn], [{ 'time.now': { tz: ['UTC'] } }]);
    const b = { ...a, id: 'simple_python_1' };
    const c = { ...bfcl('multiple', [timeFn, weatherFn], [{ 'time.now': { tz: ['UTC'] } }]), id: 'multiple_0' };
    const run = scorePredictions([a, b, c], new Map([[a.id, '[time.now(tz="utc")]'], ['nope', 'x']]));
    expect(run.report.categories).toEqual({ simple_python: { correct: 1, total: 2, accuracy: 0.5 } });
    expect(run.scores.find((x) => x.id === b.id)!.error_type).toBe('missing_prediction');
    expect(run.unknownIds).toEqual(['nope']);
    // function-calling result form: a list of {name: {args}} or {name: "json"}
    const fc = scorePredictions([a], new Map([[a.id, [{ 'time.now': '{"tz": "UTC"}' }]]]));
    expect(fc.scores[0]!.valid).toBe(true);
  });
});

describe('schemas', () => {
  it('normalises the BFCL dialect and validates arguments with ajv', () => {
    const t = normaliseTool(weatherFn);
    expect(t.parameters.type).toBe('object');
    expect(t.parameters.properties!.scale).toEqual({ type: 'number', 'x-bfcl-type': 'float' });
    expect(t.parameters.properties!.coords).toEqual({ type: 'array', 'x-bfcl-type': 'tuple', items: { type: 'number', 'x-bfcl-type': 'float' } });
    expect(t.parameters.properties!.opts!.type).toBe('object');
    expect(validateArguments(t, { city: 'SF', days: 2, scale: 1 })).toEqual({ valid: true, errors: [] });
    const bad = validateArguments(t, { days: 'x', extra: 1 });
    expect(bad.valid).toBe(false);
    expect(bad.errors.join('\n')).toMatch(/missing required argument 'city'/);
    expect(bad.errors.join('\n')).toMatch(/undeclared argument 'extra'/);
    expect(bad.errors.join('\n')).toMatch(/days: must be integer/);
    expect(validateArguments(t, { city: 'SF', unit: 'k' }).errors.join()).toMatch(/unit: must be equal to one of the allowed values/);
    // OpenAI wrapper and xLAM flat parameters
    expect(normaliseTool({ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { a: { type: 'number' } }, required: ['a'] } } }).parameters.required).toEqual(['a']);
    const x = normaliseTool({ name: 'g', description: 'd', parameters: { a: { type: 'List[int]', description: '' }, b: { type: 'str, optional', default: 'x' } } });
    expect(x.parameters).toEqual({ type: 'object', properties: { a: { type: 'array', 'x-bfcl-type': 'List[int]', description: '', items: { type: 'integer' } }, b: { type: 'string', 'x-bfcl-type': 'str', default: 'x' } }, required: ['a'] });
    expect(() => normaliseTool({ description: 'no name' })).toThrow(/name/);
    // normalising is idempotent (saved samples normalise again on load)
    expect(normaliseTool(t)).toEqual(t);
    expect(normaliseTool(x)).toEqual(x);
  });
});
