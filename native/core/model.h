// The Llama-family decoder (Llama 3, Qwen2/2.5/3, Mistral), written once against the
// Backend interface (ops.h): training forward/backward on packed batches, AdamW, LoRA,
// and generation over a block KV cache with copy-on-write forks. Never branches on the device.
//
// Memory: parameters live in groups (base, lora) of one contiguous f32 master buffer each,
// with an act-dtype compute copy (the master itself when act is f32), f32 gradients and
// AdamW moments allocated on first use. Parameters of each group are laid out with the
// weight-decayed matrices first and the norms/biases after them.
//
// Frozen bf16 weights (CPU, weights = BF16): the base group holds its weights once, in bf16
// (`compute`, no f32 `master`), read by the ops through their bf16 weight paths (exact
// widening). The base is then frozen: LoRA adapters (f32, f32 gradients and AdamW state)
// train on top of it; full fine-tuning is refused. On CUDA the weights argument is ignored
// (f32 master + bf16 compute copy, as always).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>
#include "ops.h"
#include "tensor.h"

namespace itool {

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM | Qwen2ForCausalLM | Qwen3ForCausalLM | MistralForCausalLM
  int64_t vocab = 0, hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  float eps = 1e-6f;
  double rope_theta = 10000.0;
  bool rope_llama3 = false;
  double rope_factor = 1, low_freq_factor = 1, high_freq_factor = 4;
  int64_t orig_max_pos = 8192;
  int64_t max_pos = 4096;
  bool tie = false, attn_bias = false, qk_norm = false;
  void validate() const;  // throws RangeError naming the field
};

enum Proj : int { P_Q = 0, P_K, P_V, P_O, P_GATE, P_UP, P_DOWN, P_COUNT };
const char* proj_name(int p);  // "q_proj" ...

struct LoraConfig {
  int64_t rank = 0;
  float alpha = 0;
  bool targets[P_COUNT] = {false, false, false, false, false, false, false};
  float scaling() const { return rank > 0 ? alpha / float(rank) : 0.f; }
};

struct ParamInfo {
  std::string name;  // Hugging Face (or PEFT) name
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;
};

struct DevBuf {
  std::shared_ptr<Storage> s;
  void* p() const { return s ? s->data : nullptr; }
  float* f() const { return static_cast<float*>(p()); }
  int32_t* i() const { return static_cast<int32_t*>(p()); }
  explicit operator bool() const { return bool(s); }
};

struct ParamGroup {
  std::vector<ParamInfo> params;
  std::map<std::string, size_t> index;
  int64_t numel = 0, n_decay = 0;
  DevBuf master, compute, grad, m, v;  // compute empty when act == f32
  int64_t step = 0;
};

struct OptimOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  float max_grad_norm = 0.f, grad_scale = 1.f;
};
struct StepInfo {
  double grad_norm = 0;
  bool skipped = false;
};

// Bytes of the buffers a model holds now, by what they are for (each buffer counted at its
// allocation size; see Model::memory).
struct MemoryUse {
  int64_t weights = 0, adapters = 0, gradients = 0, optimizer = 0, activations = 0, kv_cache = 0, scratch = 0;
  int64_t total() const { return weights + adapters + gradients + optimizer + activations + kv_cache + scratch; }
};

struct CacheState {
  std::vector<int32_t> blocks;  // block ids in the pool
  std::vector<int32_t> tokens;  // all tokens (the last ones may not be in the KV yet)
  int64_t kv_len = 0;           // tokens whose K/V are written
  uint64_t counter = 0;         // sampling counter, advanced per sampled token
  DevBuf hidden;                // final-normed hidden state of token kv_len-1 (act)
  bool hidden_valid = false;
};

namespace model_detail {
struct Spec;
}

class Model {
 public:
  // zero_weights = false leaves the weights unwritten (load_checkpoint fills them; nothing else
  // may use the model before it has). weights: the storage dtype of the base weights, F32 or
  // (CPU) BF16 for frozen bf16 weights; anything else throws a TypeError naming it.
  Model(const ModelConfig& cfg, Device dev, bool zero_weights = true, DType weights = DType::F32);
  ~Model();
  const ModelConfig& config() const { return cfg_; }
  Backend* backend() const { return be_; }
  std::mutex& mutex() { return mu_; }

  // ---- parameters
  void init_random(uint64_t seed, float std);
  // HF names and shapes, every one checked before any weight is written; reads straight into
  // the weights on the CPU (one tensor at a time through the host otherwise)
  void load_checkpoint(const std::vector<std::string>& files);
  // Opens a checkpoint's files and checks them against a configuration without a model: every
  // file's header and extent (a truncated file is refused), every tensor the configuration needs
  // present with its shape. Throws Error naming the file, the tensor and the problem.
  static void check_checkpoint(const ModelConfig& cfg, const std::vector<std::string>& files);
  void save_checkpoint(const std::string& path, DType dtype) const;
  int64_t num_parameters() const;        // base weights (LoRA adapters not counted)
  int64_t trainable_parameters() const;  // adapter weights with LoRA, else the base weights
  const ParamGroup& base() const { return base_; }
  // F32, or BF16 when the base weights are stored only in bf16 (frozen)
  DType weight_dtype() const { return base_bf16_ ? DType::BF16 : DType::F32; }
  // What the model's own buffers hold now: weights (base group buffers), adapters (LoRA
  // group buffers), gradients, optimizer (AdamW m, v), activations (saved by a training
  // forward for backward), kv_cache (the K/V pools), scratch (RoPE frequencies, the caches'
  // last hidden states). Buffers freed before a call returns are never counted.
  MemoryUse memory() const;
  const ParamGroup& lora_group() const { return lora_; }
  // host copy of a parameter by name (base or lora group)
  std::vector<float> get_param(const std::string& name) const;
  void set_param(const std::string& name, const std::vector<float>& v);
  std::vector<float> get_grad(const std::string& name) const;
  std::vector<std::string> param_names() const;

  // ---- LoRA
  void add_lora(const LoraConfig& lc, uint64_t seed);
  void load_lora(const std::string& file);  // PEFT names
  void save_lora(const std::string& path) const;
  void merge_lora();
  bool lora_active() const { return lora_cfg_.rank > 0; }
  const LoraConfig& lora_config() const { return lora_cfg_; }

  // ---- memory knobs (the memory plan sets them; 0: none / the backend's choice)
  // kv_pool_blocks: the most KV blocks the pool may hold (it grows by doubling up to this); a
  // call that would need more throws before it changes any cache. logprob_chunk: rows of the
  // fused log-prob op's logits chunk ([rows, V] f32 scratch) in forward/backward.
  void set_memory_limits(int64_t kv_pool_blocks, int64_t logprob_chunk);
  int64_t kv_pool_limit() const { return kv_pool_limit_; }
  int64_t logprob_chunk() const { return logprob_chunk_; }
  int64_t pool_blocks() const { return pool_blocks_; }

  // ---- training
  void set_recompute(bool on) { recompute_ = on; }
  // tokens/targets/pos [T], cu [nseq+1] (host). logprobs [T] out (host); logits [T*V] when non-null.
  // dlogp_ahead [T] (host, train only): the upstream gradients on the log-probabilities,
  // known before the forward (SFT: -1/n on the target tokens). The LM head's gradient is
  // then made in the forward's own pass over the vocabulary (3 GEMMs of T*H*V instead of
  // 4: backward does not compute the logits again), its dweight accumulated at once;
  // backward() must follow with the same values (or none).
  void forward(const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, const std::vector<int32_t>& cu,
               const std::vector<int32_t>& pos, bool train, float* logprobs, float* logits,
               const float* dlogp_ahead = nullptr);
  void backward(const float* dlogp);  // host [T]; nullptr: the dlogp_ahead of the forward
  void backward_checked(const float* dlogp, int64_t n);  // checks n == T of the saved forward (dlogp may be null)
  void zero_grad();
  // a new training phase: AdamW moments released (zeroed when the next step allocates them)
  // and the step counter at 0, as in a model just loaded; checkpoints restore theirs after it
  void reset_optimizer();
  StepInfo step(const OptimOptions& o);
  void save_training_state(const std::string& path) const;
  void load_training_state(const std::string& path);

  // ---- generation
  int64_t cache_new();
  void cache_free(int64_t id);
  int64_t cache_fork(int64_t id);
  void cache_truncate(int64_t id, int64_t n);
  const CacheState& cache(int64_t id) const;
  void cache_extend(int64_t id, const std::vector<int32_t>& tokens);  // appends and computes K/V
  // samples one token per cache and appends it (its K/V computed on the next call).
  // repetition_penalty != 1: vLLM's rule on the logits of every token already in the cache
  // (prompt and generated): a positive logit divided by it, a negative one multiplied; the
  // returned logp_model is then the log-softmax of the penalised logits.
  void sample_next(const std::vector<int64_t>& ids, float temperature, int64_t top_k, float top_p, uint64_t seed,
                   int32_t* tokens, float* logp_model, float* logp_sampled, float repetition_penalty = 1.f);
  void next_logprobs(const std::vector<int64_t>& ids, float* out);  // [B * V] host
  int64_t block_size() const { return block_size_; }
  int64_t blocks_in_use();
  int64_t num_caches() const { return int64_t(caches_.size()); }
  // Frees a cache later (from the next call that holds the model lock): used when the
  // lock is busy (a finalizer on the main thread must not wait for a long decode).
  void defer_free(int64_t id);
  void drain_deferred();

 private:
  struct LayerP {
    int in_norm, post_norm, w[P_COUNT], qb = -1, kb = -1, vb = -1, qn = -1, kn = -1;
  };
  struct LayerActs {
    DevBuf x_in, xn1, rstd1, q_pre, k_pre, rstd_q, rstd_k, q, k, v, attn, lse, x_mid, xn2, rstd2, gate, up, act;
    DevBuf lt[P_COUNT];  // LoRA x·A^T
  };
  enum class AttnMode { Packed, Decode };
  struct AttnCtx {
    AttnMode mode = AttnMode::Packed;
    const int32_t* cu = nullptr;  // device
    int64_t nseq = 0;
    int64_t B = 0, n_new = 0, max_blocks = 0;
    const int32_t* block_table = nullptr;  // device
    const int32_t* ctx_lens = nullptr;     // device
  };

  DevBuf alloc(size_t bytes) const;
  DevBuf alloc_act(int64_t n) const { return alloc(size_t(n) * asz_); }
  DevBuf alloc_f32(int64_t n) const { return alloc(size_t(n) * 4); }
  DevBuf to_dev_i32(const std::vector<int32_t>& v) const;
  static void base_specs(const ModelConfig& c, std::vector<LayerP>& lp, int& embed, int& final_norm, int& lm_head,
                         std::vector<model_detail::Spec>& specs);
  void build_layout(bool zero_weights);
  int add_param(ParamGroup& g, std::vector<std::pair<std::string, std::vector<int64_t>>>& later, const std::string& name,
                std::vector<int64_t> shape, bool decay);
  void finalize_group(ParamGroup& g, bool zero = true);
  void sync_compute(ParamGroup& g);
  void ensure_grads(ParamGroup& g);
  const void* W(int i) const;          // base compute pointer
  float* G(int i) const;               // base grad pointer (nullptr when frozen)
  const void* LW(int i) const;
  float* LG(int i) const;
  bool base_trainable() const { return !lora_active(); }
  // throws when training would need gradients of bf16 (frozen) base weights
  void check_base_trainable(const char* what) const;
  const void* head_w() const { return W(cfg_.tie ? embed_ : lm_head_); }
  float* head_g() const { return G(cfg_.tie ? embed_ : lm_head_); }

  void gemm(int64_t M, int64_t N, int64_t K, bool ta, bool tb, const void* A, int64_t lda, const void* B_, int64_t ldb,
            void* C, int64_t ldc, float alpha, float beta, DType at, DType bt, DType ct) const;
  void linear_fwd(int l, int p, const void* x, int64_t T, void* y, DevBuf* lt) const;
  void linear_bwd(int l, int p, const void* x, const void* lt, const void* dy, int64_t T, void* dx, bool accumulate_dx) const;
  void alloc_layer_acts(LayerActs& a, int64_t T, bool full) const;
  void layer_forward(int l, LayerActs& a, int64_t T, const int32_t* pos, const AttnCtx& ctx, void* x_out);
  void layer_backward(int l, LayerActs& a, int64_t T, const int32_t* pos, const AttnCtx& ctx, void* dx);

  void pool_reserve(int64_t nblocks);
  int32_t block_alloc();
  void block_release(int32_t b);
  CacheState& cache_mut(int64_t id);
  void cache_prepare_write(CacheState& c, int64_t new_len);  // allocates/COWs blocks
  // runs tokens for B caches (n_new each), K/V written, hidden states stored
  void decode(const std::vector<CacheState*>& cs, int64_t n_new);
  void ensure_ready(const std::vector<CacheState*>& cs);
  void logits_for(const std::vector<CacheState*>& cs, DevBuf& logits);

  ModelConfig cfg_;
  Backend* be_;
  DType act_;
  size_t asz_;
  bool base_bf16_ = false;  // base weights stored only in bf16 (CPU, frozen)
  DType wdt_;               // dtype the ops read the base weights in: act_, or BF16
  size_t wsz_;
  mutable std::mutex mu_;
  ParamGroup base_, lora_;
  LoraConfig lora_cfg_;
  int embed_ = -1, final_norm_ = -1, lm_head_ = -1;
  std::vector<LayerP> lp_;
  std::vector<int> lora_a_, lora_b_;  // [layer * P_COUNT + p] -> index in lora_ (or -1)
  DevBuf inv_freq_;
  bool recompute_ = false;

  // saved by a train forward for backward
  struct Saved {
    bool valid = false;
    int64_t T = 0, nseq = 0;
    DevBuf tokens, targets, cu, pos, xf, rstdf, x_last;
    std::vector<LayerActs> acts;
    DevBuf dxf;                // d(final norm output), made by a forward with dlogp_ahead
    std::vector<float> dlogp;  // that forward's dlogp_ahead (backward checks it)
  } saved_;
  // the LM head's log-prob op over hidden xf [T, H]; with dlogp (device [T]) also
  // dhidden (written) and the head's weight gradient (accumulated)
  void head_logprob(int64_t T, const void* xf, const int32_t* targets, float* lp, float* lse, const float* dlogp,
                    void* dhidden);

  // KV cache
  int64_t block_size_ = 16;
  int64_t pool_blocks_ = 0;
  int64_t kv_pool_limit_ = 0;  // 0: no cap
  int64_t logprob_chunk_ = 0;  // 0: the backend's choice
  // throws when writing n_new tokens into these caches would take the pool past its cap
  void check_pool_room(const std::vector<CacheState*>& cs, int64_t n_new);
  std::vector<DevBuf> kpool_, vpool_;  // per layer [pool_blocks, bs, Hkv, D]
  std::vector<int32_t> refcount_;
  std::vector<int32_t> free_;
  std::map<int64_t, CacheState> caches_;
  int64_t next_cache_ = 1;
  std::mutex deferred_mu_;
  std::vector<int64_t> deferred_;
};

}  // namespace itool
