// Deterministic synthetic tool-use data (no download needed): samples of every bucket from
// the catalog in synth-catalog.ts, seeded. Sample i of a (seed, split) is the same whatever n
// is asked for. The test split uses held-out phrasings (templates, frames, joiners,
// follow-ups) and held-out values (every fourth pool entry, numbers ≡ 3 mod 4), so a test
// score measures generalisation, not recall.
//
// Answers are short and regular on purpose: a tiny model trained from scratch for a few
// minutes on a CPU should learn the simple buckets and part of the hard ones.

import type { Category, GroundTruthCall, JsonSchema, Message, Sample, ToolCall, ToolSchema } from './sample.js';
import { CHITCHAT, FOLLOWUPS, FRAMES, JOINERS, NO_TOOL_ANSWER, POOLS, TOOLS, type ParamSpec, type ToolSpec } from './synth-catalog.js';

export type Split = 'train' | 'test';

export interface SynthOptions {
  n: number;
  seed?: number;
  split?: Split;
  /** use only this many tools of the catalog, taken round-robin over the domains (default: all) */
  tools?: number;
  /** probability that a name, place, code, path, date or time is made up rather than taken from the fixed pools (0.6) */
  madeUp?: number;
  /** relative weights of the buckets (default: simple 3, multiple 3, parallel 2, parallel_multiple 2, irrelevance 2, multi_turn 2) */
  mix?: Partial<Record<'simple' | 'multiple' | 'parallel' | 'parallel_multiple' | 'irrelevance' | 'multi_turn', number>>;
}

const DEFAULT_MIX = { simple: 3, multiple: 3, parallel: 2, parallel_multiple: 2, irrelevance: 2, multi_turn: 2 };

// ---------------------------------------------------------------- PRNG

function hash32(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h ^= x >>> 0;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= h >>> 15;
    h = Math.imul(h, 0x2c1b3c6d) >>> 0;
    h ^= h >>> 12;
  }
  return h >>> 0;
}

class Rng {
  private a: number;
  constructor(seed: number) {
    this.a = seed >>> 0;
  }
  /** mulberry32 */
  next(): number {
    let t = (this.a = (this.a + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }
}

// ---------------------------------------------------------------- tool schemas

function paramSchema(p: ParamSpec): JsonSchema {
  const out: JsonSchema = { description: p.desc };
  switch (p.kind) {
    case 'int':
      out.type = 'integer';
      break;
    case 'float':
      out.type = 'number';
      break;
    case 'string':
      out.type = 'string';
      break;
    case 'enum':
      out.type = 'string';
      out.enum = [...p.values!];
      break;
    case 'bool':
      out.type = 'boolean';
      break;
    case 'list':
      out.type = 'array';
      out.items = { type: p.items === 'string' ? 'string' : p.items === 'int' ? 'integer' : 'number' };
      break;
    case 'object': {
      out.type = 'object';
      const props: Record<string, JsonSchema> = {};
      for (const fld of p.fields ?? []) props[fld.name] = paramSchema(fld);
      out.properties = props;
      out.required = (p.fields ?? []).map((x) => x.name);
      break;
    }
  }
  if (p.optional && p.default !== undefined && p.default !== null && p.default !== '') out.default = p.default;
  return out;
}

function toolSchema(t: ToolSpec): ToolSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const p of t.params) properties[p.name] = paramSchema(p);
  return { name: t.name, description: t.desc, parameters: { type: 'object', properties, required: t.params.filter((p) => !p.optional).map((p) => p.name) } };
}

const SCHEMAS = new Map<string, ToolSchema>(TOOLS.map((t) => [t.name, toolSchema(t)]));

/** Every tool of the synthetic catalog. */
export function synthTools(): ToolSchema[] {
  return TOOLS.map((t) => SCHEMAS.get(t.name)!);
}

/** The catalog's domains. */
export function synthDomains(): string[] {
  return [...new Set(TOOLS.map((t) => t.domain))];
}

// ---------------------------------------------------------------- values

function held(split: Split, idx: number): boolean {
  const r = ((idx % 4) + 4) % 4 === 3;
  return split === 'test' ? r : !r;
}

function poolValues(name: string, split: Split): string[] {
  const pool = POOLS[name];
  if (!pool || pool.length === 0) throw new Error(`synth: unknown value pool '${name}'`);
  const vs = pool.filter((_, i) => held(split, i));
  return vs.length ? vs : pool;
}

// Generated values: besides the fixed pools, names, places, codes, paths, dates and times are
// also made up from syllables and digits, so that the training data holds many more distinct
// values than a model could memorise and copying them from the query is what pays off. A
// generated value belongs to the test split when its hash is ≡ 3 mod 4, and never equals an
// entry of any fixed pool.

const FIXED = new Set(Object.values(POOLS).flat());
/** set per synthesize() call (the generator is synchronous) */
let madeUpRate = 0.6;
const CONS = 'bdfgklmnprstvz';
const VOWELS = 'aeiou';

function syl(rng: Rng): string {
  let out = CONS[rng.int(0, CONS.length - 1)]! + VOWELS[rng.int(0, VOWELS.length - 1)]!;
  if (rng.chance(0.3)) out += CONS[rng.int(0, CONS.length - 1)]!;
  return out;
}
const cap = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);
const word = (rng: Rng, n = 2): string => Array.from({ length: n }, () => syl(rng)).join('');
const pad2 = (n: number): string => String(n).padStart(2, '0');

const GENERATORS: Record<string, (rng: Rng) => string> = {
  person: (r) => cap(word(r)),
  artist: (r) => (r.chance(0.5) ? 'The ' : '') + cap(word(r)),
  city: (r) => cap(word(r, r.chance(0.4) ? 3 : 2)),
  team: (r) => cap(word(r)) + 's',
  restaurant: (r) => cap(word(r)) + ' ' + r.pick(['Grill', 'Kitchen', 'House', 'Bar', 'Cafe']),
  movie: (r) => cap(word(r)),
  song: (r) => cap(word(r)) + ' ' + cap(word(r, 1)),
  playlist: (r) => cap(word(r)),
  keyword: (r) => word(r),
  ticker: (r) => Array.from({ length: r.int(3, 4) }, () => String.fromCharCode(65 + r.int(0, 25))).join(''),
  order: (r) => String.fromCharCode(65 + r.int(0, 25)) + String(r.int(1000, 9999)),
  street: (r) => `${r.int(1, 99)} ${cap(word(r))} ${r.pick(['St', 'Rd', 'Ave', 'Ln', 'Dr'])}`,
  file: (r) => `/${word(r)}/${word(r)}.${r.pick(['txt', 'pdf', 'csv', 'md', 'json'])}`,
  folder: (r) => `/${word(r)}/${word(r)}`,
  date: (r) => `2025-${pad2(r.int(1, 12))}-${pad2(r.int(1, 28))}`,
  time: (r) => `${pad2(r.int(6, 21))}:${r.pick(['00', '15', '30', '45'])}`,
};

function strHash(v: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < v.length; i++) h = Math.imul(h ^ v.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** A string value for a pool: from the fixed pool or (where a generator exists) made up, per split. */
function drawString(rng: Rng, pool: string, split: Split): string {
  const gen = GENERATORS[pool];
  if (gen && rng.chance(madeUpRate)) {
    for (let tries = 0; tries < 50; tries++) {
      const v = gen(rng);
      if (!FIXED.has(v) && held(split, strHash(v))) return v;
    }
  }
  return rng.pick(poolValues(pool, split));
}

function drawNumber(rng: Rng, p: { min?: number; max?: number }, kind: 'int' | 'float', split: Split): number {
  const min = p.min ?? 0;
  const max = p.max ?? 100;
  if (kind === 'int') {
    for (let tries = 0; tries < 50; tries++) {
      const v = rng.int(min, max);
      if (held(split, v)) return v;
    }
    return rng.int(min, max);
  }
  const step = max >= 1000 ? 100 : max >= 100 ? 0.5 : max >= 5 ? 0.1 : 0.01;
  const lo = Math.ceil(min / step);
  const hi = Math.floor(max / step);
  for (let tries = 0; tries < 50; tries++) {
    const k = rng.int(lo, hi);
    if (held(split, k)) return Math.round(k * step * 100) / 100;
  }
  return Math.round(rng.int(lo, hi) * step * 100) / 100;
}

function drawValue(rng: Rng, p: ParamSpec, split: Split): unknown {
  switch (p.kind) {
    case 'int':
    case 'float':
      return drawNumber(rng, p, p.kind, split);
    case 'string':
      return drawString(rng, p.pool!, split);
    case 'enum':
      return rng.pick(p.values!);
    case 'bool':
      return p.optional ? true : rng.chance(0.5);
    case 'list': {
      const k = rng.int(2, 3);
      const out: unknown[] = [];
      for (let tries = 0; out.length < k && tries < 40; tries++) {
        const v = p.items === 'string' ? drawString(rng, p.pool!, split) : drawNumber(rng, p, p.items === 'int' ? 'int' : 'float', split);
        if (!out.includes(v)) out.push(v);
      }
      return out;
    }
    case 'object': {
      const o: Record<string, unknown> = {};
      for (const fld of p.fields ?? []) o[fld.name] = drawValue(rng, fld, split);
      return o;
    }
  }
}

function render(p: ParamSpec, v: unknown): string {
  if (p.kind === 'bool') return v ? (p.yes ?? 'yes') : (p.no ?? 'no');
  if (Array.isArray(v)) {
    const xs = v.map(String);
    return xs.length <= 1 ? xs.join('') : xs.slice(0, -1).join(', ') + ' and ' + xs[xs.length - 1];
  }
  return String(v);
}

function fill(template: string, slots: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (m, k: string) => slots[k] ?? m);
}

// ---------------------------------------------------------------- one request

interface Request {
  spec: ToolSpec;
  call: ToolCall;
  truth: GroundTruthCall;
  phrase: string;
}

function makeRequest(rng: Rng, spec: ToolSpec, split: Split, avoid: readonly ToolCall[] = []): Request {
  for (let attempt = 0; ; attempt++) {
    const args: Record<string, unknown> = {};
    const accepted: Record<string, unknown[]> = {};
    const slots: Record<string, string> = {};
    let extra = '';
    const frags = split === 'test' ? 1 : 0;
    for (const p of spec.params) {
      if (p.optional && !rng.chance(0.4)) {
        accepted[p.name] = p.default === undefined || p.default === null || p.default === '' ? [''] : ['', p.default];
        continue;
      }
      const v = drawValue(rng, p, split);
      args[p.name] = v;
      // BFCL form: a dict answer lists accepted values per key
      accepted[p.name] = p.kind === 'object' ? [Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, [x]]))] : [v];
      if (p.kind === 'object') for (const fld of p.fields ?? []) slots[fld.name] = render(fld, (v as Record<string, unknown>)[fld.name]);
      slots[p.name] = render(p, v);
      if (p.optional) {
        const o = spec.o?.[p.name];
        const list = o ? o[frags]! : [];
        extra += list.length ? fill(rng.pick(list), slots) : '';
      }
    }
    const call = { name: spec.name, arguments: args };
    if (attempt < 20 && avoid.some((a) => JSON.stringify(a) === JSON.stringify(call))) continue;
    const tpl = rng.pick(split === 'test' ? spec.h : spec.t);
    return { spec, call, truth: { [spec.name]: accepted }, phrase: fill(tpl, slots) + extra };
  }
}

function frame(rng: Rng, phrase: string, split: Split): string {
  const f = rng.pick(FRAMES[split === 'test' ? 1 : 0]);
  const cap = phrase.charAt(0).toUpperCase() + phrase.slice(1);
  return f.replace('{P}', cap).replace('{p}', phrase);
}

function join(rng: Rng, phrases: string[], split: Split): string {
  const js = JOINERS[split === 'test' ? 1 : 0];
  let out = phrases[0]!;
  for (let k = 1; k < phrases.length; k++) out += rng.pick(js) + phrases[k];
  return out;
}

function toolsWith(rng: Rng, cat: readonly ToolSpec[], used: ToolSpec[], distractors: number, sameDomainFirst: boolean): ToolSchema[] {
  const names = new Set(used.map((u) => u.name));
  const pool = cat.filter((t) => !names.has(t.name));
  const same = rng.shuffle(pool.filter((t) => used.some((u) => u.domain === t.domain)));
  const other = rng.shuffle(pool.filter((t) => !used.some((u) => u.domain === t.domain)));
  const pickFrom = sameDomainFirst ? [...same, ...other] : rng.shuffle([...same, ...other]);
  const chosen = [...used, ...pickFrom.slice(0, distractors)];
  return rng.shuffle(chosen.map((t) => SCHEMAS.get(t.name)!));
}

// ---------------------------------------------------------------- samples

type Bucket = keyof typeof DEFAULT_MIX;

function pickBucket(rng: Rng, mix: Record<Bucket, number>): Bucket {
  const entries = Object.entries(mix) as Array<[Bucket, number]>;
  const total = entries.reduce((a, [, w]) => a + Math.max(0, w), 0);
  if (total <= 0) throw new Error('synth: the bucket mix has no positive weight');
  let x = rng.next() * total;
  for (const [k, w] of entries) {
    x -= Math.max(0, w);
    if (x < 0) return k;
  }
  return entries[entries.length - 1]![0];
}

function sample(id: string, category: Category, tools: ToolSchema[], messages: Message[], truth: GroundTruthCall[]): Sample {
  return { id, category, tools, messages, groundTruth: truth };
}

function makeSample(rng: Rng, cat: readonly ToolSpec[], id: string, bucket: Bucket, split: Split): Sample {
  switch (bucket) {
    case 'simple': {
      const spec = rng.pick(cat);
      const r = makeRequest(rng, spec, split);
      return sample(id, 'simple', [SCHEMAS.get(spec.name)!], [{ role: 'user', content: frame(rng, r.phrase, split) }, { role: 'assistant', toolCalls: [r.call] }], [r.truth]);
    }
    case 'multiple': {
      const spec = rng.pick(cat);
      const r = makeRequest(rng, spec, split);
      const tools = toolsWith(rng, cat, [spec], rng.int(1, 3), rng.chance(0.6));
      return sample(id, 'multiple', tools, [{ role: 'user', content: frame(rng, r.phrase, split) }, { role: 'assistant', toolCalls: [r.call] }], [r.truth]);
    }
    case 'parallel': {
      const spec = rng.pick(cat);
      const k = rng.chance(0.75) ? 2 : 3;
      const reqs: Request[] = [];
      for (let j = 0; j < k; j++) reqs.push(makeRequest(rng, spec, split, reqs.map((r) => r.call)));
      return sample(
        id,
        'parallel',
        [SCHEMAS.get(spec.name)!],
        [{ role: 'user', content: frame(rng, join(rng, reqs.map((r) => r.phrase), split), split) }, { role: 'assistant', toolCalls: reqs.map((r) => r.call) }],
        reqs.map((r) => r.truth),
      );
    }
    case 'parallel_multiple': {
      const k = rng.chance(0.75) ? 2 : 3;
      const specs = rng.shuffle([...cat]).slice(0, k);
      const reqs = specs.map((s) => makeRequest(rng, s, split));
      const tools = toolsWith(rng, cat, specs, rng.int(0, 1), true);
      return sample(
        id,
        'parallel_multiple',
        tools,
        [{ role: 'user', content: frame(rng, join(rng, reqs.map((r) => r.phrase), split), split) }, { role: 'assistant', toolCalls: reqs.map((r) => r.call) }],
        reqs.map((r) => r.truth),
      );
    }
    case 'irrelevance': {
      let query: string;
      let avoidDomain: string | undefined;
      if (rng.chance(0.7)) {
        const spec = rng.pick(cat);
        avoidDomain = spec.domain;
        query = frame(rng, makeRequest(rng, spec, split).phrase, split);
      } else query = rng.pick(CHITCHAT[split === 'test' ? 1 : 0]);
      const pool = rng.shuffle(cat.filter((t) => t.domain !== avoidDomain));
      const tools = pool.slice(0, rng.int(1, 3)).map((t) => SCHEMAS.get(t.name)!);
      return sample(id, 'irrelevance', tools, [{ role: 'user', content: query }, { role: 'assistant', content: NO_TOOL_ANSWER }], []);
    }
    case 'multi_turn': {
      // the follow-up changes the first required string or number of the first call
      const candidates = cat.filter((t) => t.params.some((p) => !p.optional && (p.kind === 'string' || p.kind === 'int' || p.kind === 'float')));
      const spec = rng.pick(candidates);
      const first = makeRequest(rng, spec, split);
      const p = spec.params.find((x) => !x.optional && (x.kind === 'string' || x.kind === 'int' || x.kind === 'float'))!;
      let v = drawValue(rng, p, split);
      for (let tries = 0; tries < 20 && v === first.call.arguments[p.name]; tries++) v = drawValue(rng, p, split);
      const secondArgs = { ...first.call.arguments, [p.name]: v };
      const secondTruth: Record<string, unknown[]> = { ...first.truth[spec.name]!, [p.name]: [v] };
      const tools = toolsWith(rng, cat, [spec], rng.int(0, 2), false);
      const follow = fill(rng.pick(FOLLOWUPS[split === 'test' ? 1 : 0]), { v: render(p, v) });
      const messages: Message[] = [
        { role: 'user', content: frame(rng, first.phrase, split) },
        { role: 'assistant', toolCalls: [first.call] },
        { role: 'tool', name: spec.name, content: spec.result ?? '{"status": "ok"}' },
        { role: 'assistant', content: 'Done.' },
        { role: 'user', content: follow },
        { role: 'assistant', toolCalls: [{ name: spec.name, arguments: secondArgs }] },
      ];
      return sample(id, 'multi_turn', tools, messages, [{ [spec.name]: secondTruth }]);
    }
  }
}

/**
 * Makes n samples of the given split, deterministically from the seed. Buckets are drawn by
 * the mix weights; the ground truth of each sample lists the accepted values (an optional
 * parameter the query does not mention accepts "" (absent) and its default).
 */
export function synthesize(opts: SynthOptions): Sample[] {
  const n = opts.n;
  if (!Number.isInteger(n) || n < 0) throw new Error(`synth: n must be a non-negative integer, got ${String(n)}`);
  const seed = opts.seed ?? 1;
  if (!Number.isFinite(seed)) throw new Error(`synth: seed must be a number, got ${String(seed)}`);
  const split: Split = opts.split ?? 'train';
  if (split !== 'train' && split !== 'test') throw new Error(`synth: split must be 'train' or 'test', got '${String(split)}'`);
  const mix = { ...DEFAULT_MIX, ...(opts.mix ?? {}) };
  const cat = catalog(opts.tools);
  const rate = opts.madeUp ?? 0.6;
  if (!(rate >= 0 && rate <= 1)) throw new Error(`synth: madeUp must be a probability, got ${String(opts.madeUp)}`);
  const out: Sample[] = [];
  const splitTag = split === 'test' ? 2 : 1;
  madeUpRate = rate;
  try {
    for (let k = 0; k < n; k++) {
      const rng = new Rng(hash32(Math.floor(seed) >>> 0, splitTag, k));
      const bucket = pickBucket(rng, mix);
      out.push(makeSample(rng, cat, `synth-${split}-${seed}-${k}`, bucket, split));
    }
  } finally {
    madeUpRate = 0.6;
  }
  return out;
}

/** The first k tools of the catalog taken round-robin over the domains (all when k is undefined). */
function catalog(k: number | undefined): ToolSpec[] {
  if (k === undefined) return TOOLS;
  if (!Number.isInteger(k) || k < 2 || k > TOOLS.length) throw new Error(`synth: tools must be an integer from 2 to ${TOOLS.length}, got ${String(k)}`);
  const byDomain = new Map<string, ToolSpec[]>();
  for (const t of TOOLS) {
    if (!byDomain.has(t.domain)) byDomain.set(t.domain, []);
    byDomain.get(t.domain)!.push(t);
  }
  const out: ToolSpec[] = [];
  for (let round = 0; out.length < k; round++)
    for (const list of byDomain.values()) if (round < list.length && out.length < k) out.push(list[round]!);
  return out;
}

/**
 * Gives the tools of a share of the samples made-up names (the same in the tool list, the
 * calls, the tool results and the ground truth), so that the function name can only be read
 * from the tool list: a model trained from scratch otherwise learns one phrasing → name
 * mapping per tool and, on a phrasing it has never seen, writes a tool that is not listed.
 * Deterministic in (seed, sample id); `rate` 0 returns the samples unchanged.
 */
export function renameTools(samples: readonly Sample[], rate: number, seed = 1): Sample[] {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`synth: the renaming rate must be a probability, got ${String(rate)}`);
  const taken = new Set(TOOLS.map((t) => t.name));
  return samples.map((s) => {
    const rng = new Rng(hash32(Math.floor(seed) >>> 0, 0x5ea1, strHash(s.id)));
    if (!rng.chance(rate) || s.tools.length === 0) return s;
    const alias = new Map<string, string>();
    for (const t of s.tools) {
      let a = '';
      for (let tries = 0; tries < 20 && (!a || taken.has(a) || [...alias.values()].includes(a)); tries++) a = `${word(rng, rng.int(1, 2))}_${word(rng, rng.int(1, 2))}`;
      alias.set(t.name, a);
    }
    const to = (n: string): string => alias.get(n) ?? n;
    return {
      ...s,
      tools: s.tools.map((t) => ({ ...t, name: to(t.name) })),
      messages: s.messages.map((m) =>
        m.role === 'assistant' && m.toolCalls ? { ...m, toolCalls: m.toolCalls.map((c) => ({ ...c, name: to(c.name) })) } : m.role === 'tool' && m.name ? { ...m, name: to(m.name) } : m,
      ),
      groundTruth: s.groundTruth?.map((g) => Object.fromEntries(Object.entries(g).map(([k, v]) => [to(k), v]))),
    };
  });
}

/**
 * Scrambled copies of texts for the demo's copy stage: each word is replaced, with
 * probability `rate`, by another word of the texts or by a made-up word or number, so that
 * repeating the text can only be done by copying it (its words no longer follow a phrasing
 * the model can recall). Made-up words and numbers are drawn from the training split only
 * (never a held-out value). Deterministic in the seed.
 */
export function scrambleTexts(texts: readonly string[], rate: number, seed = 1): string[] {
  if (!(rate >= 0 && rate <= 1)) throw new Error(`synth: the scrambling rate must be a probability, got ${String(rate)}`);
  const rng = new Rng(hash32(Math.floor(seed) >>> 0, 0x5c4a));
  const words = [...new Set(texts.flatMap((t) => t.split(/\s+/).filter(Boolean)))];
  const fresh = (): string => {
    for (let tries = 0; tries < 50; tries++) {
      let v: string;
      if (rng.chance(0.25)) v = String(rng.int(0, rng.chance(0.5) ? 99 : 9999));
      else {
        const w = word(rng, rng.int(1, 3));
        v = rng.chance(0.5) ? cap(w) : w;
      }
      const train = /^\d+$/.test(v) ? held('train', Number(v)) : held('train', strHash(v)) && !FIXED.has(v);
      if (train) return v;
    }
    return rng.pick(words);
  };
  return texts.map((t) =>
    t
      .split(/\s+/)
      .filter(Boolean)
      .map((w) => (rng.chance(rate) ? (rng.chance(0.5) ? fresh() : rng.pick(words)) : w))
      .join(' '),
  );
}

/** every word of the argument values of a sample's calls (strings, numbers, lists, objects) */
function valueWords(s: Sample): Set<string> {
  const out = new Set<string>();
  const visit = (v: unknown): void => {
    if (typeof v === 'string' || typeof v === 'number') for (const w of String(v).split(/\s+/)) out.add(w);
    else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  for (const m of s.messages) if (m.role === 'assistant' && m.toolCalls) for (const c of m.toolCalls) visit(c.arguments);
  return out;
}

/**
 * Noisy phrasings for the warm-up: in a `share` of the samples, each word of the user turns
 * that is not part of an argument value is replaced, with probability `rate`, by another
 * phrasing word of the training samples (never a value). A model trained from scratch on a
 * few phrasings per tool otherwise locates a value by the words around it and, on a phrasing
 * it has never seen, copies a phrasing word or cuts the value short; the noise teaches it to
 * find values among unfamiliar words. Deterministic in (seed, sample id); the samples'
 * calls are unchanged.
 */
export function noisePhrasing(samples: readonly Sample[], share: number, rate: number, seed = 1): Sample[] {
  for (const [k, v] of [['share', share], ['rate', rate]] as const) if (!(v >= 0 && v <= 1)) throw new Error(`synth: the phrasing noise ${k} must be a probability, got ${String(v)}`);
  const values = new Set<string>();
  for (const s of samples) for (const w of valueWords(s)) values.add(w);
  const words = [
    ...new Set(samples.flatMap((s) => s.messages.flatMap((m) => (m.role === 'user' && typeof m.content === 'string' ? m.content.split(/\s+/) : [])))),
  ].filter((w) => w && !values.has(w) && !/\d/.test(w));
  if (words.length === 0) return [...samples];
  return samples.map((s) => {
    const rng = new Rng(hash32(Math.floor(seed) >>> 0, 0x9015e, strHash(s.id)));
    if (!rng.chance(share)) return s;
    const keep = valueWords(s);
    const noisy = (t: string): string =>
      t
        .split(/\s+/)
        .map((w) => (w && !/\d/.test(w) && !keep.has(w) && !keep.has(w.replace(/^[("']+|[.,:;?!)"']+$/g, '')) && rng.chance(rate) ? rng.pick(words) : w))
        .join(' ');
    return { ...s, messages: s.messages.map((m) => (m.role === 'user' && typeof m.content === 'string' ? { ...m, content: noisy(m.content) } : m)) };
  });
}
