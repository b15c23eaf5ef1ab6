// The selection's perplexity scope: over the answer (the last assistant turn, the itool preset)
// or over every assistant turn of the sample (the authors' scripts/cal_ppl.py, the reference
// preset). Hand-built multi-turn samples with known log-probabilities, where the two scopes rank
// the samples the other way round; the real environment's renderer (split answers, samples
// with a ground truth); the pipeline passing the config's scope on; the config and the flag.
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Model, PackedBatch } from '../../src/engine/model-types.js';
import type { Sample } from '../../src/data/sample.js';
import { answersOf } from '../../src/data/answers.js';
import { fromOpenAI } from '../../src/data/formats.js';
import { checkConfig, DEFAULT_PIPELINE, mergeConfig, type PipelineConfig } from '../../src/pipeline/config.js';
import { realEnv } from '../../src/pipeline/real-env.js';
import { runPipeline } from '../../src/pipeline/pipeline.js';
import { selectHardest } from '../../src/pipeline/select.js';
import { scorePerplexity } from '../../src/train/perplexity.js';
import { overridesOf, type LoopFlags } from '../../src/cli/commands/train.js';
import { itool } from '../helpers/cli.js';
import { buildProgram } from '../../src/cli/index.js';
import { hermesTokenizer } from '../text/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-ppl-scope-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a stand-in whose log-probability of a target depends on the target token alone */
function tableModel(lp: (target: number) => number): Model {
  const m = {
    async logprobs(b: PackedBatch): Promise<Float32Array> {
      return Float32Array.from(b.targets, (t) => (t >= 0 ? lp(t) : 0));
    },
  };
  return m as unknown as Model;
}

describe('scorePerplexity: scope', () => {
  // sample A: an earlier assistant turn (10 11) the model finds hard, an easy answer (12 13);
  // sample B: an easy earlier turn (20), a harder answer (21 22); sample C: one turn (30 31)
  const LP: Record<number, number> = { 10: -3, 11: -3, 12: -0.25, 13: -0.75, 20: -0.1, 21: -1, 22: -1, 30: -2, 31: -1 };
  const model = tableModel((t) => {
    if (!(t in LP)) throw new Error(`token ${t} is not an assistant token of these samples`);
    return LP[t]!;
  });
  const rendered = [
    { ids: [1, 2, 10, 11, 3, 12, 13], mask: [0, 0, 1, 1, 0, 1, 1], promptLength: 5 },
    { ids: [1, 2, 20, 3, 21, 22], mask: [0, 0, 1, 0, 1, 1], promptLength: 4 },
    { ids: [1, 30, 31], mask: [0, 1, 1], promptLength: 1 },
  ];

  it('answer: the mean over the last turn; assistant: over every assistant turn', async () => {
    const answer = await scorePerplexity(model, rendered, null, { batchTokens: 9 });
    const dflt = await scorePerplexity(model, rendered, null);
    const all = await scorePerplexity(model, rendered, null, { scope: 'assistant', batchTokens: 9 });
    // by hand: A (−0.25 − 0.75)/2 = −0.5; B (−1 − 1)/2 = −1; C (−2 − 1)/2 = −1.5
    expect(Array.from(answer.meanLogprob)).toEqual([-0.5, -1, -1.5]);
    expect(Array.from(answer.tokens)).toEqual([2, 2, 2]);
    expect(Array.from(dflt.perplexity)).toEqual(Array.from(answer.perplexity));
    // A (−3 − 3 − 0.25 − 0.75)/4 = −1.75; B (−0.1 − 1 − 1)/3 = −0.7; C as before
    expect(all.meanLogprob[0]).toBeCloseTo(-1.75, 6);
    expect(all.meanLogprob[1]).toBeCloseTo(-0.7, 6);
    expect(all.meanLogprob[2]).toBe(-1.5);
    expect(Array.from(all.tokens)).toEqual([4, 3, 2]);
    expect(all.perplexity[0]).toBeCloseTo(Math.exp(1.75), 5);
  });

  it('the two scopes select different samples when earlier turns and answers disagree', async () => {
    const call = (id: string): Sample => ({ id, category: 'multi_turn', tools: [], messages: [{ role: 'user', content: 'q' }, { role: 'assistant', toolCalls: [{ name: 'f', arguments: {} }] }] });
    const samples = ['a', 'b', 'c'].map(call);
    const pick = async (scope: 'answer' | 'assistant') => selectHardest(samples, Array.from((await scorePerplexity(model, rendered, null, { scope })).perplexity), 0.34);
    // ceil(0.34 · 3) = 2: by answer C (e^1.5) and B (e^1); by every turn A (e^1.75) and C
    expect(await pick('answer')).toEqual([1, 2]);
    expect(await pick('assistant')).toEqual([0, 2]);
  });

  it('an unknown scope is an error that names the known ones', async () => {
    await expect(scorePerplexity(model, rendered, null, { scope: 'turns' as never })).rejects.toThrow(/scope must be 'answer' or 'assistant', got "turns"/);
  });
});

describe('the real environment: scope over the chat template', () => {
  const weather = { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };
  const conv = fromOpenAI(
    {
      id: 'oa',
      tools: [{ type: 'function', function: weather }],
      messages: [
        { role: 'user', content: 'Weather in Rome?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Rome"}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '{"temp": 21}' },
        { role: 'assistant', content: 'It is 21 degrees in Rome.' },
      ],
    },
    'oa',
  );
  const tok = hermesTokenizer();
  const lp = (t: number) => -((t % 5) + 1) / 4;
  const env = realEnv({ tokenizer: tok, tokenizerDir: '', loadModel: () => Promise.reject(new Error('unused')) });
  // expected values from the whole conversation's rendering: the mean of lp over the targets the
  // mask marks, from `from` on
  const whole = tok.render(conv);
  const meanFrom = (from: number) => {
    let s = 0;
    let n = 0;
    for (let i = Math.max(1, from); i < whole.ids.length; i++) if (whole.mask[i]) (s += lp(whole.ids[i]!)), n++;
    return { ppl: Math.exp(-s / n), n };
  };

  it('a split answer: answer scope its own turn, assistant scope the earlier call too', async () => {
    const parts = answersOf(conv);
    expect(parts.map((p) => p.id)).toEqual(['oa#1', 'oa#2']);
    const answer = await env.trainer.perplexity(tableModel(lp), parts);
    const all = await env.trainer.perplexity(tableModel(lp), parts, { scope: 'assistant' });
    // the second answer's rendering is the whole conversation's
    expect(answer[1]).toBeCloseTo(meanFrom(whole.promptLength).ppl, 5);
    expect(all[1]).toBeCloseTo(meanFrom(0).ppl, 5);
    expect(meanFrom(0).n).toBeGreaterThan(meanFrom(whole.promptLength).n);
    expect(all[1]).not.toBeCloseTo(answer[1]!, 3);
    // the first answer has no earlier assistant turn: the same in both scopes
    expect(all[0]).toBeCloseTo(answer[0]!, 10);
  });

  it('a sample with its own ground truth (not split, as the demo samples): the same two values', async () => {
    const gt: Sample = { ...conv, id: 'gt', groundTruth: [] };
    expect(answersOf(gt)).toEqual([gt]);
    const [answer] = await env.trainer.perplexity(tableModel(lp), [gt]);
    const [all] = await env.trainer.perplexity(tableModel(lp), [gt], { scope: 'assistant' });
    expect(answer).toBeCloseTo(meanFrom(whole.promptLength).ppl, 5);
    expect(all).toBeCloseTo(meanFrom(0).ppl, 5);
  });
});

describe('the pipeline and the config', () => {
  it('the selection phase passes the config perplexityScope on (absent: no scope given, the answer)', async () => {
    const fx = (await import(join(import.meta.dirname, '..', 'pipeline', 'fixtures', 'fake-env.mjs'))) as {
      fakeEnv: (f: string) => { trainer: { perplexity: (m: unknown, d: unknown[], o?: unknown) => Promise<number[]> } };
      config: () => PipelineConfig;
      samples: (n: number, prefix: string) => Sample[];
      initModel: (dir: string) => void;
    };
    const scopes: unknown[] = [];
    for (const scope of [undefined, 'assistant'] as const) {
      const dir = join(tmp, `run-${scope ?? 'none'}`);
      mkdirSync(dir, { recursive: true });
      fx.initModel(join(dir, 'init'));
      const env = fx.fakeEnv(join(dir, 'log'));
      const inner = env.trainer.perplexity;
      env.trainer.perplexity = (m, d, o) => (scopes.push(o), inner(m, d));
      const config = { ...fx.config(), iterations: 1, baseline: false, ...(scope ? { perplexityScope: scope } : {}) };
      await runPipeline({ env: env as never, config, runDir: join(dir, 'run'), modelDir: join(dir, 'init'), train: fx.samples(6, 's'), test: fx.samples(2, 't') });
    }
    expect(scopes).toEqual([undefined, { scope: 'assistant' }]);
  });

  it('config and flag: checked, named in --help', async () => {
    expect(() => checkConfig(mergeConfig(DEFAULT_PIPELINE, { perplexityScope: 'all' }))).toThrow("config 'perplexityScope' must be 'answer' or 'assistant', got \"all\"");
    expect(checkConfig(mergeConfig(DEFAULT_PIPELINE, { perplexityScope: 'assistant' })).perplexityScope).toBe('assistant');
    expect(overridesOf({ perplexityScope: 'assistant', warmup: true, evalRatio: 0.1, device: 'cpu' } as LoopFlags).perplexityScope).toBe('assistant');
    const help = buildProgram().commands.find((c) => c.name() === 'train')!.helpInformation();
    expect(help.replace(/\s+/g, ' ')).toMatch(/--perplexity-scope <scope> tokens of the selection's perplexity: 'answer'/);
    const bad = await itool(['train', '--model', '/nonexistent-model', '--data', '/nonexistent.json', '--out', join(tmp, 'never'), '--perplexity-scope', 'turns']);
    expect(bad.code).not.toBe(0);
    expect(bad.err).toMatch(/config 'perplexityScope' must be 'answer' or 'assistant', got "turns"/);
    expect(() => readFileSync(join(tmp, 'never', 'state.json'))).toThrow();
  });
});
