// The reference preset's search pieces on their own: the heuristic start value on hand-worked
// answers, step splitting with stepLimit 2, the chain of nodes from one continuation (pure and on
// a scripted policy), the rollout down the best children, and pairs by summed value over whole
// partial answers.
import { describe, expect, it } from 'vitest';
import { chainSteps } from '../../src/search/chain.js';
import { heuristicValue, wordOverlap } from '../../src/search/heuristic.js';
import { searchTrees, DEFAULT_STEP_PATTERN, type SearchTask } from '../../src/search/mcts.js';
import { extractPairs } from '../../src/search/pairs.js';
import { addChild, allNodes, makeRoot, pathTo } from '../../src/search/tree.js';
import { splitSteps } from '../../src/text/steps.js';
import { decode, END, FakePolicy, letterReward } from './fake-policy.js';

describe('heuristic start value: ±0.1 (call agreement) + word-set overlap − 0.5', () => {
  const hermes = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';
  it('hand-worked answers', () => {
    // truth words: <tool_call> {"name": "get_weather", "arguments": {"city": "Paris"}} </tool_call> (7)
    // a step inside the call: both its words are in the truth (2/min(7,2) = 1), no call end in it: −0.1
    expect(heuristicValue('{"name": "get_weather", ', hermes)).toBeCloseTo(-0.1 + 1 - 0.5, 12);
    // the call's end: 2/2 and both hold '</tool_call>': +0.1
    expect(heuristicValue('"Paris"}}\n</tool_call>', hermes)).toBeCloseTo(0.1 + 1 - 0.5, 12);
    // prose: no shared word, disagrees on the call
    expect(heuristicValue('The weather is nice.', hermes)).toBeCloseTo(-0.6, 12);
    // python-list syntax: ')]' marks the call
    expect(heuristicValue('I cannot help.', '[get_weather(city="Paris")]')).toBeCloseTo(-0.6, 12);
    expect(heuristicValue('[get_weather(city="Paris")]', '[get_weather(city="Paris")]')).toBeCloseTo(0.6, 12);
    // a no-call truth and a no-call answer agree: 2 of the answer's 3 words are in the truth
    expect(heuristicValue('a b x', 'a b c d')).toBeCloseTo(0.1 + 2 / 3 - 0.5, 12);
    // whitespace only is worth nothing
    expect(heuristicValue('  \n', hermes)).toBe(0);
  });
  it('word overlap: sets (repeats count once), over the smaller set', () => {
    expect(wordOverlap('a a b', 'a c')).toBeCloseTo(0.5, 12);
    expect(wordOverlap('a b c d', 'b d')).toBe(1);
    expect(wordOverlap('', 'a')).toBe(0);
  });
});

describe('steps of the reference preset (stepLimit 2, the separator kept on the piece before it)', () => {
  it('hand-worked strings', () => {
    // pieces: 'get_weather(' 'city=' '"Paris", ' 'unit=' '"celsius")'
    expect(splitSteps('get_weather(city="Paris", unit="celsius")', { stepLimit: 2 })).toEqual(['get_weather(city=', '"Paris", unit=', '"celsius")']);
    // pieces: 'I see. ' 'It rains, ' 'so no. ' 'Bye'
    expect(splitSteps('I see. It rains, so no. Bye', { stepLimit: 2 })).toEqual(['I see. It rains, ', 'so no. Bye']);
    // an odd number of pieces: the last step holds one
    expect(splitSteps('a=b, c', { stepLimit: 2 })).toEqual(['a=b, ', 'c']);
    expect(splitSteps('no separator', { stepLimit: 2 })).toEqual(['no separator']);
  });
});

describe('one continuation → a chain of nodes', () => {
  const chars = 'abcdefgh(=, .x';
  const dec = (ids: readonly number[]) => ids.map((i) => (i === 99 ? '' : chars[i])).join('');
  const enc = (s: string) => [...s].map((c) => chars.indexOf(c));
  const o = { decode: dec, endTokens: [99], pattern: DEFAULT_STEP_PATTERN, stepLimit: 1, startDepth: 0, maxDepth: 3 };

  it('one node per step while depth allows; the node below maxDepth takes the rest', () => {
    // pieces 'a(' 'b=' 'c, ' 'd=' 'e' → depths 1..4, the fourth takes 'd=e'
    const t = enc('a(b=c, d=e');
    const s = chainSteps(t, t.map(() => -0.5), false, o);
    expect(s.map((x) => x.text)).toEqual(['a(', 'b=', 'c, ', 'd=e']);
    expect(s.map((x) => x.terminal)).toEqual([false, false, false, false]);
    expect(s.flatMap((x) => x.tokens)).toEqual(t);
    // from a node at depth 2, two nodes: 'a(' and the rest
    expect(chainSteps(t, t.map(() => 0), false, { ...o, startDepth: 2 }).map((x) => x.text)).toEqual(['a(', 'b=c, d=e']);
    // an end token goes to the last node, which is terminal; its text leaves it out
    const e = [...enc('a(b'), 99];
    const se = chainSteps(e, [-1, -2, -3, -4], true, o);
    expect(se.map((x) => [x.text, x.tokens, x.logprobs, x.terminal])).toEqual([
      ['a(', enc('a('), [-1, -2], false],
      ['b', [enc('b')[0], 99], [-3, -4], true],
    ]);
  });

  it('a token across a cut stays with the earlier step', () => {
    const vocab = ['ab(', 'c=d', ', e'];
    const d2 = (ids: readonly number[]) => ids.map((i) => vocab[i]).join('');
    // text 'ab(c=d, e': cuts after 'ab(' (3), 'c=' (5, inside 'c=d'), ', ' (8, inside ', e')
    expect(chainSteps([0, 1, 2], [0, 0, 0], false, { ...o, decode: d2 }).map((x) => x.tokens)).toEqual([[0], [1], [2]]);
    expect(chainSteps([0, 1, 2], [0, 0, 0], false, { ...o, decode: d2, stepLimit: 2 }).map((x) => x.tokens)).toEqual([[0, 1], [2]]);
  });
});

const task = (id: string, promptIds: number[], truth: string): SearchTask => ({ sampleId: id, prompt: decode(promptIds), promptIds, reward: (a) => letterReward(a), truth });
const reference = {
  endTokens: [END],
  decode,
  expansion: 'chain' as const,
  selection: 'widen' as const,
  initialValue: 'heuristic' as const,
  rollout: 'tree' as const,
  rolloutSteps: 2,
  rolloutTemperature: 1,
  stepLimit: 1,
  maxTokens: 50,
};

describe('the reference search on a scripted policy', () => {
  it('chains from one sample, re-expansion of a node with few children, each chain node continuing from its own place', async () => {
    // every continuation is '<L>, ' repeated until 3 steps, then the end token
    const policy = new FakePolicy(3);
    const { results } = await searchTrees(policy, [task('a', [6], 'x, x, x, ')], { ...reference, numActions: 2, maxDepth: 3, simulations: 3, seed: 5 });
    const root = results[0].root;
    // simulations 1 and 2 expand the root (2 children are not more than numActions): 4 chains
    expect(root.children.length).toBe(4);
    for (const c of root.children) {
      const chain = [c, c.children[0], c.children[0]?.children[0]].filter(Boolean);
      // a chain is the three steps of one sample, the last one terminal
      expect(chain.map((n) => n.depth)).toEqual([1, 2, 3]);
      expect(chain[2].terminal).toBe(true);
      expect(new Set(chain.map((n) => n.text.trim()[0])).size).toBe(1);
      // start value: 'x, ' shares its one word with the truth (+1), both no call (+0.1), − 0.5
      const letter = c.text[0];
      if (c.visits === 0) expect(c.valueSum).toBeCloseTo(letter === 'x' ? 0.6 : -0.4, 12);
    }
    // simulation 3 descends to a depth-1 node (its one chain child is too few to descend) and
    // expands it: the new chains start after its one step, so they hold the two steps left
    const grown = allNodes(root).filter((n) => n.depth === 1 && n.children.length === 3);
    expect(grown.length).toBe(1);
    for (const c of grown[0].children.slice(1)) {
      expect(c.children.length).toBe(1);
      expect(c.children[0].terminal).toBe(true);
      expect(c.children[0].children.length).toBe(0);
      expect(pathTo(c.children[0]).map((n) => n.text).join('').split(', ').length - 1).toBe(3);
    }
    expect(policy.live).toBe(0);
  });

  it('the rollout walks two steps down the children with the highest summed value and is valued there', async () => {
    const policy = new FakePolicy(3);
    const { results } = await searchTrees(policy, [task('a', [6], 'x, x, x, ')], { ...reference, numActions: 3, maxDepth: 3, simulations: 1, seed: 0 });
    const root = results[0].root;
    // one expansion, one rollout: only the depth-2 node under the best first step was valued
    const visited = allNodes(root).filter((n) => n.visits > 0 && n !== root);
    expect(visited.map((n) => n.depth)).toEqual([1, 2]);
    const best = root.children.reduce((b, c) => (c.valueSum > b.valueSum ? c : b));
    expect(visited[0]).toBe(best);
    // value: the letter reward of the two steps (judgeWeight 0), over the start value
    const v = letterReward(best.text + best.children[0].text);
    expect(visited[1].reward).toBe(v);
    expect(root.visits).toBe(1);
    expect(root.valueSum).toBe(v);
  });
});

describe('pairs by summed value over whole partial answers', () => {
  it('hand-built tree', () => {
    const root = makeRoot();
    const a = addChild(root, 1, { tokens: [0, 3, 4], text: 'x, ', logprobs: [0, 0, 0], terminal: false });
    const b = addChild(a, 2, { tokens: [1, 3, 4], text: 'y, ', logprobs: [0, 0, 0], terminal: false });
    const c = addChild(a, 3, { tokens: [2, 3, 4], text: 'z, ', logprobs: [0, 0, 0], terminal: false });
    const d = addChild(a, 4, { tokens: [0, 0, 3, 4], text: 'xx, ', logprobs: [0, 0, 0, 0], terminal: false });
    // summed values (d never visited: its start value counts with 'sum', not with 'mean')
    b.valueSum = 0.5;
    b.visits = 2;
    c.valueSum = 0.1;
    c.visits = 1;
    d.valueSum = -0.2;
    const ctx = { sampleId: 's', prompt: 'P', promptIds: [6] };
    const [p] = extractPairs(root, ctx, { pairValue: 'sum', overlap: 'words', pairCoverage: 'partial-answer' });
    expect([p.chosen, p.rejected, p.prefix, p.chosenValue, p.rejectedValue, p.depth]).toEqual(['x, y, ', 'x, xx, ', '', 0.5, -0.2, 1]);
    expect(p.chosenIds).toEqual([0, 3, 4, 1, 3, 4]);
    expect(p.rejectedIds).toEqual([0, 3, 4, 0, 0, 3, 4]);
    expect(p.prefixIds).toEqual([]);
    // the project's way: mean of the visited children (b 0.25, c 0.1): gap 0.15, the step only
    const [q] = extractPairs(root, ctx, {});
    expect([q.chosen, q.rejected, q.prefix, q.chosenValue, q.rejectedValue]).toEqual(['y, ', 'z, ', 'x, ', 0.25, 0.1]);
    // word overlap of 'y, ' and 'xx, ' is 0; of two steps with the same words 1, over the limit
    d.text = 'y, ';
    expect(extractPairs(root, ctx, { pairValue: 'sum', overlap: 'words', pairCoverage: 'partial-answer' })).toEqual([]);
  });
});

describe('repetition penalty in the search', () => {
  it("is passed to every sampleNext call of a model that takes it, and refused by one that does not", async () => {
    const policy = new FakePolicy(2);
    await expect(searchTrees(policy, [task('a', [6], 'x, ')], { ...reference, simulations: 1, repetitionPenalty: 0.75 })).rejects.toThrow(/repetitionPenalty' 0.75: this model's sampler has no repetition penalty/);
    const seen: Array<number | undefined> = [];
    const taking = Object.assign(new FakePolicy(2), { supportsRepetitionPenalty: true });
    const sample = taking.sampleNext.bind(taking);
    taking.sampleNext = (c, o) => (seen.push(o?.repetitionPenalty), sample(c, o));
    await searchTrees(taking, [task('a', [6], 'x, ')], { ...reference, simulations: 2, numActions: 2, repetitionPenalty: 0.75 });
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([0.75]));
    // 1 (off) is not sent at all
    seen.length = 0;
    await searchTrees(taking, [task('a', [6], 'x, ')], { ...reference, simulations: 1, numActions: 2 });
    expect(new Set(seen)).toEqual(new Set([undefined]));
  });
});
