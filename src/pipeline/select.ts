// Deficiency selection: the hardest training samples by the policy's answer perplexity,
// stratified between answers with and without tool calls.
import type { Sample } from '../data/sample.js';
import { expectsNoCall } from '../toolcall/checker.js';

/** true when the sample's answer calls a tool (the rule of data/answers.ts, as the checker judges it) */
export function hasToolCall(s: Sample): boolean {
  return !expectsNoCall(s);
}

/** how the selection splits the samples before it takes the hardest of each part */
export type SelectStrata = 'call' | 'category';

/**
 * Indices of the hardest `ratio` of each stratum, highest perplexity first within a stratum
 * (ties: lower index first); at least one sample of a non-empty stratum. The strata are the
 * samples with and without a tool call ('call', the default), or those two within each
 * category ('category': every kind of sample gets its share, instead of the kind whose answers
 * read hardest taking most of the selection). `max` > 0 caps the total, split in proportion
 * to the strata (largest remainders; at least one each while the cap allows).
 */
export function selectHardest(samples: readonly Sample[], perplexity: readonly number[], ratio: number, max = 0, strata: SelectStrata = 'call'): number[] {
  if (perplexity.length !== samples.length) throw new Error(`selectHardest: ${perplexity.length} perplexities for ${samples.length} samples`);
  const groups = new Map<string, number[]>();
  samples.forEach((s, i) => {
    const k = (hasToolCall(s) ? 'call' : 'none') + (strata === 'category' ? `/${s.category ?? ''}` : '');
    const g = groups.get(k);
    if (g) g.push(i);
    else groups.set(k, [i]);
  });
  // strata in a fixed order (call before no call, then by category name)
  const st = [...groups.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
  let quota = st.map((g) => Math.max(1, Math.ceil(ratio * g.length)));
  const total = quota.reduce((a, b) => a + b, 0);
  if (max > 0 && total > max) {
    const exact = quota.map((q) => (q * max) / total);
    quota = exact.map((x) => Math.max(1, Math.floor(x)));
    // hand out what is left by the largest remainders, then take back from the largest quotas
    let left = max - quota.reduce((a, b) => a + b, 0);
    const byRemainder = exact.map((_, k) => k).sort((a, b) => exact[b] - Math.floor(exact[b]) - (exact[a] - Math.floor(exact[a])) || a - b);
    for (let j = 0; left > 0 && j < byRemainder.length; j++, left--) quota[byRemainder[j]]++;
    while (left < 0) {
      let k = 0;
      for (let j = 1; j < quota.length; j++) if (quota[j] > quota[k]) k = j;
      quota[k]--;
      left++;
    }
  }
  const key = (i: number) => (Number.isFinite(perplexity[i]) ? perplexity[i] : Infinity);
  const out: number[] = [];
  st.forEach((g, k) => {
    const sorted = g.slice().sort((a, b) => key(b) - key(a) || a - b);
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
