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
  grades: readonly GradeToken[] | ((logprobs: Float32Array) => number),
  batchSize = 32,
): Judge {
  if (Array.isArray(grades) && grades.length < 2) throw new Error('makeSelfJudge: needs at least two grade tokens');
  const read = typeof grades === 'function' ? grades : (lp: Float32Array) => gradeFromLogprobs(lp, grades as readonly GradeToken[]);
  return async (items) => {
    const out: number[] = [];
    for (let i = 0; i < items.length; i += batchSize) {
      const chunk = items.slice(i, i + batchSize);
      const caches: KvCache[] = [];
      try {
        for (const it of chunk) caches.push(await model.cache(buildPrompt(it.task, it.answer)));
        const lp = await model.nextLogprobs(caches);
        const V = lp.length / caches.length;
        for (let b = 0; b < caches.length; b++) out.push(read(lp.subarray(b * V, (b + 1) * V)));
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

// ------------------------------------------------------------------ the A/B/C/D grades

/**
 * The self-grading prompt of the `reference` preset (search.judge 'grades'), a plain-text
 * completion prompt (no chat template) with two placeholders: {ground_truth}, the sample's
 * ground-truth answer, and {answer}, the answer being graded (a partial answer: the steps from
 * the root through the rollout). It follows the structure of the authors' prompt
 * (zeng-yirong/iTool mcts/utils.py:21-44, EVAL_SYSTEM + EVAL_PROMPT_with_GT: the ground truth,
 * the response, five criteria, four options (A) to (D)) in this project's words, and ends with
 * the opening parenthesis of the option, so that the grade is the next token: the authors read
 * the grade tokens' probabilities from the top-4 log-probabilities of up to 7 sampled tokens.
 */
export const GRADES_TEMPLATE =
  'You grade answers of an assistant that calls functions (tools).\n' +
  'Reference answer: {ground_truth}\n' +
  'Answer to grade: {answer}\n' +
  'Grade the answer against the reference answer. An answer that is the beginning of the reference answer counts as excellent.\n' +
  'Criteria:\n' +
  '1. Function names: are the called functions the right ones?\n' +
  '2. Number of parameters: does each call give the right number of parameters?\n' +
  '3. Parameter names: are the parameter names right?\n' +
  '4. Parameter values and types: are the values right?\n' +
  '5. Meaning: does the answer mean the same as the reference answer?\n' +
  'Choose one option for the overall quality:\n' +
  '(A) Excellent: meets every criterion, almost the same as the reference answer.\n' +
  '(B) Acceptable: meets most criteria, with small differences.\n' +
  '(C) Fair: meets some criteria, with serious problems.\n' +
  '(D) Poor: meets few or none of the criteria.\n' +
  'ASSISTANT: The overall quality is option (';

/** The template with its placeholders filled (each replaced once, left to right; no other expansion). */
export function gradesPrompt(truth: string, answer: string, template: string = GRADES_TEMPLATE): string {
  if (!template.includes('{ground_truth}') || !template.includes('{answer}')) throw new Error('the grades template must hold {ground_truth} and {answer}');
  return template.replace('{ground_truth}', () => truth).replace('{answer}', () => answer);
}

/** The weight of each grade in the value: A 1, B 0.1, C −1, D −2, all divided by 4. */
export const GRADE_WEIGHTS = { A: 1, B: 0.1, C: -1, D: -2 } as const;

/** token ids of the four grade letters */
export interface GradeIds {
  A: number;
  B: number;
  C: number;
  D: number;
}

/**
 * The value of a grading from the grade tokens' probabilities at the next position:
 * (pA + 0.1·pB − pC − 2·pD) / 4, the probabilities as the model gives them (not renormalised
 * over the four letters, as the authors sum them): in [−0.5, 0.25].
 */
export function gradesValue(logprobs: ArrayLike<number>, ids: GradeIds): number {
  let v = 0;
  for (const g of ['A', 'B', 'C', 'D'] as const) {
    const id = ids[g];
    if (!Number.isInteger(id) || id < 0 || id >= logprobs.length) throw new RangeError(`grade token ${g} id ${id} outside the vocabulary (${logprobs.length})`);
    v += GRADE_WEIGHTS[g] * Math.exp(logprobs[id]);
  }
  return v / 4;
}
