// The model contract between native/core (through src/engine/model.ts) and the
// TypeScript layers above (train, search, pipeline). Those layers import only these
// types, so they can be tested with a tiny model on the CPU or with a stand-in.
import type { DeviceName } from './tensor.js';

export type Architecture = 'LlamaForCausalLM' | 'Qwen2ForCausalLM' | 'Qwen3ForCausalLM' | 'MistralForCausalLM';

/** Normalised from a Hugging Face config.json (camelCase here; snake_case on disk). */
export interface ModelConfig {
  architecture: Architecture;
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** llama3 rule only; null when absent */
  ropeScaling: null | {
    ropeType: 'llama3';
    factor: number;
    lowFreqFactor: number;
    highFreqFactor: number;
    originalMaxPositionEmbeddings: number;
  };
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projection bias (Qwen2) */
  attentionBias: boolean;
  /** per-head RMSNorm of q and k (Qwen3) */
  qkNorm: boolean;
  bosTokenId: number | null;
  eosTokenId: number[];
}

/**
 * Packed variable-length batch: sequences laid end to end, no attention across them.
 * targets[i] is the token the model should predict after tokens[i] (-1: no target,
 * log-probability 0 and no gradient). positions default to 0.. within each sequence.
 */
export interface PackedBatch {
  tokens: Int32Array; // [T]
  targets: Int32Array; // [T]
  cuSeqlens: Int32Array; // [nseq + 1], cuSeqlens[0] = 0, cuSeqlens[nseq] = T
  positions?: Int32Array; // [T]
}

export interface ForwardOptions {
  /** keep activations so that backward() can follow (training) */
  train?: boolean;
  /** also return the full logits [T, V] (memory: T*V floats) */
  logits?: boolean;
  /**
   * With train: the upstream gradients on the log-probabilities [T], when they are known
   * before the forward (SFT: -1/n on the target tokens). The LM head's gradients are then
   * made in the forward's own pass over the vocabulary (one GEMM of T x H x V fewer than
   * forward + backward(dlogprobs)), and its weight gradient is accumulated at once;
   * call backward() next, with no argument or the same values.
   */
  dlogprobs?: Float32Array;
}

export interface ForwardResult {
  logprobs: Float32Array; // [T], 0 where target is -1
  logits?: Float32Array; // [T * V] when asked
}

export interface OptimizerOptions {
  lr: number;
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-8
  weightDecay?: number; // 0
  /** clip the global gradient norm to this (0 or undefined: no clipping) */
  maxGradNorm?: number;
  /** multiply gradients by this before the update (1 / accumulation steps) */
  gradScale?: number;
}

export interface StepResult {
  /** global L2 norm of the (scaled) gradients before clipping */
  gradNorm: number;
  /** true when a gradient was NaN/Inf: parameters and optimizer state left untouched */
  skipped: boolean;
}

export interface LoraOptions {
  rank: number;
  alpha: number;
  targetModules: Array<'q_proj' | 'k_proj' | 'v_proj' | 'o_proj' | 'gate_proj' | 'up_proj' | 'down_proj'>;
  dropout?: number; // accepted for PEFT compatibility; 0 only
  seed?: number;
}

export interface SampleOptions {
  temperature?: number; // 1.0; <= 0 greedy
  topK?: number; // 0: off
  topP?: number; // 1.0: off
  seed?: number; // RNG seed; each cache advances its own counter
  /**
   * vLLM's repetition penalty (1: off): the logit of every token already in the cache (prompt
   * and generated) is divided by it when positive, multiplied by it when negative, before
   * temperature, top-k and top-p; `logprobs` are then those of the penalised logits
   */
  repetitionPenalty?: number;
}

/** One sampled token per cache, appended to that cache. */
export interface StepOutput {
  tokens: Int32Array; // [B]
  /** log-probability under the raw model (log-softmax of the logits) */
  logprobs: Float32Array; // [B]
  /** log-probability under the sampling distribution (after temperature / top-k / top-p) */
  sampledLogprobs: Float32Array; // [B]
}

export interface GenerateOptions extends SampleOptions {
  maxTokens: number;
  stopTokens?: number[];
  /**
   * Called after every token with the row's generated tokens so far; returning a number n
   * stops the row and keeps only its first n generated tokens (the cache is truncated to
   * match). Stop strings are implemented with this by the text layer.
   */
  stop?: (row: number, generated: readonly number[]) => number | undefined;
}

export interface Generation {
  tokens: number[];
  logprobs: number[];
  finishReason: 'stop' | 'length';
}

/** A KV cache in fixed-size blocks. fork() shares the parent's blocks (copy on write). */
export interface KvCache {
  readonly length: number; // tokens held
  readonly tokens: readonly number[];
  /** blocks this cache references (shared blocks count once per cache) */
  readonly blocks: number;
  fork(): KvCache;
  /** drops tokens past n (n <= length) */
  truncate(n: number): void;
  dispose(): void;
}

/** Storage dtype of a model's base weights ('bf16': held only in bf16 and frozen, CPU). */
export type WeightDtype = 'f32' | 'bf16';

/**
 * Engine knobs the memory plan sets (0: none / the backend's choice):
 * - kvCacheBlocks: the most KV blocks the pool may hold (each blockSize tokens of K and V for every
 *   layer); a call that would need more throws an Error that says so before it changes any cache.
 * - logprobChunkRows: rows of the fused log-prob op's logits chunk ([rows, vocab] f32 scratch) in a
 *   forward or backward; the log-probabilities do not depend on it beyond f32 rounding.
 */
export interface MemoryLimits {
  kvCacheBlocks: number;
  logprobChunkRows: number;
}

/**
 * Bytes held now by a model's own buffers (native/core/model.cpp Model::memory), each buffer
 * counted once at its allocation size. Parameter buffers hold each tensor at a 64-byte-aligned
 * start: a group's size is sum over its tensors of ceil(numel / 16) * 16 elements.
 */
export interface ModelMemory {
  /** base weights: f32 CPU: 4 B/element; bf16 CPU: 2 B/element (no f32 copy); CUDA: 4 (f32 master) + 2 (bf16 copy) */
  weights: number;
  /** LoRA A and B, f32 (CUDA: + a bf16 copy); 0 without an adapter */
  adapters: number;
  /** f32 gradients of the trainable group (the adapters with LoRA, else the base), allocated by the first training forward with dlogprobs, backward or step; 0 before */
  gradients: number;
  /** AdamW m and v, f32, of the trainable group: 2 x its gradient bytes once step() ran (or a training state was loaded); 0 before */
  optimizer: number;
  /**
   * what a training forward saved for backward (token/target/position/cu arrays, each layer's
   * activations, or only each layer's input with recompute, the final norm's input/output and
   * statistics, the head's dhidden when dlogprobs were given); 0 after backward or with train: false
   */
  activations: number;
  /** the KV pool: 2 (K, V) x layers x pool blocks x blockSize x numKvHeads x headDim x 4 B on the CPU; grows (doubling, at least 16 blocks), never shrinks */
  kvCache: number;
  /** other model-owned buffers alive between calls: RoPE frequencies (headDim/2 f32), each cache's last hidden state (hiddenSize x 4 B) */
  scratch: number;
  /** the sum of the above */
  total: number;
}

export interface Model {
  readonly config: ModelConfig;
  readonly device: DeviceName;
  readonly numParameters: number;
  readonly trainableParameters: number;
  readonly lora: LoraOptions | null;

  forward(batch: PackedBatch, opts?: ForwardOptions): Promise<ForwardResult>;
  /**
   * accumulates parameter gradients for upstream gradients on the last train-forward's
   * log-probabilities (none: the dlogprobs given to that forward)
   */
  backward(dlogprobs?: Float32Array): Promise<void>;
  /** gradient-free per-token log-probabilities */
  logprobs(batch: PackedBatch): Promise<Float32Array>;
  zeroGrad(): void;
  /**
   * a new training phase: AdamW moments and step counter back to those of a model just loaded
   * (the training loop calls it before a phase's first step unless a checkpoint restores them)
   */
  resetOptimizer(): void;
  /** AdamW on the trainable parameters; skips (and says so) on a non-finite gradient */
  step(opts: OptimizerOptions): Promise<StepResult>;

  /** a cache holding `prompt`, prefilled */
  cache(prompt: readonly number[]): Promise<KvCache>;
  /** samples one token for each cache (batched decode) and appends it */
  sampleNext(caches: readonly KvCache[], opts?: SampleOptions): Promise<StepOutput>;
  /** appends given tokens to a cache (prefill / teacher forcing) */
  extend(cache: KvCache, tokens: readonly number[]): Promise<void>;
  /** full-vocabulary log-probabilities of the next token for each cache: [B * V] */
  nextLogprobs(caches: readonly KvCache[]): Promise<Float32Array>;
  /** generates from each cache (which is extended in place) */
  generate(caches: readonly KvCache[], opts: GenerateOptions): Promise<Generation[]>;

  /** Hugging Face directory: config.json, generation_config.json, model.safetensors (+ tokenizer files copied from `copyFrom`) */
  save(dir: string, opts?: { copyFrom?: string; dtype?: 'f32' | 'bf16' }): Promise<void>;
  /** PEFT adapter directory (adapter_config.json + adapter_model.safetensors) */
  saveAdapter(dir: string): Promise<void>;
  mergeAdapter(): Promise<void>;

  /** bytes held by the model's own buffers now (native models; stand-ins may leave it out) */
  memory?(): ModelMemory;

  /** the memory plan's engine knobs (native models; stand-ins may leave it out): see MemoryLimits */
  setMemoryLimits?(limits: Partial<MemoryLimits>): void;

  /** optimizer state + step counter + trainable weights, for bitwise resume */
  saveTrainingState(dir: string): Promise<void>;
  loadTrainingState(dir: string): Promise<void>;

  dispose(): void;
}
