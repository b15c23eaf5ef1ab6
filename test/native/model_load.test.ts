// loadModel: the weights are read straight in (never initialised first), bitwise those saved,
// padding included; a truncated or mismatched checkpoint of a Qwen2.5-0.5B-shaped model (2 GB
// of f32 weights) is refused before the weights' memory is committed.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tinyConfig } from '../../src/engine/config.js';
import { createModel, loadModel } from '../../src/engine/model.js';
import { readSafetensors } from '../../src/engine/safetensors.js';

const root = mkdtempSync(join(tmpdir(), 'itool-load-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

// Qwen2.5-0.5B's config.json fields that decide the tensors
const qwen05 = {
  architectures: ['Qwen2ForCausalLM'],
  model_type: 'qwen2',
  vocab_size: 151936,
  hidden_size: 896,
  intermediate_size: 4864,
  num_hidden_layers: 24,
  num_attention_heads: 14,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  max_position_embeddings: 32768,
  tie_word_embeddings: true,
  eos_token_id: 151645,
};

/** The tensors a Qwen2 checkpoint of this shape holds, with their shapes (HF names). */
function qwen2Tensors(c: typeof qwen05): Array<[string, number[]]> {
  const H = c.hidden_size;
  const D = H / c.num_attention_heads;
  const Dkv = c.num_key_value_heads * D;
  const out: Array<[string, number[]]> = [['model.embed_tokens.weight', [c.vocab_size, H]]];
  for (let l = 0; l < c.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    out.push(
      [`${p}input_layernorm.weight`, [H]],
      [`${p}self_attn.q_proj.weight`, [H, H]],
      [`${p}self_attn.q_proj.bias`, [H]],
      [`${p}self_attn.k_proj.weight`, [Dkv, H]],
      [`${p}self_attn.k_proj.bias`, [Dkv]],
      [`${p}self_attn.v_proj.weight`, [Dkv, H]],
      [`${p}self_attn.v_proj.bias`, [Dkv]],
      [`${p}self_attn.o_proj.weight`, [H, H]],
      [`${p}post_attention_layernorm.weight`, [H]],
      [`${p}mlp.gate_proj.weight`, [c.intermediate_size, H]],
      [`${p}mlp.up_proj.weight`, [c.intermediate_size, H]],
      [`${p}mlp.down_proj.weight`, [H, c.intermediate_size]],
    );
  }
  out.push(['model.norm.weight', [H]]);
  return out;
}

/** A safetensors file from its format rules: u64 header length, JSON header, `dataBytes` bytes of data. */
function safetensorsFile(tensors: Array<[string, number[]]>, dataBytes: (total: number) => number): Buffer {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of tensors) {
    const n = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataBytes(off))]);
}

function modelDir(name: string, file: Buffer): string {
  const d = join(root, name);
  rmSync(d, { recursive: true, force: true });
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), JSON.stringify(qwen05));
  writeFileSync(join(d, 'model.safetensors'), file);
  return d;
}

/** Peak RSS growth (bytes) while fn runs, and what it threw. */
async function peakGrowth(fn: () => Promise<unknown>): Promise<{ grew: number; error: Error | null }> {
  const before = process.resourceUsage().maxRSS * 1024;
  let error: Error | null = null;
  try {
    await fn();
  } catch (e) {
    error = e as Error;
  }
  return { grew: process.resourceUsage().maxRSS * 1024 - before, error };
}

describe('loadModel', () => {
  it('reads the weights bitwise as saved, the training state (padding between tensors included) equal to the saved model', async () => {
    // odd sizes, so that tensors do not end on 64-byte boundaries and the layout has padding
    const cfg = tinyConfig('Qwen2ForCausalLM', { vocabSize: 61, hiddenSize: 36, intermediateSize: 53, numHeads: 3, numKvHeads: 1, headDim: 12, tieWordEmbeddings: false });
    const a = createModel(cfg, { seed: 9 });
    const dir = join(root, 'tiny');
    await a.save(dir);
    const b = await loadModel(dir, { device: 'cpu' });
    expect(b.paramNames()).toEqual(a.paramNames());
    for (const n of a.paramNames()) expect(Buffer.from(b.getParam(n).buffer).equals(Buffer.from(a.getParam(n).buffer)), n).toBe(true);
    await a.saveTrainingState(join(root, 'ts-a'));
    await b.saveTrainingState(join(root, 'ts-b'));
    const pa = readSafetensors(join(root, 'ts-a', 'training_state.safetensors')).tensors.find((t) => t.name === 'param')!.data!;
    const pb = readSafetensors(join(root, 'ts-b', 'training_state.safetensors')).tensors.find((t) => t.name === 'param')!.data!;
    expect(pb.length).toBe(pa.length);
    expect(Buffer.from(pb.buffer).equals(Buffer.from(pa.buffer))).toBe(true);
    a.dispose();
    b.dispose();
  });

  const qt = qwen2Tensors(qwen05);
  const weightBytes = qt.reduce((s, [, sh]) => s + sh.reduce((x, y) => x * y, 1) * 4, 0);

  it('refuses a truncated 0.5B-shaped checkpoint before the weights are allocated', async () => {
    expect(weightBytes).toBeGreaterThan(1.9e9);
    // the header whole, 1 MiB of the data
    const d = modelDir('truncated', safetensorsFile(qt, () => 2 ** 20));
    const r = await peakGrowth(() => loadModel(d, { device: 'cpu' }));
    expect(r.error?.message).toMatch(/model\.safetensors: tensor 'model\.embed_tokens\.weight': data_offsets end 544538624 points past the end of the file \(data section holds 1048576 bytes; truncated\?\)/);
    expect(r.grew).toBeLessThan(256 * 2 ** 20);
  }, 120_000);

  it('refuses a checkpoint with a wrong shape or a missing tensor before the weights are allocated', async () => {
    const wrong = qt.map(([n, s]): [string, number[]] => (n === 'model.layers.7.mlp.up_proj.weight' ? [n, [4864, 895]] : [n, [1]]));
    const d1 = modelDir('wrong-shape', safetensorsFile(wrong, (t) => t));
    const r1 = await peakGrowth(() => loadModel(d1, { device: 'cpu' }));
    expect(r1.error?.message).toMatch(/tensor 'model\.embed_tokens\.weight' has shape \[1\] but config\.json implies \[151936, 896\]/);
    expect(r1.grew).toBeLessThan(256 * 2 ** 20);
    const d2 = modelDir('missing', safetensorsFile(qt.filter(([n]) => n !== 'model.norm.weight').map(([n]) => [n, [1]] as [string, number[]]), (t) => t));
    const r2 = await peakGrowth(() => loadModel(d2, { device: 'cpu' }));
    // names are checked before shapes
    expect(r2.error?.message).toMatch(/tensor 'model\.norm\.weight' \(needed by config\.json\) is missing from the checkpoint \(.*model\.safetensors\)/);
    expect(r2.grew).toBeLessThan(256 * 2 ** 20);
  }, 120_000);
});
