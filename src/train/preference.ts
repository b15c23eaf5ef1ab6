// Preference optimisation on step pairs: SimPO (default), DPO, IPO, ORPO.
//
// Each pair becomes two sequences in the same packed micro-batch: context (prompt +
// prefix, targets -1) followed by the chosen step, and the same context followed by the
// rejected step; targets are set only on the step tokens, so the log-probability sums c
// and r cover the step alone. The native loss gives d loss / d c and d loss / d r per
// pair; every step token of the chosen sequence gets dlogprob = (d loss / d c) / P (P pairs
// in the optimizer step: the loss is the mean over pairs), and likewise for the rejected.
// DPO and IPO need reference sums: they are computed once, before the first step, with a
// gradient-free pass of the model as it is then (no second model), and kept in
// outDir/reference-<phase>.json so that a resumed run uses the same ones.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../engine/model-types.js';
import { writeFileAtomic } from './fsutil.js';
import { nativePreferenceLoss, type PreferenceLossFn, type PreferenceLossInput } from './losses.js';
import { runLoop, type StepInfo, type TrainHooks, type TrainResult } from './loop.js';
import { preferenceOptions, type PreferenceOptions } from './options.js';
import { chunk, packGroups, packSequences, type TrainSequence } from './pack.js';
import type { PreferencePair } from './pairs.js';
import { Progress } from './report.js';
import { permutation } from './rng.js';

/** The two sequences of a pair; `span` = [start, end) of the positions whose targets are the step. */
export interface PairSequences {
  chosen: TrainSequence;
  rejected: TrainSequence;
  chosenLen: number;
  rejectedLen: number;
}

function stepSequence(ctx: readonly number[], step: readonly number[]): TrainSequence {
  const n = ctx.length + step.length;
  const tokens = new Int32Array(n);
  tokens.set(ctx, 0);
  tokens.set(step, ctx.length);
  const targets = new Int32Array(n).fill(-1);
  for (let j = 0; j < step.length; j++) targets[ctx.length - 1 + j] = step[j]!;
  return { tokens, targets };
}

export function pairSequences(p: PreferencePair): PairSequences {
  const ctx = [...p.promptIds, ...p.prefixIds];
  if (ctx.length === 0) throw new RangeError('pair: prompt and prefix are both empty');
  if (p.chosenIds.length === 0 || p.rejectedIds.length === 0) throw new RangeError('pair: empty chosen or rejected step');
  return { chosen: stepSequence(ctx, p.chosenIds), rejected: stepSequence(ctx, p.rejectedIds), chosenLen: p.chosenIds.length, rejectedLen: p.rejectedIds.length };
}

function sumTargets(logprobs: Float32Array, targets: Int32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) if (targets[i]! >= 0) s += logprobs[i]!;
  return s;
}

/** Packs pairs (chosen then rejected of each pair, adjacent) into one batch. */
function packPairs(seqs: readonly PairSequences[]) {
  const list: TrainSequence[] = [];
  for (const s of seqs) list.push(s.chosen, s.rejected);
  return packSequences(list);
}

/** Gradient-free sums of the step log-probabilities, [chosen, rejected] per pair. */
export async function pairLogprobSums(
  model: Model,
  pairs: readonly PreferencePair[],
  batchTokens = 4096,
  progress?: boolean,
): Promise<{ chosen: Float64Array; rejected: Float64Array }> {
  const seqs = pairs.map(pairSequences);
  const chosen = new Float64Array(pairs.length);
  const rejected = new Float64Array(pairs.length);
  const cost = seqs.map((s) => s.chosen.tokens.length + s.rejected.tokens.length);
  const bar = new Progress('reference log-probs', pairs.length, 0, { progress });
  const t0 = performance.now();
  let done = 0;
  let tokens = 0;
  try {
    for (const g of packGroups(cost, seqs.map((_, i) => i), batchTokens)) {
      const batch = packPairs(g.map((i) => seqs[i]!));
      const lp = await model.logprobs(batch);
      g.forEach((pi, j) => {
        const cs = batch.cuSeqlens;
        chosen[pi] = sumTargets(lp, batch.targets, cs[2 * j]!, cs[2 * j + 1]!);
        rejected[pi] = sumTargets(lp, batch.targets, cs[2 * j + 1]!, cs[2 * j + 2]!);
      });
      done += g.length;
      tokens += batch.tokens.length;
      bar.update(done, NaN, tokens / ((performance.now() - t0) / 1000));
    }
  } finally {
    bar.stop();
  }
  return { chosen, rejected };
}

export interface PreferencePlan {
  sequences: PairSequences[];
  /** per optimizer step: micro-batches of pair indices */
  steps: number[][][];
  info: StepInfo[];
  fingerprint: string;
}

/**
 * Each epoch visits the pairs in the order permutation(seed, epoch); an optimizer step
 * takes batchPairs × gradAccum pairs, packed into micro-batches of at most batchTokens
 * tokens (a pair's two sequences always share a micro-batch).
 */
export function planPreference(pairs: readonly PreferencePair[], o: PreferenceOptions): PreferencePlan {
  const sequences = pairs.map((p, i) => {
    try {
      return pairSequences(p);
    } catch (e) {
      throw new Error(`preference: pair ${i}${p.sampleId ? ` (sample ${p.sampleId})` : ''}: ${(e as Error).message}`);
    }
  });
  const cost = sequences.map((s) => s.chosen.tokens.length + s.rejected.tokens.length);
  const steps: number[][][] = [];
  const info: StepInfo[] = [];
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const order = permutation(pairs.length, o.seed, 0x9a17, epoch);
    for (const stepPairs of chunk(order, o.batchPairs * o.gradAccum)) {
      const groups = packGroups(cost, stepPairs, o.batchTokens);
      // microTokens: smaller micro-batches, pairs whole (memory only; not in the fingerprint)
      steps.push(o.microTokens > 0 ? groups.flatMap((g) => packGroups(cost, g, o.microTokens)) : groups);
      info.push({ epoch });
    }
  }
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, seed: o.seed, epochs: o.epochs, batchPairs: o.batchPairs, gradAccum: o.gradAccum, batchTokens: o.batchTokens, loss: o.loss }));
  for (const p of pairs) h.update(JSON.stringify([p.promptIds, p.prefixIds, p.chosenIds, p.rejectedIds]));
  return { sequences, steps, info, fingerprint: h.digest('hex') };
}

export interface PreferenceStepStats {
  loss: number;
  tokens: number;
  lossTokens: number;
  chosenReward: number;
  rejectedReward: number;
  margin: number;
  accuracy: number;
}

/** Forward + loss + backward of one optimizer step's micro-batches (gradients accumulate). */
export async function preferenceForwardBackward(
  model: Model,
  micro: readonly (readonly number[])[],
  seqs: readonly PairSequences[],
  o: PreferenceOptions,
  lossFn: PreferenceLossFn,
  ref: { chosen: Float64Array; rejected: Float64Array } | null,
): Promise<PreferenceStepStats> {
  let P = 0;
  let tokens = 0;
  let lossTokens = 0;
  for (const mb of micro) for (const i of mb) {
    P++;
    tokens += seqs[i]!.chosen.tokens.length + seqs[i]!.rejected.tokens.length;
    lossTokens += seqs[i]!.chosenLen + seqs[i]!.rejectedLen;
  }
  let loss = 0;
  let cr = 0;
  let rr = 0;
  let acc = 0;
  for (const mb of micro) {
    const batch = packPairs(mb.map((i) => seqs[i]!));
    const { logprobs } = await model.forward(batch, { train: true });
    const n = mb.length;
    const input: PreferenceLossInput = {
      chosen: new Float32Array(n),
      rejected: new Float32Array(n),
      chosenLen: new Float32Array(n),
      rejectedLen: new Float32Array(n),
    };
    const cs = batch.cuSeqlens;
    mb.forEach((pi, j) => {
      input.chosen[j] = sumTargets(logprobs, batch.targets, cs[2 * j]!, cs[2 * j + 1]!);
      input.rejected[j] = sumTargets(logprobs, batch.targets, cs[2 * j + 1]!, cs[2 * j + 2]!);
      input.chosenLen[j] = seqs[pi]!.chosenLen;
      input.rejectedLen[j] = seqs[pi]!.rejectedLen;
    });
    if (o.loss === 'dpo' || o.loss === 'ipo') {
      if (!ref) throw new Error(`${o.loss}: reference log-probabilities are missing`);
      input.refChosen = Float32Array.from(mb, (pi) => ref.chosen[pi]!);
      input.refRejected = Float32Array.from(mb, (pi) => ref.rejected[pi]!);
    }
    const out = await lossFn(o.loss, { beta: o.beta, gamma: o.gamma, labelSmoothing: o.labelSmoothing, lambda: o.lambda }, input);
    let part = 0;
    for (let j = 0; j < n; j++) {
      part += out.loss[j]!;
      cr += out.chosenReward[j]!;
      rr += out.rejectedReward[j]!;
      if (out.chosenReward[j]! > out.rejectedReward[j]!) acc++;
    }
    for (let j = 0; j < n; j++) if (!Number.isFinite(out.dChosen[j]!) || !Number.isFinite(out.dRejected[j]!)) part = NaN;
    loss += part;
    if (!Number.isFinite(part)) {
      loss = part;
      break; // poisoned: no backward, the loop skips the step
    }
    const dl = new Float32Array(batch.tokens.length);
    for (let j = 0; j < n; j++) {
      const dc = out.dChosen[j]! / P;
      const dr = out.dRejected[j]! / P;
      for (let i = cs[2 * j]!; i < cs[2 * j + 1]!; i++) if (batch.targets[i]! >= 0) dl[i] = dc;
      for (let i = cs[2 * j + 1]!; i < cs[2 * j + 2]!; i++) if (batch.targets[i]! >= 0) dl[i] = dr;
    }
    await model.backward(dl);
  }
  return { loss: loss / P, tokens, lossTokens, chosenReward: cr / P, rejectedReward: rr / P, margin: (cr - rr) / P, accuracy: acc / P };
}

export interface PreferenceTrainOptions extends PreferenceOptions {
  /** the loss implementation (default: the native op) */
  lossFn: PreferenceLossFn;
}

/**
 * Trains `model` on preference pairs. Options: see PreferenceOptions (defaults in
 * PREFERENCE_DEFAULTS: SimPO, beta 2.5, gamma 0.5, lr 1e-6, 2 epochs, cosine, warm-up 0.1).
 */
export async function trainPreference(
  model: Model,
  pairs: readonly PreferencePair[],
  options: Partial<PreferenceTrainOptions> = {},
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  const { lossFn = nativePreferenceLoss, ...rest } = options;
  const o = preferenceOptions(rest);
  if (pairs.length === 0) throw new Error('preference: no pairs to train on');
  const plan = planPreference(pairs, o);
  let ref: { chosen: Float64Array; rejected: Float64Array } | null = null;
  const needsRef = o.loss === 'dpo' || o.loss === 'ipo';
  const refFile = o.outDir ? join(o.outDir, `reference-${o.phase}.json`) : null;
  return runLoop({
    model,
    opts: o,
    hooks,
    steps: plan.info,
    fingerprint: plan.fingerprint,
    label: `${o.phase} (${o.loss})`,
    prepare: async (resumed) => {
      if (!needsRef) return;
      if (resumed) {
        if (!refFile || !existsSync(refFile)) throw new Error(`resume: ${o.loss} needs the reference log-probabilities of this phase, but ${refFile ?? 'outDir'} is missing`);
        const j = JSON.parse(readFileSync(refFile, 'utf8')) as { fingerprint: string; chosen: number[]; rejected: number[] };
        if (j.fingerprint !== plan.fingerprint || j.chosen.length !== pairs.length) throw new Error(`resume: ${refFile} belongs to other pairs`);
        ref = { chosen: Float64Array.from(j.chosen), rejected: Float64Array.from(j.rejected) };
        return;
      }
      ref = await pairLogprobSums(model, pairs, o.batchTokens, o.progress);
      if (refFile) {
        mkdirSync(o.outDir!, { recursive: true });
        writeFileAtomic(refFile, JSON.stringify({ fingerprint: plan.fingerprint, chosen: Array.from(ref.chosen), rejected: Array.from(ref.rejected) }));
      }
    },
    run: async (k) => {
      const s = await preferenceForwardBackward(model, plan.steps[k]!, plan.sequences, o, lossFn, ref);
      return {
        loss: s.loss,
        tokens: s.tokens,
        lossTokens: s.lossTokens,
        metrics: { chosenReward: s.chosenReward, rejectedReward: s.rejectedReward, margin: s.margin, accuracy: s.accuracy },
      };
    },
  });
}
