// The authors' expansion (search.expansion 'chain'): one sampled continuation of up to
// maxTokens tokens is split into steps (the step pattern, the separator kept on the piece before
// it, stepLimit pieces per step) and becomes a chain of nodes, one per step, each the child of
// the one before. A node whose parent sits at maxDepth or deeper takes all the remaining steps,
// so the chain's last node is at most at depth maxDepth + 1 (zeng-yirong/iTool
// mcts/mcts_vllm.py:40-68, read at 871eceb).
import { splitStepSpans } from '../text/steps.js';

export interface ChainStep {
  tokens: number[];
  logprobs: number[];
  /** the node's text: its tokens decoded, the end token left out */
  text: string;
  /** the continuation ended here (an end token was sampled) */
  terminal: boolean;
}

export interface ChainOptions {
  decode: (ids: readonly number[]) => string;
  endTokens: readonly number[];
  pattern: RegExp;
  stepLimit: number;
  /** depth of the node the continuation was sampled from */
  startDepth: number;
  maxDepth: number;
}

/**
 * The chain's steps of one continuation. Steps are cut in text and mapped back to tokens: a
 * step ends with the first token whose decoded text reaches the cut (a token that straddles a
 * cut stays with the earlier step), and a cut that falls inside a token already taken is
 * dropped, so every step holds at least one token. `tokens` may end with an end token when
 * `ended`; it goes to the last step, which is then terminal.
 */
export function chainSteps(tokens: readonly number[], logprobs: readonly number[], ended: boolean, o: ChainOptions): ChainStep[] {
  if (tokens.length === 0) return [];
  const body = ended ? tokens.slice(0, -1) : tokens.slice();
  const text = o.decode(body);
  const spans = body.length ? splitStepSpans(text, { pattern: o.pattern, stepLimit: o.stepLimit }) : [];
  // decoded length after each token
  const reach: number[] = [];
  for (let i = 0; i < body.length; i++) reach.push(o.decode(body.slice(0, i + 1)).length);
  const groups: Array<[number, number]> = [];
  let from = 0;
  for (let k = 0; k < spans.length - 1 && from < body.length; k++) {
    const cut = spans[k].end;
    let i = from;
    while (i < body.length - 1 && reach[i] < cut) i++;
    if (i >= body.length - 1) break; // the rest is one step
    groups.push([from, i + 1]);
    from = i + 1;
  }
  groups.push([from, tokens.length]); // the last step takes the rest (and the end token)
  if (groups.length > 1 && groups[groups.length - 1][0] >= groups[groups.length - 1][1]) groups.pop();
  // depth cap: the step whose parent is at maxDepth or deeper takes all the remaining steps
  const room = Math.max(1, o.maxDepth - o.startDepth + 1);
  if (groups.length > room) {
    const merged: Array<[number, number]> = groups.slice(0, room - 1);
    merged.push([groups[room - 1][0], groups[groups.length - 1][1]]);
    groups.splice(0, groups.length, ...merged);
  }
  const ends = new Set(o.endTokens);
  return groups.map(([a, b], k) => {
    const t = tokens.slice(a, b);
    const last = k === groups.length - 1;
    return {
      tokens: t,
      logprobs: logprobs.slice(a, b),
      text: o.decode(t.filter((x) => !ends.has(x))),
      terminal: last && ended,
    };
  });
}
