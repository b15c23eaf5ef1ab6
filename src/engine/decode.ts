// The decode loop behind generate(), over any one-token sampler: the engine's model and model
// wrappers (the demo's constrained names) share it, so stop tokens, stop callbacks and maxTokens
// behave the same whichever sampler draws the tokens.
import type { Generation, GenerateOptions, KvCache, StepOutput } from './model-types.js';

/**
 * Draws one token per call for every row still running (`sample` extends the caches given it
 * by one token each) until the row draws a stop token, `opts.stop` ends it (the row keeps its
 * first n generated tokens and its cache is truncated to match), or it has `opts.maxTokens`.
 */
export async function decodeRows(caches: readonly KvCache[], opts: GenerateOptions, sample: (caches: readonly KvCache[]) => Promise<StepOutput>): Promise<Generation[]> {
  const stops = new Set(opts.stopTokens ?? []);
  const out: Generation[] = caches.map(() => ({ tokens: [], logprobs: [], finishReason: 'length' }));
  const done = caches.map(() => opts.maxTokens === 0);
  for (let t = 0; t < opts.maxTokens; t++) {
    const active: number[] = [];
    for (let i = 0; i < caches.length; i++) if (!done[i]) active.push(i);
    if (active.length === 0) break;
    const r = await sample(active.map((i) => caches[i]!));
    active.forEach((i, j) => {
      const g = out[i]!;
      const tok = r.tokens[j]!;
      g.tokens.push(tok);
      g.logprobs.push(r.logprobs[j]!);
      if (stops.has(tok)) {
        g.finishReason = 'stop';
        done[i] = true;
        return;
      }
      if (opts.stop) {
        const n = opts.stop(i, g.tokens);
        if (n !== undefined) {
          const keep = Math.max(0, Math.min(g.tokens.length, Math.floor(n)));
          const drop = g.tokens.length - keep;
          g.tokens.length = keep;
          g.logprobs.length = keep;
          if (drop > 0) caches[i]!.truncate(caches[i]!.length - drop);
          g.finishReason = 'stop';
          done[i] = true;
          return;
        }
      }
      if (g.tokens.length >= opts.maxTokens) done[i] = true;
    });
  }
  return out;
}
