// The tree search on a tiny random model of the real engine: node and pair counts as the
// search rules say, pairs that never cross samples with prefixes that match the tree, and
// each step's recorded log-probability equal to the model's own teacher-forced log-probs
// of that step after the prompt and the prefix (the forked KV caches hold the right tokens).
import { describe, expect, it } from 'vitest';
import { createModel } from '../../src/engine/model.js';
import type { ModelConfig, PackedBatch } from '../../src/engine/model-types.js';
import { searchTrees, type SearchTask } from '../../src/search/mcts.js';
import { allNodes, pathTo, type SearchNode } from '../../src/search/tree.js';

const V = 12;
const config: ModelConfig = {
  architecture: 'LlamaForCausalLM',
  vocabSize: V,
  hiddenSize: 16,
  intermediateSize: 32,
  numLayers: 2,
  numHeads: 2,
  numKvHeads: 1,
  headDim: 8,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 256,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
  bosTokenId: null,
  eosTokenId: [11],
};
// token 0 is ", " (a step boundary), 11 the end token, others letters
const decode = (ids: readonly number[]) => ids.map((t) => (t === 0 ? ', ' : t === 11 ? '' : 'abcdefghijk'[t])).join('');
const reward = (answer: string) => {
  const letters = answer.replace(/[^a-k]/g, '');
  if (!letters.length) return 0;
  return (2 * (letters.split('').filter((c) => c < 'f').length / letters.length) - 1);
};
const task = (id: string, promptIds: number[]): SearchTask => ({ sampleId: id, prompt: decode(promptIds), promptIds, reward: (a) => reward(a) });

describe('tree search on the engine', () => {
  it('grows 1 + simulations·numActions nodes when every leaf can be expanded', async () => {
    const model = createModel(config, { seed: 3 });
    try {
      const { results, stats } = await searchTrees(model, [task('s', [1, 2, 3])], {
        endTokens: [], // nothing ends an answer: every simulation expands one leaf
        decode,
        numActions: 3,
        simulations: 4,
        maxDepth: 10,
        maxTokens: 4,
        rolloutMaxTokens: 6,
        temperature: 1.5,
        seed: 5,
      });
      expect(allNodes(results[0].root).length).toBe(13);
      expect(stats.nodes).toBe(13);
      expect(results[0].root.visits).toBe(12);
    } finally {
      model.dispose();
    }
  });

  it('pairs stay within their sample, prefixes match the tree, steps carry the model log-probs', async () => {
    const model = createModel(config, { seed: 4 });
    try {
      const tasks = [task('a', [1, 2]), task('b', [3, 4, 5]), task('c', [6])];
      const { results } = await searchTrees(model, tasks, { endTokens: [11], decode, numActions: 3, simulations: 5, maxDepth: 3, maxTokens: 5, rolloutMaxTokens: 8, temperature: 1.5, seed: 9, valueThreshold: 0.05 });
      let pairs = 0;
      for (const [i, r] of results.entries()) {
        expect(r.sampleId).toBe(tasks[i].sampleId);
        const byId = new Map<number, SearchNode>(allNodes(r.root).map((n) => [n.id, n]));
        for (const p of r.pairs) {
          pairs++;
          expect(p.sampleId).toBe(tasks[i].sampleId);
          expect(p.promptIds).toEqual(tasks[i].promptIds);
          const node = byId.get(p.nodeId)!;
          expect(p.prefixIds).toEqual(pathTo(node).flatMap((n) => n.tokens));
          expect(byId.get(p.chosenNode)!.parent).toBe(node);
          expect(byId.get(p.rejectedNode)!.parent).toBe(node);
          expect(p.chosenValue - p.rejectedValue).toBeGreaterThanOrEqual(0.05);
        }
        // every step: its tokens scored by teacher forcing after prompt + prefix
        for (const n of allNodes(r.root)) {
          if (!n.parent) continue;
          const prefix = pathTo(n).slice(0, -1).flatMap((x) => x.tokens);
          const seq = [...tasks[i].promptIds, ...prefix, ...n.tokens];
          const targets = new Int32Array(seq.length).fill(-1);
          const start = tasks[i].promptIds.length + prefix.length;
          for (let t = start - 1; t < seq.length - 1; t++) targets[t] = seq[t + 1];
          const batch: PackedBatch = { tokens: Int32Array.from(seq), targets, cuSeqlens: Int32Array.from([0, seq.length]) };
          const lp = await model.logprobs(batch);
          const sum = lp.reduce((a, b) => a + b, 0);
          expect(n.logprobSum).toBeCloseTo(sum, 3);
          expect(n.tokens.length).toBeGreaterThan(0);
          expect(n.tokens.length).toBeLessThanOrEqual(5);
          // a step ends at its first boundary, an end token, or the token cap
          const body = n.tokens.slice(0, -1);
          expect(body.includes(0) || body.includes(11)).toBe(false);
        }
      }
      expect(pairs).toBeGreaterThan(0);
    } finally {
      model.dispose();
    }
  });
});
