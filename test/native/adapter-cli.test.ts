// Adapters everywhere: --adapter on generate, score, eval and sft; --model given an adapter
// directory (tokenizer from its base); itool merge against W + (alpha / r)·B·A computed here in
// float64 from the files; --dtype bf16 on merge and sft.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/engine/model.js';
import { adapterChain } from '../../src/engine/adapter.js';
import { readSafetensors } from '../../src/engine/safetensors.js';
import { itool } from '../helpers/cli.js';
import { tinyModelDir } from './train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-adapter-cli-'));
const base = join(root, 'base');
const adapter = join(root, 'adapter');
const dataFile = join(root, 'data.jsonl');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await tinyModelDir({ modelDir: base, dataFile, n: 6, dataSeed: 5, vocabSize: 300, modelSeed: 2, architecture: 'Qwen2ForCausalLM' });
  // an adapter with B away from 0 (PEFT starts B at 0), saved the PEFT way: its base in adapter_config.json
  const a = await loadModel(base, { device: 'cpu' });
  a.addLora({ rank: 2, alpha: 6, targetModules: ['q_proj', 'up_proj', 'down_proj'], seed: 3 });
  let k = 1;
  for (const n of a.paramNames().filter((x) => x.includes('lora_B'))) {
    const v = a.getParam(n);
    for (let i = 0; i < v.length; i++) v[i] = Math.sin(++k) * 0.3;
    a.setParam(n, v);
  }
  await a.saveAdapter(adapter);
  a.dispose();
});

const ids = '5,17,40,3,99,12,7,64,2,31';
async function score(...args: string[]): Promise<number[]> {
  const r = await itool(['score', ...args, '--ids', ids, '--json', '--device', 'cpu']);
  expect(r.code, r.err).toBe(0);
  return (JSON.parse(r.out) as { logprobs: Array<number | null> }).logprobs.slice(1) as number[];
}

function tensorsOf(file: string): Map<string, { dtype: string; shape: number[]; data: Float32Array }> {
  return new Map(readSafetensors(file).tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.shape, data: t.data! }]));
}

describe('adapters on every command', () => {
  it('itool merge: W + (alpha/r)·B·A in float64 from the files; bf16 halves the file', async () => {
    const out = join(root, 'merged');
    const r = await itool(['merge', '--model', base, '--adapter', adapter, '--out', out, '--device', 'cpu']);
    expect(r.code, r.err).toBe(0);
    const W = tensorsOf(join(base, 'model.safetensors'));
    const A = tensorsOf(join(adapter, 'adapter_model.safetensors'));
    const M = tensorsOf(join(out, 'model.safetensors'));
    expect([...M.keys()].sort()).toEqual([...W.keys()].sort());
    let adapted = 0;
    for (const [name, w] of W) {
      const m = M.get(name)!;
      const stem = `base_model.model.${name.replace(/\.weight$/, '')}`;
      const a = A.get(`${stem}.lora_A.weight`);
      const b = A.get(`${stem}.lora_B.weight`);
      if (!a || !b) {
        expect(Buffer.from(m.data.buffer).equals(Buffer.from(w.data.buffer)), name).toBe(true);
        continue;
      }
      adapted++;
      const [out_, inn] = w.shape as [number, number];
      const r_ = a.shape[0]!;
      let maxErr = 0;
      for (let i = 0; i < out_; i++)
        for (let j = 0; j < inn; j++) {
          let d = 0;
          for (let k = 0; k < r_; k++) d += b.data[i * r_ + k]! * a.data[k * inn + j]!;
          const want = w.data[i * inn + j]! + (6 / 2) * d;
          maxErr = Math.max(maxErr, Math.abs(m.data[i * inn + j]! - want) / Math.max(1, Math.abs(want)));
        }
      expect(maxErr, name).toBeLessThan(1e-6);
    }
    expect(adapted).toBe(3 * 2); // q, up, down in each of tinyConfig's 2 layers
    expect(readFileSync(join(out, 'tokenizer.json'), 'utf8')).toBe(readFileSync(join(base, 'tokenizer.json'), 'utf8'));
    // bf16: every tensor stored as bf16, the file about half
    const out16 = join(root, 'merged16');
    expect((await itool(['merge', '--model', adapter, '--out', out16, '--dtype', 'bf16', '--device', 'cpu'])).code).toBe(0);
    expect([...tensorsOf(join(out16, 'model.safetensors')).values()].every((t) => t.dtype === 'bf16')).toBe(true);
    expect((JSON.parse(readFileSync(join(out16, 'config.json'), 'utf8')) as { torch_dtype: string }).torch_dtype).toBe('bfloat16');
    expect(statSync(join(out16, 'model.safetensors')).size / statSync(join(out, 'model.safetensors')).size).toBeLessThan(0.55);
    // nothing to merge
    const bad = await itool(['merge', '--model', base, '--out', join(root, 'x')]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/nothing to merge/);
  });

  it('score: --adapter on the base = --model ADAPTER = the merged model, and not the base', async () => {
    const viaFlag = await score('--model', base, '--adapter', adapter);
    const viaDir = await score('--model', adapter);
    const merged = await score('--model', join(root, 'merged'));
    const plain = await score('--model', base);
    expect(viaDir).toEqual(viaFlag);
    for (let i = 0; i < merged.length; i++) expect(Math.abs(merged[i]! - viaFlag[i]!)).toBeLessThan(1e-4);
    expect(plain.some((x, i) => Math.abs(x - viaFlag[i]!) > 1e-3)).toBe(true);
  });

  it('generate and eval take an adapter (directory or flag); the tokenizer comes from the base', async () => {
    const g1 = await itool(['generate', '--model', adapter, '--prompt', 'weather in Paris', '--temperature', '0', '--max-tokens', '6', '--device', 'cpu']);
    const g2 = await itool(['generate', '--model', base, '--adapter', adapter, '--prompt', 'weather in Paris', '--temperature', '0', '--max-tokens', '6', '--device', 'cpu']);
    expect(g1.code, g1.err).toBe(0);
    expect(g2.code, g2.err).toBe(0);
    expect(g1.out).toBe(g2.out);
    const e = await itool(['eval', '--model', base, '--adapter', adapter, '--data', dataFile, '--max-tokens', '4', '--json', '--device', 'cpu']);
    expect(e.code, e.err).toBe(0);
    expect((JSON.parse(e.out) as { summary: { overall: { total: number } } }).summary.overall.total).toBeGreaterThan(0);
    const bad = await itool(['eval', '--predictions', join(root, 'none.jsonl'), '--adapter', adapter, '--data', dataFile]);
    expect(bad.err).toMatch(/--adapter needs --model/);
  });

  it('sft --adapter trains the adapter on and saves it with its base; sft --dtype bf16 saves bf16', async () => {
    const out = join(root, 'sft-adapter');
    const r = await itool(['sft', '--model', base, '--adapter', adapter, '--data', dataFile, '--out', out, '--max-steps', '1', '--lr', '0.01', '--warmup-ratio', '0', '--no-progress']);
    expect(r.code, r.err).toBe(0);
    expect(adapterChain(join(out, 'adapter'))).toEqual({ base, merged: [] });
    const before = tensorsOf(join(adapter, 'adapter_model.safetensors'));
    const after = tensorsOf(join(out, 'adapter', 'adapter_model.safetensors'));
    expect([...before.keys()].some((k) => after.get(k)!.data.some((x, i) => x !== before.get(k)!.data[i]))).toBe(true);
    const out16 = join(root, 'sft-bf16');
    const r16 = await itool(['sft', '--model', base, '--data', dataFile, '--out', out16, '--max-steps', '1', '--dtype', 'bf16', '--no-progress']);
    expect(r16.code, r16.err).toBe(0);
    expect([...tensorsOf(join(out16, 'model', 'model.safetensors')).values()].every((t) => t.dtype === 'bf16')).toBe(true);
    writeFileSync(join(root, 'unused'), '');
  });
});
