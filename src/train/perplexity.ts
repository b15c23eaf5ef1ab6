// Perplexity of each sample: a batched, gradient-free pass. The perplexity is exp(-mean log p)
// over the scope's tokens: the answer (the tokens the loss mask marks from the renderer's
// promptLength on, the last assistant turn) or every token the loss mask marks (every assistant
// turn of the sample, as the authors' scripts/cal_ppl.py scores a conversation).
import type { Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import { countTargets, packGroups, packSequences, sftSequence, type TrainSequence } from './pack.js';
import { Progress } from './report.js';
import { renderAll, type RenderedSample, type SftRenderer } from './sft.js';

/**
 * The tokens a sample's perplexity is taken over: 'answer', the last assistant turn (the loss
 * mask from promptLength on); 'assistant', every token the loss mask marks (the earlier
 * assistant turns of a multi-turn sample too).
 */
export type PerplexityScope = 'answer' | 'assistant';

export const PERPLEXITY_SCOPES: readonly PerplexityScope[] = ['answer', 'assistant'];

export interface PerplexityOptions {
  /** tokens per batch; default 8192 */
  batchTokens?: number;
  /** truncate each sample to this many tokens (0: no limit); default 0 */
  maxLength?: number;
  /** the tokens scored; default 'answer' */
  scope?: PerplexityScope;
  progress?: boolean;
}

export interface PerplexityResult {
  /** per sample, in input order; NaN for a sample with no masked token */
  perplexity: Float64Array;
  /** mean token log-probability per sample (NaN when none) */
  meanLogprob: Float64Array;
  tokens: Int32Array;
}

/** Samples (with a renderer) or rendered samples (renderer null). */
export async function scorePerplexity(
  model: Model,
  samples: readonly Sample[] | readonly (RenderedSample & { promptLength?: number })[],
  renderer: SftRenderer | null,
  opts: PerplexityOptions = {},
): Promise<PerplexityResult> {
  const budget = opts.batchTokens ?? 8192;
  const scope = opts.scope ?? 'answer';
  if (!PERPLEXITY_SCOPES.includes(scope)) throw new Error(`perplexity: scope must be ${PERPLEXITY_SCOPES.map((x) => `'${x}'`).join(' or ')}, got ${JSON.stringify(scope)}`);
  let data: (RenderedSample & { promptLength?: number })[];
  if (renderer) {
    const f = typeof renderer === 'function' ? renderer : (s: Sample) => renderer.render(s);
    data = (samples as Sample[]).map((s, i) => {
      try {
        return f(s) as RenderedSample & { promptLength?: number };
      } catch (e) {
        throw new Error(`perplexity: rendering sample ${i} (${s.id}) failed: ${(e as Error).message}`);
      }
    });
  } else data = samples as (RenderedSample & { promptLength?: number })[];
  const seqs: TrainSequence[] = data.map((r) => {
    let mask: ArrayLike<number> = r.mask;
    if (scope === 'answer' && typeof r.promptLength === 'number' && r.promptLength > 0) {
      const m = Array.from(r.mask);
      for (let i = 0; i < Math.min(r.promptLength, m.length); i++) m[i] = 0;
      mask = m;
    }
    return sftSequence({ ids: r.ids, mask }, opts.maxLength ?? 0);
  });
  const n = seqs.length;
  const sum = new Float64Array(n);
  const cnt = new Int32Array(n);
  // longest first keeps batches even; the order does not change any sample's value
  const order = seqs.map((_, i) => i).sort((a, b) => seqs[b]!.tokens.length - seqs[a]!.tokens.length || a - b);
  const scored = order.filter((i) => countTargets(seqs[i]!) > 0);
  const groups = packGroups(seqs.map((s) => s.tokens.length), scored, budget);
  const bar = new Progress('perplexity', n, 0, { progress: opts.progress });
  let done = n - scored.length;
  const t0 = performance.now();
  let tok = 0;
  try {
    for (const g of groups) {
      const batch = packSequences(g.map((i) => seqs[i]!));
      const lp = await model.logprobs(batch);
      g.forEach((si, j) => {
        for (let t = batch.cuSeqlens[j]!; t < batch.cuSeqlens[j + 1]!; t++) {
          if (batch.targets[t]! < 0) continue;
          sum[si] += lp[t]!;
          cnt[si]++;
        }
      });
      done += g.length;
      tok += batch.tokens.length;
      // the bar's loss: the mean negative log-probability of the answer tokens scored so far
      let s = 0;
      let c = 0;
      for (let i = 0; i < n; i++) {
        s += sum[i]!;
        c += cnt[i]!;
      }
      bar.update(done, c > 0 ? -s / c : NaN, tok / ((performance.now() - t0) / 1000));
    }
  } finally {
    bar.stop();
  }
  const perplexity = new Float64Array(n);
  const meanLogprob = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    meanLogprob[i] = cnt[i]! > 0 ? sum[i]! / cnt[i]! : NaN;
    perplexity[i] = Math.exp(-meanLogprob[i]!);
  }
  return { perplexity, meanLogprob, tokens: cnt };
}
