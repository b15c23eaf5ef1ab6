// Packing: sequences laid end to end in one PackedBatch (cuSeqlens keeps their
// boundaries, so no token attends across samples), grouped greedily into a token budget.
import type { PackedBatch } from '../engine/model-types.js';

/** One training sequence: tokens and, per token, the id it must predict next (-1: none). */
export interface TrainSequence {
  tokens: Int32Array;
  targets: Int32Array;
}

/** A rendered sample: token ids and the loss mask (1 on tokens the model must produce). */
export interface RenderedIds {
  ids: ArrayLike<number>;
  mask: ArrayLike<number>;
}

/**
 * SFT sequence from a rendered sample: targets[i] = ids[i + 1] when mask[i + 1] is 1, else -1;
 * the last position has no target. Truncated to `maxLength` tokens (0: no limit).
 */
export function sftSequence(r: RenderedIds, maxLength = 0): TrainSequence {
  if (r.ids.length !== r.mask.length)
    throw new RangeError(`sftSequence: ids (${r.ids.length}) and mask (${r.mask.length}) differ in length`);
  const n = maxLength > 0 ? Math.min(r.ids.length, maxLength) : r.ids.length;
  const tokens = new Int32Array(n);
  const targets = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const id = r.ids[i]!;
    if (!Number.isInteger(id) || id < 0) throw new RangeError(`sftSequence: token id at ${i} must be a non-negative integer, got ${id}`);
    tokens[i] = id;
    if (i > 0 && r.mask[i]) targets[i - 1] = id;
  }
  return { tokens, targets };
}

/** Number of positions with a target (the tokens the loss is taken on). */
export function countTargets(s: TrainSequence): number {
  let n = 0;
  for (let i = 0; i < s.targets.length; i++) if (s.targets[i]! >= 0) n++;
  return n;
}

/** Lays sequences end to end. */
export function packSequences(seqs: readonly TrainSequence[]): PackedBatch {
  let T = 0;
  for (const s of seqs) {
    if (s.tokens.length === 0) throw new RangeError('packSequences: empty sequence');
    if (s.targets.length !== s.tokens.length) throw new RangeError('packSequences: tokens and targets differ in length');
    T += s.tokens.length;
  }
  const tokens = new Int32Array(T);
  const targets = new Int32Array(T);
  const positions = new Int32Array(T);
  const cuSeqlens = new Int32Array(seqs.length + 1);
  let o = 0;
  seqs.forEach((s, k) => {
    tokens.set(s.tokens, o);
    targets.set(s.targets, o);
    for (let i = 0; i < s.tokens.length; i++) positions[o + i] = i;
    o += s.tokens.length;
    cuSeqlens[k + 1] = o;
  });
  return { tokens, targets, cuSeqlens, positions };
}

/**
 * Greedy packing in the given order: items join the current group until the next one would
 * push it past `budget` tokens. An item longer than the budget gets a group of its own.
 * Returns groups of item indices.
 */
export function packGroups(lengths: readonly number[], order: readonly number[], budget: number): number[][] {
  if (!(budget > 0)) throw new RangeError(`packGroups: token budget must be > 0, got ${budget}`);
  const groups: number[][] = [];
  let cur: number[] = [];
  let used = 0;
  for (const i of order) {
    const len = lengths[i]!;
    if (cur.length > 0 && used + len > budget) {
      groups.push(cur);
      cur = [];
      used = 0;
    }
    cur.push(i);
    used += len;
  }
  if (cur.length > 0) groups.push(cur);
  return groups;
}

/** Splits a list into chunks of `n` (the last may be shorter). */
export function chunk<T>(a: readonly T[], n: number): T[][] {
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`chunk: size must be a positive integer, got ${n}`);
  const out: T[][] = [];
  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}
