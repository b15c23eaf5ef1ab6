import { describe, expect, it } from 'vitest';
import { searchTrees, type SearchTask } from '../../src/search/mcts.js';
import { allNodes, meanValue, pathTo, type SearchNode } from '../../src/search/tree.js';
import { decode, END, FakePolicy, letterReward } from './fake-policy.js';

const task = (id: string, promptIds: number[]): SearchTask => ({ sampleId: id, prompt: decode(promptIds), promptIds, reward: (a) => letterReward(a) });
const base = { endTokens: [END], decode, rolloutTemperature: 0 };

describe('tree search with a scripted policy', () => {
  it('one simulation at depth 1: three steps x, z, y valued by greedy rollouts, one pair x over z', async () => {
    const policy = new FakePolicy(3);
    const { results, stats } = await searchTrees(policy, [task('a', [6, 7])], { ...base, simulations: 1, maxDepth: 1 });
    const root = results[0].root;
    expect(allNodes(root).length).toBe(4);
    expect(stats.nodes).toBe(4);
    expect(root.children.map((c) => c.text)).toEqual(['x, ', 'z, ', 'y, ']);
    expect(root.children.map((c) => c.rollout)).toEqual(['x, x, ', 'z, z, ', 'y, y, ']);
    expect(root.children.map(meanValue)).toEqual([1, -1, 0]);
    expect(root.visits).toBe(3);
    expect(root.valueSum).toBe(0);
    // prior of "x, ": token log-probs -1, -0.1, -0.1
    expect(root.children[0].prior).toBeCloseTo(Math.exp(-1.2 / 3), 6);
    expect(results[0].pairs.length).toBe(1);
    const p = results[0].pairs[0];
    expect([p.chosen, p.rejected, p.prefix, p.depth, p.chosenValue, p.rejectedValue]).toEqual(['x, ', 'z, ', '', 0, 1, -1]);
    expect(p.chosenIds).toEqual([0, 3, 4]);
    expect(policy.live).toBe(0);
  });

  it('with room to grow every simulation expands one leaf: 1 + simulations·numActions nodes', async () => {
    const policy = new FakePolicy(100);
    const { results } = await searchTrees(policy, [task('a', [6])], { ...base, simulations: 5, maxDepth: 10, rolloutMaxTokens: 6 });
    const nodes = allNodes(results[0].root);
    expect(nodes.length).toBe(16);
    // each evaluated node was visited at least once; root visits = sum of evaluations
    expect(results[0].root.visits).toBe(15);
    // the pairs are exactly the expanded nodes whose children's values differ by >= 0.1 (all x/y/z here)
    const expanded = nodes.filter((n) => n.children.length >= 2);
    const expected = expanded.filter((n) => {
      const v = n.children.map(meanValue);
      return Math.max(...v) - Math.min(...v) >= 0.1 && Math.max(...v) >= -0.3;
    });
    expect(results[0].pairs.length).toBe(expected.length);
    expect(results[0].pairs.length).toBeGreaterThan(0);
    expect(policy.live).toBe(0);
  });

  it('maxDepth caps the tree: depth-1 leaves are revisited, not expanded', async () => {
    const policy = new FakePolicy(100);
    const { results } = await searchTrees(policy, [task('a', [6])], { ...base, simulations: 5, maxDepth: 1, rolloutMaxTokens: 6 });
    expect(allNodes(results[0].root).length).toBe(4);
    expect(results[0].root.visits).toBe(3 + 4); // 3 evaluations, then one revisit per later simulation
  });

  it('terminal steps end branches and are never expanded', async () => {
    const policy = new FakePolicy(1);
    const { results } = await searchTrees(policy, [task('a', [6])], { ...base, simulations: 5, maxDepth: 3 });
    const nodes = allNodes(results[0].root);
    for (const n of nodes) if (n.terminal) expect(n.children.length).toBe(0);
    expect(nodes.some((n) => n.terminal)).toBe(true);
    // steps after the first are only the end token: the answer has one letter
    for (const n of nodes.filter((n) => n.depth === 2)) expect(n.tokens).toEqual([END]);
  });

  it('many trees share each sampling batch; pairs never cross samples and their prefixes match the tree', async () => {
    const policy = new FakePolicy(100);
    const tasks = [task('s0', [6]), task('s1', [7, 7]), task('s2', [8, 6, 7])];
    const { results, stats } = await searchTrees(policy, tasks, { ...base, simulations: 4, maxDepth: 3, rolloutMaxTokens: 6 });
    expect(Math.min(...policy.calls)).toBe(3); // one row per tree in every call (3 streams per expansion)
    expect(stats.meanBatch).toBe(3);
    for (const [i, r] of results.entries()) {
      expect(r.sampleId).toBe(tasks[i].sampleId);
      const byId = new Map<number, SearchNode>(allNodes(r.root).map((n) => [n.id, n]));
      for (const p of r.pairs) {
        expect(p.sampleId).toBe(tasks[i].sampleId);
        expect(p.promptIds).toEqual(tasks[i].promptIds);
        const node = byId.get(p.nodeId)!;
        expect(p.prefixIds).toEqual(pathTo(node).flatMap((n) => n.tokens));
        expect(p.depth).toBe(node.depth);
        const chosen = byId.get(p.chosenNode)!;
        const rejected = byId.get(p.rejectedNode)!;
        expect(chosen.parent).toBe(node);
        expect(rejected.parent).toBe(node);
        expect(p.chosenIds).toEqual(chosen.tokens);
        expect(p.rejectedIds).toEqual(rejected.tokens);
        expect(p.chosenValue - p.rejectedValue).toBeGreaterThanOrEqual(0.1);
      }
    }
    expect(policy.live).toBe(0);
  });

  it('the judge blends into the value', async () => {
    const policy = new FakePolicy(3);
    const judge = async (items: Array<{ answer: string }>) => items.map(() => -1);
    const { results } = await searchTrees(policy, [task('a', [6])], { ...base, simulations: 1, maxDepth: 1, judge, judgeWeight: 0.5 });
    expect(results[0].root.children.map(meanValue)).toEqual([0, -1, -0.5]);
  });

  it('bad options are clear errors', async () => {
    const policy = new FakePolicy(3);
    await expect(searchTrees(policy, [task('a', [6])], { ...base, numActions: 0 })).rejects.toThrow(/numActions/);
    await expect(searchTrees(policy, [task('a', [6])], { ...base, judgeWeight: 0.5 })).rejects.toThrow(/judge/);
    await expect(searchTrees(policy, [task('a', [])], base)).rejects.toThrow(/empty prompt/);
    const bad: SearchTask = { ...task('b', [6]), reward: () => NaN };
    await expect(searchTrees(policy, [bad], base)).rejects.toThrow(/not a finite number/);
    expect(policy.live).toBe(0);
  });
});

describe('self-judgement through the policy', () => {
  it('reads the grade from nextLogprobs of the judge prompt, batched, and disposes its caches', async () => {
    const { makeSelfJudge } = await import('../../src/search/judge.js');
    const policy = new FakePolicy(3);
    let batches = 0;
    const model = {
      cache: (p: readonly number[]) => policy.cache(p),
      // p(Yes) = 0.8 when the prompt's last token is 0 ("x"), else 0.2; p(No) the rest
      nextLogprobs: async (caches: readonly { tokens: readonly number[] }[]) => {
        batches++;
        const out = new Float32Array(caches.length * 2);
        caches.forEach((c, b) => {
          const yes = c.tokens[c.tokens.length - 1] === 0 ? 0.8 : 0.2;
          out[2 * b] = Math.log(yes);
          out[2 * b + 1] = Math.log(1 - yes);
        });
        return out;
      },
    };
    const judge = makeSelfJudge(model as never, (_t, answer) => [6, answer.startsWith('x') ? 0 : 1], [{ id: 0, value: 1 }, { id: 1, value: -1 }], 2);
    const t = task('a', [6]);
    const v = await judge([{ task: t, answer: 'x, ' }, { task: t, answer: 'y, ' }, { task: t, answer: 'x' }]);
    expect(v.map((x) => Number(x.toFixed(6)))).toEqual([0.6, -0.6, 0.6]);
    expect(batches).toBe(2);
    expect(policy.live).toBe(0);
  });
});

describe('whole-answer sampling (the no-search ablation)', () => {
  it('depth 1, one simulation and a pattern that never matches give whole sampled answers and one pair per sample', async () => {
    const policy = new FakePolicy(2);
    const { results } = await searchTrees(policy, [task('a', [6]), task('b', [7])], { ...base, numActions: 6, simulations: 1, maxDepth: 1, stepPattern: /(?!)/g, maxTokens: 64 });
    for (const r of results) {
      expect(r.root.children.length).toBe(6);
      for (const c of r.root.children) {
        expect(c.terminal).toBe(true);
        expect(c.text).toMatch(/^[xyz], [xyz], $/);
      }
      expect(r.pairs.length).toBe(1);
      expect(r.pairs[0].prefixIds).toEqual([]);
    }
  });
});
