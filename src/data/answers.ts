// The answers of a conversation: which assistant turns are judged, and how.
//
// The rule (one rule for the bucketing, the warm-up SFT, the perplexity selection, the search
// reward and `itool eval`):
//
//  1. Every assistant turn of a conversation is one answer, judged in the context of all the
//     messages before it.
//  2. An answer that calls tools expects exactly those calls (BFCL's AST rules). An answer in
//     text expects no call: any text (or an empty call list) is correct, a call is wrong. So
//     the final text reply after a tool result is a "no call" answer, as is a refusal.
//  3. A sample that carries its own ground truth (BFCL questions, the synthetic generator's
//     rows) has one answer: that ground truth, after its messages; it is not split.
//  4. A conversation with one answer keeps its id. With several, the k-th answer (k from 1, in
//     order) is `<id>#<k>`: the id predictions for `itool eval` must carry.
//  5. The bucket of an answer, from its own shape: a call answer with an earlier exchange in
//     its context (a tool result or an earlier assistant turn) is multi_turn; otherwise one
//     call is simple (one tool offered) or multiple, several calls parallel (one tool) or
//     parallel_multiple. A text answer after a tool result is reply (the tool's result put
//     into words); any other text answer is irrelevance (no offered tool fits).
//  6. A conversation's own bucket is that of its last answer.
//
// Trainers see each answer once: an answer split off a longer conversation is trained on its
// last assistant turn only (the earlier turns are answers of their own), so a conversation
// trains every assistant turn exactly once, as it would whole.
import type { Message, Sample } from './sample.js';
import { bucketOf } from './buckets.js';

const splitOff = new WeakSet<Sample>();

/** True for an answer split off a conversation with several (train its last turn only). */
export function isSplitAnswer(s: Sample): boolean {
  return splitOff.has(s);
}

/** The answers of one sample (see the rule at the file head); [] when it has no assistant turn and no ground truth. */
export function answersOf(s: Sample): Sample[] {
  if (s.groundTruth !== undefined) return [s];
  const ends: number[] = [];
  s.messages.forEach((m, i) => {
    if (m.role === 'assistant') ends.push(i);
  });
  if (ends.length === 0) return [];
  if (ends.length === 1) {
    const last = ends[0]!;
    if (last === s.messages.length - 1) return [s];
    const one: Sample = { ...s, messages: s.messages.slice(0, last + 1) };
    one.category = bucketOf(one);
    return [one];
  }
  return ends.map((end, k) => {
    const messages: Message[] = s.messages.slice(0, end + 1);
    const a: Sample = { id: `${s.id}#${k + 1}`, category: 'simple', tools: s.tools, messages };
    if (s.bfclCategory) a.bfclCategory = s.bfclCategory;
    a.category = bucketOf(a);
    splitOff.add(a);
    return a;
  });
}

/** The answers of many samples, in order (ids as the rule says). */
export function splitAnswers(samples: readonly Sample[]): Sample[] {
  return samples.flatMap(answersOf);
}
