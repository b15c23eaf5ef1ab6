// Step-level preference pairs from a searched tree: at every node with two or more
// evaluated children, the highest-value child's step is chosen and the lowest-value
// child's step rejected, over the shared prefix (the steps from the root to that node).
import { wordOverlap } from './heuristic.js';
import { meanValue, pathTo, type SearchNode } from './tree.js';

export interface PairOptions {
  /** minimum chosen − rejected value (0.1) */
  valueThreshold?: number;
  /** maximum token overlap between the two steps (0.95) */
  overlapLimit?: number;
  /** minimum value of the chosen step (−0.3) */
  acceptValue?: number;
  /** 'mean': the mean back-propagated value of the visited children (default); 'sum': every child's summed value (its start value included) */
  pairValue?: 'mean' | 'sum';
  /** 'tokens': Dice overlap of the token multisets (default); 'words': word sets of the texts, intersection over the smaller */
  overlap?: 'tokens' | 'words';
  /** 'step': chosen/rejected are the steps, the earlier steps the prefix (default); 'partial-answer': each is the earlier steps + its step, no prefix */
  pairCoverage?: 'step' | 'partial-answer';
}

export const DEFAULT_PAIR_OPTIONS: Required<PairOptions> = { valueThreshold: 0.1, overlapLimit: 0.95, acceptValue: -0.3, pairValue: 'mean', overlap: 'tokens', pairCoverage: 'step' };

/** One pair; what the preference trainer reads (ids) and what a person reads (text). */
export interface StepPair {
  sampleId: string;
  /** depth of the node the two steps branch from (0: the root, i.e. the answer's first step) */
  depth: number;
  /** the rendered prompt (text) */
  prompt: string;
  /** answer text before the branching steps */
  prefix: string;
  chosen: string;
  rejected: string;
  chosenValue: number;
  rejectedValue: number;
  promptIds: number[];
  prefixIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
  /** tree node ids (for the report) */
  nodeId: number;
  chosenNode: number;
  rejectedNode: number;
}

/**
 * Token overlap of two steps: the Dice coefficient of their token multisets,
 * 2·|A ∩ B| / (|A| + |B|): 1 for identical steps, 0 for steps sharing no token.
 */
export function tokenOverlap(a: readonly number[], b: readonly number[]): number {
  if (a.length + b.length === 0) return 1;
  const counts = new Map<number, number>();
  for (const t of a) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of b) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  return (2 * common) / (a.length + b.length);
}

export interface TreeContext {
  sampleId: string;
  prompt: string;
  promptIds: readonly number[];
}

/** pairs of one tree, in node-id order; duplicates (same prefix, chosen and rejected) dropped */
export function extractPairs(root: SearchNode, ctx: TreeContext, options: PairOptions = {}): StepPair[] {
  const o = { ...DEFAULT_PAIR_OPTIONS, ...options };
  const out: StepPair[] = [];
  const seen = new Set<string>();
  const stack: SearchNode[] = [root];
  const nodes: SearchNode[] = [];
  while (stack.length) {
    const n = stack.pop()!;
    nodes.push(n);
    for (const c of n.children) stack.push(c);
  }
  nodes.sort((a, b) => a.id - b.id);
  for (const node of nodes) {
    const sum = o.pairValue === 'sum';
    const kids = sum ? node.children : node.children.filter((c) => c.visits > 0);
    if (kids.length < 2) continue;
    const value = sum ? (c: SearchNode) => c.valueSum : meanValue;
    // first best and first worst in creation order on ties
    let best = kids[0];
    let worst = kids[0];
    for (const c of kids) {
      if (value(c) > value(best)) best = c;
      if (value(c) < value(worst)) worst = c;
    }
    const vb = value(best);
    const vw = value(worst);
    if (best === worst || vb - vw < o.valueThreshold) continue;
    if (vb < o.acceptValue) continue;
    const overlap = o.overlap === 'words' ? wordOverlap(best.text, worst.text) : tokenOverlap(best.tokens, worst.tokens);
    if (overlap > o.overlapLimit) continue;
    const path = pathTo(node);
    let prefixIds = path.flatMap((n) => n.tokens);
    let prefix = path.map((n) => n.text).join('');
    let chosenIds = best.tokens.slice();
    let rejectedIds = worst.tokens.slice();
    let chosen = best.text;
    let rejected = worst.text;
    if (o.pairCoverage === 'partial-answer') {
      chosenIds = prefixIds.concat(chosenIds);
      rejectedIds = prefixIds.concat(rejectedIds);
      chosen = prefix + chosen;
      rejected = prefix + rejected;
      prefixIds = [];
      prefix = '';
    }
    const key = JSON.stringify([prefixIds, chosenIds, rejectedIds]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({
      sampleId: ctx.sampleId,
      depth: node.depth,
      prompt: ctx.prompt,
      prefix,
      chosen,
      rejected,
      chosenValue: vb,
      rejectedValue: vw,
      promptIds: ctx.promptIds.slice(),
      prefixIds,
      chosenIds,
      rejectedIds,
      nodeId: node.id,
      chosenNode: best.id,
      rejectedNode: worst.id,
    });
  }
  return out;
}

/** drops pairs equal (same sample, prefix, chosen and rejected ids) to an earlier one */
export function dedupePairs(pairs: readonly StepPair[]): StepPair[] {
  const seen = new Set<string>();
  const out: StepPair[] = [];
  for (const p of pairs) {
    const key = JSON.stringify([p.sampleId, p.promptIds, p.prefixIds, p.chosenIds, p.rejectedIds]);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

/** one JSON object per line, in the order given */
export function pairsToJsonl(pairs: readonly StepPair[]): string {
  return pairs.map((p) => JSON.stringify(p)).join('\n') + (pairs.length ? '\n' : '');
}

export function parsePairsJsonl(text: string, file = 'pairs'): StepPair[] {
  const out: StepPair[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    let p: StepPair;
    try {
      p = JSON.parse(line) as StepPair;
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not JSON (${(e as Error).message})`);
    }
    for (const k of ['promptIds', 'prefixIds', 'chosenIds', 'rejectedIds'] as const)
      if (!Array.isArray(p[k])) throw new Error(`${file}:${i + 1}: field '${k}' must be an array of token ids`);
    out.push(p);
  }
  return out;
}
