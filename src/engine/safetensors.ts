// safetensors files from TypeScript, through the native reader/writer (validated,
// memory-mapped reads; atomic writes). Values come back as f32 whatever the stored dtype.
import { resolve } from 'node:path';
import { loadNative } from './native.js';

export interface SafetensorsTensor {
  name: string;
  dtype: 'f32' | 'bf16' | 'f16';
  shape: number[];
  /** f32 values (absent when only the header was read) */
  data?: Float32Array;
}

export interface SafetensorsContents {
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

/** Reads and validates a .safetensors file; `headerOnly` skips the values. */
export function readSafetensors(path: string, opts: { headerOnly?: boolean } = {}): SafetensorsContents {
  return loadNative().safetensorsRead(resolve(path), opts.headerOnly === true) as SafetensorsContents;
}

/** Writes a .safetensors file atomically (temp file, fsync, rename); values are rounded to the dtype. */
export function writeSafetensors(
  path: string,
  tensors: Array<{ name: string; dtype?: 'f32' | 'bf16' | 'f16'; shape: number[]; data: Float32Array }>,
  metadata: Record<string, string> = {},
): void {
  loadNative().safetensorsWrite(
    resolve(path),
    tensors.map((t) => ({ name: t.name, dtype: t.dtype ?? 'f32', shape: t.shape, data: t.data })),
    metadata,
  );
}

/** The safetensors files of a checkpoint directory (model.safetensors or the shards of its index). */
export function checkpointShards(dir: string): string[] {
  return loadNative().checkpointShards(resolve(dir)) as string[];
}
