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
