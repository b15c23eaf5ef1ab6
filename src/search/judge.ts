// The policy's self-judgement: the policy is asked to grade an answer and the grade is
// read from the probabilities of the grade tokens at the next position (no sampling).
import type { KvCache } from '../engine/model-types.js';
import type { Judge, SearchTask } from './mcts.js';

export interface JudgeModel {
  cache(prompt: readonly number[]): Promise<KvCache>;
  nextLogprobs(caches: readonly KvCache[]): Promise<Float32Array>;
}

export interface GradeToken {
  /** token id whose probability votes for this grade */
  id: number;
  /** the grade's value in [-1, 1] (e.g. "Yes" = 1, "No" = -1) */
  value: number;
}

/**
 * A Judge: for each answer, `buildPrompt` renders the question to the policy ("is this
 * answer correct?") as token ids ending where the grade token goes; the value is the
 * probability-weighted mean of the grade values, Σ p_i v_i / Σ p_i, over the grade tokens.
 */
export function makeSelfJudge(
  model: JudgeModel,
  buildPrompt: (task: SearchTask, answer: string) => number[],
  grades: readonly GradeToken[],
  batchSize = 32,
): Judge {
  if (grades.length < 2) throw new Error('makeSelfJudge: needs at least two grade tokens');
  return async (items) => {
    const out: number[] = [];
    for (let i = 0; i < items.length; i += batchSize) {
      const chunk = items.slice(i, i + batchSize);
      const caches: KvCache[] = [];
      try {
        for (const it of chunk) caches.push(await model.cache(buildPrompt(it.task, it.answer)));
        const lp = await model.nextLogprobs(caches);
        const V = lp.length / caches.length;
        for (let b = 0; b < caches.length; b++) out.push(gradeFromLogprobs(lp.subarray(b * V, (b + 1) * V), grades));
      } finally {
        for (const c of caches) c.dispose();
      }
    }
    return out;
  };
}

/** Σ p_i v_i / Σ p_i over the grade tokens, computed stably from log-probabilities */
export function gradeFromLogprobs(logprobs: ArrayLike<number>, grades: readonly GradeToken[]): number {
  let m = -Infinity;
  for (const g of grades) {
    if (g.id < 0 || g.id >= logprobs.length) throw new RangeError(`grade token id ${g.id} outside the vocabulary (${logprobs.length})`);
    m = Math.max(m, logprobs[g.id]);
  }
  if (!Number.isFinite(m)) return 0;
  let num = 0;
  let den = 0;
  for (const g of grades) {
    const p = Math.exp(logprobs[g.id] - m);
    num += p * g.value;
    den += p;
  }
  return num / den;
}
