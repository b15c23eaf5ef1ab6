// Test helpers: the addon as the tests see it (ITOOL_ADDON honoured), repo paths.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNative, type NativeAddon } from '../../src/engine/native.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sharedDir = join(repoRoot, '..', 'shared');

export function addon(): NativeAddon {
  return loadNative();
}

/** Small deterministic PRNG (mulberry32) for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
