// itool export gguf: a Hugging Face directory (optionally with a PEFT LoRA adapter, merged
// first by the engine) as one GGUF v3 file that llama.cpp loads. Everything that can be
// wrong (architecture, fields llama.cpp cannot represent, the tokenizer, the adapter's
// shapes, the dtype, the output directory) is checked before a byte is written; the file is
// written atomically (gguf.ts).
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { loadModel, readModelConfig } from '../engine/model.js';
import { loadTokenizer } from '../text/tokenizer.js';
import { writeGguf, type GgufTensorSource } from './gguf.js';
import { checkExportable, GGUF_ARCH, hyperparameters, llama3RopeFactors, permuteHeads, planTensors } from './model.js';
import { byteSize, encodeTensor, EXPORT_DTYPES, FILE_TYPE_OF, GGML_TYPE_OF, QK8_0, type ExportDtype } from './quant.js';
import { tokenizerMetadata } from './tokenizer.js';

export { writeGguf, GgufValueType, GgmlType, GGUF_MAGIC, GGUF_VERSION, GGUF_DEFAULT_ALIGNMENT, type GgufMetadataEntry, type GgufTensorSource } from './gguf.js';
export { EXPORT_DTYPES, encodeTensor, f32ToF16Bits, f16BitsToF32, f32ToBf16Bits, bf16BitsToF32, type ExportDtype } from './quant.js';
export { GGUF_ARCH, permuteHeads, llama3RopeFactors } from './model.js';
export { GgufTokenType, PRE_TOKENIZERS, tokenizerMetadata } from './tokenizer.js';

export interface ExportGgufOptions {
  /** Hugging Face model directory (config.json, safetensors, tokenizer.json, tokenizer_config.json) */
  model: string;
  /** PEFT LoRA adapter directory, merged into the weights first */
  adapter?: string;
  out: string;
  dtype?: string;
  /** general.name; the model directory's name by default */
  name?: string;
  /** after each tensor is written (progress; tests interrupt here) */
  onTensor?: (index: number, name: string, count: number) => void;
}

export interface ExportGgufResult {
  out: string;
  architecture: string;
  dtype: ExportDtype;
  tensors: number;
  bytes: number;
  /** tensors kept in f32 (1-D: norms, biases, rope factors) or written f16 where q8_0 blocks do not fit */
  kept: Array<{ name: string; type: 'f32' | 'f16' }>;
  tokenizer: ReturnType<typeof tokenizerMetadata>['summary'];
}

export function parseDtype(s: string | undefined): ExportDtype {
  const d = s ?? 'f32';
  if (!(EXPORT_DTYPES as readonly string[]).includes(d)) throw new Error(`export: unknown --dtype '${d}' (known: ${EXPORT_DTYPES.join(', ')})`);
  return d as ExportDtype;
}

export async function exportGguf(opts: ExportGgufOptions): Promise<ExportGgufResult> {
  const dtype = parseDtype(opts.dtype);
  const dir = resolve(opts.model);
  const out = resolve(opts.out);
  const cfgFile = join(dir, 'config.json');
  if (!existsSync(cfgFile)) throw new Error(`export: ${cfgFile} not found; --model must be a Hugging Face model directory`);
  if (!existsSync(dirname(out)) || !statSync(dirname(out)).isDirectory()) throw new Error(`export: the output's directory ${dirname(out)} does not exist`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new Error(`export: --out ${out} is a directory; give a file path`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`export: ${cfgFile}: ${(e as Error).message}`);
  }
  checkExportable(raw, cfgFile);
  const config = await readModelConfig(dir);
  if (!existsSync(join(dir, 'tokenizer.json'))) throw new Error(`export: ${join(dir, 'tokenizer.json')} not found; GGUF carries the tokenizer, so the model directory needs one`);
  const tok = loadTokenizer(dir);
  const tk = tokenizerMetadata(tok, config.vocabSize, config);
  if (opts.adapter !== undefined && !existsSync(join(resolve(opts.adapter), 'adapter_config.json')))
    throw new Error(`export: ${join(resolve(opts.adapter), 'adapter_config.json')} not found; --adapter must be a PEFT LoRA adapter directory`);

  const model = await loadModel(dir, { device: 'cpu', lora: opts.adapter !== undefined ? resolve(opts.adapter) : undefined });
  try {
    if (opts.adapter !== undefined) await model.mergeAdapter();
    const plan = planTensors(config, model.paramNames());
    const kept: ExportGgufResult['kept'] = [];
    const tensors: GgufTensorSource[] = plan.map((t) => {
      const n = t.dims.reduce((a, b) => a * b, 1);
      let type: ExportDtype = dtype;
      if (t.dims.length === 1 && dtype !== 'f32') type = 'f32';
      else if (dtype === 'q8_0' && t.dims[0]! % QK8_0 !== 0) type = 'f16';
      if (type !== dtype) kept.push({ name: t.name, type: type as 'f32' | 'f16' });
      return {
        name: t.name,
        dims: t.dims,
        type: GGML_TYPE_OF[type],
        nbytes: byteSize(type, n),
        data: () => {
          let v = t.source === null ? llama3RopeFactors(config) : model.getParam(t.source);
          if (v.length !== n) throw new Error(`export: parameter '${t.source}' has ${v.length} values, expected ${n} for ${t.name} [${t.dims.join(', ')}]`);
          for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) throw new Error(`export: parameter '${t.source}' holds a non-finite value at ${i}`);
          if (t.permuteHeads !== undefined) v = permuteHeads(v, t.permuteHeads, t.dims[0]!);
          return encodeTensor(v, type);
        },
      };
    });
    const metadata = [...hyperparameters(config, opts.name ?? basename(dir), FILE_TYPE_OF[dtype]), ...tk.metadata];
    writeGguf(out, metadata, tensors, { onTensor: (i, name) => opts.onTensor?.(i, name, tensors.length) });
    return { out, architecture: GGUF_ARCH[config.architecture], dtype, tensors: tensors.length, bytes: statSync(out).size, kept, tokenizer: tk.summary };
  } finally {
    model.dispose();
  }
}
