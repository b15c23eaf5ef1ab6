import { afterAll, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { loadSamples, synthDomains, synthesize, synthTools } from '../../src/data/index.js';
import { renameTools, scrambleTexts } from '../../src/data/synth.js';
import type { JsonSchema, Sample } from '../../src/data/sample.js';
import { FRAMES, POOLS, TOOLS } from '../../src/data/synth-catalog.js';
import { checkAnswer, formatHermesCalls, formatPythonCalls, validateCall } from '../../src/toolcall/index.js';
import { register as registerData } from '../../src/cli/commands/data.js';

const tmp = mkdtempSync(path.join(tmpdir(), 'itool-synth-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function answerOf(s: Sample): string {
  const last = s.messages[s.messages.length - 1]!;
  return last.role === 'assistant' && last.toolCalls ? formatHermesCalls(last.toolCalls) : last.role === 'assistant' ? (last.content ?? '') : '';
}

function userText(s: Sample): string {
  return s.messages.filter((m) => m.role === 'user').map((m) => m.content).join(' ');
}

describe('synthetic generator', () => {
  const train = synthesize({ n: 3000, seed: 1 });
  const test = synthesize({ n: 1000, seed: 1, split: 'test' });

  it('has at least 40 tools over at least 10 domains, with every argument kind', () => {
    expect(synthTools().length).toBeGreaterThanOrEqual(40);
    expect(synthDomains().length).toBeGreaterThanOrEqual(10);
    const kinds = new Set<string>();
    const visit = (p: JsonSchema, optional: boolean) => {
      const t = String(p.type);
      kinds.add(p.enum ? 'enum' : t);
      if (optional && p.default !== undefined) kinds.add('optional-with-default');
      if (t === 'object') kinds.add('nested-object');
    };
    for (const t of synthTools()) for (const [k, p] of Object.entries(t.parameters.properties ?? {})) visit(p, !(t.parameters.required ?? []).includes(k));
    for (const k of ['integer', 'number', 'string', 'enum', 'boolean', 'array', 'nested-object', 'optional-with-default']) expect(kinds, k).toContain(k);
    for (const t of TOOLS) {
      expect(t.t.length, t.name).toBeGreaterThanOrEqual(3);
      expect(t.h.length, t.name).toBeGreaterThanOrEqual(1);
    }
  });

  it('can use a smaller catalog, round-robin over the domains', () => {
    const small = synthesize({ n: 400, seed: 3, tools: 10 });
    const used = new Set(small.flatMap((s) => s.tools.map((t) => t.name)));
    expect(used.size).toBe(10);
    const domainOf = new Map(TOOLS.map((t) => [t.name, t.domain]));
    expect(new Set([...used].map((n) => domainOf.get(n))).size).toBe(10);
    for (const s of small) expect(checkAnswer(s, answerOf(s)).valid, s.id).toBe(true);
    expect(() => synthesize({ n: 1, tools: 1 })).toThrow(/tools must be/);
    // fixed pools only: every string value comes from the catalog's pools
    const fixed = synthesize({ n: 200, seed: 3, madeUp: 0 });
    const pools = new Set(Object.values(POOLS).flat());
    for (const s of fixed) {
      const last = s.messages[s.messages.length - 1]!;
      if (last.role !== 'assistant' || !last.toolCalls) continue;
      for (const c of last.toolCalls) {
        const props = s.tools.find((t) => t.name === c.name)!.parameters.properties!;
        for (const [k, v] of Object.entries(c.arguments)) if (typeof v === 'string' && !props[k]!.enum) expect(pools.has(v), v).toBe(true);
      }
    }
    expect(() => synthesize({ n: 1, madeUp: 2 })).toThrow(/madeUp/);
  });

  it('is deterministic per seed and split, and sample i does not depend on n', () => {
    expect(synthesize({ n: 50, seed: 1 })).toEqual(train.slice(0, 50));
    expect(synthesize({ n: 20, seed: 2 })).not.toEqual(train.slice(0, 20));
    expect(new Set(train.map((s) => s.id)).size).toBe(train.length);
    expect(() => synthesize({ n: -1 })).toThrow(/n must be/);
    expect(() => synthesize({ n: 1, split: 'dev' as 'train' })).toThrow(/split/);
  });

  it('covers every bucket, and every answer is valid for its tools and judged correct', () => {
    for (const set of [train, test]) {
      const cats = new Set(set.map((s) => s.category));
      for (const c of ['simple', 'multiple', 'parallel', 'parallel_multiple', 'irrelevance', 'multi_turn']) expect(cats).toContain(c);
      for (const s of set) {
        const last = s.messages[s.messages.length - 1]!;
        expect(last.role).toBe('assistant');
        if (last.role === 'assistant' && last.toolCalls) for (const c of last.toolCalls) expect(validateCall(s.tools, c), `${s.id} ${c.name}`).toEqual({ valid: true, errors: [] });
        expect(checkAnswer(s, answerOf(s)).valid, s.id).toBe(true);
        if (last.role === 'assistant' && last.toolCalls) expect(checkAnswer(s, formatPythonCalls(last.toolCalls)).valid, s.id).toBe(true);
      }
      const irr = set.filter((s) => s.category === 'irrelevance');
      for (const s of irr) expect(s.groundTruth).toEqual([]);
    }
  });

  it('keeps answers short and each query names its values', () => {
    const lens = train.map((s) => answerOf(s).length).sort((a, b) => a - b);
    expect(lens[Math.floor(lens.length / 2)]!).toBeLessThan(160);
    for (const s of train.filter((x) => x.category === 'simple')) {
      const last = s.messages[s.messages.length - 1]!;
      if (last.role !== 'assistant' || !last.toolCalls) continue;
      for (const v of Object.values(last.toolCalls[0]!.arguments)) if (typeof v === 'string' && v !== '') expect(userText(s)).toContain(v);
    }
  });

  it('the test split uses held-out phrasings and values', () => {
    const trainFrames = new Set(FRAMES[0].map((f) => f.replace(/\{[pP]\}.*$/, '')).filter((x) => x.length > 2));
    const testFrames = FRAMES[1].map((f) => f.replace(/\{[pP]\}.*$/, ''));
    for (const f of testFrames) expect(trainFrames.has(f)).toBe(false);
    // every test query starts with a held-out frame (or is held-out chit-chat / follow-up)
    const starts = test.filter((s) => s.category !== 'irrelevance').map((s) => s.messages[0]!.role === 'user' && testFrames.some((f) => (s.messages[0] as { content: string }).content.startsWith(f)));
    expect(starts.every(Boolean)).toBe(true);
    // string values seen in test answers never appear in train answers (enums aside)
    const strings = (set: Sample[]) => {
      const out = new Set<string>();
      for (const s of set) {
        const last = s.messages[s.messages.length - 1]!;
        if (last.role !== 'assistant' || !last.toolCalls) continue;
        for (const c of last.toolCalls) {
          const props = s.tools.find((t) => t.name === c.name)!.parameters.properties!;
          for (const [k, v] of Object.entries(c.arguments)) if (typeof v === 'string' && !props[k]!.enum) out.add(v);
        }
      }
      return out;
    };
    const tr = strings(train);
    const te = strings(test);
    expect(te.size).toBeGreaterThan(20);
    for (const v of te) expect(tr.has(v), v).toBe(false);
    // no test query equals a train query
    const trq = new Set(train.map(userText));
    expect(test.filter((s) => trq.has(userText(s))).length).toBe(0);
  });

  it('`itool data synth` writes ShareGPT/ToolACE JSONL that loads back with the same calls', async () => {
    const out = path.join(tmp, 'synth.jsonl');
    const program = new Command();
    program.exitOverride();
    registerData(program);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await program.parseAsync(['node', 'itool', 'data', 'synth', '--n', '300', '--seed', '1', '--out', out]);
    } finally {
      err.mockRestore();
    }
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines.length).toBe(300);
    const row = JSON.parse(lines[1]!) as { system: string; conversations: Array<{ from: string; value: string }> };
    expect(row.system).toContain('Here is a list of functions in JSON format');
    expect(row.conversations[0]!.from).toBe('user');
    const back = loadSamples(out);
    const orig = synthesize({ n: 300, seed: 1 });
    back.forEach((s, i) => {
      expect(s.id).toBe(orig[i]!.id);
      expect(s.category).toBe(orig[i]!.category);
      // ShareGPT tool turns carry no function name
      expect(s.messages).toEqual(orig[i]!.messages.map((m) => (m.role === 'tool' ? { role: 'tool', content: m.content } : m)));
      expect(s.groundTruth).toEqual(orig[i]!.groundTruth);
    });
  });

  it('renameTools gives a share of the samples made-up tool names, consistently in tools, calls, tool turns and ground truth', () => {
    const catalogNames = new Set(TOOLS.map((t) => t.name));
    expect(renameTools(train, 0, 1)).toEqual(train);
    const all = renameTools(train, 1, 1);
    expect(renameTools(train, 1, 1)).toEqual(all);
    all.forEach((r, i) => {
      const o = train[i]!;
      expect(r.tools.length).toBe(o.tools.length);
      const names = r.tools.map((t) => t.name);
      expect(new Set(names).size).toBe(names.length);
      for (const n of names) expect(catalogNames.has(n), n).toBe(false);
      // the same schemas apart from the name, the same user turns and arguments
      expect(r.tools.map((t) => ({ ...t, name: '' }))).toEqual(o.tools.map((t) => ({ ...t, name: '' })));
      expect(r.messages.filter((m) => m.role === 'user')).toEqual(o.messages.filter((m) => m.role === 'user'));
      const rename = new Map(o.tools.map((t, k) => [t.name, r.tools[k]!.name]));
      r.messages.forEach((m, k) => {
        const om = o.messages[k]!;
        if (m.role === 'assistant' && m.toolCalls) expect(m.toolCalls).toEqual((om as typeof m).toolCalls!.map((c) => ({ ...c, name: rename.get(c.name) })));
        if (m.role === 'tool') expect(m.name).toBe(rename.get((om as typeof m).name!));
      });
      // the renamed answer is still judged correct against the renamed ground truth
      expect(checkAnswer(r, answerOf(r)).valid, r.id).toBe(true);
    });
    const half = renameTools(train, 0.5, 1);
    const changed = half.filter((r, i) => r !== train[i]).length / train.length;
    expect(changed).toBeGreaterThan(0.4);
    expect(changed).toBeLessThan(0.6);
    expect(() => renameTools(train, 1.5, 1)).toThrow(/renaming rate must be a probability/);
  });

  it('scrambleTexts replaces about the given share of words and makes up no held-out value', () => {
    const texts = train.map(userText);
    expect(scrambleTexts(texts, 0, 1)).toEqual(texts);
    const sc = scrambleTexts(texts, 0.5, 1);
    expect(scrambleTexts(texts, 0.5, 1)).toEqual(sc);
    let words = 0;
    let same = 0;
    sc.forEach((t, i) => {
      const a = t.split(' ');
      const b = texts[i]!.split(/\s+/).filter(Boolean);
      expect(a.length).toBe(b.length);
      words += a.length;
      same += a.filter((w, k) => w === b[k]).length;
    });
    // half the words replaced, a few of them by the same word
    expect(1 - same / words).toBeGreaterThan(0.4);
    expect(1 - same / words).toBeLessThan(0.55);
    // a word of the scrambled texts that is not in the originals is made up from the training split
    const orig = new Set(texts.flatMap((t) => t.split(/\s+/)));
    const testWords = new Set(test.flatMap((s) => s.messages.flatMap((m) => (m.role === 'assistant' && m.toolCalls ? m.toolCalls.flatMap((c) => Object.values(c.arguments)) : []))).filter((v) => typeof v === 'string' && !v.includes(' ')) as string[]);
    let fresh = 0;
    for (const t of sc)
      for (const w of t.split(' ')) {
        if (orig.has(w)) continue;
        fresh++;
        expect(testWords.has(w), w).toBe(false);
        if (/^\d+$/.test(w)) expect(Number(w) % 4, w).not.toBe(3);
      }
    expect(fresh).toBeGreaterThan(1000);
    expect(() => scrambleTexts(texts, -0.1, 1)).toThrow(/scrambling rate must be a probability/);
  });
});
