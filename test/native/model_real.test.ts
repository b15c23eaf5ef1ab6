// The model tests on a real Hugging Face checkpoint named by ITOOL_TEST_MODEL (a directory
// with config.json + *.safetensors), against the same float64 reference. Skipped, saying
// so, when the variable is unset.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModel, type NativeModel } from '../../src/engine/index.js';
import { forward64, logprobs64 } from '../reference/model64.js';

const dir = process.env.ITOOL_TEST_MODEL;
const have = !!dir && existsSync(join(dir, 'config.json'));

describe.skipIf(!have)(`real checkpoint (ITOOL_TEST_MODEL=${dir ?? 'unset: set it to a Hugging Face model directory to run these'})`, () => {
  let m: NativeModel;
  const tmp = mkdtempSync(join(tmpdir(), 'itool-real-'));
  afterAll(() => {
    m?.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });
  const weightCache = new Map<string, Float32Array>();
  const w = (n: string) => {
    let v = weightCache.get(n);
    if (!v) weightCache.set(n, (v = m.getParam(n)));
    return v;
  };

  it('loads, and its logits match the float64 reference (relative error <= 1e-4)', async () => {
    m = await loadModel(dir!, { device: 'cpu' });
    const V = m.config.vocabSize;
    const ids = [1, 100, 2000, 300, 45, 6000, 7, 800].map((x) => x % V);
    const out = await m.forward({ tokens: Int32Array.from(ids), targets: Int32Array.from([...ids.slice(1), -1]), cuSeqlens: Int32Array.from([0, ids.length]) }, { logits: true });
    const ref = forward64(m.config, w, ids, [0, ids.length]);
    let err = 0, mx = 0;
    for (let i = 0; i < ref.length; i++) {
      err = Math.max(err, Math.abs(out.logits![i]! - ref[i]!));
      mx = Math.max(mx, Math.abs(ref[i]!));
    }
    console.log(`real model: logits max relative error ${(err / mx).toExponential(2)}`);
    expect(err / mx).toBeLessThan(1e-4);
    const lp = logprobs64(ref, V, [...ids.slice(1), -1]);
    for (let i = 0; i + 1 < ids.length; i++) expect(Math.abs(out.logprobs[i]! - lp[i]!)).toBeLessThan(1e-3);
  }, 600_000);

  it('final-norm gradients match central finite differences', async () => {
    const V = m.config.vocabSize;
    const ids = [5, 17, 300, 4000].map((x) => x % V);
    const b = { tokens: Int32Array.from(ids), targets: Int32Array.from([...ids.slice(1), -1]), cuSeqlens: Int32Array.from([0, ids.length]) };
    const dl = Float32Array.from([-1, -1, -1, 0]);
    m.zeroGrad();
    await m.forward(b, { train: true });
    await m.backward(dl);
    const name = 'model.norm.weight';
    const g = m.getGrad(name);
    const p = Float64Array.from(w(name));
    const w64 = (n: string) => (n === name ? p : w(n));
    for (const i of [0, 7]) {
      const h = 1e-4;
      const loss = () => {
        const lp = logprobs64(forward64(m.config, w64, ids, [0, ids.length]), V, b.targets);
        return -(lp[0]! + lp[1]! + lp[2]!);
      };
      const o = p[i]!;
      p[i] = o + h;
      const lp1 = loss();
      p[i] = o - h;
      const lm1 = loss();
      p[i] = o;
      const fd = (lp1 - lm1) / (2 * h);
      expect(Math.abs(g[i]! - fd)).toBeLessThan(1e-2 * Math.max(1, Math.abs(fd)));
    }
    m.zeroGrad();
  }, 600_000);

  it('KV-cache decoding equals the full forward; a fork gives the same tokens', async () => {
    const V = m.config.vocabSize;
    const ids = [11, 22, 33, 44, 55, 66].map((x) => x % V);
    const full = await m.forward({ tokens: Int32Array.from(ids), targets: new Int32Array(ids.length).fill(-1), cuSeqlens: Int32Array.from([0, ids.length]) }, { logits: true });
    const c = await m.cache(ids.slice(0, 2));
    for (let t = 1; t < ids.length; t++) {
      const lp = await m.nextLogprobs([c]);
      const row = full.logits!.subarray(t * V, (t + 1) * V);
      let best = 0;
      for (let j = 1; j < V; j++) if (row[j]! > row[best]!) best = j;
      let bestC = 0;
      for (let j = 1; j < V; j++) if (lp[j]! > lp[bestC]!) bestC = j;
      expect(bestC).toBe(best);
      if (t + 1 < ids.length) await m.extend(c, [ids[t + 1]!]);
    }
    const a = c.fork();
    const fresh = await m.cache(ids);
    const ga = await m.generate([a], { maxTokens: 8, seed: 3 });
    const gf = await m.generate([fresh], { maxTokens: 8, seed: 3 });
    expect(ga[0]!.tokens).toEqual(gf[0]!.tokens);
    for (const x of [a, c, fresh]) x.dispose();
  }, 600_000);

  it('save -> load is bitwise; LoRA with B = 0 equals the base model', async () => {
    const ids = [3, 4, 5, 6].map((x) => x % m.config.vocabSize);
    const b = { tokens: Int32Array.from(ids), targets: Int32Array.from([...ids.slice(1), -1]), cuSeqlens: Int32Array.from([0, ids.length]) };
    const before = await m.logprobs(b);
    await m.save(join(tmp, 'saved'));
    const m2 = await loadModel(join(tmp, 'saved'), { device: 'cpu' });
    expect(await m2.logprobs(b)).toEqual(before);
    m2.addLora({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj'] });
    expect(await m2.logprobs(b)).toEqual(before);
    m2.dispose();
  }, 600_000);
});
