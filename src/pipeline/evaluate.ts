// Evaluation on held-out samples: greedy answers from the policy, scored by category with
// the BFCL AST rules (through the environment's scorer).
import type { Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import type { CategoryTable } from '../report/html.js';
import type { PipelineEnv } from './env.js';

export interface Prediction {
  id: string;
  category: string;
  result: string;
  valid: boolean;
}

export interface EvalResult {
  categories: CategoryTable;
  predictions: Prediction[];
  tokens: number;
  seconds: number;
}

/** Greedy answers for `samples`, `batchSize` caches decoded together. */
export async function generateAnswers(
  model: Pick<Model, 'cache' | 'generate'>,
  env: Pick<PipelineEnv, 'text'>,
  samples: readonly Sample[],
  opts: { maxTokens: number; batchSize: number; onProgress?: (done: number) => void },
): Promise<{ answers: string[]; tokens: number }> {
  const answers: string[] = [];
  let tokens = 0;
  const ends = new Set(env.text.endTokens);
  for (let i = 0; i < samples.length; i += opts.batchSize) {
    const chunk = samples.slice(i, i + opts.batchSize);
    const caches = [];
    try {
      for (const s of chunk) caches.push(await model.cache(env.text.prompt(s).ids));
      const gens = await model.generate(caches, { maxTokens: opts.maxTokens, temperature: 0, stopTokens: [...env.text.endTokens] });
      for (const g of gens) {
        tokens += g.tokens.length;
        answers.push(env.text.decode(g.tokens.filter((t) => !ends.has(t))));
      }
    } finally {
      for (const c of caches) c.dispose();
    }
    opts.onProgress?.(Math.min(samples.length, i + chunk.length));
  }
  return { answers, tokens };
}

/**
 * `k` sampled answers per sample at `temperature` (answers[i] holds sample i's k answers):
 * each prompt is prefilled once and its cache forked k − 1 times; about `batchRows` rows are
 * decoded together.
 */
export async function sampleAnswers(
  model: Pick<Model, 'cache' | 'generate'>,
  env: Pick<PipelineEnv, 'text'>,
  samples: readonly Sample[],
  opts: { k: number; temperature: number; maxTokens: number; batchRows: number; seed: number; onProgress?: (done: number) => void },
): Promise<{ answers: string[][]; tokens: number }> {
  if (!Number.isInteger(opts.k) || opts.k < 1) throw new Error(`sampleAnswers: k must be an integer >= 1, got ${opts.k}`);
  const answers: string[][] = [];
  let tokens = 0;
  const ends = new Set(env.text.endTokens);
  const per = Math.max(1, Math.floor(opts.batchRows / opts.k));
  for (let i = 0; i < samples.length; i += per) {
    const chunk = samples.slice(i, i + per);
    const caches = [];
    try {
      for (const s of chunk) {
        const c = await model.cache(env.text.prompt(s).ids);
        caches.push(c);
        for (let j = 1; j < opts.k; j++) caches.push(c.fork());
      }
      const gens = await model.generate(caches, { maxTokens: opts.maxTokens, temperature: opts.temperature, seed: opts.seed + i, stopTokens: [...env.text.endTokens] });
      for (let s = 0; s < chunk.length; s++) {
        const row: string[] = [];
        for (let j = 0; j < opts.k; j++) {
          const g = gens[s * opts.k + j];
          tokens += g.tokens.length;
          row.push(env.text.decode(g.tokens.filter((t) => !ends.has(t))));
        }
        answers.push(row);
      }
    } finally {
      for (const c of caches) c.dispose();
    }
    opts.onProgress?.(Math.min(samples.length, i + chunk.length));
  }
  return { answers, tokens };
}

export async function evaluateModel(
  model: Pick<Model, 'cache' | 'generate'>,
  env: PipelineEnv,
  samples: readonly Sample[],
  opts: { maxTokens: number; batchSize: number; label?: string },
): Promise<EvalResult> {
  const t0 = performance.now();
  const bar = env.progress?.(opts.label ?? 'evaluate', samples.length);
  let gen: { answers: string[]; tokens: number };
  try {
    gen = await generateAnswers(model, env, samples, { ...opts, onProgress: (d) => bar?.update(d) });
  } finally {
    bar?.stop();
  }
  const scored = env.score(samples.map((s, i) => ({ sample: s, answer: gen.answers[i] })));
  return {
    categories: scored.categories,
    predictions: samples.map((s, i) => ({ id: s.id, category: String(s.category), result: gen.answers[i], valid: scored.valid[i] })),
    tokens: gen.tokens,
    seconds: (performance.now() - t0) / 1000,
  };
}
