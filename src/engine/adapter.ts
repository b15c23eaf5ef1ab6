// LoRA adapter directories and the model they apply to.
//
// An adapter directory is PEFT's (adapter_config.json + adapter_model.safetensors) plus, when
// itool wrote it, itool_adapter.json: {"base": the Hugging Face model directory, "merged": the
// adapter directories merged into the base first, in order}. A run that merges its adapter
// between iterations keeps a chain of small adapters instead of full copies of the model.
// Without itool_adapter.json the base is PEFT's base_model_name_or_path, when that is a
// directory. Everything that takes a model directory (`--model`) also takes an adapter
// directory; `--adapter DIR` puts an adapter on the model given.
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import type { LoraOptions, Model } from './model-types.js';
import { loadModel, type LoadModelOptions, type NativeModel } from './model.js';
import { loadNative } from './native.js';

export const ADAPTER_CHAIN_FILE = 'itool_adapter.json';

export interface AdapterChain {
  /** the Hugging Face model directory (absolute) */
  base: string;
  /** adapter directories merged into the base, in order, before the adapter itself */
  merged: string[];
}

export const LORA_TARGETS: readonly LoraOptions['targetModules'][number][] = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];

/** True when dir holds a LoRA adapter (adapter_config.json). */
export function isAdapterDir(dir: string): boolean {
  return existsSync(join(dir, 'adapter_config.json'));
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: cannot read (${(e as Error).message})`);
  }
}

/** The base model directory and the adapters merged beneath an adapter directory. */
export function adapterChain(dir: string): AdapterChain {
  const d = resolve(dir);
  if (!isAdapterDir(d)) throw new Error(`${dir}: not an adapter directory (no adapter_config.json)`);
  const chainFile = join(d, ADAPTER_CHAIN_FILE);
  const rel = (p: string) => (isAbsolute(p) ? p : resolve(d, p));
  if (existsSync(chainFile)) {
    const j = readJson(chainFile);
    if (typeof j.base !== 'string' || !Array.isArray(j.merged) || !j.merged.every((x) => typeof x === 'string'))
      throw new Error(`${chainFile}: needs "base" (a directory) and "merged" (a list of adapter directories)`);
    const chain = { base: rel(j.base), merged: (j.merged as string[]).map(rel) };
    checkBase(chain.base, chainFile);
    for (const m of chain.merged) if (!isAdapterDir(m)) throw new Error(`${chainFile}: merged adapter ${m} is missing (no adapter_config.json)`);
    return chain;
  }
  const cfg = readJson(join(d, 'adapter_config.json'));
  const b = cfg.base_model_name_or_path;
  if (typeof b !== 'string' || b === '') throw new Error(`${dir}: the adapter does not say its base model (no base_model_name_or_path): give the base with --model and this directory with --adapter`);
  const base = rel(b);
  checkBase(base, join(d, 'adapter_config.json'));
  return { base, merged: [] };
}

function checkBase(base: string, where: string): void {
  if (!existsSync(join(base, 'config.json')))
    throw new Error(`${where}: base model ${base} is not a Hugging Face model directory (no config.json): give the base with --model and the adapter with --adapter`);
}

/** The directory with the tokenizer and config files: the base of an adapter directory, else dir itself. */
export function modelFilesDir(dir: string): string {
  return isAdapterDir(dir) ? adapterChain(dir).base : resolve(dir);
}

export interface LoadWithAdapterOptions extends Omit<LoadModelOptions, 'lora'> {
  /** an adapter directory put on the model (after merging in the model's own adapter, when it is one) */
  adapter?: string;
}

/** What adapters need of a model (NativeModel has it all). */
export type AdapterModel = Model & { addLora(o: LoraOptions): void; loadAdapter(dir: string): Promise<void> };

/**
 * Loads a model directory or an adapter directory (its base, the merged chain, then the
 * adapter), and then `opts.adapter` on top of it (after merging the first adapter in, when
 * there is one). `loader` loads a plain model directory (default: the engine's loadModel with
 * the options given).
 */
export async function loadWithAdapter<M extends AdapterModel = NativeModel>(
  dir: string,
  opts: LoadWithAdapterOptions = {},
  loader?: (base: string) => Promise<M>,
): Promise<{ model: M; chain: AdapterChain; adapter: string | null }> {
  const { adapter, ...load } = opts;
  if (adapter !== undefined && !isAdapterDir(adapter)) throw new Error(`--adapter ${adapter}: not an adapter directory (no adapter_config.json)`);
  let chain: AdapterChain;
  let top: string | null = null;
  if (isAdapterDir(dir)) {
    chain = adapterChain(dir);
    top = resolve(dir);
  } else chain = { base: resolve(dir), merged: [] };
  const model = loader ? await loader(chain.base) : ((await loadModel(chain.base, load)) as unknown as M);
  try {
    for (const m of chain.merged) {
      await model.loadAdapter(m);
      await model.mergeAdapter();
    }
    if (top && adapter !== undefined) {
      await model.loadAdapter(top);
      await model.mergeAdapter();
      chain = { base: chain.base, merged: [...chain.merged, top] };
      top = null;
    }
    if (adapter !== undefined) top = resolve(adapter);
    if (top) await model.loadAdapter(top);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, chain, adapter: top };
}

/** Saves the model's adapter as a PEFT directory with its chain (itool_adapter.json). */
export async function saveAdapterWithChain(model: Pick<Model, 'saveAdapter'>, dir: string, chain: AdapterChain): Promise<void> {
  const d = resolve(dir);
  await model.saveAdapter(d);
  // PEFT's own field names the base model too
  const cfgFile = join(d, 'adapter_config.json');
  const cfg = readJson(cfgFile);
  cfg.base_model_name_or_path = chain.base;
  const native = loadNative();
  native.writeFileAtomic(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
  native.writeFileAtomic(join(d, ADAPTER_CHAIN_FILE), JSON.stringify({ base: chain.base, merged: chain.merged }, null, 2) + '\n');
}

/** LoRA options checked, with a clear error naming the bad one. */
export function checkLora(o: { rank: unknown; alpha?: unknown; targets?: unknown }, where = 'lora'): LoraOptions {
  if (!Number.isInteger(o.rank) || (o.rank as number) < 1 || (o.rank as number) > 4096) throw new RangeError(`${where}: rank must be an integer in [1, 4096], got ${JSON.stringify(o.rank)}`);
  const rank = o.rank as number;
  const alpha = o.alpha ?? 2 * rank;
  if (typeof alpha !== 'number' || !(alpha > 0) || !Number.isFinite(alpha)) throw new RangeError(`${where}: alpha must be a number > 0, got ${JSON.stringify(o.alpha)}`);
  const targets = o.targets ?? ['q_proj', 'k_proj', 'v_proj', 'o_proj'];
  const list = typeof targets === 'string' ? targets.split(',').map((s) => s.trim()).filter(Boolean) : targets;
  if (!Array.isArray(list) || list.length === 0) throw new RangeError(`${where}: targets must be a non-empty list of ${LORA_TARGETS.join(', ')}`);
  for (const t of list)
    if (!(LORA_TARGETS as readonly unknown[]).includes(t)) throw new RangeError(`${where}: unknown target module '${String(t)}' (one of ${LORA_TARGETS.join(', ')})`);
  return { rank, alpha, targetModules: [...new Set(list)] as LoraOptions['targetModules'] };
}
