// Constrained decoding of the function name (src/pipeline/constrain-names.ts), against a
// stand-in model whose next-token log-probabilities are a fixed table of the last token
// (a bigram), so every expected token and probability is computed here by hand.
import { describe, expect, it } from 'vitest';
import type { GenerateOptions, KvCache, Model, SampleOptions, StepOutput } from '../../src/engine/model-types.js';
import { allowedNext, compactToolNames, constrainNames } from '../../src/pipeline/constrain-names.js';
import { DEMO_TEMPLATE } from '../../src/pipeline/demo.js';
import { ChatTemplate } from '../../src/text/template.js';

// the vocabulary: call syntax pieces, name pieces, an end token
const PIECES = ['<tool_call>', '\n', '{"', 'name', '":', ' "', 'ab', 'c', 'x', 'y', '",', '<end>', 'a', 'P'];
const id = (p: string) => {
  const i = PIECES.indexOf(p);
  if (i < 0) throw new Error(p);
  return i;
};
const V = PIECES.length;
const decode = (ids: readonly number[]) => ids.map((i) => PIECES[i]).join('');
const OPENING = '<tool_call>\n{"name": "';

/** log-probabilities of the next token after `last` (a fixed table) */
function table(last: number): Float64Array {
  const logits = new Float64Array(V).fill(-4);
  const next: Record<string, Record<string, number>> = {
    '<tool_call>': { '\n': 3 },
    '\n': { '{"': 3 },
    '{"': { name: 3 },
    name: { '":': 3 },
    '":': { ' "': 3 },
    // the model prefers the unlisted name "xy"; "abc" is second; "a" (a prefix of "abc") third
    ' "': { x: 2, ab: 1.5, a: 0.5, '",': -1 },
    x: { y: 3 },
    y: { '",': 3 },
    ab: { c: 2, '",': 1 },
    a: { P: 2 },
    c: { '",': 3 },
    '",': { '<end>': 3 },
    P: { '<end>': 3 },
  };
  for (const [p, l] of Object.entries(next[PIECES[last]!] ?? { '<end>': 3 })) logits[id(p)] = l;
  let m = -Infinity;
  for (const l of logits) m = Math.max(m, l);
  let z = 0;
  for (const l of logits) z += Math.exp(l - m);
  return logits.map((l) => l - m - Math.log(z));
}

class Cache implements KvCache {
  constructor(public tokens: number[]) {}
  get length() {
    return this.tokens.length;
  }
  get blocks() {
    return 1;
  }
  fork(): KvCache {
    return new Cache([...this.tokens]);
  }
  truncate(n: number) {
    this.tokens.length = n;
  }
  dispose() {}
}

/** greedy, or a draw at the temperature from a seeded generator (the seed and the cache's length) */
function standIn(): Model {
  const m = {
    async sampleNext(caches: readonly KvCache[], opts: SampleOptions = {}): Promise<StepOutput> {
      const T = opts.temperature ?? 1;
      const tokens = new Int32Array(caches.length);
      const logprobs = new Float32Array(caches.length);
      const sampled = new Float32Array(caches.length);
      caches.forEach((c, i) => {
        const lp = table((c as Cache).tokens.at(-1)!);
        let b = 0;
        for (let t = 1; t < V; t++) if (lp[t]! > lp[b]!) b = t;
        if (T > 0) {
          const w = Array.from(lp, (l) => Math.exp(l / T));
          const z = w.reduce((a, x) => a + x, 0);
          // a 32-bit LCG step on (seed, length, row) -> [0, 1)
          const u = ((Math.imul((opts.seed ?? 0) * 7919 + (c as Cache).tokens.length * 104729 + i * 31, 1664525) + 1013904223) >>> 0) / 4294967296;
          let acc = 0;
          for (let t = 0; t < V; t++) {
            acc += w[t]! / z;
            b = t;
            if (acc > u) break;
          }
          sampled[i] = Math.log(w[b]! / z);
        }
        tokens[i] = b;
        logprobs[i] = lp[b]!;
        (c as Cache).tokens.push(b);
      });
      return { tokens, logprobs, sampledLogprobs: sampled };
    },
    async nextLogprobs(caches: readonly KvCache[]) {
      const out = new Float32Array(caches.length * V);
      caches.forEach((c, i) => out.set(table((c as Cache).tokens.at(-1)!), i * V));
      return out;
    },
    async extend(c: KvCache, toks: readonly number[]) {
      (c as Cache).tokens.push(...toks);
    },
    async generate(caches: readonly KvCache[], o: GenerateOptions) {
      return Promise.all(
        caches.map(async (c) => {
          const tokens: number[] = [];
          const logprobs: number[] = [];
          while (tokens.length < o.maxTokens) {
            const s = await m.sampleNext([c], { temperature: 0 });
            tokens.push(s.tokens[0]!);
            logprobs.push(s.logprobs[0]!);
            if (o.stopTokens?.includes(s.tokens[0]!)) return { tokens, logprobs, finishReason: 'stop' as const };
          }
          return { tokens, logprobs, finishReason: 'length' as const };
        }),
      );
    },
    numParameters: 7,
  };
  return m as unknown as Model;
}

// the prompt: a "Tools:" list rendered as the demo's template writes it, encoded as one piece
// per character is not possible here, so the stand-in's prompt is the list's text in one token
function withPrompt(names: string[]): { prompt: string; opts: Parameters<typeof constrainNames>[1] } {
  const prompt = `<|im_start|>system\nTools:\n${names.map((n) => `${n}(a: string) - a tool`).join('\n')}<|im_end|>\n`;
  return { prompt, opts: { decode: (ids) => ids.map((i) => (i === -1 ? prompt : PIECES[i])).join(''), vocabSize: V, opening: OPENING, marker: '<tool_call>', namesOf: compactToolNames } };
}

describe('allowedNext', () => {
  const pieces = ['"', 'get', '_w', 'eather', 'x', '",', ' "', ' "get'];
  it('inside the opening only tokens that stay in it or start a listed name are allowed', () => {
    // after '<tool_call>\n{"name":' the next text ' "' stays in the opening; ' "get' starts the listed name, so all are allowed
    expect(allowedNext('<tool_call>\n{"name":', OPENING, ['get_weather'], pieces)).toBeNull();
    // with only 'weather' listed, ' "get' would write a name no listed one starts with
    expect([...allowedNext('<tool_call>\n{"name":', OPENING, ['weather'], pieces)!]).toEqual([1, 1, 1, 1, 1, 1, 1, 0]);
    const m2 = allowedNext('<tool_call>\n{"name": "', OPENING, ['get_weather'], pieces)!;
    expect([...m2]).toEqual([0, 1, 0, 0, 0, 0, 0, 0]);
    const m3 = allowedNext('<tool_call>\n{"name": "get_w', OPENING, ['get_weather', 'get_wind'], pieces)!;
    expect([...m3]).toEqual([0, 0, 0, 1, 0, 0, 0, 0]);
  });
  it('the closing quote only after a whole listed name; free once the name is finished or the syntax left', () => {
    const m = allowedNext('<tool_call>\n{"name": "get', OPENING, ['get', 'get_weather'], pieces)!;
    expect([...m]).toEqual([1, 0, 1, 0, 0, 1, 0, 0]);
    expect(allowedNext('<tool_call>\n{"name": "get_weather", "', OPENING, ['get_weather'], pieces)).toBeNull();
    expect(allowedNext('<tool_call>\n{"nome', OPENING, ['get_weather'], pieces)).toBeNull();
    expect(allowedNext('<tool_call>\n{"name": "', OPENING, [], pieces)).toBeNull();
  });
});

describe('compactToolNames', () => {
  it("reads the names of the demo template's tool list", () => {
    const tpl = new ChatTemplate(DEMO_TEMPLATE, 'demo');
    const tools = ['get_weather', 'send_email'].map((name) => ({ name, description: 'x (y)', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }));
    const text = tpl.render([{ role: 'user', content: 'Weather in Rome (today)?' }], { tools, addGenerationPrompt: true });
    expect(compactToolNames(text)).toEqual(['get_weather', 'send_email']);
    expect(compactToolNames('<|im_start|>user\nhi<|im_end|>\n')).toEqual([]);
  });
});

describe('constrainNames', () => {
  const start = [-1, id('<tool_call>')];
  it('greedy: the best listed name instead of the unlisted one the model prefers; raw log-probabilities reported', async () => {
    const free = await standIn().generate([new Cache([...start])], { maxTokens: 20, temperature: 0, stopTokens: [id('<end>')] });
    expect(decode(free[0]!.tokens)).toBe('\n{"name": "xy",<end>');
    const { opts } = withPrompt(['abc', 'other']);
    const m = constrainNames(standIn(), opts);
    const g = await m.generate([new Cache([...start])], { maxTokens: 20, temperature: 0, stopTokens: [id('<end>')] });
    expect(decode(g[0]!.tokens)).toBe('\n{"name": "abc",<end>');
    // the log-probability of 'ab' after ' "' is the model's own (unrenormalised)
    expect(g[0]!.logprobs[5]).toBeCloseTo(table(id(' "'))[id('ab')]!, 5);
    // a list with the model's own choice changes nothing
    const same = await constrainNames(standIn(), withPrompt(['xy']).opts).generate([new Cache([...start])], { maxTokens: 20, temperature: 0, stopTokens: [id('<end>')] });
    expect(same[0]!.tokens).toEqual(free[0]!.tokens);
    expect(same[0]!.logprobs).toEqual(free[0]!.logprobs);
  });

  it('sampling: the listed names in proportion to the model probabilities renormalised over them', async () => {
    // names 'abc' and 'aP'... only 'ab' (-> abc) and 'a' (-> a, a prefix of 'aP') may follow ' "'
    const { opts } = withPrompt(['abc', 'aP']);
    const m = constrainNames(standIn(), opts);
    const T = 0.7;
    const lp = table(id(' "'));
    const w = [Math.exp(lp[id('ab')]! / T), Math.exp(lp[id('a')]! / T)];
    const pAb = w[0]! / (w[0]! + w[1]!);
    const N = 3000;
    let ab = 0;
    for (let s = 0; s < N; s++) {
      const c = new Cache([-1, id('<tool_call>'), id('\n'), id('{"'), id('name'), id('":'), id(' "')]);
      const out = await m.sampleNext([c], { temperature: T, seed: s });
      const t = out.tokens[0]!;
      expect([id('ab'), id('a')]).toContain(t);
      if (t === id('ab')) ab++;
      // a kept draw reports the model's own sampling log-probability, a redrawn one the renormalised one
      const own = Math.log(Math.exp(lp[t]! / T) / Array.from(lp, (l) => Math.exp(l / T)).reduce((a, x) => a + x, 0));
      const renorm = Math.log(t === id('ab') ? pAb : 1 - pAb);
      expect(Math.min(Math.abs(out.sampledLogprobs[0]! - own), Math.abs(out.sampledLogprobs[0]! - renorm))).toBeLessThan(1e-5);
      expect(out.logprobs[0]).toBeCloseTo(lp[t]!, 5);
      expect(c.tokens.at(-1)).toBe(t);
    }
    const sd = Math.sqrt((pAb * (1 - pAb)) / N);
    expect(Math.abs(ab / N - pAb)).toBeLessThan(4 * sd);
  });

  it('a stop callback truncates the row; top-k on a constrained row is refused; the model keeps its repetition penalty', async () => {
    const { opts } = withPrompt(['abc']);
    const m = constrainNames(standIn(), opts);
    const c = new Cache([...start]);
    const g = await m.generate([c], { maxTokens: 20, temperature: 0, stop: (_row, gen) => (gen.length === 4 ? 2 : undefined) });
    expect(decode(g[0]!.tokens)).toBe('\n{"');
    expect(c.tokens.length).toBe(start.length + 2);
    const at = new Cache([-1, id('<tool_call>'), id('\n'), id('{"'), id('name'), id('":'), id(' "')]);
    await expect(m.sampleNext([at], { temperature: 1, topK: 5 })).rejects.toThrow(/top-k/);
    // the stand-in has no penalty flag; a model's own flag passes through the wrapper
    expect((m as unknown as { supportsRepetitionPenalty?: boolean }).supportsRepetitionPenalty).toBeUndefined();
    const flagged = constrainNames(Object.assign(standIn(), { supportsRepetitionPenalty: true }), opts);
    expect((flagged as unknown as { supportsRepetitionPenalty: boolean }).supportsRepetitionPenalty).toBe(true);
    // with a penalty (ignored by the stand-in's sampler) a forbidden draw is redrawn by the model until allowed
    for (let s = 0; s < 200; s++) {
      const c = new Cache([-1, id('<tool_call>'), id('\n'), id('{"'), id('name'), id('":'), id(' "')]);
      const out = await m.sampleNext([c], { temperature: 1, seed: s, repetitionPenalty: 1.3 });
      expect([id('ab'), id('a')]).toContain(out.tokens[0]);
      expect(c.tokens.length).toBe(8);
    }
    expect(m.numParameters).toBe(7);
  });
});

describe('the demo with constrainNames (tiny sizes, end to end)', () => {
  it.skipIf(!!process.env.ITOOL_ASAN)('every call of every arm names a listed tool; the search and both training phases run through the wrapper (skipped under ASan: compute-heavy)', async () => {
    const { mkdtempSync, readFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { synthesize } = await import('../../src/data/synth.js');
    const { createModel, loadModel } = await import('../../src/engine/model.js');
    const { runDemo } = await import('../../src/pipeline/demo.js');
    const out = mkdtempSync(join(tmpdir(), 'itool-demo-names-'));
    try {
      const override = {
        trainSamples: 240,
        testSamples: 24,
        copyStage: undefined,
        constrainNames: true,
        vocabSize: 768,
        model: { hiddenSize: 48, intermediateSize: 96, numLayers: 2, numHeads: 2, numKvHeads: 1 },
        pipeline: {
          iterations: 1,
          selectRatio: 0.3,
          maxSelected: 4,
          sft: { lr: 1e-2, epochs: 6, batchTokens: 2048, saveEvery: 0, maxLength: 512 },
          preference: { loss: 'simpo', lr: 2e-4, epochs: 1, beta: 2.5, gamma: 0.5, batchPairs: 4, saveEvery: 0 },
          search: { numActions: 2, temperature: 1.0, maxTokens: 12, maxDepth: 2, simulations: 2, rolloutMaxTokens: 48 },
          eval: { maxTokens: 48, batchSize: 12 },
          baseline: true,
        },
      };
      const deps = { synthesize: (o: { n: number; seed: number; split: 'train' | 'test' }) => synthesize(o), createModel: async (c: Parameters<typeof createModel>[0], o: { seed: number }) => createModel(c, { seed: o.seed, device: 'cpu' }), loadModel: (d: string) => loadModel(d, { device: 'cpu' }) };
      const { results } = await runDemo(deps, { out, seed: 4, quick: true, override });
      expect(results.itool.iterations.length).toBe(1);
      const test = readFileSync(join(out, 'data', 'test.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; tools: Array<{ name: string }> });
      let calls = 0;
      for (const arm of ['eval-0', 'iteration-1/evaluate', 'baseline/evaluate']) {
        const preds = readFileSync(join(out, 'run', arm, 'predictions.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; result: string });
        for (const p of preds) {
          const listed = test.find((s) => s.id === p.id)!.tools.map((t) => t.name);
          for (const m of p.result.matchAll(/<tool_call>\n\{"name": "([^"]*)"/g)) {
            calls++;
            expect(listed, `${arm} ${p.id}`).toContain(m[1]);
          }
        }
      }
      expect(calls).toBeGreaterThan(0);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 300_000);
});
