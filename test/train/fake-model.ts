// A stand-in for the engine's Model in tests that must not load the addon: a bigram
// model (logits of the next token = row W[token]), float64 arithmetic, AdamW exactly as
// native/core/ops.h states it, and training state saved to files. Generation methods throw.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ForwardOptions, ForwardResult, KvCache, Model, ModelConfig, OptimizerOptions, PackedBatch, StepResult } from '../../src/engine/model-types.js';

export class BigramModel implements Model {
  readonly config: ModelConfig;
  readonly device = 'cpu' as const;
  readonly lora = null;
  w: Float64Array;
  grad: Float64Array;
  m: Float64Array;
  v: Float64Array;
  t = 0;
  private last: PackedBatch | null = null;
  private ahead: Float32Array | null = null;
  private lastSoftmax: Float64Array[] = [];
  /** test hooks */
  poisonForward: ((batch: PackedBatch) => boolean) | null = null;
  dlogprobsSeen: Float32Array[] = [];

  constructor(readonly V: number, seed = 1) {
    this.config = { architecture: 'LlamaForCausalLM', vocabSize: V, hiddenSize: V, intermediateSize: V, numLayers: 0, numHeads: 1, numKvHeads: 1, headDim: V, rmsNormEps: 1e-6, ropeTheta: 1e4, ropeScaling: null, maxPositionEmbeddings: 1 << 16, tieWordEmbeddings: false, attentionBias: false, qkNorm: false, bosTokenId: null, eosTokenId: [] };
    this.w = new Float64Array(V * V);
    let s = seed >>> 0 || 1;
    for (let i = 0; i < this.w.length; i++) {
      s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
      this.w[i] = (s / 2 ** 32 - 0.5) * 0.2;
    }
    this.grad = new Float64Array(V * V);
    this.m = new Float64Array(V * V);
    this.v = new Float64Array(V * V);
  }
  get numParameters(): number { return this.w.length; }
  get trainableParameters(): number { return this.w.length; }

  private check(batch: PackedBatch): void {
    const T = batch.tokens.length;
    if (batch.targets.length !== T || batch.cuSeqlens[0] !== 0 || batch.cuSeqlens[batch.cuSeqlens.length - 1] !== T) throw new RangeError('bad batch');
    for (let i = 0; i < T; i++) if (batch.tokens[i]! >= this.V || batch.targets[i]! >= this.V) throw new RangeError('token out of range');
  }

  private compute(batch: PackedBatch, keep: boolean): Float32Array {
    this.check(batch);
    const V = this.V;
    const out = new Float32Array(batch.tokens.length);
    const poison = this.poisonForward?.(batch) ?? false;
    this.lastSoftmax = [];
    for (let i = 0; i < batch.tokens.length; i++) {
      const row = batch.tokens[i]! * V;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, this.w[row + j]!);
      let z = 0;
      for (let j = 0; j < V; j++) z += Math.exp(this.w[row + j]! - mx);
      const lse = mx + Math.log(z);
      const t = batch.targets[i]!;
      out[i] = t >= 0 ? (poison ? NaN : this.w[row + t]! - lse) : 0;
      if (keep) {
        const sm = new Float64Array(V);
        for (let j = 0; j < V; j++) sm[j] = Math.exp(this.w[row + j]! - lse);
        this.lastSoftmax.push(sm);
      }
    }
    return out;
  }

  async forward(batch: PackedBatch, opts: ForwardOptions = {}): Promise<ForwardResult> {
    const lp = this.compute(batch, !!opts.train);
    this.last = opts.train ? batch : null;
    this.ahead = opts.train && opts.dlogprobs ? opts.dlogprobs.slice() : null;
    return { logprobs: lp };
  }
  async backward(given?: Float32Array): Promise<void> {
    const b = this.last;
    if (!b) throw new Error('backward without a train forward');
    const dl = given ?? this.ahead;
    if (!dl) throw new RangeError('backward: dlogprobs are needed');
    if (dl.length !== b.tokens.length) throw new RangeError('dlogprobs length');
    this.dlogprobsSeen.push(dl.slice());
    const V = this.V;
    for (let i = 0; i < b.tokens.length; i++) {
      const t = b.targets[i]!;
      if (t < 0 || dl[i] === 0) continue;
      const row = b.tokens[i]! * V;
      const sm = this.lastSoftmax[i]!;
      for (let j = 0; j < V; j++) this.grad[row + j] += dl[i]! * ((j === t ? 1 : 0) - sm[j]!);
    }
  }
  async logprobs(batch: PackedBatch): Promise<Float32Array> {
    return this.compute(batch, false);
  }
  zeroGrad(): void {
    this.grad.fill(0);
  }
  resetOptimizer(): void {
    this.m.fill(0);
    this.v.fill(0);
    this.t = 0;
  }
  async step(o: OptimizerOptions): Promise<StepResult> {
    const gs = o.gradScale ?? 1;
    let ss = 0;
    for (const g of this.grad) ss += (g * gs) ** 2;
    const norm = Math.sqrt(ss);
    if (!Number.isFinite(norm)) return { gradNorm: norm, skipped: true };
    const clip = o.maxGradNorm && norm > o.maxGradNorm ? o.maxGradNorm / norm : 1;
    const b1 = o.beta1 ?? 0.9, b2 = o.beta2 ?? 0.999, eps = o.eps ?? 1e-8, wd = o.weightDecay ?? 0;
    this.t++;
    for (let i = 0; i < this.w.length; i++) {
      const g = this.grad[i]! * gs * clip;
      this.m[i] = b1 * this.m[i]! + (1 - b1) * g;
      this.v[i] = b2 * this.v[i]! + (1 - b2) * g * g;
      const mh = this.m[i]! / (1 - b1 ** this.t);
      const vh = this.v[i]! / (1 - b2 ** this.t);
      this.w[i] -= o.lr * (mh / (Math.sqrt(vh) + eps) + wd * this.w[i]!);
    }
    return { gradNorm: norm, skipped: false };
  }
  async saveTrainingState(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    for (const k of ['w', 'm', 'v'] as const) writeFileSync(join(dir, `${k}.bin`), new Uint8Array(this[k].buffer));
    writeFileSync(join(dir, 'step.json'), JSON.stringify({ t: this.t }));
  }
  async loadTrainingState(dir: string): Promise<void> {
    for (const k of ['w', 'm', 'v'] as const) {
      const b = readFileSync(join(dir, `${k}.bin`));
      this[k] = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    this.t = (JSON.parse(readFileSync(join(dir, 'step.json'), 'utf8')) as { t: number }).t;
  }
  async save(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'w.bin'), new Uint8Array(this.w.buffer));
  }
  cache(): Promise<KvCache> { throw new Error('BigramModel: no generation'); }
  sampleNext(): never { throw new Error('BigramModel: no generation'); }
  extend(): never { throw new Error('BigramModel: no generation'); }
  nextLogprobs(): never { throw new Error('BigramModel: no generation'); }
  generate(): never { throw new Error('BigramModel: no generation'); }
  saveAdapter(): never { throw new Error('BigramModel: no adapter'); }
  mergeAdapter(): never { throw new Error('BigramModel: no adapter'); }
  dispose(): void {}
}
