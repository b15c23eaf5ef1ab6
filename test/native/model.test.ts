// The model (native/core/model.*) on tiny random models of each architecture, against the
// float64 forward of test/reference/model64.ts (written from the HF modeling code, not from
// the engine) and central finite differences through it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, loadModel, tinyConfig, type NativeModel } from '../../src/engine/index.js';
import type { Architecture, ModelConfig, PackedBatch } from '../../src/engine/model-types.js';
import { forward64, logprobs64 } from '../reference/model64.js';
import { rng } from '../helpers/native.js';
import { loraOf, loss64, maxRel, weightsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ARCHS: Array<[Architecture, Partial<ModelConfig>]> = [
  // untied, llama3 rope scaling, GQA 4:2
  ['LlamaForCausalLM', { ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 }, ropeTheta: 500000 }],
  // q/k/v bias, tied
  ['Qwen2ForCausalLM', { tieWordEmbeddings: true }],
  // q/k norm, tied, head_dim != hidden/heads
  ['Qwen3ForCausalLM', { headDim: 12 }],
  // MQA (one kv head), untied
  ['MistralForCausalLM', { numKvHeads: 1 }],
];

function batchOf(seqs: number[][], V: number, seed: number): PackedBatch {
  const r = rng(seed);
  const tokens: number[] = [], targets: number[] = [], cu = [0];
  for (const s of seqs) {
    for (let i = 0; i < s.length; i++) {
      tokens.push(s[i]!);
      // next token of the sequence; the last position gets a random target; a few -1
      targets.push(i + 1 < s.length ? s[i + 1]! : Math.floor(r() * V));
    }
    cu.push(tokens.length);
  }
  targets[1] = -1;
  return { tokens: Int32Array.from(tokens), targets: Int32Array.from(targets), cuSeqlens: Int32Array.from(cu) };
}

function randSeq(n: number, V: number, r: () => number): number[] {
  return Array.from({ length: n }, () => Math.floor(r() * V));
}

/** engine gradients vs central differences (h = 1e-5, float64) at a few entries of every parameter tensor */
function checkGrads(m: NativeModel, cfg: ModelConfig, b: PackedBatch, dl: Float32Array, names: string[], seed: number): number {
  const w = weightsOf(m);
  const lora = loraOf(m, w);
  const r = rng(seed);
  const rows: Array<{ name: string; g: number; fd: number }> = [];
  for (const name of names) {
    const p = w.get(name)!;
    const g = m.getGrad(name);
    for (let k = 0; k < 3; k++) {
      const i = Math.floor(r() * p.length);
      const h = 1e-5;
      const old = p[i]!;
      p[i] = old + h;
      const lp = loss64(cfg, w, b, dl, lora);
      p[i] = old - h;
      const lm = loss64(cfg, w, b, dl, lora);
      p[i] = old;
      rows.push({ name: `${name}[${i}]`, g: g[i]!, fd: (lp - lm) / (2 * h) });
    }
  }
  const scale = Math.max(...rows.map((x) => Math.abs(x.fd)));
  let worst = 0;
  for (const x of rows) {
    const e = Math.abs(x.g - x.fd) / (Math.abs(x.fd) + 1e-2 * scale);
    worst = Math.max(worst, e);
    expect(e, `${x.name}: engine ${x.g} vs finite difference ${x.fd}`).toBeLessThan(2e-3);
  }
  return worst;
}

for (const [arch, over] of ARCHS) {
  describe(`model ${arch}`, () => {
    const cfg = tinyConfig(arch, over);
    const m = createModel(cfg, { seed: 7, initStd: 0.2 });
    const r = rng(11);
    const seqs = [randSeq(7, cfg.vocabSize, r), randSeq(5, cfg.vocabSize, r), randSeq(9, cfg.vocabSize, r)];
    const batch = batchOf(seqs, cfg.vocabSize, 3);
    afterAll(() => m.dispose());

    it('logits and log-probabilities match the float64 reference (relative error <= 1e-4)', async () => {
      const out = await m.forward(batch, { logits: true });
      const w = weightsOf(m);
      const ref = forward64(cfg, (n) => w.get(n)!, batch.tokens, batch.cuSeqlens);
      const relLogits = maxRel(out.logits!, ref);
      expect(relLogits).toBeLessThan(1e-4);
      const lp = logprobs64(ref, cfg.vocabSize, batch.targets);
      expect(maxRel(out.logprobs, lp)).toBeLessThan(1e-4);
      expect(out.logprobs[1]).toBe(0); // target -1
      console.log(`${arch}: logits max relative error ${relLogits.toExponential(2)} vs float64`);
    });

    it('explicit positions (a sequence continued at an offset) match the reference', async () => {
      const positions = Int32Array.from(batch.tokens, (_, i) => 3 + i * 2);
      const out = await m.forward({ ...batch, positions }, { logits: true });
      const w = weightsOf(m);
      const ref = forward64(cfg, (n) => w.get(n)!, batch.tokens, batch.cuSeqlens, positions);
      expect(maxRel(out.logits!, ref)).toBeLessThan(1e-4);
      const plain = await m.forward(batch, { logits: true });
      expect(maxRel(plain.logits!, ref)).toBeGreaterThan(1e-3); // positions matter
    });

    it('parameter gradients match central finite differences through the float64 reference', async () => {
      const dl = new Float32Array(batch.tokens.length);
      const rr = rng(5);
      for (let i = 0; i < dl.length; i++) dl[i] = rr() * 2 - 1;
      m.zeroGrad();
      await m.forward(batch, { train: true });
      await m.logprobs(batch); // a gradient-free forward in between leaves the training forward alone
      await m.backward(dl);
      const worst = checkGrads(m, cfg, batch, dl, m.paramNames(), 9);
      console.log(`${arch}: worst gradient relative error ${worst.toExponential(2)} vs finite differences`);
    });

    it('recomputing activations in backward gives the same gradients', async () => {
      const dl = new Float32Array(batch.tokens.length).fill(1);
      m.zeroGrad();
      await m.forward(batch, { train: true });
      await m.backward(dl);
      const g1 = m.paramNames().map((n) => m.getGrad(n));
      m.zeroGrad();
      m.setRecompute(true);
      await m.forward(batch, { train: true });
      await m.backward(dl);
      m.setRecompute(false);
      m.paramNames().forEach((n, i) => expect(m.getGrad(n), n).toEqual(g1[i]));
      m.zeroGrad();
    });

    it('dlogprobs given to the training forward (the SFT path) give the same gradients as backward(dlogprobs)', async () => {
      const dl = new Float32Array(batch.tokens.length);
      const rr = rng(11);
      for (let i = 0; i < dl.length; i++) dl[i] = batch.targets[i]! >= 0 ? rr() * 2 - 1 : 0;
      m.zeroGrad();
      const a = await m.forward(batch, { train: true });
      await m.backward(dl);
      const g1 = m.paramNames().map((n) => m.getGrad(n));
      m.zeroGrad();
      const b = await m.forward(batch, { train: true, dlogprobs: dl });
      expect(b.logprobs).toEqual(a.logprobs);
      await m.backward();
      // the same chunked GEMMs in the same order: bitwise equal, the LM head's included
      m.paramNames().forEach((n, i) => expect(m.getGrad(n), n).toEqual(g1[i]));
      // backward with the same values is accepted too
      m.zeroGrad();
      await m.forward(batch, { train: true, dlogprobs: dl });
      await m.backward(dl.slice());
      m.paramNames().forEach((n, i) => expect(m.getGrad(n), n).toEqual(g1[i]));
      m.zeroGrad();
    });

    it('dlogprobs ahead: mismatched or missing gradients are refused with errors naming them', async () => {
      const n = batch.tokens.length;
      const dl = new Float32Array(n).fill(-0.5);
      await m.forward(batch, { train: true, dlogprobs: dl });
      const other = dl.slice();
      other[0] = 0.25;
      await expect(m.backward(other)).rejects.toThrow(/dlogprobs differ from those given to the training forward/);
      await m.forward(batch, { train: true });
      await expect(m.backward()).rejects.toThrow(/dlogprobs are needed/);
      await expect(m.forward(batch, { dlogprobs: dl })).rejects.toThrow(/dlogprobs need train: true/);
      await expect(m.forward(batch, { train: true, dlogprobs: new Float32Array(n + 1) })).rejects.toThrow(/dlogprobs has/);
      const bad = dl.slice();
      bad[1] = NaN;
      await expect(m.forward(batch, { train: true, dlogprobs: bad })).rejects.toThrow(/NaN or Inf/);
      m.zeroGrad();
    });

    it('a packed batch equals its sequences run one by one', async () => {
      const packed = await m.logprobs(batch);
      for (let s = 0; s < seqs.length; s++) {
        const a = batch.cuSeqlens[s]!, e = batch.cuSeqlens[s + 1]!;
        const one = await m.logprobs({
          tokens: batch.tokens.slice(a, e),
          targets: batch.targets.slice(a, e),
          cuSeqlens: Int32Array.from([0, e - a]),
        });
        for (let i = 0; i < e - a; i++) expect(Math.abs(one[i]! - packed[a + i]!)).toBeLessThan(1e-5);
      }
    });

    it('KV-cache decoding equals the full forward token by token', async () => {
      const s = seqs[2]!;
      const full = await m.forward({ tokens: Int32Array.from(s), targets: new Int32Array(s.length).fill(-1), cuSeqlens: Int32Array.from([0, s.length]) }, { logits: true });
      const V = cfg.vocabSize;
      const c = await m.cache(s.slice(0, 3));
      for (let t = 2; t < s.length; t++) {
        const lp = await m.nextLogprobs([c]);
        const row = full.logits!.subarray(t * V, (t + 1) * V);
        let mx = -Infinity;
        for (const x of row) mx = Math.max(mx, x);
        let z = 0;
        for (const x of row) z += Math.exp(x - mx);
        const ref = Array.from(row, (x) => x - mx - Math.log(z));
        expect(maxRel(lp, ref)).toBeLessThan(1e-5);
        if (t + 1 < s.length) await m.extend(c, [s[t + 1]!]);
      }
      expect(c.length).toBe(s.length);
      expect(c.tokens).toEqual(s);
      // truncate drops the tail; the next-token distribution is that of the shorter prefix
      c.truncate(4);
      const lp4 = await m.nextLogprobs([c]);
      const c4 = await m.cache(s.slice(0, 4));
      expect(maxRel(lp4, await m.nextLogprobs([c4]))).toBeLessThan(1e-6);
      c.dispose();
      c4.dispose();
    });

    it('save -> load is bitwise; the directory is a Hugging Face checkpoint', async () => {
      const dir = join(tmp, `save-${arch}`);
      await m.save(dir);
      const m2 = await loadModel(dir, { device: 'cpu' });
      expect(m2.config).toEqual(m.config);
      for (const n of m.paramNames()) expect(m2.getParam(n), n).toEqual(m.getParam(n));
      expect(await m2.logprobs(batch)).toEqual(await m.logprobs(batch));
      m2.dispose();
    });
  });
}

describe('bf16 checkpoints', () => {
  it('save({dtype: bf16}) writes BF16 tensors and config torch_dtype; loading rounds to nearest even', async () => {
    const cfg = tinyConfig('Qwen2ForCausalLM');
    const m = createModel(cfg, { seed: 12, initStd: 0.2 });
    const dir = join(tmp, 'bf16');
    await m.save(dir, { dtype: 'bf16' });
    const cj = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(cj.torch_dtype).toBe('bfloat16');
    expect(cj.architectures).toEqual(['Qwen2ForCausalLM']);
    const m2 = await loadModel(dir, { device: 'cpu' });
    const round = (x: number) => {
      const f = new Float32Array([x]);
      const u = new Uint32Array(f.buffer);
      u[0] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) & 0xffff0000;
      return f[0]!;
    };
    for (const n of m.paramNames()) expect(Array.from(m2.getParam(n)), n).toEqual(Array.from(m.getParam(n), round));
    m.dispose();
    m2.dispose();
  });
});

describe('KV cache forks', () => {
  const cfg = tinyConfig('LlamaForCausalLM');
  const m = createModel(cfg, { seed: 3, initStd: 0.2 });
  afterAll(() => m.dispose());
  const prompt = Array.from({ length: 21 }, (_, i) => (i * 7) % cfg.vocabSize); // 1 full block + 5 tokens

  it('forking shares the parent blocks (copy on write of the partial last block only)', async () => {
    const before = m.poolInfo().blocksInUse;
    const parent = await m.cache(prompt);
    expect(parent.blocks).toBe(2);
    expect(m.poolInfo().blocksInUse).toBe(before + 2);
    const kids = Array.from({ length: 10 }, () => parent.fork());
    for (const k of kids) expect(k.blocks).toBe(2);
    expect(m.poolInfo().blocksInUse).toBe(before + 2); // nothing copied by fork
    // each child extends: only its partial block is copied, the full block stays shared
    for (const k of kids) await m.extend(k, [1]);
    expect(m.poolInfo().blocksInUse).toBe(before + 2 + 10);
    const lpParent = await m.nextLogprobs([parent]);
    const fresh = await m.cache(prompt);
    expect(await m.nextLogprobs([fresh])).toEqual(lpParent); // parent unharmed by the children's writes
    for (const k of kids) k.dispose();
    parent.dispose();
    fresh.dispose();
    expect(m.poolInfo().blocksInUse).toBe(before);
  });

  it('a forked cache gives exactly the tokens an unforked one gives for the same seed', async () => {
    const a = await m.cache(prompt);
    const base = await m.cache(prompt);
    const b = base.fork();
    const ga = await m.generate([a], { maxTokens: 20, seed: 42, temperature: 1 });
    const gb = await m.generate([b], { maxTokens: 20, seed: 42, temperature: 1 });
    expect(gb[0]!.tokens).toEqual(ga[0]!.tokens);
    expect(gb[0]!.logprobs).toEqual(ga[0]!.logprobs);
    expect(b.tokens).toEqual([...prompt, ...ga[0]!.tokens]);
    // batched with siblings: row 0 of a batch is the same stream
    const c = base.fork(), d = base.fork();
    const gcd = await m.generate([c, d], { maxTokens: 20, seed: 42, temperature: 1 });
    expect(gcd[0]!.tokens).toEqual(ga[0]!.tokens);
    expect(gcd[1]!.tokens).not.toEqual(ga[0]!.tokens); // siblings in one batch get their own stream
    for (const x of [a, base, b, c, d]) x.dispose();
  });

  it('generate honours stop tokens, the stop callback (truncating the cache) and maxTokens', async () => {
    const a = await m.cache(prompt);
    const g0 = (await m.generate([a.fork()], { maxTokens: 8, seed: 1, temperature: 0 }))[0]!;
    expect(g0.finishReason).toBe('length');
    expect(g0.tokens.length).toBe(8);
    const stopTok = g0.tokens[3]!;
    const first = g0.tokens.indexOf(stopTok);
    const g1 = (await m.generate([a.fork()], { maxTokens: 8, seed: 1, temperature: 0, stopTokens: [stopTok] }))[0]!;
    expect(g1.finishReason).toBe('stop');
    expect(g1.tokens).toEqual(g0.tokens.slice(0, first + 1));
    const f = a.fork();
    const g2 = (await m.generate([f], { maxTokens: 8, seed: 1, temperature: 0, stop: (_row, gen) => (gen.length === 5 ? 2 : undefined) }))[0]!;
    expect(g2.tokens).toEqual(g0.tokens.slice(0, 2));
    expect(f.length).toBe(prompt.length + 2);
    expect(f.tokens).toEqual([...prompt, ...g0.tokens.slice(0, 2)]);
    // greedy logprobs are the argmax of the next-token distribution
    const lp = await m.nextLogprobs([a]);
    let best = 0;
    for (let j = 1; j < lp.length; j++) if (lp[j]! > lp[best]!) best = j;
    expect(g0.tokens[0]).toBe(best);
    expect(Math.abs(g0.logprobs[0]! - lp[best]!)).toBeLessThan(1e-5);
    a.dispose();
  });

  it('sampled tokens carry their model log-probability; truncating generated tokens restores the prefix state', async () => {
    const a = await m.cache(prompt);
    const before = await m.nextLogprobs([a]);
    const s = await m.sampleNext([a], { temperature: 1, seed: 9 });
    expect(Math.abs(s.logprobs[0]! - before[s.tokens[0]!]!)).toBeLessThan(1e-5);
    expect(Math.abs(s.sampledLogprobs[0]! - before[s.tokens[0]!]!)).toBeLessThan(1e-4); // temperature 1, no top-k/p
    const g = (await m.generate([a], { maxTokens: 10, seed: 2, temperature: 0.8 }))[0]!;
    const kept = [...prompt, s.tokens[0]!, ...g.tokens.slice(0, 3)];
    const sib = a.fork();
    a.truncate(kept.length);
    expect(a.tokens).toEqual(kept);
    const fresh = await m.cache(kept);
    expect(maxRel(await m.nextLogprobs([a]), await m.nextLogprobs([fresh]))).toBeLessThan(1e-6);
    // the sibling still sees the whole generation
    expect(sib.length).toBe(prompt.length + 11);
    for (const x of [a, sib, fresh]) x.dispose();
  });

  it('rejects bad cache use with clear errors', async () => {
    const a = await m.cache([1, 2]);
    await expect(m.sampleNext([a, a])).rejects.toThrow(/same cache/);
    expect(() => a.truncate(5)).toThrow(/truncate/);
    const other = createModel(cfg, { seed: 1 });
    await expect(other.sampleNext([a])).rejects.toThrow(/another model/);
    other.dispose();
    a.dispose();
    expect(() => a.fork()).toThrow(/disposed/);
    const e = await m.cache([]);
    await expect(m.nextLogprobs([e])).rejects.toThrow(/empty/);
    await expect(m.cache([cfg.vocabSize])).rejects.toThrow(/outside/);
  });
});

describe('training', () => {
  const cfg = tinyConfig('Qwen3ForCausalLM');
  const r = rng(21);
  const batch = batchOf([randSeq(8, cfg.vocabSize, r), randSeq(6, cfg.vocabSize, r)], cfg.vocabSize, 4);
  // d(loss)/d(logprob) for the mean negative log-likelihood
  const dl = new Float32Array(batch.tokens.length).fill(-1 / batch.tokens.length);

  async function trainSteps(m: NativeModel, n: number): Promise<number> {
    let last = 0;
    for (let i = 0; i < n; i++) {
      m.zeroGrad();
      const { logprobs } = await m.forward(batch, { train: true });
      last = -logprobs.reduce((a, b) => a + b, 0);
      await m.backward(dl);
      await m.step({ lr: 1e-2, weightDecay: 0.01, maxGradNorm: 1 });
    }
    return last;
  }

  it('AdamW steps lower the loss; resume from saveTrainingState is bitwise', async () => {
    const a = createModel(cfg, { seed: 5, initStd: 0.1 });
    const l0 = await trainSteps(a, 1);
    await trainSteps(a, 2);
    const dir = join(tmp, 'state');
    await a.saveTrainingState(dir);
    const l3 = await trainSteps(a, 3);
    expect(l3).toBeLessThan(l0);
    const b = createModel(cfg, { seed: 99, initStd: 0.1 });
    await b.loadTrainingState(dir);
    await trainSteps(b, 3);
    for (const n of a.paramNames()) expect(b.getParam(n), n).toEqual(a.getParam(n));
    a.dispose();
    b.dispose();
  });

  it('clips the global gradient norm and skips a non-finite gradient', async () => {
    const m = createModel(cfg, { seed: 5, initStd: 0.1 });
    m.zeroGrad();
    await m.forward(batch, { train: true });
    await m.backward(dl);
    let ss = 0;
    for (const n of m.paramNames()) for (const g of m.getGrad(n)) ss += g * g;
    const s = await m.step({ lr: 1e-3, maxGradNorm: 1e-3 });
    expect(s.skipped).toBe(false);
    expect(Math.abs(s.gradNorm - Math.sqrt(ss)) / Math.sqrt(ss)).toBeLessThan(1e-5);
    // finite but huge upstream gradients overflow to Inf inside backward
    const before = m.paramNames().map((n) => m.getParam(n));
    m.zeroGrad();
    await m.forward(batch, { train: true });
    await m.backward(new Float32Array(dl.length).fill(-3e38));
    const s2 = await m.step({ lr: 1e-3 });
    expect(s2.skipped).toBe(true);
    m.paramNames().forEach((n, i) => expect(m.getParam(n), n).toEqual(before[i]));
    // a NaN weight makes NaN gradients: the step is skipped, nothing moves
    const name = m.paramNames().find((n) => n.endsWith('mlp.down_proj.weight'))!;
    const w = m.getParam(name);
    w[3] = NaN;
    m.setParam(name, w);
    const before3 = m.paramNames().map((n) => m.getParam(n));
    m.zeroGrad();
    await m.forward(batch, { train: true });
    await m.backward(dl);
    const s3 = await m.step({ lr: 1e-3 });
    expect(s3.skipped).toBe(true);
    expect(Number.isNaN(s3.gradNorm)).toBe(true);
    m.paramNames().forEach((n, i) => expect(m.getParam(n), n).toEqual(before3[i]));
    m.dispose();
  });

  it('backward without a training forward, or with the wrong length, is an error', async () => {
    const m = createModel(cfg, { seed: 5 });
    await expect(m.backward(new Float32Array(3))).rejects.toThrow(/no training forward/);
    await m.forward(batch, { train: true });
    await expect(m.backward(new Float32Array(3))).rejects.toThrow(/dlogprobs has 3 entries/);
    await expect(m.forward({ ...batch, cuSeqlens: Int32Array.from([0, 3]) })).rejects.toThrow(/cuSeqlens/);
    m.dispose();
  });
});

describe('LoRA', () => {
  const cfg = tinyConfig('Qwen2ForCausalLM');
  const r = rng(31);
  const batch = batchOf([randSeq(6, cfg.vocabSize, r), randSeq(5, cfg.vocabSize, r)], cfg.vocabSize, 8);
  const targets = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

  it('with B = 0 equals the base model; only adapter parameters are trainable', async () => {
    const m = createModel(cfg, { seed: 2, initStd: 0.2 });
    const base = await m.logprobs(batch);
    m.addLora({ rank: 4, alpha: 8, targetModules: [...targets] });
    expect(await m.logprobs(batch)).toEqual(base);
    const nLora = cfg.numLayers * (4 * (cfg.hiddenSize + 4 * 8 + 2 * 2 * 8 + 4 * 8 + cfg.hiddenSize) + 0);
    expect(m.trainableParameters).toBeGreaterThan(0);
    expect(m.trainableParameters).toBeLessThan(m.numParameters);
    void nLora;
    m.dispose();
  });

  it('adapter gradients match finite differences; base weights stay frozen', async () => {
    const m = createModel(cfg, { seed: 2, initStd: 0.2 });
    m.addLora({ rank: 3, alpha: 6, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 4 });
    const rr = rng(6);
    for (const n of m.paramNames().filter((x) => x.includes('lora_B'))) {
      const v = m.getParam(n);
      for (let i = 0; i < v.length; i++) v[i] = (rr() - 0.5) * 0.4;
      m.setParam(n, v);
    }
    const dl = new Float32Array(batch.tokens.length);
    for (let i = 0; i < dl.length; i++) dl[i] = rr() * 2 - 1;
    m.zeroGrad();
    await m.forward(batch, { train: true });
    await m.backward(dl);
    checkGrads(m, cfg, batch, dl, m.paramNames().filter((x) => x.includes('lora_')), 13);
    // the SFT path (gradients given to the forward, frozen LM head) gives the same adapter gradients
    const g1 = m.paramNames().map((n) => m.getGrad(n));
    m.zeroGrad();
    await m.forward(batch, { train: true, dlogprobs: dl });
    await m.backward();
    m.paramNames().forEach((n, i) => expect(m.getGrad(n), n).toEqual(g1[i]));
    const frozen = 'model.layers.0.self_attn.q_proj.weight';
    const w0 = m.getParam(frozen);
    await m.step({ lr: 1e-2 });
    expect(m.getParam(frozen)).toEqual(w0);
    m.dispose();
  });

  it('saves and loads in PEFT format; a merged adapter equals the unmerged forward', async () => {
    const m = createModel(cfg, { seed: 2, initStd: 0.2 });
    const baseDir = join(tmp, 'lora-base');
    await m.save(baseDir);
    m.addLora({ rank: 2, alpha: 4, targetModules: ['q_proj', 'up_proj'] });
    const rr = rng(8);
    for (const n of m.paramNames().filter((x) => x.includes('lora_B'))) {
      const v = m.getParam(n);
      for (let i = 0; i < v.length; i++) v[i] = (rr() - 0.5) * 0.4;
      m.setParam(n, v);
    }
    expect(m.paramNames()).toContain('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight');
    expect(m.paramNames()).toContain('base_model.model.model.layers.0.mlp.up_proj.lora_B.weight');
    const withAdapter = await m.logprobs(batch);
    // the KV-cache path applies the adapter too: its next-token log-probabilities match the packed forward
    const first = Array.from(batch.tokens.slice(0, batch.cuSeqlens[1]!));
    const c = await m.cache(first.slice(0, -1));
    const lpNext = await m.nextLogprobs([c]);
    expect(Math.abs(lpNext[first[first.length - 1]!]! - withAdapter[first.length - 2]!)).toBeLessThan(1e-5);
    c.dispose();
    const adDir = join(tmp, 'lora-adapter');
    await m.saveAdapter(adDir);
    const m2 = await loadModel(baseDir, { device: 'cpu', lora: adDir });
    expect(m2.lora?.rank).toBe(2);
    expect(await m2.logprobs(batch)).toEqual(withAdapter);
    await m2.mergeAdapter();
    expect(m2.lora).toBeNull();
    const merged = await m2.logprobs(batch);
    expect(maxRel(merged, withAdapter)).toBeLessThan(1e-5);
    m.dispose();
    m2.dispose();
  });
});
