// Frozen bf16 weights on the CPU (issue 19): the base weights held once in bf16 and read by the
// ops through their bf16 paths. References: the float64 forward of test/reference/model64.ts
// given the SAME bf16-rounded weights (and central finite differences through it for the
// adapters' gradients), and the f32 model whose weights were rounded to bf16 beforehand. The
// rounding reference (round to nearest even) is written here from the bf16 format's rules.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createModel, loadModel, readSafetensors, tinyConfig, writeSafetensors, type NativeModel } from '../../src/engine/index.js';
import type { Architecture, ModelConfig, PackedBatch } from '../../src/engine/model-types.js';
import { forward64, logprobs64 } from '../reference/model64.js';
import { rng } from '../helpers/native.js';
import { bf16, loraOf, loss64, maxRel, weightsOf } from './model-helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-bf16-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const ARCHS: Array<[Architecture, Partial<ModelConfig>]> = [
  ['LlamaForCausalLM', { ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 16 }, ropeTheta: 500000 }],
  ['Qwen2ForCausalLM', { tieWordEmbeddings: true }], // q/k/v bias, tied
  ['Qwen3ForCausalLM', { headDim: 12 }], // q/k norm, tied
];
const ALL = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'] as const;

function batchOf(cfg: ModelConfig, lens: number[], seed: number): PackedBatch {
  const r = rng(seed);
  const tokens: number[] = [], targets: number[] = [], cu = [0];
  for (const n of lens) {
    const s = Array.from({ length: n }, () => Math.floor(r() * cfg.vocabSize));
    for (let i = 0; i < n; i++) {
      tokens.push(s[i]!);
      targets.push(i + 1 < n ? s[i + 1]! : Math.floor(r() * cfg.vocabSize));
    }
    cu.push(tokens.length);
  }
  targets[1] = -1;
  return { tokens: Int32Array.from(tokens), targets: Int32Array.from(targets), cuSeqlens: Int32Array.from(cu) };
}

/** the same random adapter (A from the seed, B drawn here) on both models */
function addAdapter(ms: NativeModel[], seed: number): void {
  for (const m of ms) m.addLora({ rank: 4, alpha: 8, targetModules: [...ALL], seed });
  const r = rng(seed + 100);
  for (const n of ms[0]!.paramNames()) {
    if (!n.includes('lora_B')) continue;
    const v = Float32Array.from(ms[0]!.getParam(n), () => (r() * 2 - 1) * 0.2);
    for (const m of ms) m.setParam(n, v);
  }
}

for (const [arch, over] of ARCHS) {
  describe(`bf16 frozen weights, ${arch}`, () => {
    const cfg = tinyConfig(arch, over);
    // the bf16 model draws the same values as the f32 one and rounds them; f32r gets them rounded
    const mb = createModel(cfg, { seed: 7, initStd: 0.2, dtype: 'bf16' });
    const f32 = createModel(cfg, { seed: 7, initStd: 0.2 });
    const f32r = createModel(cfg, { seed: 7, initStd: 0.2 });
    for (const n of f32r.paramNames()) f32r.setParam(n, bf16(f32r.getParam(n)));
    const batch = batchOf(cfg, [7, 5, 9], 3);
    afterAll(() => [mb, f32, f32r].forEach((m) => m.dispose()));

    it('holds the f32 initialisation rounded to nearest even, in bf16', () => {
      expect(mb.weightDtype).toBe('bf16');
      expect(f32.weightDtype).toBe('f32');
      for (const n of mb.paramNames()) expect(mb.getParam(n), n).toEqual(bf16(f32.getParam(n)));
      // some weight really changed by the rounding (the test would not see a kept f32 copy otherwise)
      const w = 'model.layers.0.self_attn.q_proj.weight';
      expect(maxRel(f32.getParam(w), mb.getParam(w))).toBeGreaterThan(1e-4);
    });

    it('forward: logits and log-probabilities match the float64 reference given the same bf16 weights', async () => {
      const out = await mb.forward(batch, { logits: true });
      const w = weightsOf(mb);
      const ref = forward64(cfg, (n) => w.get(n)!, batch.tokens, batch.cuSeqlens);
      expect(maxRel(out.logits!, ref)).toBeLessThan(1e-4);
      expect(maxRel(out.logprobs, logprobs64(ref, cfg.vocabSize, batch.targets))).toBeLessThan(1e-4);
      // the same as the f32 engine with the rounded weights (the bf16 paths widen exactly)
      const o32 = await f32r.forward(batch, { logits: true });
      expect(maxRel(out.logits!, o32.logits!)).toBeLessThan(1e-6);
      expect(maxRel(out.logprobs, o32.logprobs)).toBeLessThan(1e-6);
    });

    it('generation and next-token log-probabilities match the f32 model with pre-rounded weights', async () => {
      const prompt = Array.from(batch.tokens.slice(0, 6));
      const cb = await mb.cache(prompt), c32 = await f32r.cache(prompt);
      const fb = cb.fork(), f2 = c32.fork();
      const nb = await mb.nextLogprobs([cb, fb]), n32 = await f32r.nextLogprobs([c32, f2]);
      expect(maxRel(nb, n32)).toBeLessThan(1e-5);
      const gb = await mb.generate([cb, fb], { maxTokens: 8, temperature: 0, seed: 1 });
      const g32 = await f32r.generate([c32, f2], { maxTokens: 8, temperature: 0, seed: 1 });
      for (let i = 0; i < 2; i++) {
        expect(gb[i]!.tokens).toEqual(g32[i]!.tokens);
        expect(maxRel(gb[i]!.logprobs, g32[i]!.logprobs)).toBeLessThan(1e-5);
      }
      // sampled, the same tokens from the same counters
      const sb = await mb.generate([cb], { maxTokens: 5, temperature: 1, seed: 3 });
      const s32 = await f32r.generate([c32], { maxTokens: 5, temperature: 1, seed: 3 });
      expect(sb[0]!.tokens).toEqual(s32[0]!.tokens);
      for (const c of [cb, fb, c32, f2]) c.dispose();
    });

    it('full fine-tuning is refused with an error that says the weights are bf16 and what to do', async () => {
      const msg = /bf16.*load the model with dtype 'f32' for full fine-tuning/;
      await expect(mb.forward(batch, { train: true })).rejects.toThrow(msg);
      await expect(mb.backward(new Float32Array(batch.tokens.length))).rejects.toThrow(/backward/);
      await expect(mb.step({ lr: 1e-3 })).rejects.toThrow(msg);
      await expect(mb.saveTrainingState(join(tmp, `ts-${arch}`))).rejects.toThrow(msg);
      // still usable for scoring
      expect((await mb.logprobs(batch)).length).toBe(batch.tokens.length);
    });

    it('LoRA on the bf16 base: adapter gradients (dx through the frozen bf16 weights) match finite differences of the float64 reference', async () => {
      const ml = createModel(cfg, { seed: 7, initStd: 0.2, dtype: 'bf16' });
      const ml32 = createModel(cfg, { seed: 7, initStd: 0.2 });
      for (const n of ml32.paramNames()) ml32.setParam(n, bf16(ml32.getParam(n)));
      try {
        addAdapter([ml, ml32], 5);
        const dl = new Float32Array(batch.tokens.length);
        const rr = rng(5);
        for (let i = 0; i < dl.length; i++) dl[i] = batch.targets[i]! >= 0 ? rr() * 2 - 1 : 0;
        ml.zeroGrad();
        const fw = await ml.forward(batch, { train: true, dlogprobs: dl });
        await ml.backward();
        // the forward with the adapter against the reference
        const w = weightsOf(ml);
        const lora = loraOf(ml, w);
        const ref = forward64(cfg, (n) => w.get(n)!, batch.tokens, batch.cuSeqlens, undefined, lora);
        expect(maxRel(fw.logprobs, logprobs64(ref, cfg.vocabSize, batch.targets))).toBeLessThan(1e-4);
        // layer 0's adapters only get a gradient through dx of every later bf16 projection
        const names = ml.paramNames().filter((n) => n.includes('lora_'));
        const r = rng(9);
        const rows: Array<{ name: string; g: number; fd: number }> = [];
        for (const name of names) {
          const p = w.get(name)!;
          const g = ml.getGrad(name);
          for (let k = 0; k < 2; k++) {
            const i = Math.floor(r() * p.length);
            const h = 1e-5, old = p[i]!;
            p[i] = old + h;
            const lp = loss64(cfg, w, batch, dl, lora);
            p[i] = old - h;
            const lm = loss64(cfg, w, batch, dl, lora);
            p[i] = old;
            rows.push({ name: `${name}[${i}]`, g: g[i]!, fd: (lp - lm) / (2 * h) });
          }
        }
        const scale = Math.max(...rows.map((x) => Math.abs(x.fd)));
        expect(scale).toBeGreaterThan(0);
        for (const x of rows) expect(Math.abs(x.g - x.fd) / (Math.abs(x.fd) + 1e-2 * scale), `${x.name}: ${x.g} vs ${x.fd}`).toBeLessThan(2e-3);
        // the f32 engine with the rounded weights gives the same gradients
        ml32.zeroGrad();
        await ml32.forward(batch, { train: true });
        await ml32.backward(dl);
        for (const n of names) expect(maxRel(ml.getGrad(n), ml32.getGrad(n)), n).toBeLessThan(1e-5);
        // base weights have no gradient; a step moves the adapters only, and in f32
        expect(Array.from(ml.getGrad('model.layers.0.mlp.up_proj.weight')).every((v) => v === 0)).toBe(true);
        const before = ml.getParam('model.layers.0.mlp.up_proj.weight');
        const a0 = ml.getParam(names[0]!);
        const st = await ml.step({ lr: 1e-2 });
        expect(st.skipped).toBe(false);
        expect(ml.getParam('model.layers.0.mlp.up_proj.weight')).toEqual(before);
        const a1 = ml.getParam(names[0]!);
        expect(a1).not.toEqual(a0);
        expect(a1).not.toEqual(bf16(a1)); // f32 adapters, not rounded
        // recompute on: the same gradients
        ml.zeroGrad();
        ml.setRecompute(true);
        await ml.forward(batch, { train: true });
        await ml.backward(dl);
        const g1 = names.map((n) => ml.getGrad(n));
        ml.setRecompute(false);
        ml.zeroGrad();
        await ml.forward(batch, { train: true });
        await ml.backward(dl);
        names.forEach((n, i) => expect(ml.getGrad(n), n).toEqual(g1[i]));
      } finally {
        ml.dispose();
        ml32.dispose();
      }
    });
  });
}

/** a base tensor's shape from the configuration (Qwen2, untied) */
function shapeOf(c: ModelConfig, name: string): number[] {
  const H = c.hiddenSize, Dq = c.numHeads * c.headDim, Dkv = c.numKvHeads * c.headDim, I = c.intermediateSize;
  const table: Array<[RegExp, number[]]> = [
    [/embed_tokens|lm_head/, [c.vocabSize, H]], [/norm\.weight$/, [H]], [/q_proj\.weight/, [Dq, H]], [/[kv]_proj\.weight/, [Dkv, H]],
    [/q_proj\.bias/, [Dq]], [/[kv]_proj\.bias/, [Dkv]], [/o_proj/, [H, Dq]], [/gate_proj|up_proj/, [I, H]], [/down_proj/, [H, I]],
  ];
  return table.find(([re]) => re.test(name))![1];
}

describe('bf16 frozen weights: loading, saving, merging, bad dtypes', () => {
  const cfg = tinyConfig('Qwen2ForCausalLM', { tieWordEmbeddings: false });
  const src = createModel(cfg, { seed: 3, initStd: 0.2 });
  afterAll(() => src.dispose());

  it('loads an f32 checkpoint rounded to nearest even and a bf16 checkpoint as it is', async () => {
    const d32 = join(tmp, 'ck32'), d16 = join(tmp, 'ck16');
    await src.save(d32);
    await src.save(d16, { dtype: 'bf16' });
    const a = await loadModel(d32, { device: 'cpu', dtype: 'bf16' });
    const b = await loadModel(d16, { device: 'cpu', dtype: 'bf16' });
    try {
      expect(a.weightDtype).toBe('bf16');
      const file16 = readSafetensors(join(d16, 'model.safetensors'));
      for (const n of src.paramNames()) {
        const want = bf16(src.getParam(n));
        expect(a.getParam(n), n).toEqual(want);
        expect(b.getParam(n), n).toEqual(want);
        expect(file16.tensors.find((t) => t.name === n)!.dtype).toBe('bf16');
      }
      // saved again (streamed): bf16 bits as they are, or widened to f32 exactly
      const e16 = join(tmp, 'again16'), e32 = join(tmp, 'again32');
      await b.save(e16, { dtype: 'bf16' });
      await b.save(e32);
      expect(readFileSync(join(e16, 'model.safetensors')).equals(readFileSync(join(d16, 'model.safetensors')))).toBe(true);
      const back = readSafetensors(join(e32, 'model.safetensors'));
      for (const t of back.tensors) {
        expect(t.dtype).toBe('f32');
        expect(t.data, t.name).toEqual(b.getParam(t.name));
      }
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('loads an f16 checkpoint as bf16 (each f16 value rounded to bf16)', async () => {
    const d16 = join(tmp, 'ckf16');
    await src.save(d16); // config and tokenizer files; the weights replaced by f16 ones
    writeSafetensors(
      join(d16, 'model.safetensors'),
      src.paramNames().map((name) => ({ name, dtype: 'f16' as const, shape: shapeOf(cfg, name), data: src.getParam(name) })),
      { format: 'pt' },
    );
    const f16 = readSafetensors(join(d16, 'model.safetensors'));
    const m = await loadModel(d16, { device: 'cpu', dtype: 'bf16' });
    try {
      for (const t of f16.tensors) {
        expect(t.dtype).toBe('f16');
        expect(m.getParam(t.name), t.name).toEqual(bf16(t.data!));
      }
    } finally {
      m.dispose();
    }
  });

  it('merging an adapter into a bf16 base rounds the merged weights to bf16', async () => {
    const m = createModel(cfg, { seed: 3, initStd: 0.2, dtype: 'bf16' });
    try {
      addAdapter([m], 4);
      const name = 'model.layers.1.self_attn.o_proj.weight';
      const W = m.getParam(name);
      const A = m.getParam('base_model.model.model.layers.1.self_attn.o_proj.lora_A.weight');
      const B = m.getParam('base_model.model.model.layers.1.self_attn.o_proj.lora_B.weight');
      const out = cfg.hiddenSize, inD = cfg.numHeads * cfg.headDim, r = 4, s = 8 / 4;
      const before = await m.logprobs(batchOf(cfg, [6], 1));
      await m.mergeAdapter();
      expect(m.lora).toBeNull();
      const got = m.getParam(name);
      expect(got).toEqual(bf16(got)); // still bf16 values
      let changed = 0;
      for (let o = 0; o < out; o++)
        for (let i = 0; i < inD; i++) {
          let acc = W[o * inD + i]!;
          for (let k = 0; k < r; k++) acc += s * B[o * r + k]! * A[k * inD + i]!;
          const g = got[o * inD + i]!;
          // within half a bf16 ulp of the float64 merge (plus f32 rounding of the sum)
          const ulp = Math.pow(2, Math.floor(Math.log2(Math.abs(acc) || 1e-30)) - 7);
          expect(Math.abs(g - acc), `${o},${i}`).toBeLessThanOrEqual(ulp / 2 + 1e-6 * Math.abs(acc) + 1e-30);
          if (g !== W[o * inD + i]) changed++;
        }
      expect(changed).toBeGreaterThan(0);
      const after = await m.logprobs(batchOf(cfg, [6], 1));
      expect(maxRel(after, before)).toBeLessThan(5e-2); // the same model up to the bf16 rounding
    } finally {
      m.dispose();
    }
  });

  it('a dtype the device cannot hold is an error naming it', async () => {
    const d = join(tmp, 'ck32');
    for (const bad of ['f16', 'fp8', 'float32', 7]) {
      expect(() => createModel(cfg, { dtype: bad as never })).toThrow(new RegExp(`dtype '${bad}' cannot be held by cpu`));
      await expect(loadModel(d, { device: 'cpu', dtype: bad as never })).rejects.toThrow(new RegExp(`dtype '${bad}'`));
    }
    // f32 stays trainable in full
    const m = await loadModel(d, { device: 'cpu', dtype: 'f32' });
    try {
      expect(m.weightDtype).toBe('f32');
      const b = batchOf(cfg, [5], 2);
      await m.forward(b, { train: true });
      await m.backward(new Float32Array(b.tokens.length).fill(-0.1));
      expect((await m.step({ lr: 1e-3 })).skipped).toBe(false);
    } finally {
      m.dispose();
    }
  });
});
