// Seeded random numbers whose whole state is a few integers, so that a checkpoint can
// hold it and a resumed run draws exactly the numbers an uninterrupted run draws.
// xoshiro128** (Blackman & Vigna), seeded through splitmix32 from (seed, stream...).

function splitmix32(x: number): [number, number] {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [x, z >>> 0];
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** The serialisable state of an Rng: four 32-bit words. */
export type RngState = [number, number, number, number];

export class Rng {
  private s: Uint32Array;

  /**
   * `seed` and every `stream` word (integers; only the low 32 bits of each count, plus
   * the high bits of `seed` up to 2^53) select an independent sequence: Rng(seed, epoch)
   * gives each epoch its own order without any state carried between epochs.
   */
  constructor(seed: number, ...stream: number[]) {
    if (!Number.isFinite(seed)) throw new TypeError(`Rng: seed must be a finite number, got ${seed}`);
    let x = 0x243f6a88;
    const words = [seed >>> 0, Math.floor(Math.abs(seed) / 2 ** 32) >>> 0, ...stream.map((v) => v >>> 0)];
    for (const w of words) {
      let z: number;
      [x, z] = splitmix32(x ^ w);
      x = (x ^ z) | 0;
    }
    this.s = new Uint32Array(4);
    for (let i = 0; i < 4; i++) {
      let z: number;
      [x, z] = splitmix32(x);
      this.s[i] = z;
    }
    if ((this.s[0]! | this.s[1]! | this.s[2]! | this.s[3]!) === 0) this.s[0] = 1;
  }

  static fromState(state: RngState): Rng {
    const r = new Rng(0);
    r.setState(state);
    return r;
  }

  /** Continues from a state taken with state() (a checkpoint's). */
  setState(state: RngState): void {
    if (!Array.isArray(state) || state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff))
      throw new TypeError(`Rng.fromState: expected four unsigned 32-bit integers, got ${JSON.stringify(state)}`);
    this.s.set(state);
  }

  state(): RngState {
    return [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!];
  }

  /** uniform unsigned 32-bit integer */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** uniform in [0, 1) with 53 random bits */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** uniform integer in [0, n) without modulo bias */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > 0x100000000) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** Fisher–Yates shuffle in place; returns the array */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  }
}

/** 0..n-1 in the order fixed by (seed, stream...) */
export function permutation(n: number, seed: number, ...stream: number[]): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  return new Rng(seed, ...stream).shuffle(a);
}
