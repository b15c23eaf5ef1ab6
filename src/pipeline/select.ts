// Deficiency selection: the hardest training samples by the policy's answer perplexity,
// stratified between answers with and without tool calls.
import type { Sample } from '../data/sample.js';
import { expectsNoCall } from '../toolcall/checker.js';

/** true when the sample's answer calls a tool (the rule of data/answers.ts, as the checker judges it) */
export function hasToolCall(s: Sample): boolean {
  return !expectsNoCall(s);
}

/**
 * Indices of the hardest `ratio` of each stratum (tool call / no call), highest
 * perplexity first within a stratum (ties: lower index first); at least one sample of a
 * non-empty stratum. `max` > 0 caps the total, split in proportion to the strata.
 */
export function selectHardest(samples: readonly Sample[], perplexity: readonly number[], ratio: number, max = 0): number[] {
  if (perplexity.length !== samples.length) throw new Error(`selectHardest: ${perplexity.length} perplexities for ${samples.length} samples`);
  const strata: number[][] = [[], []];
  samples.forEach((s, i) => strata[hasToolCall(s) ? 0 : 1].push(i));
  let quota = strata.map((st) => (st.length ? Math.max(1, Math.ceil(ratio * st.length)) : 0));
  const total = quota[0] + quota[1];
  if (max > 0 && total > max) {
    quota = quota.map((q) => (q ? Math.max(1, Math.round((q * max) / total)) : 0));
    while (quota[0] + quota[1] > max) quota[quota[0] >= quota[1] ? 0 : 1]--;
  }
  const key = (i: number) => (Number.isFinite(perplexity[i]) ? perplexity[i] : Infinity);
  const out: number[] = [];
  strata.forEach((st, k) => {
    const sorted = st.slice().sort((a, b) => key(b) - key(a) || a - b);
    out.push(...sorted.slice(0, quota[k]));
  });
  return out.sort((a, b) => a - b);
}

/** the side of a root-level pair that answers without a call (prose), or null */
function noCallSide(p: { depth: number; chosen: string; rejected: string }, isProse: (text: string) => boolean): 'chosen' | 'rejected' | null {
  if (p.depth !== 0) return null;
  const c = isProse(p.chosen);
  const r = isProse(p.rejected);
  return c === r ? null : c ? 'chosen' : 'rejected';
}

/**
 * Balances the decision pairs (root-level pairs whose two steps are a call and an answer
 * without a call): at most as many pairs reject the no-call answer as choose it, keeping
 * those with the widest value gap (ties: the earlier). The many call samples would otherwise
 * teach the policy "never answer without a call" through their decision pairs alone, while
 * the few no-call samples whose search ever samples that answer cannot push back; the
 * call/no-call prior stays the one the warm-up SFT learned, and the preference signal goes to
 * the steps inside the calls. Other pairs are kept as they are, in order.
 */
export function balanceDecisionPairs<P extends { depth: number; chosen: string; rejected: string; chosenValue: number; rejectedValue: number }>(
  pairs: readonly P[],
  isProse: (text: string) => boolean,
): P[] {
  const favour = pairs.filter((p) => noCallSide(p, isProse) === 'chosen').length;
  const against = pairs.map((p, i) => ({ p, i })).filter(({ p }) => noCallSide(p, isProse) === 'rejected');
  const keep = new Set(
    against
      .slice()
      .sort((a, b) => b.p.chosenValue - b.p.rejectedValue - (a.p.chosenValue - a.p.rejectedValue) || a.i - b.i)
      .slice(0, favour)
      .map((x) => x.i),
  );
  return pairs.filter((p, i) => noCallSide(p, isProse) !== 'rejected' || keep.has(i));
}
