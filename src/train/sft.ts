// Supervised fine-tuning: loss only on the tokens the mask marks (the assistant's
// answer), samples packed whole into a token budget per micro-batch, gradient
// accumulation, an easy-to-hard curriculum, AdamW through model.step().
//
// Loss of a step = mean over all masked target tokens of the step of -log p(target):
// dlogprobs = -1 / (masked tokens in the step) on those positions, 0 elsewhere.
import { createHash } from 'node:crypto';
import type { Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import { curriculumStages } from './curriculum.js';
import { runLoop, type StepInfo, type TrainHooks, type TrainResult } from './loop.js';
import { sftOptions, type SftOptions } from './options.js';
import { chunk, countTargets, packGroups, packSequences, sftSequence, type RenderedIds, type TrainSequence } from './pack.js';
import { permutation } from './rng.js';

/** Turns a sample into token ids and a loss mask (the text layer's render()). */
export type SftRenderer = ((sample: Sample) => RenderedIds) | { render(sample: Sample): RenderedIds };

/** A sample already rendered; category chooses its curriculum stage. */
export interface RenderedSample extends RenderedIds {
  id?: string;
  category?: string;
}

export function renderAll(samples: readonly Sample[], renderer: SftRenderer): RenderedSample[] {
  const f = typeof renderer === 'function' ? renderer : (s: Sample) => renderer.render(s);
  return samples.map((s, i) => {
    let r: RenderedIds;
    try {
      r = f(s);
    } catch (e) {
      throw new Error(`sft: rendering sample ${i} (${s.id}) failed: ${e instanceof Error ? e.message : String(e)}`);
    }
    return { ids: r.ids, mask: r.mask, id: s.id, category: s.category };
  });
}

export interface SftPlan {
  sequences: TrainSequence[];
  /** per optimizer step: its micro-batches, each a list of sequence indices */
  steps: number[][][];
  info: StepInfo[];
  /** samples dropped because no masked token survived truncation */
  dropped: number;
  fingerprint: string;
}

/**
 * The whole plan of an SFT run: a pure function of the data and the options (seed included).
 * Each stage (one when the curriculum is off) runs `epochs` passes; each pass visits the
 * stage's samples in the order permutation(seed, stage, epoch), packed greedily into
 * micro-batches of at most batchTokens tokens, gradAccum micro-batches per step; with
 * microTokens each micro-batch runs as smaller ones (not in the fingerprint: a run may resume
 * under another memory budget).
 */
export function planSft(data: readonly RenderedSample[], o: SftOptions): SftPlan {
  const sequences: TrainSequence[] = [];
  const keep: number[] = [];
  let dropped = 0;
  data.forEach((r, i) => {
    const s = sftSequence(r, o.maxLength);
    if (countTargets(s) === 0) {
      dropped++;
      return;
    }
    keep.push(i);
    sequences.push(s);
  });
  const cats = keep.map((i) => data[i]!.category);
  const stages = o.curriculum ? curriculumStages(cats, { stages: o.stages ?? undefined, replay: o.replay, seed: o.seed }) : [sequences.map((_, i) => i)];
  const lengths = sequences.map((s) => s.tokens.length);
  const steps: number[][][] = [];
  const info: StepInfo[] = [];
  stages.forEach((members, stage) => {
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = permutation(members.length, o.seed, stage, epoch).map((j) => members[j]!);
      const micro = packGroups(lengths, order, o.batchTokens);
      for (const st of chunk(micro, o.gradAccum)) {
        // microTokens splits a micro-batch further (memory only: the step's samples stay the same)
        steps.push(o.microTokens > 0 ? st.flatMap((mb) => packGroups(lengths, mb, o.microTokens)) : st);
        info.push({ epoch, stage });
      }
    }
  });
  const h = createHash('sha256');
  h.update(JSON.stringify({ v: 1, seed: o.seed, epochs: o.epochs, batchTokens: o.batchTokens, gradAccum: o.gradAccum, maxLength: o.maxLength, curriculum: o.curriculum, stages: o.stages, replay: o.replay }));
  for (const s of sequences) {
    h.update(new Uint8Array(s.tokens.buffer, s.tokens.byteOffset, s.tokens.byteLength));
    h.update(new Uint8Array(s.targets.buffer, s.targets.byteOffset, s.targets.byteLength));
  }
  return { sequences, steps, info, dropped, fingerprint: h.digest('hex') };
}

/**
 * One SFT step's forward and backward over its micro-batches (gradients accumulate in
 * the model). Exposed for tests and benchmarks.
 */
export async function sftForwardBackward(model: Model, micro: readonly (readonly TrainSequence[])[]): Promise<{ loss: number; tokens: number; lossTokens: number }> {
  let n = 0;
  let tokens = 0;
  for (const mb of micro) for (const s of mb) {
    n += countTargets(s);
    tokens += s.tokens.length;
  }
  if (n === 0) return { loss: NaN, tokens, lossTokens: 0 };
  let sum = 0;
  for (const mb of micro) {
    const batch = packSequences(mb);
    // the gradients are known before the forward: it makes the LM head's in its own pass
    const dl = new Float32Array(batch.tokens.length);
    for (let i = 0; i < batch.targets.length; i++) if (batch.targets[i]! >= 0) dl[i] = -1 / n;
    const { logprobs } = await model.forward(batch, { train: true, dlogprobs: dl });
    let part = 0;
    for (let i = 0; i < batch.targets.length; i++) if (batch.targets[i]! >= 0) part -= logprobs[i]!;
    sum += part;
    // poisoned: no backward; the loop zeroes the gradients (the head's included) and skips the step
    if (!Number.isFinite(part)) return { loss: part, tokens, lossTokens: n };
    await model.backward();
  }
  return { loss: sum / n, tokens, lossTokens: n };
}

/**
 * Trains `model` on `samples` (rendered with `renderer`, or already rendered when
 * renderer is null). Options: see SftOptions (defaults in SFT_DEFAULTS).
 */
export async function trainSft(
  model: Model,
  samples: readonly Sample[] | readonly RenderedSample[],
  renderer: SftRenderer | null,
  options: Partial<SftOptions> = {},
  hooks: TrainHooks = {},
): Promise<TrainResult & { dropped: number }> {
  const o = sftOptions(options);
  const data = renderer ? renderAll(samples as readonly Sample[], renderer) : (samples as readonly RenderedSample[]);
  const plan = planSft(data, o);
  if (plan.sequences.length === 0) throw new Error(`sft: no sample has a masked (assistant) token to train on (${data.length} samples given)`);
  if (plan.dropped > 0) process.stderr.write(`itool sft: ${plan.dropped} sample(s) without a masked token after truncation to ${o.maxLength} tokens were left out\n`);
  const res = await runLoop({
    model,
    opts: o,
    hooks,
    steps: plan.info,
    fingerprint: plan.fingerprint,
    label: o.phase,
    run: (k) => sftForwardBackward(model, plan.steps[k]!.map((mb) => mb.map((i) => plan.sequences[i]!))),
  });
  return { ...res, dropped: plan.dropped };
}
