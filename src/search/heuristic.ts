// The start value the authors' search gives a node when it is created (before any rollout):
// a cheap guess from the step's text and the ground-truth answer's text. The `reference`
// preset uses it (search.initialValue 'heuristic'); the project's own search starts every node
// at 0 and values it by rollouts only.

/** Text that marks a finished tool call: the python-list syntax `[f(a=1)]` and Hermes `</tool_call>`. */
export const CALL_END_MARKERS: readonly string[] = [')]', '</tool_call>'];

/** Whitespace-separated words of a text, as a set. */
function wordSet(text: string): Set<string> {
  return new Set(text.split(/\s+/).filter((w) => w.length > 0));
}

/**
 * Word-set overlap of two texts: |A ∩ B| / min(|A|, |B|) over their sets of whitespace-separated
 * words (1 when the smaller set lies inside the larger; 0 when either text has no word).
 */
export function wordOverlap(a: string, b: string): number {
  const A = wordSet(a);
  const B = wordSet(b);
  if (A.size === 0 || B.size === 0) return 0;
  let common = 0;
  for (const w of A) if (B.has(w)) common++;
  return common / Math.min(A.size, B.size);
}

/**
 * The heuristic start value of a step: +0.1 when the step and the ground truth agree on
 * whether they hold a finished call (a CALL_END_MARKERS entry), −0.1 when not, plus the word-set
 * overlap of the ground truth and the step minus 0.5. A step of whitespace only is worth 0.
 * Range: [−0.6, 0.6].
 */
export function heuristicValue(step: string, truth: string, markers: readonly string[] = CALL_END_MARKERS): number {
  if (step.trim().length === 0) return 0;
  const call = (t: string) => markers.some((m) => t.includes(m));
  return (call(step) === call(truth) ? 0.1 : -0.1) + wordOverlap(truth, step) - 0.5;
}
