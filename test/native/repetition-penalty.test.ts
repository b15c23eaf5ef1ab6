// sampleNext's repetition penalty (vLLM's rule) against a float64 reference built from the
// model's own full-sequence logits: every token already in the cache (prompt and generated) has
// its logit divided by the penalty when positive and multiplied by it when negative.
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, tinyConfig } from '../../src/engine/index.js';

const cfg = tinyConfig('LlamaForCausalLM');
const m = createModel(cfg, { seed: 11, initStd: 0.3 });
afterAll(() => m.dispose());
const V = cfg.vocabSize;

/** log-softmax (float64) of the last position's logits with the penalty on the tokens of `seq` */
async function reference(seq: number[], penalty: number): Promise<{ lsm: number[]; raw: number[] }> {
  const out = await m.forward({ tokens: Int32Array.from(seq), targets: new Int32Array(seq.length).fill(-1), cuSeqlens: Int32Array.from([0, seq.length]) }, { logits: true });
  const raw = Array.from(out.logits!.subarray((seq.length - 1) * V, seq.length * V), Number);
  const seen = new Set(seq);
  const pen = raw.map((x, t) => (seen.has(t) ? (x > 0 ? x / penalty : x * penalty) : x));
  const mx = Math.max(...pen);
  const lse = mx + Math.log(pen.reduce((a, x) => a + Math.exp(x - mx), 0));
  return { lsm: pen.map((x) => x - lse), raw };
}
const argmax = (xs: number[]) => xs.reduce((b, x, i) => (x > xs[b] ? i : b), 0);

describe('repetition penalty', () => {
  const prompt = [5, 9, 5, 17, 9, 33, 5, 2, 40, 17, 3, 9];

  it('greedy: the argmax and the log-probability of the penalised logits, the generated token counted next', async () => {
    expect(m.supportsRepetitionPenalty).toBe(true);
    for (const p of [0.75, 0.3, 1.8]) {
      const c = await m.cache(prompt);
      const ref = await reference(prompt, p);
      const s = await m.sampleNext([c], { temperature: 0, repetitionPenalty: p });
      const t = s.tokens[0]!;
      expect(t, `penalty ${p}`).toBe(argmax(ref.lsm));
      expect(Math.abs(s.logprobs[0]! - ref.lsm[t]!)).toBeLessThan(1e-4);
      // the second step sees the first token too
      const seq = [...prompt, t];
      const ref2 = await reference(seq, p);
      const s2 = await m.sampleNext([c], { temperature: 0, repetitionPenalty: p });
      expect(s2.tokens[0]).toBe(argmax(ref2.lsm));
      expect(Math.abs(s2.logprobs[0]! - ref2.lsm[s2.tokens[0]!]!)).toBeLessThan(1e-4);
      c.dispose();
    }
    // the case is not trivial: a strong penalty below 1 moves the greedy choice onto a seen token
    const ref = await reference(prompt, 0.3);
    expect(new Set(prompt).has(argmax(ref.lsm))).toBe(true);
    expect(argmax(ref.raw)).not.toBe(argmax(ref.lsm));
  });

  it('sampling at temperature 1 draws from the penalised distribution (its reported log-probability)', async () => {
    const ref = await reference(prompt, 0.75);
    for (let seed = 0; seed < 8; seed++) {
      const c = await m.cache(prompt);
      const s = await m.sampleNext([c], { temperature: 1, seed, repetitionPenalty: 0.75 });
      const t = s.tokens[0]!;
      expect(Math.abs(s.sampledLogprobs[0]! - ref.lsm[t]!)).toBeLessThan(1e-4);
      expect(Math.abs(s.logprobs[0]! - ref.lsm[t]!)).toBeLessThan(1e-4);
      c.dispose();
    }
  });

  it('generate applies the penalty at every step (greedy, against the float64 reference of the sequence so far)', async () => {
    const c = await m.cache(prompt);
    const [g] = await m.generate([c], { maxTokens: 6, temperature: 0, repetitionPenalty: 0.3 });
    c.dispose();
    expect(g!.tokens.length).toBe(6);
    const seq = [...prompt];
    for (const t of g!.tokens) {
      const ref = await reference(seq, 0.3);
      expect(t).toBe(argmax(ref.lsm));
      seq.push(t);
    }
    // without the penalty the first greedy token differs (see the first test), so a dropped option fails here
    expect(g!.tokens[0]).not.toBe(argmax((await reference(prompt, 0.3)).raw));
  });

  it('penalty 1 is the plain sampler; a penalty <= 0 is refused', async () => {
    const a = await m.cache(prompt);
    const b = await m.cache(prompt);
    const x = await m.sampleNext([a], { temperature: 1, seed: 4, repetitionPenalty: 1 });
    const y = await m.sampleNext([b], { temperature: 1, seed: 4 });
    expect(Array.from(x.tokens)).toEqual(Array.from(y.tokens));
    expect(Array.from(x.logprobs)).toEqual(Array.from(y.logprobs));
    await expect(m.sampleNext([a], { repetitionPenalty: 0 })).rejects.toThrow(/repetitionPenalty/);
    await expect(m.sampleNext([a], { repetitionPenalty: -1 })).rejects.toThrow(/repetitionPenalty/);
    a.dispose();
    b.dispose();
  });
});
