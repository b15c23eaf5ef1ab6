// Helpers of the native trainer tests: reading a saved model's tensors, data sets, a tiny
// model directory to run the commands on.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RenderedSample } from '../../src/train/sft.js';
import { saveSamples } from '../../src/data/formats.js';
import { synthesize } from '../../src/data/synth.js';
import { tinyConfig } from '../../src/engine/config.js';
import type { Architecture } from '../../src/engine/model-types.js';
import { createModel } from '../../src/engine/model.js';
import { trainBpe, writeTokenizer } from '../../src/text/bpe.js';
import { loadTokenizer } from '../../src/text/index.js';

/**
 * A tiny random model in MODELDIR with a BPE tokenizer trained on N synthetic training
 * samples, which are written to DATAFILE as ShareGPT: what the CLI tests train on.
 */
export async function tinyModelDir(o: {
  modelDir: string;
  dataFile: string;
  n: number;
  dataSeed: number;
  vocabSize: number;
  modelSeed: number;
  maxPositions?: number;
  architecture?: Architecture;
}): Promise<void> {
  const samples = synthesize({ n: o.n, seed: o.dataSeed, split: 'train' });
  saveSamples(o.dataFile, samples, 'sharegpt');
  writeTokenizer(o.modelDir, trainBpe({ corpus: samples.map((s) => JSON.stringify(s)), vocabSize: o.vocabSize, seed: 1 }));
  const V = Math.max(o.vocabSize, loadTokenizer(o.modelDir).vocabSize ?? 0);
  const cfg = tinyConfig(o.architecture ?? 'LlamaForCausalLM', { vocabSize: V, maxPositionEmbeddings: o.maxPositions ?? 4096, bosTokenId: null, eosTokenId: [0] });
  const m = createModel(cfg, { seed: o.modelSeed });
  await m.save(o.modelDir);
  m.dispose();
}

/** Every F32 tensor of DIR/model.safetensors, by name (parsed here from the format's rules). */
export function readSafetensors(dir: string): Map<string, Float32Array> {
  const buf = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [k, v] of Object.entries(header)) {
    if (k === '__metadata__') continue;
    if (v.dtype !== 'F32') throw new Error(`${k}: dtype ${v.dtype}`);
    const [a, b] = v.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    out.set(k, new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)));
  }
  return out;
}

/** Samples of a tiny "tool-use" language: prompt tokens (unmasked), an answer chain (masked), end token 2. */
export function tinySft(n: number, V = 64): RenderedSample[] {
  const out: RenderedSample[] = [];
  const cats = ['simple', 'multiple', 'parallel', 'irrelevance'];
  for (let i = 0; i < n; i++) {
    const p = [3 + (i % 5), 8 + ((i * 3) % 7), 16];
    const a = Array.from({ length: 4 + (i % 3) }, (_, j) => 20 + ((i * 5 + j * 7) % (V - 20)));
    out.push({ ids: [...p, ...a, 2], mask: [0, 0, 0, ...a.map(() => 1), 1], category: cats[i % 4], id: `t${i}` });
  }
  return out;
}
