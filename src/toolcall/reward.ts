// Rewards for the tree search: pure functions of (answer text, sample), in [-1, 1].
//
// reward(answer, sample, {partial, kind}):
//
//  kind 'ast' (default), graded against the ground truth with the BFCL rules:
//    complete answer
//      1                     the BFCL AST checker accepts it;
//      -1                    malformed (not a call and not cut off), or prose where calls are due;
//      -0.6 + 1.4·credit     otherwise, capped at 0.8 (so only a full match reaches 1);
//    prefix (partial: true, the text may be cut off)
//      0                     nothing judgeable yet (empty, "[", "<tool_call>\n{\"na");
//      -1                    malformed so far;
//      -0.6 + 1.5·credit     otherwise (at most 0.9: a prefix is never a full match);
//    where credit ∈ [0, 1] is the best one-to-one matching of model calls to expected calls,
//    each pair scoring 0 for a different function name, else 0.3 + 0.7·(right parameters /
//    judged parameters). A parameter is right when the BFCL value rules accept it; judged
//    parameters are those the model gave plus (for complete calls) those the ground truth
//    requires; an undeclared or unexpected parameter counts as judged and wrong. Credit is
//    the sum over matched pairs divided by max(expected calls, model calls) for complete
//    answers, and by the number of calls seen so far for prefixes (unexpected extra calls
//    score 0).
//    No-call samples (irrelevance, and text answers such as the reply after a tool result:
//    data/answers.ts): 1 for an answer with no call (prose, or an empty call
//    list), -1 for any call and for call syntax that is malformed or cut off (an attempted
//    call: unlike BFCL's evaluation, which counts an undecodable answer as no call); a prefix
//    scores -1 once a call has begun or its syntax is malformed, 0.5 while it is prose and 0
//    while undecided.
//
//  kind 'overlap' (the reference implementation's token-overlap reward): 2·F1 − 1 over word
//    and punctuation tokens between the answer and the reference answer written in the same
//    syntax as the answer (precision instead of F1 for prefixes).

import type { Sample, ToolCall, ToolSchema, GroundTruthCall } from '../data/sample.js';
import { groundTruthOf } from '../data/buckets.js';
import { checkAnswer, checkOneCall, checkerCategory, expectsNoCall } from './checker.js';
import { parseCalls, type PartialCall } from './parse.js';
import { formatHermesCalls, formatJsonCalls, formatPythonCalls } from './format.js';
import { callsFromGroundTruth } from './truth.js';

export interface RewardOptions {
  /** the text may be a prefix of an answer (judge only what is complete so far) */
  partial?: boolean;
  /** 'ast' (graded, default) or 'overlap' (token F1) */
  kind?: 'ast' | 'overlap';
}

function languageCategory(s: Sample): 'python' | 'java' | 'javascript' {
  const c = checkerCategory(s);
  return /javascript/.test(c) ? 'javascript' : /java/.test(c) ? 'java' : 'python';
}

/** Score of one model call against one expected call, in [0, 1]. */
export function callCredit(tools: readonly ToolSchema[], call: ToolCall | PartialCall, truth: GroundTruthCall, finished: boolean, lang: 'python' | 'java' | 'javascript' = 'python'): number {
  const name = Object.keys(truth)[0] ?? '';
  if (call.name !== name) return 0;
  const accepted = truth[name] ?? {};
  const tool = tools.find((t) => t.name === name);
  const args = call.arguments ?? {};
  let judged = 0;
  let right = 0;
  for (const [k, v] of Object.entries(args)) {
    judged++;
    if (!tool || !Object.prototype.hasOwnProperty.call(accepted, k)) continue;
    // the BFCL rules for this one parameter: a tool and a truth reduced to it
    const one: ToolSchema = { name, parameters: { type: 'object', properties: { [k]: tool.parameters.properties?.[k] ?? {} }, required: [] } };
    if (!tool.parameters.properties?.[k]) continue;
    if (checkOneCall(one, { name, arguments: { [k]: v } }, { [name]: { [k]: accepted[k]! } }, lang).valid) right++;
  }
  if (finished) {
    for (const [k, acc] of Object.entries(accepted)) {
      if (Object.prototype.hasOwnProperty.call(args, k)) continue;
      if (Array.isArray(acc) && acc.includes('')) continue;
      judged++; // required by the ground truth and missing
    }
  }
  return 0.3 + 0.7 * (judged === 0 ? 1 : right / judged);
}

/** Best one-to-one assignment (exact for up to 7 items, greedy beyond). */
function bestMatching(scores: number[][]): number {
  const n = scores.length;
  const m = n ? scores[0]!.length : 0;
  if (n === 0 || m === 0) return 0;
  if (n <= 7 && m <= 7) {
    let best = 0;
    const used = new Array<boolean>(m).fill(false);
    const go = (i: number, acc: number): void => {
      if (i === n) {
        if (acc > best) best = acc;
        return;
      }
      go(i + 1, acc); // row i unmatched
      for (let j = 0; j < m; j++) {
        if (used[j]) continue;
        used[j] = true;
        go(i + 1, acc + scores[i]![j]!);
        used[j] = false;
      }
    };
    go(0, 0);
    return best;
  }
  const pairs: Array<[number, number, number]> = [];
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) pairs.push([scores[i]![j]!, i, j]);
  pairs.sort((a, b) => b[0] - a[0]);
  const ri = new Set<number>();
  const cj = new Set<number>();
  let total = 0;
  for (const [s, i, j] of pairs) {
    if (ri.has(i) || cj.has(j)) continue;
    ri.add(i);
    cj.add(j);
    total += s;
  }
  return total;
}

function tokens(s: string): string[] {
  return s.match(/[\p{L}\p{N}_]+|[^\s\p{L}\p{N}_]/gu) ?? [];
}

/** Token-overlap reward: 2·F1 − 1 (2·precision − 1 for a prefix) against the reference answer. */
export function overlapReward(answerText: string, reference: string, partial = false): number {
  const a = tokens(answerText);
  const b = tokens(reference);
  if (a.length === 0) return partial ? 0 : b.length === 0 ? 1 : -1;
  const counts = new Map<string, number>();
  for (const t of b) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of a) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  const precision = common / a.length;
  if (partial) return 2 * precision - 1;
  const recall = b.length ? common / b.length : 0;
  const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return 2 * f1 - 1;
}

/** The sample's reference answer text, written in the given syntax. */
export function referenceAnswer(sample: Sample, style: 'python' | 'json' | 'hermes' = 'python'): string {
  const last = [...sample.messages].reverse().find((m) => m.role === 'assistant');
  let calls: ToolCall[];
  if (last && last.role === 'assistant' && !sample.groundTruth) {
    if (!last.toolCalls || last.toolCalls.length === 0) return last.content ?? '';
    calls = last.toolCalls;
  } else calls = callsFromGroundTruth(groundTruthOf(sample), sample.tools);
  if (calls.length === 0) return last && last.role === 'assistant' ? (last.content ?? '') : '';
  return style === 'hermes' ? formatHermesCalls(calls) : style === 'json' ? formatJsonCalls(calls) : formatPythonCalls(calls);
}

/** The graded reward of an answer (or a prefix of one) for a sample, in [-1, 1]. See the file head. */
export function reward(answerText: string, sample: Sample, opts: RewardOptions = {}): number {
  const partial = opts.partial ?? false;
  const decoded = parseCalls(answerText, { floatMarks: true, toolNames: sample.tools.map((t) => t.name) });
  if (opts.kind === 'overlap') {
    const style = decoded.format === 'hermes' ? 'hermes' : decoded.format === 'json' ? 'json' : 'python';
    return overlapReward(answerText, referenceAnswer(sample, style), partial && !decoded.complete);
  }
  const truth = groundTruthOf(sample);
  const noCall = truth.length === 0 || expectsNoCall(sample);
  const anyCall = decoded.calls.length > 0 || (decoded.partial !== undefined && decoded.partial.name !== '');
  if (noCall) {
    if (anyCall) return -1;
    if (decoded.format !== 'none') {
      // call syntax begun without a named call yet: an empty list ([]) says "no call", but
      // anything malformed ("[(", "{]") or cut off ("[", "<tool_call>\n{") is an attempted
      // call, never a refusal (BFCL's evaluation counts an undecodable answer as no call;
      // rewarding it here would teach the policy to emit broken calls instead of refusing)
      if (decoded.error !== undefined) return -1;
      if (!decoded.complete) return partial ? 0 : -1;
      return 1;
    }
    if (!partial || decoded.complete) return 1;
    if (decoded.error !== undefined) return 0.5; // prose so far
    return 0;
  }
  const finished = decoded.complete && decoded.error === undefined;
  if (finished && checkAnswer(sample, decoded).valid) return 1;
  if (decoded.error !== undefined) return -1;
  if (decoded.format === 'none') return partial ? 0 : -1;
  const lang = languageCategory(sample);
  const items: Array<{ call: ToolCall | PartialCall; finished: boolean }> = decoded.calls.map((c) => ({ call: c, finished: true }));
  const prefixMode = partial && !decoded.complete;
  if (prefixMode && decoded.partial && decoded.partial.name !== '') items.push({ call: decoded.partial, finished: false });
  if (prefixMode && items.length === 0) return 0;
  const scores = items.map((it) => truth.map((t) => callCredit(sample.tools, it.call, t, it.finished, lang)));
  const total = bestMatching(scores);
  if (prefixMode) {
    const credit = total / items.length;
    return Math.max(-1, Math.min(0.9, -0.6 + 1.5 * credit));
  }
  const credit = total / Math.max(truth.length, items.length, 1);
  const r = -0.6 + 1.4 * credit;
  // a complete answer cut off before its end earns no more than 0
  return Math.max(-1, Math.min(finished ? 0.8 : 0, r));
}
