// The model on CUDA against the same model on the CPU (same f32 master weights, copied
// with setParam): forward log-probabilities, parameter gradients, KV-cache decoding,
// generation with forks, and a short training run whose loss must fall like the CPU's.
// bf16 activations on the GPU, f32 on the CPU: tolerances are stated per check.
// Skipped with the reason where no CUDA device is present.
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, tinyConfig, type NativeModel } from '../../src/engine/index.js';
import type { Architecture, ModelConfig, PackedBatch } from '../../src/engine/model-types.js';
import { rng } from '../native/op-table.js';
import { agreement, gpuStatus, maxAbs, sized } from './helpers.js';

const gpu = gpuStatus();
const skip = !gpu.ok;
const why = skip ? ` (skipped: ${gpu.reason})` : '';

function randSeq(n: number, V: number, r: () => number): number[] {
  return Array.from({ length: n }, () => 3 + Math.floor(r() * (V - 3)));
}
function batchOf(seqs: number[][]): PackedBatch {
  const tokens: number[] = [], targets: number[] = [], cu = [0];
  for (const s of seqs) {
    tokens.push(...s);
    targets.push(...s.slice(1), -1);
    cu.push(tokens.length);
  }
  return { tokens: Int32Array.from(tokens), targets: Int32Array.from(targets), cuSeqlens: Int32Array.from(cu) };
}
/** the same weights on both devices */
function pair(cfg: ModelConfig, seed: number, initStd: number): { cpu: NativeModel; gpu: NativeModel } {
  const cpu = createModel(cfg, { seed, initStd, device: 'cpu' });
  const g = createModel(cfg, { seed, initStd, device: 'cuda:0' });
  for (const n of cpu.paramNames()) g.setParam(n, cpu.getParam(n));
  return { cpu, gpu: g };
}

const ARCHS: Array<[Architecture, Partial<ModelConfig>]> = [
  ['LlamaForCausalLM', { headDim: 16, hiddenSize: 64, numHeads: 4, numKvHeads: 2, intermediateSize: 96, vocabSize: 300 }],
  ['Qwen2ForCausalLM', { headDim: 64, hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 256, vocabSize: 500 }],
  ['Qwen3ForCausalLM', { headDim: 128, hiddenSize: 128, numHeads: 2, numKvHeads: 1, intermediateSize: 192, vocabSize: 257 }],
];

for (const [arch, over] of ARCHS) {
  describe(`model ${arch} on CUDA vs CPU${why}`, () => {
    if (skip) {
      it.skip(`model tests${why}`, () => {});
      return;
    }
    const cfg = tinyConfig(arch, over);
    const { cpu, gpu: g } = pair(cfg, 7, 0.1);
    const r = rng(11);
    const seqs = [randSeq(37, cfg.vocabSize, r), randSeq(1, cfg.vocabSize, r), randSeq(70, cfg.vocabSize, r)];
    const batch = batchOf(seqs);
    afterAll(() => {
      cpu.dispose();
      g.dispose();
    });

    it('master weights are bitwise the CPU ones', () => {
      for (const n of cpu.paramNames()) expect(g.getParam(n), n).toEqual(cpu.getParam(n));
    });

    // 8e-2: bf16 weights and activations against f32. First measured on the CUDA emulator
    // (its tensor products are exact f32, so no worse than a GPU): Llama 2.4e-2, Qwen3 3.3e-2,
    // Qwen2 6.1e-2, and Qwen2's shape as Llama (no QKV bias) or with zero biases 6.05e-2: the
    // shape (head dim 64, 2 heads, hidden 128), not a kernel, sets it. The first guess, 6e-2,
    // had no measurement behind it.
    it('forward log-probabilities within 8e-2 (absolute) of the CPU', async () => {
      const a = await g.logprobs(batch), b = await cpu.logprobs(batch);
      const d = maxAbs(a, b);
      console.log(`${arch}: max |logprob gpu - cpu| = ${d.toExponential(2)}`);
      expect(d).toBeLessThan(8e-2);
      expect(a[seqs[0]!.length - 1]).toBe(0); // target -1
    });

    it('parameter gradients: cosine >= 0.99 and norm within 5% of the CPU, per tensor', async () => {
      const dl = new Float32Array(batch.tokens.length);
      const rr = rng(5);
      for (let i = 0; i < dl.length; i++) dl[i] = batch.targets[i]! < 0 ? 0 : rr() * 2 - 1;
      for (const m of [cpu, g]) {
        m.zeroGrad();
        await m.forward(batch, { train: true });
        await m.backward(dl);
      }
      for (const n of cpu.paramNames()) {
        const s = agreement(g.getGrad(n), cpu.getGrad(n));
        expect(s.cos, `${n} cosine`).toBeGreaterThan(0.99);
        expect(Math.abs(s.ratio - 1), `${n} norm ratio`).toBeLessThan(0.05);
      }
      cpu.zeroGrad();
      g.zeroGrad();
    });

    it('KV-cache decoding equals the full forward on the GPU (8e-2) and the CPU decoding (8e-2)', async () => {
      const s = seqs[2]!;
      const V = cfg.vocabSize;
      const full = await g.forward({ tokens: Int32Array.from(s), targets: new Int32Array(s.length).fill(-1), cuSeqlens: Int32Array.from([0, s.length]) }, { logits: true });
      const cg = await g.cache(s.slice(0, 20)), cc = await cpu.cache(s.slice(0, 20));
      for (let t = 19; t < 30; t++) {
        const lg = await g.nextLogprobs([cg]), lc = await cpu.nextLogprobs([cc]);
        const row = full.logits!.subarray(t * V, (t + 1) * V);
        let mx = -Infinity;
        for (const x of row) mx = Math.max(mx, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - mx);
        expect(maxAbs(lg, Array.from(row, (x) => x - mx - Math.log(z)))).toBeLessThan(8e-2);
        expect(maxAbs(lg, lc)).toBeLessThan(8e-2);
        await g.extend(cg, [s[t + 1]!]);
        await cpu.extend(cc, [s[t + 1]!]);
      }
      cg.dispose();
      cc.dispose();
    });

    // emulated: 6 forks of 12 tokens (the sharing of a partial block and the seeds stay)
    const [nForks, nTok] = sized([16, 24], [6, 12]);
    it(`generation with forks: ${nForks} forks of one prompt give exactly the tokens of an unforked cache, per seed`, async () => {
      const prompt = seqs[0]!.slice(0, 21); // not a multiple of the block size: the forks share a partial block
      const base = await g.cache(prompt);
      const kids = Array.from({ length: nForks }, () => base.fork());
      const gens = await g.generate(kids, { maxTokens: nTok, temperature: 1, seed: 42 });
      for (let i = 0; i < kids.length; i++) {
        expect(kids[i]!.length).toBe(prompt.length + nTok);
        expect(kids[i]!.tokens.slice(0, prompt.length)).toEqual(prompt);
      }
      // the parent is untouched by its children's appends
      expect(base.length).toBe(prompt.length);
      const alone = await g.cache(prompt);
      const one = (await g.generate([alone], { maxTokens: nTok, temperature: 1, seed: 42 }))[0]!;
      const fk = base.fork();
      const viaFork = (await g.generate([fk], { maxTokens: nTok, temperature: 1, seed: 42 }))[0]!;
      expect(viaFork.tokens).toEqual(one.tokens);
      // greedy continuations of the forks all agree (same prefix, temperature 0)
      const greedy = await g.generate([base.fork(), base.fork(), base.fork()], { maxTokens: 10, temperature: 0 });
      expect(greedy[1]!.tokens).toEqual(greedy[0]!.tokens);
      expect(greedy[2]!.tokens).toEqual(greedy[0]!.tokens);
      expect(gens.every((x) => x.tokens.length === nTok)).toBe(true);
      for (const k of kids) k.dispose();
      base.dispose();
      alone.dispose();
      fk.dispose();
    });
  });
}

describe(`training on CUDA${why}`, () => {
  it.skipIf(skip)('a tiny model learns a fixed batch: the loss falls on the GPU as on the CPU (final loss within 25% of the CPU run, both < 40% of the start)', async () => {
    const cfg = tinyConfig('Qwen2ForCausalLM', { vocabSize: 128, hiddenSize: 64, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 128 });
    const { cpu, gpu: g } = pair(cfg, 3, 0.05);
    const r = rng(21);
    const batch = batchOf([randSeq(24, cfg.vocabSize, r), randSeq(17, cfg.vocabSize, r), randSeq(31, cfg.vocabSize, r)]);
    const nTargets = batch.targets.filter((t) => t >= 0).length;
    const dl = Float32Array.from(batch.targets, (t) => (t < 0 ? 0 : -1 / nTargets)); // d(mean NLL)/d logp
    const losses: Record<string, number[]> = { cpu: [], gpu: [] };
    for (const [name, m] of [['cpu', cpu], ['gpu', g]] as const) {
      for (let s = 0; s < 40; s++) {
        m.zeroGrad();
        const out = await m.forward(batch, { train: true });
        let loss = 0;
        for (let i = 0; i < out.logprobs.length; i++) loss -= out.logprobs[i]! / nTargets;
        losses[name]!.push(loss);
        await m.backward(dl);
        const st = await m.step({ lr: 3e-3, weightDecay: 0.01, maxGradNorm: 1 });
        expect(st.skipped).toBe(false);
      }
    }
    const c = losses.cpu!, gg = losses.gpu!;
    console.log(`loss cpu ${c[0]!.toFixed(3)} -> ${c[c.length - 1]!.toFixed(3)}, gpu ${gg[0]!.toFixed(3)} -> ${gg[gg.length - 1]!.toFixed(3)}`);
    expect(Math.abs(gg[0]! - c[0]!)).toBeLessThan(6e-2);
    expect(c[c.length - 1]!).toBeLessThan(0.4 * c[0]!);
    expect(gg[gg.length - 1]!).toBeLessThan(0.4 * gg[0]!);
    expect(Math.abs(gg[gg.length - 1]! - c[c.length - 1]!)).toBeLessThan(0.25 * c[c.length - 1]! + 0.05);
    cpu.dispose();
    g.dispose();
  });
});
