import { describe, expect, it } from 'vitest';
import { addChild, backpropagate, makeRoot, meanValue, selectChild, selectLeaf, uctScore, type SearchNode } from '../../src/search/tree.js';
import { extractPairs, tokenOverlap, dedupePairs, pairsToJsonl, parsePairsJsonl } from '../../src/search/pairs.js';
import { gradeFromLogprobs } from '../../src/search/judge.js';

function child(parent: SearchNode, id: number, tokens: number[], meanLogprob: number, visits = 0, valueSum = 0): SearchNode {
  const n = addChild(parent, id, { tokens, text: tokens.map((t) => `t${t} `).join(''), logprobs: tokens.map(() => meanLogprob), terminal: false });
  n.visits = visits;
  n.valueSum = valueSum;
  return n;
}

describe('UCT selection', () => {
  it('prior is exp(mean token log-prob) and the score follows value/(N+1) + c·p·sqrt(ln Np/(N+1))', () => {
    const root = makeRoot();
    root.visits = 10;
    const a = child(root, 1, [1, 2], Math.log(0.5), 4, 3);
    const b = child(root, 2, [3], Math.log(0.9), 0, 0);
    expect(a.prior).toBeCloseTo(0.5, 12);
    expect(b.prior).toBeCloseTo(0.9, 12);
    // hand-computed: a = 3/5 + 1*0.5*sqrt(ln10/5) = 0.6 + 0.5*0.678620... ; b = 0.9*sqrt(ln 10)
    expect(uctScore(a, 10, 1)).toBeCloseTo(0.6 + 0.5 * 0.6786140424415112, 10);
    expect(uctScore(b, 10, 1)).toBeCloseTo(0.9 * 1.5174271293851465, 10);
    expect(selectChild(root, 1)).toBe(b); // 1.3657 > 0.9393
    expect(selectChild(root, 0.1)).toBe(a); // 0.6339 > 0.1366
    expect(selectChild(root, 0)).toBe(a);
  });

  it('a parent visited once explores nothing (ln 1 = 0) and ties go to the first child', () => {
    const root = makeRoot();
    root.visits = 1;
    const a = child(root, 1, [1], 0, 1, 0.5);
    const b = child(root, 2, [2], 0, 1, 0.5);
    expect(uctScore(a, 1, 5)).toBeCloseTo(0.25, 12);
    expect(selectChild(root, 5)).toBe(a);
    expect(b.prior).toBe(1);
  });

  it('selectLeaf stops at maxDepth, at terminal nodes and at unexpanded nodes', () => {
    const root = makeRoot();
    root.visits = 3;
    const a = child(root, 1, [1], 0, 2, 2);
    child(root, 2, [2], 0, 1, -1);
    const a1 = child(a, 3, [3], 0, 1, 1);
    expect(selectLeaf(root, 0, 1)).toBe(a);
    expect(selectLeaf(root, 0, 3)).toBe(a1);
    a.terminal = true;
    expect(selectLeaf(root, 0, 3)).toBe(a);
  });
});

describe('back-propagation', () => {
  it('adds the value and one visit to the node and every ancestor', () => {
    const root = makeRoot();
    const a = child(root, 1, [1], 0);
    const b = child(a, 2, [2], 0);
    const c = child(root, 3, [3], 0);
    backpropagate(b, 0.5);
    backpropagate(a, -1);
    backpropagate(c, 0.25);
    expect([root.visits, root.valueSum]).toEqual([3, -0.25]);
    expect([a.visits, a.valueSum]).toEqual([2, -0.5]);
    expect([b.visits, b.valueSum]).toEqual([1, 0.5]);
    expect([c.visits, c.valueSum]).toEqual([1, 0.25]);
    expect(meanValue(a)).toBe(-0.25);
    expect(meanValue(makeRoot())).toBe(0);
  });
});

describe('pair extraction', () => {
  it('token overlap is the Dice coefficient of the token multisets', () => {
    expect(tokenOverlap([1, 2, 3], [1, 2, 3])).toBe(1);
    expect(tokenOverlap([1, 2], [3, 4])).toBe(0);
    expect(tokenOverlap([1, 1, 2], [1, 2, 2])).toBeCloseTo((2 * 2) / 6, 12);
    expect(tokenOverlap([], [])).toBe(1);
  });

  // root: A(0.8) B(0.75) C(-0.5) D(unvisited)
  //   A: A1(0.2) A2(0.25)          gap 0.05 < 0.1: no pair
  //   B: B1(-0.5) B2(-0.35)        chosen -0.35 < -0.3: no pair
  //   C: C1(0.5) C2(-0.5) same tokens: overlap 1 > 0.95: no pair
  //   A1: A1a(0.9) A1b(0.1) A1c(0.5)  pair A1a over A1b at depth 2
  // root itself: A over C (gap 1.3) at depth 0
  function handTree() {
    const root = makeRoot();
    let id = 1;
    const mk = (p: SearchNode, tokens: number[], mean: number, visits = 2) => child(p, id++, tokens, -0.5, visits, mean * visits);
    const A = mk(root, [10, 11], 0.8);
    const B = mk(root, [12], 0.75);
    const C = mk(root, [13, 14], -0.5);
    mk(root, [15], 5, 0);
    const A1 = mk(A, [20], 0.2);
    mk(A, [21], 0.25);
    mk(B, [22], -0.5);
    mk(B, [23], -0.35);
    mk(C, [24, 25], 0.5);
    mk(C, [25, 24], -0.5);
    const A1a = mk(A1, [30, 31], 0.9, 1);
    const A1b = mk(A1, [32], 0.1, 1);
    mk(A1, [33], 0.5, 1);
    return { root, A, C, A1, A1a, A1b };
  }

  it('takes best over worst child where gap, overlap and accept value allow, with the tree path as prefix', () => {
    const { root, A, C, A1, A1a, A1b } = handTree();
    const pairs = extractPairs(root, { sampleId: 's1', prompt: 'PROMPT', promptIds: [1, 2] });
    expect(pairs.map((p) => [p.nodeId, p.chosenNode, p.rejectedNode, p.depth])).toEqual([
      [0, A.id, C.id, 0],
      [A1.id, A1a.id, A1b.id, 2],
    ]);
    const p = pairs[1];
    expect(p.prefixIds).toEqual([10, 11, 20]);
    expect(p.prefix).toBe('t10 t11 t20 ');
    expect(p.chosenIds).toEqual([30, 31]);
    expect(p.rejectedIds).toEqual([32]);
    expect(p.chosenValue).toBeCloseTo(0.9, 12);
    expect(p.rejectedValue).toBeCloseTo(0.1, 12);
    expect(p.promptIds).toEqual([1, 2]);
    expect(pairs[0].prefixIds).toEqual([]);
    expect(pairs.every((q) => q.sampleId === 's1')).toBe(true);
  });

  it('options move the thresholds', () => {
    const { root } = handTree();
    const ctx = { sampleId: 's', prompt: '', promptIds: [1] };
    expect(extractPairs(root, ctx, { valueThreshold: 0.04 }).length).toBe(3); // + A2 over A1
    expect(extractPairs(root, ctx, { acceptValue: -0.45 }).length).toBe(3); // + B2 over B1
    expect(extractPairs(root, ctx, { overlapLimit: 1 }).length).toBe(3); // + C1 over C2
    expect(extractPairs(root, ctx, { valueThreshold: 2 }).length).toBe(0);
  });

  it('duplicates are dropped and JSONL round-trips', () => {
    const { root } = handTree();
    const pairs = extractPairs(root, { sampleId: 's', prompt: 'p', promptIds: [1] });
    const twice = dedupePairs([...pairs, ...pairs]);
    expect(twice.length).toBe(pairs.length);
    const back = parsePairsJsonl(pairsToJsonl(pairs));
    expect(back).toEqual(pairs);
    expect(() => parsePairsJsonl('{"x":1}\n', 'f.jsonl')).toThrow(/f.jsonl:1: field 'promptIds'/);
    expect(() => parsePairsJsonl('nope', 'f.jsonl')).toThrow(/f.jsonl:1: not JSON/);
  });
});

describe('self-judgement grade', () => {
  it('is the probability-weighted mean of the grade values', () => {
    const lp = new Float32Array([Math.log(0.6), Math.log(0.2), Math.log(0.2)]);
    expect(gradeFromLogprobs(lp, [{ id: 0, value: 1 }, { id: 1, value: -1 }])).toBeCloseTo(0.5, 6);
    expect(gradeFromLogprobs(lp, [{ id: 0, value: 1 }, { id: 1, value: 0 }, { id: 2, value: -1 }])).toBeCloseTo(0.4, 6);
    expect(() => gradeFromLogprobs(lp, [{ id: 7, value: 1 }, { id: 0, value: 0 }])).toThrow(/outside the vocabulary/);
  });
});
