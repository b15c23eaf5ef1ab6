// `itool train` with LoRA (and recompute) on a tiny model: the adapter is trained through the
// warm-up and the iteration, the run directory holds adapters and not models, the chain of a
// merged run loads back to the model the run evaluated, and the base directory is untouched.
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/engine/model.js';
import { adapterChain, loadWithAdapter } from '../../src/engine/adapter.js';
import { readSafetensors } from '../../src/engine/safetensors.js';
import { loadTokenizer } from '../../src/text/index.js';
import { realEnv } from '../../src/pipeline/real-env.js';
import { itool } from '../helpers/cli.js';
import { tinyModelDir } from './train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-train-lora-'));
const modelDir = join(root, 'model');
const dataFile = join(root, 'train.jsonl');
const cfgFile = join(root, 'small.json');
afterAll(() => (process.env.KEEP ? undefined : rmSync(root, { recursive: true, force: true })));

beforeAll(async () => {
  await tinyModelDir({ modelDir, dataFile, n: 16, dataSeed: 4, vocabSize: 320, modelSeed: 1, maxPositions: 8192 });
  writeFileSync(
    cfgFile,
    JSON.stringify({
      iterations: 1,
      maxSelected: 3,
      sft: { lr: 0.01, epochs: 1, batchTokens: 2000 },
      preference: { lr: 0.01 },
      search: { simulations: 2, numActions: 2, maxDepth: 2, maxTokens: 6, batchSize: 8 },
      eval: { maxTokens: 12, batchSize: 8, maxSamples: 3 },
    }),
  );
});

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(p.slice(root.length + 1));
    }
  };
  walk(dir);
  return out;
}

function tensors(file: string): Map<string, Float32Array> {
  return new Map(readSafetensors(file).tensors.map((t) => [t.name, t.data!]));
}

async function logprobsOf(m: { logprobs(b: { tokens: Int32Array; targets: Int32Array; cuSeqlens: Int32Array }): Promise<Float32Array>; dispose(): void }): Promise<Float32Array> {
  const tokens = Int32Array.from([5, 9, 17, 33, 2, 70, 11, 8]);
  const targets = Int32Array.from([9, 17, 33, 2, 70, 11, 8, 3]);
  const r = await m.logprobs({ tokens, targets, cuSeqlens: Int32Array.from([0, 8]) });
  m.dispose();
  return r;
}

describe('itool train --lora-rank', () => {
  it('trains one adapter (MLP targets too) through the warm-up and the iteration; the run holds adapters only', async () => {
    const out = join(root, 'run');
    const baseBefore = readFileSync(join(modelDir, 'model.safetensors'));
    const r = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfgFile, '--lora-rank', '4', '--lora-alpha', '8', '--lora-targets', 'q_proj,v_proj,gate_proj,down_proj', '--recompute', '--device', 'cpu', '--no-progress']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/LoRA: rank 4, alpha 8, targets q_proj,v_proj,gate_proj,down_proj/);
    // no full model anywhere in the run directory
    const all = files(out);
    expect(all.filter((f) => f.endsWith('model.safetensors') && !f.endsWith('adapter_model.safetensors'))).toEqual([]);
    // (an iteration without pairs keeps the model it started from: no directory of its own)
    for (const phase of ['warmup', 'iteration-1'].filter((p) => existsSync(join(out, p, 'model')))) {
      const d = join(out, phase, 'model');
      expect(existsSync(join(d, 'adapter_model.safetensors'))).toBe(true);
      const cfg = JSON.parse(readFileSync(join(d, 'adapter_config.json'), 'utf8')) as { r: number; lora_alpha: number; target_modules: string[] };
      expect([cfg.r, cfg.lora_alpha, cfg.target_modules]).toEqual([4, 8, ['q_proj', 'v_proj', 'gate_proj', 'down_proj']]);
      expect(adapterChain(d)).toEqual({ base: modelDir, merged: [] });
    }
    // the warm-up trained B away from 0 (PEFT starts it at 0), the MLP projections included
    const w = tensors(join(out, 'warmup', 'model', 'adapter_model.safetensors'));
    const bNames = [...w.keys()].filter((k) => k.includes('lora_B'));
    expect(bNames.some((k) => k.includes('mlp.gate_proj'))).toBe(true);
    expect(bNames.some((k) => k.includes('mlp.down_proj'))).toBe(true);
    expect(bNames.every((k) => w.get(k)!.some((x) => x !== 0))).toBe(true);
    // the base model directory is unchanged
    expect(readFileSync(join(modelDir, 'model.safetensors')).equals(baseBefore)).toBe(true);
    // the adapter loads back on its base: outputs differ from the base's
    const base = await logprobsOf(await loadModel(modelDir, { device: 'cpu' }));
    const adapted = await logprobsOf((await loadWithAdapter(join(out, 'warmup', 'model'), { device: 'cpu' })).model);
    expect(adapted.some((x, i) => Math.abs(x - base[i]!) > 1e-4)).toBe(true);
  }, 240_000);

  it('--lora-merge: each phase merges the adapter it starts from; the chain loads back to the same model', async () => {
    const out = join(root, 'merged');
    const r = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfgFile, '--lora-rank', '4', '--lora-merge', '--device', 'cpu', '--no-progress']);
    expect(r.code, r.err).toBe(0);
    const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as { phases: Array<{ name: string; result: { model?: string } }> };
    const it1 = state.phases.find((p) => p.name === 'iteration-1/optimize')!.result.model!;
    const pairs = readFileSync(join(out, 'iteration-1', 'pairs.jsonl'), 'utf8').trim();
    const chain = adapterChain(it1);
    // (a tiny random model's search finds no pairs: the iteration then keeps the warm-up's adapter)
    if (pairs.length > 0) expect(chain).toEqual({ base: modelDir, merged: [join(out, 'warmup', 'model')] });
    else expect([it1, chain]).toEqual([join(out, 'warmup', 'model'), { base: modelDir, merged: [] }]);
    // loading the chain equals merging by hand: base, + warm-up adapter merged, + iteration adapter
    const viaChain = await logprobsOf((await loadWithAdapter(it1, { device: 'cpu' })).model);
    const byHand = await loadModel(modelDir, { device: 'cpu' });
    for (const d of chain.merged) {
      await byHand.loadAdapter(d);
      await byHand.mergeAdapter();
    }
    await byHand.loadAdapter(it1);
    expect(Array.from(await logprobsOf(byHand))).toEqual(Array.from(viaChain));
  }, 240_000);

  it('an iteration trains the adapter it loads on (or, merging, a fresh one over the merged chain) and saves adapters', async () => {
    // the pipeline's environment as `itool train` builds it; the pairs are given (a tiny random
    // model's search rarely finds any)
    const warm = join(root, 'run', 'warmup', 'model');
    const tok = loadTokenizer(modelDir);
    const pairs = [
      { promptIds: tok.encode('weather in Paris'), prefixIds: tok.encode('[get'), chosenIds: tok.encode('_weather(city="Paris")]'), rejectedIds: tok.encode('_time(tz="UTC")]') },
      { promptIds: tok.encode('convert 10 USD'), prefixIds: [], chosenIds: tok.encode('[convert(amount=10)]'), rejectedIds: tok.encode('no') },
    ];
    for (const merge of [false, true]) {
      const env = realEnv({ tokenizer: tok, tokenizerDir: modelDir, loadModel: (d) => loadModel(d, { device: 'cpu' }), lora: { options: { rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'gate_proj', 'down_proj'] }, merge, seed: 42 } });
      const m = await env.loadModel(warm);
      const trainable = m.trainableParameters;
      expect(trainable).toBeLessThan(m.numParameters / 4);
      const outDir = join(root, `prefer-${merge}`);
      const r = await env.trainer.prefer(m, pairs, { lr: 0.05, epochs: 3, warmupRatio: 0, loss: 'simpo', outDir, phase: 'iteration-1', seed: 1 });
      expect(r.steps).toBeGreaterThan(0);
      expect(m.trainableParameters).toBe(trainable);
      await env.saveModel(m, join(outDir, 'model'));
      m.dispose();
      expect(existsSync(join(outDir, 'model', 'model.safetensors'))).toBe(false);
      expect(adapterChain(join(outDir, 'model'))).toEqual({ base: modelDir, merged: merge ? [warm] : [] });
      const before = tensors(join(warm, 'adapter_model.safetensors'));
      const after = tensors(join(outDir, 'model', 'adapter_model.safetensors'));
      // trained on: the adapter moved from the warm-up's (merging: a fresh adapter, B trained away from 0)
      expect([...before.keys()].some((k) => after.get(k)!.some((x, j) => x !== before.get(k)![j]))).toBe(true);
      if (merge) expect([...after.keys()].filter((k) => k.includes('lora_B')).some((k) => after.get(k)!.some((x) => x !== 0))).toBe(true);
    }
  }, 240_000);

  it('--preset reference: the warm-up trains every weight (the LoRA of the authors\' code is on the preference step only), the iteration an adapter on the warm-up model', async () => {
    const out = join(root, 'reference');
    const r = await itool(['train', '--preset', 'reference', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfgFile, '--device', 'cpu', '--no-progress']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/LoRA: rank 8, alpha 16, .*the warm-up trains every weight \(lora.warmup false\), the iterations train adapters/);
    expect(r.err).toMatch(/selection: perplexity over every assistant turn of each sample \(perplexityScope assistant\)/);
    const warm = join(out, 'warmup', 'model');
    expect(existsSync(join(warm, 'model.safetensors'))).toBe(true);
    expect(existsSync(join(warm, 'adapter_config.json'))).toBe(false);
    // every weight moved, the MLP's too (no adapter: the warm-up trained the model whole)
    const base = tensors(join(modelDir, 'model.safetensors'));
    const after = tensors(join(warm, 'model.safetensors'));
    for (const name of [...base.keys()].filter((k) => /layers\.0\.(self_attn\.q_proj|mlp\.down_proj)\.weight/.test(k))) expect(after.get(name)!.some((x, i) => x !== base.get(name)![i])).toBe(true);
    // the iteration: an adapter over the warm-up model, or (no pairs) the warm-up model itself
    const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as { phases: Array<{ name: string; result: { model?: string } }> };
    const it1 = state.phases.find((p) => p.name === 'iteration-1/optimize')!.result.model!;
    if (it1 !== warm) {
      expect(existsSync(join(it1, 'adapter_model.safetensors'))).toBe(true);
      expect(adapterChain(it1)).toEqual({ base: warm, merged: [] });
    }
    // the environment as train builds it: the warm-up's model whole, the others adapted
    const tok = loadTokenizer(modelDir);
    const env = realEnv({ tokenizer: tok, tokenizerDir: modelDir, loadModel: (d) => loadModel(d, { device: 'cpu' }), lora: { options: { rank: 4, alpha: 8, targetModules: ['q_proj', 'down_proj'] }, merge: true, seed: 42, warmup: false } });
    const w = await env.loadModel(modelDir, 'warmup');
    expect(w.trainableParameters).toBe(w.numParameters);
    w.dispose();
    const a = await env.loadModel(warm);
    expect(a.trainableParameters).toBeLessThan(a.numParameters / 4);
    // (a tiny random model's search rarely finds pairs: the iteration's training on given ones)
    const pairs = [{ promptIds: tok.encode('weather in Paris'), prefixIds: [], chosenIds: tok.encode('[get_weather(city="Paris")]'), rejectedIds: tok.encode('no') }];
    const outDir = join(out, 'prefer-by-hand');
    expect((await env.trainer.prefer(a, pairs, { lr: 0.05, epochs: 2, warmupRatio: 0, loss: 'simpo', outDir, phase: 'iteration-1', seed: 1 })).steps).toBeGreaterThan(0);
    await env.saveModel(a, join(outDir, 'model'));
    a.dispose();
    expect(existsSync(join(outDir, 'model', 'model.safetensors'))).toBe(false);
    expect(adapterChain(join(outDir, 'model'))).toEqual({ base: warm, merged: [] });
  }, 240_000);

  it('bad LoRA options are refused before any work', async () => {
    const r0 = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', join(root, 'bad0'), '--lora-rank', '0', '--no-progress']);
    expect(r0.code).toBe(1);
    expect(r0.err).toMatch(/rank must be an integer in \[1, 4096\], got 0/);
    const r1 = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', join(root, 'bad1'), '--lora-rank', '4', '--lora-targets', 'q_proj,mlp', '--no-progress']);
    expect(r1.code).toBe(1);
    expect(r1.err).toMatch(/unknown target module 'mlp'/);
    expect(existsSync(join(root, 'bad0', 'state.json'))).toBe(false);
  });
});
