// The model: a typed facade over the native decoder (native/core/model.*). Implements the
// Model / KvCache contract of model-types.ts. Long work returns Promises (off the event loop).
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { checkConfig, parseHfConfig, toHfConfig } from './config.js';
import { decodeRows } from './decode.js';
import { resolveDevice, type DeviceRequest } from './engine.js';
import type {
  ForwardOptions,
  ForwardResult,
  GenerateOptions,
  Generation,
  KvCache,
  LoraOptions,
  Model,
  ModelConfig,
  MemoryLimits,
  ModelMemory,
  OptimizerOptions,
  PackedBatch,
  SampleOptions,
  StepOutput,
  StepResult,
  WeightDtype,
} from './model-types.js';
import { loadNative, type NativeAddon } from './native.js';
import type { DeviceName } from './tensor.js';

export interface CreateModelOptions {
  /** RNG seed of the random initialisation (deterministic per seed); 0 */
  seed?: number;
  device?: DeviceRequest;
  /** standard deviation of the normal initialisation of the matrices (HF initializer_range); 0.02 */
  initStd?: number;
  /** recompute each layer's activations in backward instead of keeping them (less memory) */
  recompute?: boolean;
  /** storage dtype of the base weights; see LoadModelOptions.dtype. 'f32' */
  dtype?: WeightDtype;
  /** the KV pool's cap in blocks and the log-prob chunk's rows (see MemoryLimits; 0: none / the backend's) */
  limits?: Partial<MemoryLimits>;
}

export interface LoadModelOptions {
  device?: DeviceRequest;
  /**
   * Storage dtype of the base weights. 'f32' (default): trainable f32 weights. 'bf16' on the
   * CPU: the base weights are held once, in bf16 (half the memory, no f32 copy; a bf16
   * checkpoint is copied tensor by tensor, an f32 one rounded to nearest even tensor by
   * tensor) and are frozen: generation, scoring and LoRA training work (adapters, their
   * gradients and AdamW state stay f32); full fine-tuning (backward/step without an adapter)
   * is refused with an Error that says to load with dtype 'f32'. mergeAdapter() into a bf16
   * base rounds the merged weights to bf16. On CUDA either value keeps the f32 master weights
   * with a bf16 compute copy. Any other value is a TypeError naming it.
   */
  dtype?: WeightDtype;
  /** a new adapter (options) or a PEFT adapter directory to load */
  lora?: LoraOptions | string;
  /** recompute each layer's activations in backward instead of keeping them (less memory) */
  recompute?: boolean;
  /** the KV pool's cap in blocks and the log-prob chunk's rows (see MemoryLimits; 0: none / the backend's) */
  limits?: Partial<MemoryLimits>;
}

const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.jinja',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'added_tokens.json',
];

function absDir(dir: string): string {
  if (typeof dir !== 'string' || dir.length === 0) throw new TypeError('expected a directory path');
  return resolve(dir);
}

async function writeJson(path: string, value: unknown): Promise<void> {
  loadNative().writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}

// Frees caches that were dropped without dispose() once they are garbage collected.
const cacheRegistry = new FinalizationRegistry<{ owner: NativeModelImpl; id: number }>(({ owner, id }) => {
  owner.freeCacheQuietly(id);
});

class NativeKvCache implements KvCache {
  private disposed = false;
  constructor(
    private readonly owner: NativeModelImpl,
    readonly id: number,
  ) {
    cacheRegistry.register(this, { owner, id }, this);
  }
  private info(): { length: number; blocks: number; tokens: Int32Array } {
    if (this.disposed) throw new TypeError('KvCache: the cache is disposed');
    return this.owner.handle().cacheInfo(this.id);
  }
  get length(): number {
    return this.info().length;
  }
  get tokens(): readonly number[] {
    return Array.from(this.info().tokens);
  }
  get blocks(): number {
    return this.info().blocks;
  }
  fork(): KvCache {
    if (this.disposed) throw new TypeError('KvCache.fork: the cache is disposed');
    return new NativeKvCache(this.owner, this.owner.handle().cacheFork(this.id) as number);
  }
  truncate(n: number): void {
    if (this.disposed) throw new TypeError('KvCache.truncate: the cache is disposed');
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`KvCache.truncate: n must be a non-negative integer, got ${n}`);
    this.owner.handle().cacheTruncate(this.id, n);
  }
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    cacheRegistry.unregister(this);
    this.owner.freeCacheQuietly(this.id);
  }
  /** @internal */
  checkOwner(m: NativeModelImpl, fn: string): number {
    if (this.disposed) throw new TypeError(`${fn}: a cache is disposed`);
    if (this.owner !== m) throw new TypeError(`${fn}: a cache belongs to another model`);
    return this.id;
  }
}

class NativeModelImpl implements Model {
  private h: NativeAddon | null;
  private _lora: LoraOptions | null = null;
  constructor(
    handle: NativeAddon,
    readonly config: ModelConfig,
    readonly device: DeviceName,
    /** the checkpoint directory this model was loaded from (tokenizer files are copied from it on save) */
    readonly sourceDir: string | null,
  ) {
    this.h = handle;
  }

  handle(): NativeAddon {
    if (!this.h) throw new TypeError('model: the model is disposed');
    return this.h;
  }
  freeCacheQuietly(id: number): void {
    if (this.h) this.h.cacheFree(id);
  }

  get numParameters(): number {
    return this.handle().numParameters() as number;
  }
  get trainableParameters(): number {
    return this.handle().trainableParameters() as number;
  }
  get lora(): LoraOptions | null {
    return this._lora;
  }
  /** storage dtype of the base weights: 'bf16' when they are held only in bf16 (frozen, CPU) */
  get weightDtype(): WeightDtype {
    return this.handle().weightDtype() as WeightDtype;
  }
  /** bytes the model's own buffers hold now, by category (see ModelMemory) */
  memory(): ModelMemory {
    return this.handle().memory() as ModelMemory;
  }

  /** the KV pool's cap and the log-prob chunk's rows (see MemoryLimits); a key left out keeps its value */
  setMemoryLimits(limits: Partial<MemoryLimits>): void {
    this.handle().setMemoryLimits(limits);
  }
  /** the knobs in force, the pool's blocks now and the tokens a block holds */
  memoryLimits(): MemoryLimits & { kvPoolBlocks: number; kvBlockSize: number } {
    return this.handle().memoryLimits() as MemoryLimits & { kvPoolBlocks: number; kvBlockSize: number };
  }

  /** enables per-layer activation recomputation in backward (memory for time) */
  setRecompute(on: boolean): void {
    this.handle().setRecompute(on);
  }

  async forward(batch: PackedBatch, opts: ForwardOptions = {}): Promise<ForwardResult> {
    const r = (await this.handle().forward({
      tokens: batch.tokens,
      targets: batch.targets,
      cuSeqlens: batch.cuSeqlens,
      positions: batch.positions,
      train: opts.train ?? false,
      logits: opts.logits ?? false,
      dlogprobs: opts.dlogprobs,
    })) as ForwardResult;
    return r;
  }
  async backward(dlogprobs?: Float32Array): Promise<void> {
    await this.handle().backward(dlogprobs);
  }
  async logprobs(batch: PackedBatch): Promise<Float32Array> {
    return (await this.forward(batch)).logprobs;
  }
  zeroGrad(): void {
    this.handle().zeroGrad();
  }
  resetOptimizer(): void {
    this.handle().resetOptimizer();
  }
  async step(opts: OptimizerOptions): Promise<StepResult> {
    return (await this.handle().step(opts)) as StepResult;
  }

  private ids(caches: readonly KvCache[], fn: string): number[] {
    return caches.map((c) => {
      if (!(c instanceof NativeKvCache)) throw new TypeError(`${fn}: caches must come from model.cache()`);
      return c.checkOwner(this, fn);
    });
  }

  async cache(prompt: readonly number[]): Promise<KvCache> {
    const h = this.handle();
    const c = new NativeKvCache(this, h.cacheNew() as number);
    try {
      if (prompt.length > 0) await h.cacheExtend(c.id, Int32Array.from(prompt));
    } catch (e) {
      c.dispose();
      throw e;
    }
    return c;
  }
  async extend(cache: KvCache, tokens: readonly number[]): Promise<void> {
    const [id] = this.ids([cache], 'extend');
    await this.handle().cacheExtend(id, Int32Array.from(tokens));
  }
  /** true when the loaded addon's sampleNext applies `repetitionPenalty` */
  get supportsRepetitionPenalty(): boolean {
    return typeof this.handle().repetitionPenaltySupported === 'function';
  }
  async sampleNext(caches: readonly KvCache[], opts: SampleOptions = {}): Promise<StepOutput> {
    const ids = this.ids(caches, 'sampleNext');
    const o: Record<string, number> = {
      temperature: opts.temperature ?? 1,
      topK: opts.topK ?? 0,
      topP: opts.topP ?? 1,
      seed: opts.seed ?? 0,
    };
    if (opts.repetitionPenalty !== undefined && opts.repetitionPenalty !== 1) {
      if (!this.supportsRepetitionPenalty) throw new Error('sampleNext: repetitionPenalty needs a rebuilt addon (this one has no repetition penalty; npm run build:native)');
      o.repetitionPenalty = opts.repetitionPenalty;
    }
    return (await this.handle().sampleNext(ids, o)) as StepOutput;
  }
  async nextLogprobs(caches: readonly KvCache[]): Promise<Float32Array> {
    return (await this.handle().nextLogprobs(this.ids(caches, 'nextLogprobs'))) as Float32Array;
  }

  async generate(caches: readonly KvCache[], opts: GenerateOptions): Promise<Generation[]> {
    if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 0) throw new RangeError(`generate: maxTokens must be a non-negative integer, got ${opts.maxTokens}`);
    this.ids(caches, 'generate');
    return decodeRows(caches, opts, (active) =>
      this.sampleNext(active, { temperature: opts.temperature, topK: opts.topK, topP: opts.topP, seed: opts.seed, repetitionPenalty: opts.repetitionPenalty }),
    );
  }

  /** Adds a fresh LoRA adapter (B = 0, so the model's outputs are unchanged). */
  addLora(opts: LoraOptions): void {
    if ((opts.dropout ?? 0) !== 0) throw new RangeError('lora: dropout must be 0 (accepted for PEFT compatibility only)');
    this.handle().addLora({ rank: opts.rank, alpha: opts.alpha, targetModules: opts.targetModules, seed: opts.seed ?? 0 });
    this._lora = { ...opts, targetModules: [...opts.targetModules] };
  }

  /** Loads a PEFT LoRA adapter directory (adapter_config.json + adapter_model.safetensors). */
  async loadAdapter(dir: string): Promise<void> {
    const d = absDir(dir);
    const where = join(d, 'adapter_config.json');
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(await readFile(where, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`loadAdapter: cannot read ${where}: ${(e as Error).message}`);
    }
    if (cfg.peft_type !== undefined && cfg.peft_type !== 'LORA') throw new Error(`${where}: peft_type '${String(cfg.peft_type)}' is not supported (LORA is)`);
    if (cfg.use_dora === true) throw new Error(`${where}: use_dora = true is not supported`);
    if (cfg.use_rslora === true) throw new Error(`${where}: use_rslora = true is not supported`);
    if (cfg.bias !== undefined && cfg.bias !== 'none') throw new Error(`${where}: bias '${String(cfg.bias)}' is not supported (none is)`);
    if (cfg.fan_in_fan_out === true) throw new Error(`${where}: fan_in_fan_out = true is not supported`);
    for (const k of ['rank_pattern', 'alpha_pattern'])
      if (cfg[k] && Object.keys(cfg[k] as object).length > 0) throw new Error(`${where}: ${k} is not supported`);
    if (cfg.layers_to_transform !== undefined && cfg.layers_to_transform !== null) throw new Error(`${where}: layers_to_transform is not supported`);
    if (cfg.modules_to_save !== undefined && cfg.modules_to_save !== null) throw new Error(`${where}: modules_to_save is not supported`);
    const tm = cfg.target_modules;
    if (!Array.isArray(tm)) throw new Error(`${where}: target_modules must be a list of module names (a regex string is not supported)`);
    const r = cfg.r, alpha = cfg.lora_alpha ?? cfg.r;
    if (typeof r !== 'number' || typeof alpha !== 'number') throw new Error(`${where}: 'r' and 'lora_alpha' must be numbers`);
    this.addLora({ rank: r, alpha, targetModules: tm as LoraOptions['targetModules'] });
    const file = join(d, 'adapter_model.safetensors');
    if (!existsSync(file)) throw new Error(`loadAdapter: ${file} is missing`);
    await this.handle().loadLora(file);
  }

  async save(dir: string, opts: { copyFrom?: string; dtype?: 'f32' | 'bf16' } = {}): Promise<void> {
    const d = absDir(dir);
    const dtype = opts.dtype ?? 'f32';
    await mkdir(d, { recursive: true });
    await this.handle().saveWeights(join(d, 'model.safetensors'), dtype);
    await writeJson(join(d, 'config.json'), toHfConfig(this.config, dtype));
    const from = opts.copyFrom ?? this.sourceDir;
    let copiedGen = false;
    if (from && resolve(from) !== d) {
      for (const f of [...TOKENIZER_FILES, 'generation_config.json']) {
        const src = join(from, f);
        if (existsSync(src)) {
          await copyFile(src, join(d, f));
          if (f === 'generation_config.json') copiedGen = true;
        }
      }
    }
    if (!copiedGen && !(from && resolve(from) === d && existsSync(join(d, 'generation_config.json')))) {
      const c = this.config;
      await writeJson(join(d, 'generation_config.json'), {
        bos_token_id: c.bosTokenId,
        eos_token_id: c.eosTokenId.length === 1 ? c.eosTokenId[0] : c.eosTokenId,
        do_sample: true,
      });
    }
  }

  async saveAdapter(dir: string): Promise<void> {
    if (!this._lora) throw new Error('saveAdapter: the model has no LoRA adapter');
    const d = absDir(dir);
    await mkdir(d, { recursive: true });
    await this.handle().saveLora(join(d, 'adapter_model.safetensors'));
    const l = this._lora;
    await writeJson(join(d, 'adapter_config.json'), {
      peft_type: 'LORA',
      task_type: 'CAUSAL_LM',
      base_model_name_or_path: this.sourceDir,
      r: l.rank,
      lora_alpha: l.alpha,
      lora_dropout: 0.0,
      target_modules: [...l.targetModules],
      bias: 'none',
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      use_rslora: false,
      use_dora: false,
      modules_to_save: null,
      layers_to_transform: null,
      layers_pattern: null,
      rank_pattern: {},
      alpha_pattern: {},
      revision: null,
    });
  }

  async mergeAdapter(): Promise<void> {
    await this.handle().mergeLora();
    this._lora = null;
  }

  async saveTrainingState(dir: string): Promise<void> {
    const d = absDir(dir);
    await mkdir(d, { recursive: true });
    await this.handle().saveTrainingState(join(d, 'training_state.safetensors'));
  }
  async loadTrainingState(dir: string): Promise<void> {
    const f = join(absDir(dir), 'training_state.safetensors');
    if (!existsSync(f)) throw new Error(`loadTrainingState: ${f} is missing`);
    await this.handle().loadTrainingState(f);
  }

  // ---- introspection for tests and tools
  paramNames(): string[] {
    return this.handle().paramNames() as string[];
  }
  getParam(name: string): Float32Array {
    return this.handle().getParam(name) as Float32Array;
  }
  setParam(name: string, values: Float32Array): void {
    this.handle().setParam(name, values);
  }
  getGrad(name: string): Float32Array {
    return this.handle().getGrad(name) as Float32Array;
  }
  /** KV pool: blocks referenced by any cache, tokens per block, live caches */
  poolInfo(): { blocksInUse: number; blockSize: number; caches: number } {
    return this.handle().poolInfo();
  }

  dispose(): void {
    if (this.h) this.h.dispose();
    this.h = null;
  }
}

export type NativeModel = NativeModelImpl;

/** A model of any supported architecture with random weights (deterministic for the seed). */
export function createModel(config: ModelConfig, opts: CreateModelOptions = {}): NativeModel {
  checkConfig(config);
  const device = resolveDevice(opts.device ?? 'cpu');
  const h = loadNative().modelCreate({ config, device, seed: opts.seed ?? 0, initStd: opts.initStd ?? 0.02, dtype: opts.dtype }) as NativeAddon;
  const m = new NativeModelImpl(h, { ...config, eosTokenId: [...config.eosTokenId] }, device, null);
  if (opts.recompute) m.setRecompute(true);
  if (opts.limits) {
    try {
      m.setMemoryLimits(opts.limits);
    } catch (e) {
      m.dispose();
      throw e;
    }
  }
  return m;
}

/** Reads a Hugging Face config.json into a ModelConfig (clear errors for unsupported ones). */
export async function readModelConfig(dir: string): Promise<ModelConfig> {
  const where = join(absDir(dir), 'config.json');
  let text: string;
  try {
    text = await readFile(where, 'utf8');
  } catch (e) {
    throw new Error(`${where}: cannot read (${(e as Error).message}); is ${dir} a Hugging Face model directory?`);
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${where}: invalid JSON (${(e as Error).message})`);
  }
  return parseHfConfig(json, where);
}

/** Loads a Hugging Face checkpoint directory (config.json + model.safetensors or sharded). */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<NativeModel> {
  const d = absDir(dir);
  const config = await readModelConfig(d);
  const device = resolveDevice(opts.device ?? 'auto');
  // the files are checked (a truncated or mismatched one refused) before the weights' memory is
  // allocated, and the weights are read straight in, never initialised first
  const h = (await loadNative().modelLoad({ config, device, dir: d, dtype: opts.dtype })) as NativeAddon;
  const m = new NativeModelImpl(h, config, device, d);
  try {
    if (typeof opts.lora === 'string') await m.loadAdapter(opts.lora);
    else if (opts.lora) m.addLora(opts.lora);
    if (opts.recompute) m.setRecompute(true);
    if (opts.limits) m.setMemoryLimits(opts.limits);
  } catch (e) {
    m.dispose();
    throw e;
  }
  return m;
}
