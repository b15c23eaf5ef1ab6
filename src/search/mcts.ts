// Step-wise Monte Carlo tree search over the policy's own continuations of an answer,
// many samples' trees at once so that every sampleNext batch is full.
//
// One simulation of one tree: select a leaf by UCT → expand it with `numActions` steps
// sampled from its forked KV cache at `temperature`, each cut at the `stepLimit`-th step
// boundary (in text) or `maxTokens` → evaluate every new step by a rollout to the end of
// the answer (or `rolloutSteps` more steps) scored by the reward (optionally blended with
// the policy's self-judgement) → back-propagate each value to the root.
//
// The authors' variant (the `reference` preset) differs in four knobs: expansion 'chain' (one
// continuation of up to maxTokens split into steps, one node per step), initialValue
// 'heuristic', selection 'widen' and rollout 'tree' (one rollout per expansion, down the best
// existing children); see chain.ts.
import type { KvCache, SampleOptions, StepOutput } from '../engine/model-types.js';
import { chainSteps } from './chain.js';
import { heuristicValue } from './heuristic.js';
import { extractPairs, type PairOptions, type StepPair } from './pairs.js';
import { addChild, backpropagate, makeRoot, pathTo, selectLeaf, selectWiden, type SearchNode } from './tree.js';

/** What the search needs of a model (a `Model` satisfies it). */
export interface SearchModel {
  cache(prompt: readonly number[]): Promise<KvCache>;
  sampleNext(caches: readonly KvCache[], opts?: SampleOptions): Promise<StepOutput>;
  /** true when sampleNext applies a `repetitionPenalty` option (the native engine does not yet) */
  readonly supportsRepetitionPenalty?: boolean;
}

/** One sample to search. */
export interface SearchTask {
  sampleId: string;
  /** rendered prompt text (kept in pairs) */
  prompt: string;
  /** prompt token ids, ending where the answer starts */
  promptIds: number[];
  /** reward of an answer text in [-1, 1]; partial: the answer was cut before its end */
  reward: (answerText: string, partial: boolean) => number;
  /** the ground-truth answer as text (the heuristic start value needs it) */
  truth?: string;
}

/** Grades answers with the policy itself (values in [-1, 1]), batched. */
export type Judge = (items: Array<{ task: SearchTask; answer: string }>) => Promise<number[]>;

export interface SearchOptions extends PairOptions {
  numActions?: number; // 3
  temperature?: number; // 1.5
  maxTokens?: number; // 50 tokens per step
  maxDepth?: number; // 3
  simulations?: number; // 5
  c?: number; // 1 (exploration weight)
  /** boundaries per step (1) */
  stepLimit?: number;
  /** step boundary pattern (global flag added when missing); default /\. |, |=|\(/ */
  stepPattern?: RegExp;
  /** steps a rollout may take before it is scored as partial (0: to the end of the answer) */
  rolloutSteps?: number;
  /** hard cap on a rollout's tokens (256) */
  rolloutMaxTokens?: number;
  /** temperature of rollouts (0: greedy) */
  rolloutTemperature?: number;
  /** tokens that end the answer (end of turn / end of text) */
  endTokens: readonly number[];
  /** decodes answer token ids to text */
  decode: (ids: readonly number[]) => string;
  /** most caches per sampleNext call (64) */
  batchSize?: number;
  seed?: number;
  judge?: Judge;
  /** weight of the judge in the value: (1 − w)·reward + w·judge (0) */
  judgeWeight?: number;
  onProgress?: (simulationsDone: number, simulations: number) => void;
  /** 'step' (default) or 'chain': see chain.ts */
  expansion?: 'step' | 'chain';
  /** 'leaf' (default: selectLeaf) or 'widen' (selectWiden) */
  selection?: 'leaf' | 'widen';
  /** 'none' (default) or 'heuristic': a new node's summed value starts at heuristicValue(step, truth) */
  initialValue?: 'none' | 'heuristic';
  /** 'sample' (default): a rollout from every new node; 'tree': one per expansion, rolloutSteps steps down the best children (by summed value), else one sampled continuation */
  rollout?: 'sample' | 'tree';
  /** vLLM's repetition penalty (1: off); passed to sampleNext */
  repetitionPenalty?: number;
}

export const DEFAULT_STEP_PATTERN = /\. |, |=|\(/g;

export interface SearchResult {
  sampleId: string;
  root: SearchNode;
  pairs: StepPair[];
}

export interface SearchStats {
  nodes: number;
  generatedTokens: number;
  sampleCalls: number;
  /** mean rows per sampleNext call */
  meanBatch: number;
}

interface Row {
  cache: KvCache;
  /** which sampling stream (seed offset) the row belongs to */
  stream: number;
  tokens: number[];
  logprobs: number[];
  done: boolean;
  ended: boolean; // an end token was sampled
  /** boundaries that end this row (0: none, run to the end) */
  boundaries: number;
  maxTokens: number;
  /** decoded text of earlier tokens (for joint decoding of the boundary check) */
}

function countBoundaries(text: string, pattern: RegExp): { count: number; lastEnd: number } {
  pattern.lastIndex = 0;
  let count = 0;
  let lastEnd = 0;
  for (let m = pattern.exec(text); m; m = pattern.exec(text)) {
    count++;
    lastEnd = m.index + m[0].length;
    if (m[0].length === 0) pattern.lastIndex++;
  }
  return { count, lastEnd };
}

export class TreeSearch {
  private readonly o: Required<Omit<SearchOptions, 'judge' | 'onProgress' | keyof PairOptions>> & SearchOptions;
  private readonly pattern: RegExp;
  readonly stats: SearchStats = { nodes: 0, generatedTokens: 0, sampleCalls: 0, meanBatch: 0 };
  private batchRows = 0;

  constructor(
    private readonly model: SearchModel,
    options: SearchOptions,
  ) {
    this.o = {
      numActions: 3,
      temperature: 1.5,
      maxTokens: 50,
      maxDepth: 3,
      simulations: 5,
      c: 1,
      stepLimit: 1,
      stepPattern: DEFAULT_STEP_PATTERN,
      rolloutSteps: 0,
      rolloutMaxTokens: 256,
      rolloutTemperature: 0,
      batchSize: 64,
      seed: 0,
      judgeWeight: 0,
      expansion: 'step',
      selection: 'leaf',
      initialValue: 'none',
      rollout: 'sample',
      repetitionPenalty: 1,
      ...options,
    };
    const oneOf = (k: 'expansion' | 'selection' | 'initialValue' | 'rollout', allowed: string[]) => {
      if (!allowed.includes(this.o[k] as string)) throw new RangeError(`search option '${k}' must be ${allowed.map((a) => `'${a}'`).join(' or ')}, got ${JSON.stringify(this.o[k])}`);
    };
    oneOf('expansion', ['step', 'chain']);
    oneOf('selection', ['leaf', 'widen']);
    oneOf('initialValue', ['none', 'heuristic']);
    oneOf('rollout', ['sample', 'tree']);
    if (!(this.o.repetitionPenalty > 0) || !Number.isFinite(this.o.repetitionPenalty)) throw new RangeError(`search option 'repetitionPenalty' must be > 0, got ${this.o.repetitionPenalty}`);
    if (this.o.repetitionPenalty !== 1 && model.supportsRepetitionPenalty !== true)
      throw new Error(`search option 'repetitionPenalty' ${this.o.repetitionPenalty}: this model's sampler has no repetition penalty (give 1)`);
    for (const k of ['numActions', 'maxTokens', 'simulations', 'stepLimit', 'batchSize', 'rolloutMaxTokens'] as const) {
      const v = this.o[k];
      if (!Number.isInteger(v) || v < 1) throw new RangeError(`search option '${k}' must be an integer >= 1, got ${v}`);
    }
    if (!Number.isInteger(this.o.maxDepth) || this.o.maxDepth < 1) throw new RangeError(`search option 'maxDepth' must be an integer >= 1, got ${this.o.maxDepth}`);
    if (!Number.isInteger(this.o.rolloutSteps) || this.o.rolloutSteps < 0) throw new RangeError(`search option 'rolloutSteps' must be an integer >= 0, got ${this.o.rolloutSteps}`);
    if (!(this.o.judgeWeight >= 0 && this.o.judgeWeight <= 1)) throw new RangeError(`search option 'judgeWeight' must be in [0, 1], got ${this.o.judgeWeight}`);
    if (this.o.judgeWeight > 0 && !this.o.judge) throw new Error(`search option 'judgeWeight' > 0 needs a 'judge'`);
    const p = this.o.stepPattern;
    this.pattern = p.global ? new RegExp(p.source, p.flags) : new RegExp(p.source, p.flags + 'g');
  }

  /** Decodes rows until each stops (boundary count reached, end token, or its token cap). */
  private async decodeRows(rows: Row[], temperature: number, seed: number): Promise<void> {
    const ends = new Set(this.o.endTokens);
    for (;;) {
      const active = rows.filter((r) => !r.done);
      if (active.length === 0) return;
      // one call per stream (siblings forked from one cache must not share a seed), chunked
      const byStream = new Map<number, Row[]>();
      for (const r of active) {
        const list = byStream.get(r.stream) ?? [];
        list.push(r);
        byStream.set(r.stream, list);
      }
      for (const [stream, list] of byStream) {
        for (let i = 0; i < list.length; i += this.o.batchSize) {
          const chunk = list.slice(i, i + this.o.batchSize);
          const opts: SampleOptions & { repetitionPenalty?: number } = { temperature, seed: (seed * 1_000_003 + stream * 7919) >>> 0 };
          if (this.o.repetitionPenalty !== 1) opts.repetitionPenalty = this.o.repetitionPenalty;
          const out = await this.model.sampleNext(
            chunk.map((r) => r.cache),
            opts,
          );
          this.stats.sampleCalls++;
          this.batchRows += chunk.length;
          this.stats.generatedTokens += chunk.length;
          for (let j = 0; j < chunk.length; j++) {
            const r = chunk[j];
            const tok = out.tokens[j];
            r.tokens.push(tok);
            r.logprobs.push(out.logprobs[j]);
            if (ends.has(tok)) {
              r.done = true;
              r.ended = true;
              continue;
            }
            if (r.boundaries > 0) {
              const text = this.o.decode(r.tokens);
              const { count } = countBoundaries(text, this.pattern);
              if (count >= r.boundaries) {
                r.done = true;
                continue;
              }
            }
            if (r.tokens.length >= r.maxTokens) r.done = true;
          }
        }
      }
      this.stats.meanBatch = this.stats.sampleCalls ? this.batchRows / this.stats.sampleCalls : 0;
    }
  }

  /** Searches all tasks' trees together; returns each tree with its pairs. */
  async search(tasks: readonly SearchTask[]): Promise<SearchResult[]> {
    const o = this.o;
    const caches = new Map<SearchNode, KvCache>();
    const roots: SearchNode[] = [];
    const nextId: number[] = [];
    const ends = new Set(o.endTokens);
    const heuristic = o.initialValue === 'heuristic';
    try {
      for (const t of tasks) {
        if (t.promptIds.length === 0) throw new Error(`search: sample '${t.sampleId}' has an empty prompt`);
        if (heuristic && typeof t.truth !== 'string') throw new Error(`search: initialValue 'heuristic' needs the ground-truth text of sample '${t.sampleId}' (task.truth)`);
        const root = makeRoot();
        roots.push(root);
        nextId.push(1);
        caches.set(root, await this.model.cache(t.promptIds));
      }
      this.stats.nodes += roots.length;
      const start = (node: SearchNode, tree: number) => {
        if (heuristic) node.valueSum += heuristicValue(node.text, tasks[tree].truth ?? '');
      };
      for (let sim = 0; sim < o.simulations; sim++) {
        // 1. selection
        const widen = o.selection === 'widen';
        const leaves = roots.map((r) => (widen ? selectWiden(r, o.c, o.maxDepth, o.numActions) : selectLeaf(r, o.c, o.maxDepth)));
        // 2. expansion: numActions rows per expandable leaf, forked from its cache
        const expand: Array<{ tree: number; leaf: SearchNode; rows: Row[]; base: number }> = [];
        const revisit: SearchNode[] = [];
        leaves.forEach((leaf, tree) => {
          if (leaf.terminal || leaf.depth >= o.maxDepth || (widen && leaf.children.length > o.numActions)) {
            // the authors' loop skips the simulation; the project's values the leaf again
            if (!widen) revisit.push(leaf);
            return;
          }
          const parentCache = caches.get(leaf)!;
          const rows: Row[] = [];
          const chain = o.expansion === 'chain';
          for (let a = 0; a < o.numActions; a++)
            rows.push({ cache: parentCache.fork(), stream: a, tokens: [], logprobs: [], done: false, ended: false, boundaries: chain ? 0 : o.stepLimit, maxTokens: o.maxTokens });
          expand.push({ tree, leaf, rows, base: parentCache.length });
        });
        await this.decodeRows(
          expand.flatMap((e) => e.rows),
          o.temperature,
          o.seed * 131 + sim,
        );
        const fresh: Array<{ tree: number; node: SearchNode }> = [];
        for (const e of expand) {
          for (const r of e.rows) {
            if (o.expansion === 'chain') {
              // one continuation → a chain of nodes; each node's cache is the row's, cut after its tokens
              const steps = chainSteps(r.tokens, r.logprobs, r.ended, { decode: o.decode, endTokens: o.endTokens, pattern: this.pattern, stepLimit: o.stepLimit, startDepth: e.leaf.depth, maxDepth: o.maxDepth });
              let parent = e.leaf;
              let used = 0;
              steps.forEach((st, k) => {
                const node = addChild(parent, nextId[e.tree]++, st);
                used += st.tokens.length;
                if (k === steps.length - 1) caches.set(node, r.cache);
                else {
                  const c = r.cache.fork();
                  c.truncate(e.base + used);
                  caches.set(node, c);
                }
                start(node, e.tree);
                fresh.push({ tree: e.tree, node });
                parent = node;
              });
              if (steps.length === 0) r.cache.dispose();
              continue;
            }
            const body = r.ended ? r.tokens.slice(0, -1) : r.tokens;
            const node = addChild(e.leaf, nextId[e.tree]++, { tokens: r.tokens, text: this.o.decode(body), logprobs: r.logprobs, terminal: r.ended });
            caches.set(node, r.cache);
            start(node, e.tree);
            fresh.push({ tree: e.tree, node });
          }
        }
        this.stats.nodes += fresh.length;
        // 3. evaluation: rollouts of the new, non-terminal steps ('sample'), or one rollout per
        // expanded leaf down its best children ('tree')
        const rollRows: Row[] = [];
        const rollOf = new Map<SearchNode, Row>();
        const evaluated: Array<{ tree: number; node: SearchNode }> = [];
        if (o.rollout === 'tree') {
          for (const e of expand) {
            let cur = e.leaf;
            let steps = 0;
            while (steps < o.rolloutSteps && !cur.terminal && cur.children.length > 0) {
              // the child with the highest summed value (the first one on ties)
              cur = cur.children.reduce((b, c) => (c.valueSum > b.valueSum ? c : b));
              steps++;
            }
            evaluated.push({ tree: e.tree, node: cur });
            if (steps < o.rolloutSteps && !cur.terminal) {
              const r: Row = { cache: caches.get(cur)!.fork(), stream: e.tree % o.numActions, tokens: [], logprobs: [], done: false, ended: false, boundaries: 0, maxTokens: o.rolloutMaxTokens };
              rollRows.push(r);
              rollOf.set(cur, r);
            }
          }
        } else {
          fresh.forEach(({ tree, node }, i) => {
            evaluated.push({ tree, node });
            if (node.terminal) return;
            const r: Row = {
              cache: caches.get(node)!.fork(),
              stream: i % o.numActions,
              tokens: [],
              logprobs: [],
              done: false,
              ended: false,
              boundaries: o.rolloutSteps > 0 ? o.rolloutSteps * o.stepLimit : 0,
              maxTokens: o.rolloutMaxTokens,
            };
            rollRows.push(r);
            rollOf.set(node, r);
          });
        }
        try {
          await this.decodeRows(rollRows, o.rolloutTemperature, o.seed * 131 + sim + 977);
        } finally {
          for (const r of rollRows) r.cache.dispose();
        }
        const items: Array<{ task: SearchTask; answer: string; partial: boolean; node: SearchNode }> = [];
        for (const { tree, node } of evaluated) {
          const answerTokens = pathTo(node).flatMap((n) => n.tokens);
          const r = rollOf.get(node);
          let rollTokens: number[] = [];
          let partial = o.rollout === 'tree' ? !node.terminal : false;
          if (r) {
            rollTokens = r.ended ? r.tokens.slice(0, -1) : r.tokens;
            partial = !r.ended;
          }
          const all = answerTokens.concat(rollTokens).filter((t) => !ends.has(t));
          const answer = this.o.decode(all);
          if (r) node.rollout = this.o.decode(rollTokens);
          items.push({ task: tasks[tree], answer, partial, node });
        }
        const rewards = items.map((it) => it.task.reward(it.answer, it.partial));
        let judged: number[] | null = null;
        if (o.judge && o.judgeWeight > 0 && items.length) judged = await o.judge(items.map((it) => ({ task: it.task, answer: it.answer })));
        items.forEach((it, i) => {
          let v = rewards[i];
          if (!Number.isFinite(v)) throw new Error(`search: reward of sample '${it.task.sampleId}' is not a finite number (${v})`);
          if (judged) v = (1 - o.judgeWeight) * v + o.judgeWeight * judged[i];
          it.node.reward = v;
          // 4. back-propagation
          backpropagate(it.node, v);
        });
        // leaves that cannot be expanded are valued again with their own reward
        for (const leaf of revisit) if (leaf.reward !== undefined) backpropagate(leaf, leaf.reward);
        o.onProgress?.(sim + 1, o.simulations);
      }
      return roots.map((root, i) => ({
        sampleId: tasks[i].sampleId,
        root,
        pairs: extractPairs(root, { sampleId: tasks[i].sampleId, prompt: tasks[i].prompt, promptIds: tasks[i].promptIds }, o),
      }));
    } finally {
      for (const c of caches.values()) c.dispose();
    }
  }
}

/** Searches `tasks` with the given model and options (one TreeSearch). */
export async function searchTrees(model: SearchModel, tasks: readonly SearchTask[], options: SearchOptions): Promise<{ results: SearchResult[]; stats: SearchStats }> {
  const s = new TreeSearch(model, options);
  const results = await s.search(tasks);
  return { results, stats: s.stats };
}
