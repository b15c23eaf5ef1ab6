// Hugging Face config.json <-> ModelConfig. Unsupported architectures and fields are
// errors that name them (a silently wrong model is worse than none).
import type { Architecture, ModelConfig } from './model-types.js';

export const ARCHITECTURES: readonly Architecture[] = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM', 'MistralForCausalLM'];

const MODEL_TYPE: Record<Architecture, string> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
  MistralForCausalLM: 'mistral',
};

type Json = Record<string, unknown>;

function int(cfg: Json, key: string, where: string, def?: number): number {
  const v = cfg[key] ?? def;
  if (v === undefined || v === null) throw new Error(`${where}: missing required field '${key}'`);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new Error(`${where}: field '${key}' must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}
function num(cfg: Json, key: string, where: string, def?: number): number {
  const v = cfg[key] ?? def;
  if (v === undefined || v === null) throw new Error(`${where}: missing required field '${key}'`);
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`${where}: field '${key}' must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}
function idList(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}

/** Normalises a parsed Hugging Face config.json; `where` names the file in errors. */
export function parseHfConfig(cfg: Json, where = 'config.json'): ModelConfig {
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) throw new Error(`${where}: not a JSON object`);
  const archs = cfg.architectures;
  if (!Array.isArray(archs) || archs.length === 0) throw new Error(`${where}: missing 'architectures' (expected one of ${ARCHITECTURES.join(', ')})`);
  const architecture = archs.find((a) => ARCHITECTURES.includes(a as Architecture)) as Architecture | undefined;
  if (!architecture) throw new Error(`${where}: architecture ${JSON.stringify(archs)} is not supported (supported: ${ARCHITECTURES.join(', ')})`);
  if (cfg.quantization_config !== undefined && cfg.quantization_config !== null)
    throw new Error(`${where}: quantized checkpoints (quantization_config) are not supported`);
  const act = cfg.hidden_act ?? 'silu';
  if (act !== 'silu') throw new Error(`${where}: hidden_act '${String(act)}' is not supported (only silu)`);
  if (cfg.mlp_bias === true) throw new Error(`${where}: mlp_bias = true is not supported`);
  const hiddenSize = int(cfg, 'hidden_size', where);
  const numHeads = int(cfg, 'num_attention_heads', where);
  const numKvHeads = int(cfg, 'num_key_value_heads', where, numHeads);
  const headDim = int(cfg, 'head_dim', where, Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) throw new Error(`${where}: num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  let attentionBias: boolean;
  if (architecture === 'Qwen2ForCausalLM') attentionBias = true;
  else {
    if (cfg.attention_bias === true)
      throw new Error(`${where}: attention_bias = true is not supported for ${architecture} (it adds an o_proj bias)`);
    attentionBias = false;
  }
  if (architecture === 'Qwen2ForCausalLM' && cfg.use_sliding_window === true)
    throw new Error(`${where}: use_sliding_window = true is not supported`);
  let ropeScaling: ModelConfig['ropeScaling'] = null;
  const rs = cfg.rope_scaling as Json | null | undefined;
  if (rs !== undefined && rs !== null) {
    const type = rs.rope_type ?? rs.type;
    if (type === 'default') ropeScaling = null;
    else if (type !== 'llama3') throw new Error(`${where}: rope_scaling type '${String(type)}' is not supported (only llama3)`);
    else
      ropeScaling = {
        ropeType: 'llama3',
        factor: num(rs, 'factor', `${where} rope_scaling`),
        lowFreqFactor: num(rs, 'low_freq_factor', `${where} rope_scaling`, 1),
        highFreqFactor: num(rs, 'high_freq_factor', `${where} rope_scaling`, 4),
        originalMaxPositionEmbeddings: int(rs, 'original_max_position_embeddings', `${where} rope_scaling`, 8192),
      };
  }
  const bos = cfg.bos_token_id;
  return {
    architecture,
    vocabSize: int(cfg, 'vocab_size', where),
    hiddenSize,
    intermediateSize: int(cfg, 'intermediate_size', where),
    numLayers: int(cfg, 'num_hidden_layers', where),
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: num(cfg, 'rms_norm_eps', where, 1e-6),
    ropeTheta: num(cfg, 'rope_theta', where, 10000),
    ropeScaling,
    maxPositionEmbeddings: int(cfg, 'max_position_embeddings', where, 4096),
    tieWordEmbeddings: cfg.tie_word_embeddings === true,
    attentionBias,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    bosTokenId: typeof bos === 'number' ? bos : null,
    eosTokenId: idList(cfg.eos_token_id),
  };
}

/** Checks the architecture-specific invariants of a ModelConfig (createModel's input). */
export function checkConfig(c: ModelConfig): void {
  if (!ARCHITECTURES.includes(c.architecture)) throw new Error(`model config: architecture '${String(c.architecture)}' is not supported (supported: ${ARCHITECTURES.join(', ')})`);
  if (c.architecture === 'Qwen2ForCausalLM' && !c.attentionBias) throw new Error('model config: Qwen2ForCausalLM always has q/k/v biases (attentionBias must be true)');
  if (c.architecture !== 'Qwen2ForCausalLM' && c.attentionBias) throw new Error(`model config: attentionBias is only supported for Qwen2ForCausalLM, not ${c.architecture}`);
  if ((c.architecture === 'Qwen3ForCausalLM') !== c.qkNorm) throw new Error(`model config: qkNorm must be ${c.architecture === 'Qwen3ForCausalLM'} for ${c.architecture}`);
  if (c.numHeads % c.numKvHeads !== 0) throw new Error(`model config: numHeads (${c.numHeads}) is not a multiple of numKvHeads (${c.numKvHeads})`);
}

/** A ModelConfig as a Hugging Face config.json object (transformers loads it unchanged). */
export function toHfConfig(c: ModelConfig, dtype: 'f32' | 'bf16' = 'f32'): Json {
  const o: Json = {
    architectures: [c.architecture],
    model_type: MODEL_TYPE[c.architecture],
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    intermediate_size: c.intermediateSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    rope_scaling: c.ropeScaling
      ? {
          rope_type: 'llama3',
          factor: c.ropeScaling.factor,
          low_freq_factor: c.ropeScaling.lowFreqFactor,
          high_freq_factor: c.ropeScaling.highFreqFactor,
          original_max_position_embeddings: c.ropeScaling.originalMaxPositionEmbeddings,
        }
      : null,
    max_position_embeddings: c.maxPositionEmbeddings,
    tie_word_embeddings: c.tieWordEmbeddings,
    bos_token_id: c.bosTokenId,
    eos_token_id: c.eosTokenId.length === 1 ? c.eosTokenId[0] : c.eosTokenId,
    initializer_range: 0.02,
    use_cache: true,
    torch_dtype: dtype === 'bf16' ? 'bfloat16' : 'float32',
  };
  if (c.architecture === 'LlamaForCausalLM' || c.architecture === 'Qwen3ForCausalLM') {
    o.attention_bias = false;
    o.mlp_bias = false;
  }
  if (c.architecture === 'Qwen2ForCausalLM' || c.architecture === 'Qwen3ForCausalLM') {
    o.use_sliding_window = false;
    o.sliding_window = null;
    o.max_window_layers = c.numLayers;
  }
  if (c.architecture === 'MistralForCausalLM') o.sliding_window = null;
  o.attention_dropout = 0.0;
  return o;
}

/**
 * A Llama-architecture decoder built from scratch (tied embeddings, no bias, no rope
 * scaling): the shapes the benches measure. Defaults are the `small` bench shape;
 * headDim defaults to hiddenSize / numHeads.
 */
export function llamaConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  const c: ModelConfig = {
    architecture: 'LlamaForCausalLM',
    vocabSize: 8192,
    hiddenSize: 256,
    intermediateSize: 704,
    numLayers: 8,
    numHeads: 8,
    numKvHeads: 4,
    headDim: 0,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 4096,
    tieWordEmbeddings: true,
    attentionBias: false,
    qkNorm: false,
    bosTokenId: 1,
    eosTokenId: [2],
    ...over,
  };
  if (over.headDim === undefined) c.headDim = c.hiddenSize / c.numHeads;
  return c;
}

/** A tiny configuration of the given architecture (tests, benches, demos). */
export function tinyConfig(architecture: Architecture, over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    architecture,
    vocabSize: 64,
    hiddenSize: 32,
    intermediateSize: 48,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 8,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
    ropeScaling: null,
    maxPositionEmbeddings: 512,
    tieWordEmbeddings: architecture === 'Qwen3ForCausalLM',
    attentionBias: architecture === 'Qwen2ForCausalLM',
    qkNorm: architecture === 'Qwen3ForCausalLM',
    bosTokenId: 1,
    eosTokenId: [2],
    ...over,
  };
}
