// A scripted stand-in for the model: tokens are characters, caches are arrays. Sampling
// at temperature > 0 writes the letter chosen by the call's seed (seed mod 3: x, y, z);
// greedy decoding repeats the answer's last letter (x when none). Every step is
// "<letter>, "; after `stepsToEnd` steps the end token is emitted.
import type { KvCache, SampleOptions, StepOutput } from '../../src/engine/model-types.js';

export const VOCAB = ['x', 'y', 'z', ',', ' ', '<END>', 'P', 'Q', 'R'];
export const END = 5;
export const decode = (ids: readonly number[]): string => ids.map((i) => (i === END ? '' : VOCAB[i])).join('');

export class FakeCache implements KvCache {
  disposed = false;
  constructor(
    private readonly owner: FakePolicy,
    public tokens: number[],
    readonly promptLength: number,
  ) {
    owner.live++;
  }
  get length(): number {
    return this.tokens.length;
  }
  get blocks(): number {
    return Math.ceil(this.tokens.length / 16);
  }
  fork(): KvCache {
    if (this.disposed) throw new Error('fork of a disposed cache');
    return new FakeCache(this.owner, this.tokens.slice(), this.promptLength);
  }
  truncate(n: number): void {
    this.tokens.length = n;
  }
  dispose(): void {
    if (this.disposed) throw new Error('double dispose');
    this.disposed = true;
    this.owner.live--;
  }
}

export class FakePolicy {
  live = 0;
  calls: number[] = []; // rows per sampleNext call
  constructor(readonly stepsToEnd: number) {}
  async cache(prompt: readonly number[]): Promise<KvCache> {
    return new FakeCache(this, prompt.slice(), prompt.length);
  }
  async sampleNext(caches: readonly KvCache[], opts: SampleOptions = {}): Promise<StepOutput> {
    this.calls.push(caches.length);
    const B = caches.length;
    const out: StepOutput = { tokens: new Int32Array(B), logprobs: new Float32Array(B), sampledLogprobs: new Float32Array(B) };
    caches.forEach((c0, b) => {
      const c = c0 as FakeCache;
      if (c.disposed) throw new Error('sampleNext on a disposed cache');
      const gen = c.tokens.slice(c.promptLength);
      const steps = gen.filter((t) => t === 4).length;
      let tok: number;
      if (steps >= this.stepsToEnd) tok = END;
      else {
        const last = gen[gen.length - 1];
        if (last === undefined || last === 4) {
          if ((opts.temperature ?? 1) > 0) tok = (opts.seed ?? 0) % 3;
          else {
            const letters = gen.filter((t) => t < 3);
            tok = letters.length ? letters[letters.length - 1] : 0;
          }
        } else if (last < 3) tok = 3;
        else tok = 4;
      }
      c.tokens.push(tok);
      out.tokens[b] = tok;
      out.logprobs[b] = tok < 3 ? -1 - tok * 0.5 : -0.1;
      out.sampledLogprobs[b] = out.logprobs[b];
    });
    return out;
  }
}

/** x = 1, y = 0, z = -1, averaged over the answer's letters (0 when none) */
export function letterReward(answer: string): number {
  const vals: number[] = [...answer].filter((ch) => "xyz".includes(ch)).map((ch) => (ch === "x" ? 1 : ch === "y" ? 0 : -1));
  return vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : 0;
}
