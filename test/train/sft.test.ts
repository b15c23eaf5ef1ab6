import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpointer } from '../../src/train/checkpoint.js';
import { TrainingDivergedError } from '../../src/train/loop.js';
import { sftOptions } from '../../src/train/options.js';
import { sftSequence } from '../../src/train/pack.js';
import { scorePerplexity } from '../../src/train/perplexity.js';
import { Rng } from '../../src/train/rng.js';
import { planSft, sftForwardBackward, trainSft, type RenderedSample } from '../../src/train/sft.js';
import { BigramModel } from './fake-model.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'itool-train-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** prompt tokens 0..7 (unmasked); answer (masked): one of four disjoint chains in 8..27, then 31 */
function dataset(n: number, cats = ['simple', 'multiple', 'parallel', 'irrelevance']): RenderedSample[] {
  const out: RenderedSample[] = [];
  for (let i = 0; i < n; i++) {
    const p = [i % 8, (i * 3) % 8];
    const a = [8 + 5 * (i % 4), 9 + 5 * (i % 4), 10 + 5 * (i % 4), 31];
    out.push({ ids: [...p, ...a], mask: [0, 0, 1, 1, 1, 1], category: cats[i % cats.length], id: `s${i}` });
  }
  return out;
}

describe('SFT on a stand-in model', () => {
  it('overfits a small set: loss falls from ~ln V to below 0.05', async () => {
    const m = new BigramModel(32, 3);
    const data = dataset(8);
    const res = await trainSft(m, data, null, { lr: 0.3, epochs: 60, batchTokens: 24, warmupRatio: 0.05, curriculum: false, progress: false, maxGradNorm: 0 });
    expect(res.losses[0]).toBeGreaterThan(3.0); // ln 32 = 3.47
    expect(res.losses.at(-1)).toBeLessThan(0.05);
    expect(res.skipped).toBe(0);
  });

  it('puts gradient only on masked tokens: dlogprobs = -1/n there, 0 elsewhere', async () => {
    const m = new BigramModel(32);
    const seqs = [sftSequence({ ids: [1, 2, 9, 10, 11], mask: [0, 0, 1, 1, 0] }), sftSequence({ ids: [3, 12, 13], mask: [0, 1, 1] })];
    await sftForwardBackward(m, [seqs]);
    const dl = m.dlogprobsSeen[0]!;
    // targets: [-1, 9, 10, -1, -1 | 12, 13, -1]; 4 masked tokens
    expect(Array.from(dl)).toEqual([0, -0.25, -0.25, 0, 0, -0.25, -0.25, 0].map(Math.fround));
  });

  it('packed and unpacked batches give the same loss and the same update', async () => {
    const data = dataset(6);
    const seqs = data.map((d) => sftSequence(d));
    const a = new BigramModel(32, 5);
    const b = new BigramModel(32, 5);
    const la = await sftForwardBackward(a, [seqs]);
    const lb = await sftForwardBackward(b, seqs.map((s) => [s]));
    expect(la.loss).toBeCloseTo(lb.loss, 6);
    for (let i = 0; i < a.grad.length; i++) expect(a.grad[i]).toBeCloseTo(b.grad[i]!, 12);
  });

  it('plans curriculum stages easy to hard, deterministic for a seed', () => {
    const data = dataset(16);
    const o = sftOptions({ batchTokens: 12, replay: 0.25, seed: 9 });
    const p = planSft(data, o);
    const stages = p.info.map((s) => s.stage);
    expect(stages).toEqual([...stages].sort((x, y) => x! - y!));
    expect(new Set(stages).size).toBe(4);
    // 4 per bucket; stage k replays round(0.25 * 4k) = k samples: 4, 5, 6, 7 sequences of 6 tokens, 2 per micro-batch
    expect(p.steps.length).toBe(2 + 3 + 3 + 4);
    expect(planSft(data, o).steps).toEqual(p.steps);
    expect(planSft(data, { ...o, seed: 10 }).steps).not.toEqual(p.steps);
    expect(planSft(data, { ...o, seed: 10 }).fingerprint).not.toBe(p.fingerprint);
  });

  it('skips a poisoned (NaN) batch, logs it, and trains on', async () => {
    const m = new BigramModel(32, 2);
    let calls = 0;
    m.poisonForward = () => ++calls === 3;
    const out = tmp();
    const res = await trainSft(m, dataset(8), null, { lr: 0.05, epochs: 2, batchTokens: 12, curriculum: false, progress: false, outDir: out, saveEvery: 0 });
    expect(res.skipped).toBe(1);
    expect(Number.isNaN(res.losses[2]!)).toBe(true);
    expect(res.losses.filter((x) => Number.isFinite(x)).length).toBe(res.losses.length - 1);
    expect(m.t).toBe(res.steps - 1); // the optimizer did not step on the poisoned batch
    for (const w of m.w) expect(Number.isFinite(w)).toBe(true);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.length).toBe(res.steps);
    expect(lines[2]).toMatchObject({ step: 3, skipped: true, loss: 'NaN' });
    expect(lines[3]).toMatchObject({ step: 4, skipped: false });
    for (const k of ['loss', 'lr', 'gradNorm', 'tokensPerSec', 'tokens']) expect(lines[3]).toHaveProperty(k);
  });

  it('stops after N non-finite steps in a row with the last good checkpoint intact', async () => {
    const m = new BigramModel(32, 2);
    let calls = 0;
    m.poisonForward = () => ++calls > 4;
    const out = tmp();
    const err = await trainSft(m, dataset(8), null, { lr: 0.05, epochs: 4, batchTokens: 12, curriculum: false, progress: false, outDir: out, saveEvery: 2, maxSkipsInRow: 3 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TrainingDivergedError);
    expect((err as Error).message).toMatch(/3 steps in a row skipped .*last good checkpoint is .*ckpt-\d+ \(step 6\)/);
    const c = new Checkpointer(join(out, 'checkpoints')).latest()!;
    expect(c.state.step).toBe(6);
    const back = new BigramModel(32, 99);
    await new Checkpointer(join(out, 'checkpoints')).load(back, c);
    expect(back.t).toBe(4); // steps 5 and 6 were skipped: no update
    for (const w of back.w) expect(Number.isFinite(w)).toBe(true);
  });

  it('resumes from a checkpoint to the same weights as an uninterrupted run', async () => {
    const data = dataset(12);
    const opts = { lr: 0.05, epochs: 3, batchTokens: 12, progress: false as const, saveEvery: 2, replay: 0.3 };
    // a caller's RNG, drawn from after every step: its state travels in the checkpoints
    const draw = (r: Rng) => ({ onStep: () => void r.next() });
    const fullRng = new Rng(77);
    const full = new BigramModel(32, 4);
    await trainSft(full, data, null, { ...opts, outDir: tmp(), rngs: { caller: fullRng } }, draw(fullRng));
    const out = tmp();
    const a = new BigramModel(32, 4);
    const rngA = new Rng(77);
    let stepsSeen = 0;
    const first = await trainSft(a, data, null, { ...opts, outDir: out, rngs: { caller: rngA } }, { ...draw(rngA), shouldStop: () => ++stepsSeen >= 5 });
    expect(first.stopped).toBe(true);
    expect(first.steps).toBe(5);
    const b = new BigramModel(32, 4); // fresh weights: everything must come from the checkpoint
    const rngB = new Rng(1); // fresh RNG: its state must come from the checkpoint too
    const second = await trainSft(b, data, null, { ...opts, outDir: out, resume: true, rngs: { caller: rngB } }, draw(rngB));
    expect(second.resumedFrom).toBe(5);
    expect(second.steps).toBe(second.totalSteps);
    expect(Buffer.from(b.w.buffer).equals(Buffer.from(full.w.buffer))).toBe(true);
    expect(rngB.state()).toEqual(fullRng.state());
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(lines).toEqual(Array.from({ length: second.totalSteps }, (_, i) => i + 1));
    // other data is refused
    await expect(trainSft(new BigramModel(32, 4), dataset(13), null, { ...opts, outDir: out, resume: true })).rejects.toThrow(/other data or options/);
  });

  it('scores answer perplexity per sample in input order, batched', async () => {
    const m = new BigramModel(32, 8);
    const data = dataset(5).map((d, i) => ({ ...d, promptLength: 2 + (i % 2) }));
    const r = await scorePerplexity(m, data, null, { batchTokens: 13 });
    for (let i = 0; i < data.length; i++) {
      const one = await scorePerplexity(m, [data[i]!], null, { batchTokens: 1000 });
      expect(r.perplexity[i]).toBeCloseTo(one.perplexity[0]!, 10);
      // by hand: mean over the answer targets after promptLength
      const s = sftSequence(data[i]!);
      const lp = await m.logprobs({ tokens: s.tokens, targets: s.targets, cuSeqlens: Int32Array.of(0, s.tokens.length) });
      let sum = 0;
      let n = 0;
      for (let t = 0; t < s.tokens.length; t++) if (s.targets[t]! >= 0 && t + 1 >= data[i]!.promptLength) { sum += lp[t]!; n++; }
      expect(r.tokens[i]).toBe(n);
      expect(r.perplexity[i]).toBeCloseTo(Math.exp(-sum / n), 8);
    }
    const none = await scorePerplexity(m, [{ ids: [1, 2], mask: [0, 0] }], null);
    expect(Number.isNaN(none.perplexity[0]!)).toBe(true);
  });
});
