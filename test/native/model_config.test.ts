// config.json -> ModelConfig (src/engine/config.ts) on the published configs of small
// checkpoints of each family, the round trip through toHfConfig, and the errors for
// unsupported architectures and fields.
import { describe, expect, it } from 'vitest';
import { checkConfig, parseHfConfig, tinyConfig, toHfConfig } from '../../src/engine/config.js';
import { ARCHITECTURES } from '../../src/engine/config.js';
import { createModel } from '../../src/engine/model.js';

// as published with Qwen/Qwen2.5-0.5B-Instruct
const qwen25 = {
  architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645, hidden_act: 'silu',
  hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 21,
  model_type: 'qwen2', num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-6,
  rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true,
  use_sliding_window: false, vocab_size: 151936,
};
// as published with meta-llama/Llama-3.2-1B-Instruct
const llama32 = {
  architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009], head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02,
  intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32,
  num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-5,
  rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 128256,
};
// as published with Qwen/Qwen3-0.6B
const qwen3 = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
  head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072,
  max_position_embeddings: 40960, max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28,
  num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null, rope_theta: 1000000, sliding_window: null,
  tie_word_embeddings: true, torch_dtype: 'bfloat16', use_cache: true, use_sliding_window: false, vocab_size: 151936,
};
// as published with mistralai/Mistral-7B-Instruct-v0.3
const mistral = {
  architectures: ['MistralForCausalLM'], attention_dropout: 0.0, bos_token_id: 1, eos_token_id: 2, hidden_act: 'silu',
  hidden_size: 4096, initializer_range: 0.02, intermediate_size: 14336, max_position_embeddings: 32768, model_type: 'mistral',
  num_attention_heads: 32, num_hidden_layers: 32, num_key_value_heads: 8, rms_norm_eps: 1e-5, rope_theta: 1000000.0,
  sliding_window: null, tie_word_embeddings: false, torch_dtype: 'bfloat16', use_cache: true, vocab_size: 32768,
};

describe('config.json', () => {
  it('Qwen2.5: q/k/v bias, tied, head_dim from hidden/heads', () => {
    const c = parseHfConfig(qwen25);
    expect(c).toMatchObject({ architecture: 'Qwen2ForCausalLM', headDim: 64, numKvHeads: 2, attentionBias: true, qkNorm: false, tieWordEmbeddings: true, eosTokenId: [151645], bosTokenId: 151643, ropeScaling: null });
  });
  it('Llama 3.2: llama3 rope scaling, explicit head_dim, eos list', () => {
    const c = parseHfConfig(llama32);
    expect(c.ropeScaling).toEqual({ ropeType: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
    expect(c).toMatchObject({ headDim: 64, attentionBias: false, eosTokenId: [128001, 128008, 128009], rmsNormEps: 1e-5, ropeTheta: 500000 });
  });
  it('Qwen3: q/k norm, head_dim 128 != hidden/heads', () => {
    expect(parseHfConfig(qwen3)).toMatchObject({ qkNorm: true, headDim: 128, hiddenSize: 1024, numHeads: 16, attentionBias: false });
  });
  it('Mistral: untied, no bias', () => {
    expect(parseHfConfig(mistral)).toMatchObject({ architecture: 'MistralForCausalLM', tieWordEmbeddings: false, headDim: 128, attentionBias: false });
  });
  it('round-trips through toHfConfig for every architecture', () => {
    for (const a of ARCHITECTURES) {
      const c = tinyConfig(a, a === 'LlamaForCausalLM' ? { ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 }, eosTokenId: [2, 3] } : {});
      expect(parseHfConfig(JSON.parse(JSON.stringify(toHfConfig(c))))).toEqual(c);
    }
    for (const cfg of [qwen25, llama32, qwen3, mistral]) expect(parseHfConfig(toHfConfig(parseHfConfig(cfg)))).toEqual(parseHfConfig(cfg));
  });
  it('unsupported architectures and fields are errors naming them', () => {
    expect(() => parseHfConfig({ ...qwen25, architectures: ['GPT2LMHeadModel'] })).toThrow(/GPT2LMHeadModel.*not supported/);
    expect(() => parseHfConfig({ ...qwen25, architectures: undefined })).toThrow(/architectures/);
    expect(() => parseHfConfig({ ...llama32, rope_scaling: { rope_type: 'yarn', factor: 4 } })).toThrow(/rope_scaling type 'yarn'/);
    expect(() => parseHfConfig({ ...llama32, attention_bias: true })).toThrow(/attention_bias/);
    expect(() => parseHfConfig({ ...llama32, mlp_bias: true })).toThrow(/mlp_bias/);
    expect(() => parseHfConfig({ ...llama32, hidden_act: 'gelu' })).toThrow(/hidden_act 'gelu'/);
    expect(() => parseHfConfig({ ...qwen25, use_sliding_window: true })).toThrow(/use_sliding_window/);
    expect(() => parseHfConfig({ ...qwen25, quantization_config: { quant_method: 'gptq' } })).toThrow(/quantiz/);
    expect(() => parseHfConfig({ ...qwen25, hidden_size: undefined })).toThrow(/missing required field 'hidden_size'/);
    expect(() => parseHfConfig({ ...qwen25, num_key_value_heads: 3 })).toThrow(/multiple of num_key_value_heads/);
    expect(() => parseHfConfig({ ...qwen25, vocab_size: -5 })).toThrow(/vocab_size/);
  });
  it('createModel checks the architecture invariants', () => {
    expect(() => checkConfig(tinyConfig('Qwen2ForCausalLM', { attentionBias: false }))).toThrow(/always has q\/k\/v biases/);
    expect(() => checkConfig(tinyConfig('Qwen3ForCausalLM', { qkNorm: false }))).toThrow(/qkNorm/);
    expect(() => createModel(tinyConfig('LlamaForCausalLM', { headDim: 7 }))).toThrow(/head_dim must be even/);
    expect(() => createModel(tinyConfig('LlamaForCausalLM', { numKvHeads: 3 }))).toThrow(/multiple/);
  });
});
