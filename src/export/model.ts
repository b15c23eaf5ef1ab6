// A ModelConfig and the engine's parameter names as llama.cpp reads them: the
// general.* / <arch>.* hyperparameters and the tensor names and shapes of its llama,
// qwen2 and qwen3 architectures. What llama.cpp cannot represent is an error naming it.
import type { Architecture, ModelConfig } from '../engine/model-types.js';
import { GgufValueType, type GgufMetadataEntry } from './gguf.js';

/** llama.cpp's architecture name for each exportable Hugging Face architecture */
export const GGUF_ARCH: Record<Architecture, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};

type Json = Record<string, unknown>;

/**
 * Checks the raw config.json for what the engine accepts but llama.cpp's architecture would
 * read differently; throws naming the field.
 */
export function checkExportable(raw: Json, where: string): void {
  const archs = Array.isArray(raw.architectures) ? (raw.architectures as unknown[]) : [];
  const known = archs.find((a) => typeof a === 'string' && a in GGUF_ARCH);
  if (!known) throw new Error(`${where}: architecture ${JSON.stringify(raw.architectures)} cannot be exported to GGUF (exportable: ${Object.keys(GGUF_ARCH).join(', ')})`);
  if (known === 'MistralForCausalLM') {
    const sw = raw.sliding_window;
    const maxPos = typeof raw.max_position_embeddings === 'number' ? raw.max_position_embeddings : Infinity;
    if (typeof sw === 'number' && sw < maxPos)
      throw new Error(`${where}: sliding_window = ${sw} cannot be represented in GGUF (llama.cpp reads Mistral as 'llama', which attends to the whole context)`);
  }
  if (raw.attn_logit_softcapping != null || raw.final_logit_softcapping != null) throw new Error(`${where}: logit soft-capping cannot be represented for ${known}`);
  const rs = raw.rope_scaling as Json | null | undefined;
  if (rs && rs.attention_factor !== undefined) throw new Error(`${where}: rope_scaling.attention_factor cannot be represented in GGUF`);
}

/** <arch>.* and general.* hyperparameters */
export function hyperparameters(c: ModelConfig, name: string, fileType: number): GgufMetadataEntry[] {
  const arch = GGUF_ARCH[c.architecture];
  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, value: { type: GgufValueType.UINT32, value } });
  const f32 = (key: string, value: number): GgufMetadataEntry => ({ key, value: { type: GgufValueType.FLOAT32, value } });
  return [
    { key: 'general.architecture', value: { type: GgufValueType.STRING, value: arch } },
    { key: 'general.name', value: { type: GgufValueType.STRING, value: name } },
    u32('general.file_type', fileType),
    u32('general.quantization_version', 2),
    u32(`${arch}.vocab_size`, c.vocabSize),
    u32(`${arch}.context_length`, c.maxPositionEmbeddings),
    u32(`${arch}.embedding_length`, c.hiddenSize),
    u32(`${arch}.block_count`, c.numLayers),
    u32(`${arch}.feed_forward_length`, c.intermediateSize),
    u32(`${arch}.attention.head_count`, c.numHeads),
    u32(`${arch}.attention.head_count_kv`, c.numKvHeads),
    u32(`${arch}.attention.key_length`, c.headDim),
    u32(`${arch}.attention.value_length`, c.headDim),
    u32(`${arch}.rope.dimension_count`, c.headDim),
    f32(`${arch}.rope.freq_base`, c.ropeTheta),
    f32(`${arch}.attention.layer_norm_rms_epsilon`, c.rmsNormEps),
  ];
}

export interface TensorPlan {
  /** the engine's (Hugging Face) parameter name; null for tensors made here (rope_freqs) */
  source: string | null;
  name: string;
  /** ggml order: a row's length first */
  dims: number[];
  /** Llama's q/k rows reordered from the half-split rotation to llama.cpp's pairs */
  permuteHeads?: number;
}

const LAYER_MAP: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.q_norm.weight': 'attn_q_norm.weight',
  'self_attn.k_norm.weight': 'attn_k_norm.weight',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};

/** The GGUF name and ggml dims of each parameter, in llama.cpp's usual order. */
export function planTensors(c: ModelConfig, paramNames: readonly string[]): TensorPlan[] {
  const H = c.hiddenSize, D = c.headDim, I = c.intermediateSize;
  const q = c.numHeads * D, kv = c.numKvHeads * D;
  const llamaRope = GGUF_ARCH[c.architecture] === 'llama';
  const shapes: Record<string, number[]> = {
    'attn_norm.weight': [H],
    'attn_q.weight': [H, q],
    'attn_k.weight': [H, kv],
    'attn_v.weight': [H, kv],
    'attn_output.weight': [q, H],
    'attn_q.bias': [q],
    'attn_k.bias': [kv],
    'attn_v.bias': [kv],
    'attn_q_norm.weight': [D],
    'attn_k_norm.weight': [D],
    'ffn_norm.weight': [H],
    'ffn_gate.weight': [H, I],
    'ffn_up.weight': [H, I],
    'ffn_down.weight': [I, H],
  };
  const head: TensorPlan[] = [];
  const blocks: TensorPlan[][] = Array.from({ length: c.numLayers }, () => []);
  const tail: TensorPlan[] = [];
  for (const p of paramNames) {
    if (p === 'model.embed_tokens.weight') head.push({ source: p, name: 'token_embd.weight', dims: [H, c.vocabSize] });
    else if (p === 'model.norm.weight') tail.push({ source: p, name: 'output_norm.weight', dims: [H] });
    else if (p === 'lm_head.weight') tail.push({ source: p, name: 'output.weight', dims: [H, c.vocabSize] });
    else {
      const m = /^model\.layers\.(\d+)\.(.+)$/.exec(p);
      const to = m ? LAYER_MAP[m[2]!] : undefined;
      const layer = m ? Number(m[1]) : -1;
      if (!m || !to || layer >= c.numLayers) throw new Error(`export: parameter '${p}' has no GGUF tensor for ${c.architecture}`);
      const t: TensorPlan = { source: p, name: `blk.${layer}.${to}`, dims: shapes[to]! };
      if (llamaRope && (to === 'attn_q.weight' || to === 'attn_k.weight')) t.permuteHeads = to === 'attn_q.weight' ? c.numHeads : c.numKvHeads;
      blocks[layer]!.push(t);
    }
  }
  if (c.ropeScaling) {
    if (!llamaRope) throw new Error(`export: rope_scaling (${c.ropeScaling.ropeType}) cannot be represented for ${c.architecture} in GGUF`);
    head.push({ source: null, name: 'rope_freqs.weight', dims: [D / 2] });
  }
  return [...head, ...blocks.flat(), ...tail];
}

/**
 * Reorders the rows of a q or k projection ([heads * D, in], row-major) from the Hugging Face
 * rotation (dimension i paired with i + D/2) to llama.cpp's 'llama' rotation (dimension 2i
 * paired with 2i + 1): row h·D + 2i + j takes row h·D + j·D/2 + i.
 */
export function permuteHeads(w: Float32Array, heads: number, inner: number): Float32Array {
  const rows = w.length / inner;
  const D = rows / heads;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`export: cannot permute ${rows} rows into ${heads} heads of an even size`);
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++)
    for (let i = 0; i < D / 2; i++)
      for (let j = 0; j < 2; j++) {
        const dst = h * D + 2 * i + j, src = h * D + j * (D / 2) + i;
        out.set(w.subarray(src * inner, (src + 1) * inner), dst * inner);
      }
  return out;
}

/**
 * The llama3 rope scaling as llama.cpp's per-frequency divisors (rope_freqs.weight): the
 * rotation frequency θ_i = base^(-2i/D) becomes θ_i / f_i, which is the Hugging Face rule.
 */
export function llama3RopeFactors(c: ModelConfig): Float32Array {
  const rs = c.ropeScaling!;
  const D = c.headDim;
  const lowWave = rs.originalMaxPositionEmbeddings / rs.lowFreqFactor;
  const highWave = rs.originalMaxPositionEmbeddings / rs.highFreqFactor;
  const out = new Float32Array(D / 2);
  for (let i = 0; i < D / 2; i++) {
    const freq = 1 / c.ropeTheta ** ((2 * i) / D);
    const wave = (2 * Math.PI) / freq;
    if (wave < highWave) out[i] = 1;
    else if (wave > lowWave) out[i] = rs.factor;
    else {
      const smooth = (rs.originalMaxPositionEmbeddings / wave - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
      out[i] = 1 / ((1 - smooth) / rs.factor + smooth);
    }
  }
  return out;
}
