// The trainers on the real CPU engine with a tiny Llama model.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { createModel } from '../../src/engine/model.js';
import type { Model } from '../../src/engine/model-types.js';
import { sftSequence } from '../../src/train/pack.js';
import { scorePerplexity } from '../../src/train/perplexity.js';
import { sftForwardBackward, trainSft } from '../../src/train/sft.js';
import { readSafetensors, tinySft } from './train-helpers.js';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), 'itool-ntrain-'));
  dirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const config = tinyConfig('LlamaForCausalLM', { vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numLayers: 2 });

/**
 * One AdamW step with beta1 = beta2 = 0, eps = 1 and lr = 1000 moves each weight by
 * u = 1000·g/(|g| + 1): the weight change reads the accumulated gradient g = u/(1000 - |u|)
 * back through the Model interface.
 */
async function gradients(model: Model): Promise<Map<string, Float64Array>> {
  const before = tmp();
  await model.save(before);
  await model.step({ lr: 1000, eps: 1, beta1: 0, beta2: 0, maxGradNorm: 0 });
  const after = tmp();
  await model.save(after);
  const a = readSafetensors(before);
  const b = readSafetensors(after);
  const g = new Map<string, Float64Array>();
  for (const [k, w0] of a) {
    const w1 = b.get(k)!;
    g.set(k, Float64Array.from(w0, (x, i) => {
      const u = x - w1[i]!;
      return u / (1000 - Math.abs(u));
    }));
  }
  return g;
}

function maxAbs(m: Map<string, Float64Array>): number {
  let s = 0;
  for (const v of m.values()) for (const x of v) s = Math.max(s, Math.abs(x));
  return s;
}

describe('SFT on the CPU engine (tiny Llama)', () => {
  it('overfits a small set: loss falls below 0.1', async () => {
    const m = createModel(config, { seed: 3 });
    try {
      const data = tinySft(8);
      const res = await trainSft(m, data, null, { lr: 1e-2, epochs: 40, batchTokens: 40, curriculum: false, warmupRatio: 0.05, progress: false, maxGradNorm: 1 });
      const curve = res.losses.filter((_, i) => i % 20 === 0 || i === res.losses.length - 1).map((x) => x.toFixed(3));
      process.stdout.write(`sft overfit curve (every 20th step of ${res.losses.length}): ${curve.join(' ')}\n`);
      expect(res.losses[0]).toBeGreaterThan(3.5); // ~ln 64 = 4.16 at init
      expect(res.losses.at(-1)).toBeLessThan(0.1);
      expect(res.skipped).toBe(0);
    } finally {
      m.dispose();
    }
  });

  it('masked-out tokens get no gradient: changing them changes nothing', async () => {
    const a = createModel(config, { seed: 5 });
    const b = createModel(config, { seed: 5 });
    try {
      // the last three tokens are masked out (no targets) and come after every masked token
      const s1 = sftSequence({ ids: [3, 9, 16, 20, 27, 34, 2, 40, 41, 42], mask: [0, 0, 0, 1, 1, 1, 1, 0, 0, 0] });
      const s2 = sftSequence({ ids: [3, 9, 16, 20, 27, 34, 2, 50, 51, 52], mask: [0, 0, 0, 1, 1, 1, 1, 0, 0, 0] });
      const other = sftSequence({ ids: [4, 11, 16, 25, 31, 2], mask: [0, 0, 0, 1, 1, 1] });
      const la = await sftForwardBackward(a, [[s1, other]]);
      const lb = await sftForwardBackward(b, [[s2, other]]);
      expect(la.loss).toBe(lb.loss);
      const ga = await gradients(a);
      const gb = await gradients(b);
      expect(maxAbs(ga)).toBeGreaterThan(1e-4);
      for (const [k, v] of ga) expect(Array.from(gb.get(k)!), k).toEqual(Array.from(v));
      // and the embedding rows of the masked-out tokens themselves get nothing
      const emb = ga.get('model.embed_tokens.weight')!;
      const H = config.hiddenSize;
      for (const t of [40, 41, 42]) for (let j = 0; j < H; j++) expect(emb[t * H + j]).toBe(0);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('packed and unpacked micro-batches give the same loss and gradients', async () => {
    const a = createModel(config, { seed: 7 });
    const b = createModel(config, { seed: 7 });
    try {
      const seqs = tinySft(5).map((r) => sftSequence(r));
      const la = await sftForwardBackward(a, [seqs]);
      const lb = await sftForwardBackward(b, seqs.map((s) => [s]));
      expect(Math.abs(la.loss - lb.loss)).toBeLessThan(1e-5 * la.loss);
      const ga = await gradients(a);
      const gb = await gradients(b);
      const scale = maxAbs(ga);
      expect(scale).toBeGreaterThan(1e-4);
      let worst = 0;
      for (const [k, v] of ga) {
        const w = gb.get(k)!;
        for (let i = 0; i < v.length; i++) worst = Math.max(worst, Math.abs(v[i]! - w[i]!));
      }
      expect(worst / scale).toBeLessThan(1e-4);
    } finally {
      a.dispose();
      b.dispose();
    }
  });

  it('skips poisoned (NaN) batches and trains on', async () => {
    const m = createModel(config, { seed: 9 });
    try {
      let fwd = 0;
      // a stand-in for poisoned batches: the 2nd and 4th forwards return NaN log-probabilities
      const poisoned = new Proxy(m, {
        get(target, prop, recv) {
          if (prop === 'forward')
            return async (...args: Parameters<Model['forward']>) => {
              const r = await target.forward(...args);
              if (++fwd === 2 || fwd === 4) r.logprobs.fill(NaN);
              return r;
            };
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      }) as Model;
      const res = await trainSft(poisoned, tinySft(12), null, { lr: 1e-2, epochs: 3, batchTokens: 20, curriculum: false, progress: false, maxGradNorm: 1 });
      expect(res.steps).toBeGreaterThanOrEqual(15);
      expect(res.skipped).toBe(2);
      expect(Number.isNaN(res.losses[1]!)).toBe(true);
      expect(Number.isNaN(res.losses[3]!)).toBe(true);
      expect(res.losses.filter(Number.isFinite).length).toBe(res.steps - 2);
      expect(res.losses.at(-1)!).toBeLessThan(res.losses[0]!);
      const w = tmp();
      await m.save(w);
      for (const v of readSafetensors(w).values()) for (const x of v) expect(Number.isFinite(x)).toBe(true);
    } finally {
      m.dispose();
    }
  });

  it('scores answer perplexity in batches equal to one at a time', async () => {
    const m = createModel(config, { seed: 11 });
    try {
      const data = tinySft(7).map((d) => ({ ...d, promptLength: 3 }));
      const all = await scorePerplexity(m, data, null, { batchTokens: 25 });
      for (let i = 0; i < data.length; i++) {
        const s = sftSequence(data[i]!);
        const lp = await m.logprobs({ tokens: s.tokens, targets: s.targets, cuSeqlens: Int32Array.of(0, s.tokens.length) });
        let sum = 0;
        let n = 0;
        for (let t = 0; t < lp.length; t++) if (s.targets[t]! >= 0) { sum += lp[t]!; n++; }
        expect(all.tokens[i]).toBe(n);
        expect(Math.abs(all.perplexity[i]! - Math.exp(-sum / n)) / all.perplexity[i]!).toBeLessThan(1e-5);
        expect(all.perplexity[i]).toBeGreaterThan(10); // random init: near the vocabulary size
      }
    } finally {
      m.dispose();
    }
  });
  it('LoRA: an interrupted and resumed run ends with the adapter bitwise equal to an uninterrupted one', async () => {
    const lora = { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'] as const, seed: 3 };
    const opts = { lr: 5e-3, epochs: 2, batchTokens: 30, progress: false as const, saveEvery: 2, maxGradNorm: 1 };
    const data = tinySft(10);
    const run = async (out: string, stopAt: number | null) => {
      const m = createModel(config, { seed: 13 });
      m.addLora({ ...lora, targetModules: [...lora.targetModules] });
      try {
        let n = 0;
        const r = await trainSft(m, data, null, { ...opts, outDir: out, resume: true }, stopAt ? { shouldStop: () => ++n >= stopAt } : {});
        const dir = join(out, 'adapter');
        await m.saveAdapter(dir);
        return { r, bytes: readFileSync(join(dir, 'adapter_model.safetensors')) };
      } finally {
        m.dispose();
      }
    };
    const full = await run(tmp(), null);
    const out = tmp();
    const first = await run(out, 3);
    expect(first.r.stopped).toBe(true);
    const second = await run(out, null);
    expect(second.r.resumedFrom).toBe(3);
    expect(second.r.steps).toBe(full.r.steps);
    expect(second.bytes.equals(full.bytes)).toBe(true);
    expect(first.bytes.equals(full.bytes)).toBe(false);
  });
});
