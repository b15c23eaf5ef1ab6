// Seeded inputs for the benchmarks: an xorshift32 stream (fast, reproducible; not for
// statistics) and the arrays the benches fill from it.

/** uint32 stream; seed 0 is replaced by 1 (xorshift's fixed point). */
export function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

/** n values uniform in [-scale, scale). */
export function uniformF32(n: number, seed: number, scale = 1): Float32Array {
  const next = xorshift32(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = ((next() / 4294967296) * 2 - 1) * scale;
  return a;
}

/** The same values as uniformF32, truncated to bf16 bits (the upper half of each f32). */
export function uniformBf16Bits(n: number, seed: number, scale = 1): Uint16Array {
  const f = uniformF32(n, seed, scale);
  const u = new Uint32Array(f.buffer);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = u[i]! >>> 16;
  return out;
}

/** n token ids in [lo, V). */
export function randomTokens(n: number, V: number, seed: number, lo = 0): number[] {
  const next = xorshift32(seed);
  return Array.from({ length: n }, () => lo + (next() % (V - lo)));
}
