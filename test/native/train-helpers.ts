// Helpers of the native trainer tests: reading a saved model's tensors, data sets.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RenderedSample } from '../../src/train/sft.js';

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
