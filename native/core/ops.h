// The ops interface: one abstract Backend, two implementations (native/cpu,
// native/cuda). The model (native/core/model*) calls only these; it never
// branches on the device. Parameter structs are plain data (flash-attention style).
//
// Conventions
// - Row-major everywhere. Shapes in comments: [rows, cols].
// - Pointers are device pointers of the backend. `void*` activations have dtype
//   `act` (F32 on the CPU; BF16 on CUDA); float* buffers are always f32 (master
//   weights, gradients, optimizer state, statistics, losses).
// - Weights read by an op (embedding table, norm weight, bias, LM head, GEMM B) have the
//   dtype named beside them (*_type, b_type): act, or BF16 on the CPU for frozen bf16
//   weights (widened exactly to f32 as they are read). CUDA reads them as act.
// - "write" outputs are overwritten; "accumulate" outputs are added to (+=).
// - Ops must be deterministic for a given thread count (no atomics-order sums on
//   the CPU).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include "common.h"

namespace itool {

// ---------------------------------------------------------------- GEMM
// For b in [0, batch): C_b = alpha * op(A_b) · op(B_b) + beta * C_b
// op(A_b) is [M, K] (A_b stored [K, M] when transA), op(B_b) is [K, N]
// (B_b stored [N, K] when transB), C_b is [M, N]. Leading dimensions in elements.
struct GemmParams {
  int64_t M = 0, N = 0, K = 0;
  bool transA = false, transB = false;
  const void* A = nullptr; int64_t lda = 0; int64_t strideA = 0;
  const void* B = nullptr; int64_t ldb = 0; int64_t strideB = 0;
  void* C = nullptr; int64_t ldc = 0; int64_t strideC = 0;
  int64_t batch = 1;
  float alpha = 1.0f, beta = 0.0f;
  DType a_type = DType::F32, b_type = DType::F32, c_type = DType::F32;
};

// ---------------------------------------------------------------- embedding
// forward: out[i, :] = table[ids[i], :]            ids [n], table [vocab, dim], out [n, dim] (write)
// backward: dtable[ids[i], :] += dout[i, :]        (accumulate, deterministic order)
struct EmbeddingParams {
  const int32_t* ids = nullptr; int64_t n = 0;
  int64_t vocab = 0, dim = 0;
  const void* table = nullptr;  // forward
  DType table_type = DType::F32;  // dtype of table: act, or bf16 for frozen bf16 weights on the CPU
  void* out = nullptr;          // forward
  const void* dout = nullptr;   // backward
  float* dtable = nullptr;      // backward
};

// ---------------------------------------------------------------- RMSNorm
// y = x / sqrt(mean(x^2) + eps) * w        x, y [n, d], w [d], rstd [n] (write, saved for backward)
// backward: dx (write) and dw (accumulate) from dy.
struct RmsNormParams {
  int64_t n = 0, d = 0;
  float eps = 1e-6f;
  const void* x = nullptr;
  const void* w = nullptr;
  DType w_type = DType::F32;  // dtype of w: act, or bf16 for frozen bf16 weights on the CPU
  void* y = nullptr;
  float* rstd = nullptr;
  const void* dy = nullptr;
  void* dx = nullptr;
  float* dw = nullptr;
};

// ---------------------------------------------------------------- RoPE
// Hugging Face half-split convention: for pair (i, i + D/2), angle = pos * inv_freq[i]
//   x1' = x1 cos - x2 sin ; x2' = x2 cos + x1 sin
// In place on x [T, H, D]; inverse = true rotates by -angle (the backward).
// Every position is rotated, negative ones too (by a negative angle, as HF's cos/sin of
// position * inv_freq); the model binding keeps the model's own positions in [0, 2^24].
// inv_freq [D/2] is computed by the model from rope_theta and rope_scaling.
struct RopeParams {
  void* x = nullptr;
  const int32_t* pos = nullptr;  // [T]
  const float* inv_freq = nullptr;  // [D/2], host memory on the CPU, device memory on CUDA
  int64_t T = 0, H = 0, D = 0;
  bool inverse = false;
};

// ---------------------------------------------------------------- SwiGLU
// out = silu(gate) * up        gate, up, out [n] (flattened)
// backward: dgate, dup (write) from dout.
struct SwigluParams {
  int64_t n = 0;
  const void* gate = nullptr;
  const void* up = nullptr;
  void* out = nullptr;
  const void* dout = nullptr;
  void* dgate = nullptr;
  void* dup = nullptr;
};

// ---------------------------------------------------------------- elementwise
// add:   out = a + b (out may alias a or b)                            [n]
// bias:  x[i, :] += bias  (forward, in place);  dbias += sum_i dy[i, :] (backward)
struct AddParams { int64_t n = 0; const void* a = nullptr; const void* b = nullptr; void* out = nullptr; };
struct BiasParams {
  int64_t n = 0, d = 0;
  void* x = nullptr; const void* bias = nullptr;  // forward
  DType bias_type = DType::F32;  // dtype of bias: act, or bf16 for frozen bf16 weights on the CPU
  const void* dy = nullptr; float* dbias = nullptr;  // backward (accumulate)
};

// ---------------------------------------------------------------- attention
// Causal grouped-query attention over packed variable-length sequences.
// q [T, Hq, D], k, v [T, Hkv, D], out [T, Hq, D]; Hq % Hkv == 0, head h reads kv head h / (Hq/Hkv).
// Sequence s holds tokens [cu_seqlens[s], cu_seqlens[s+1]); no attention across sequences.
// lse [T, Hq] (f32, write) is the log-sum-exp of the scaled scores, saved for backward.
// Computed in tiles with an online softmax: no [T, T] matrix is held.
// backward: dq, dk, dv (write) from dout; reads out and lse of the forward (out for
// Delta = rowsum(dout * out)).
struct AttentionParams {
  int64_t T = 0, Hq = 0, Hkv = 0, D = 0, nseq = 0;
  const int32_t* cu_seqlens = nullptr;  // [nseq + 1]
  float scale = 1.0f;
  const void* q = nullptr; const void* k = nullptr; const void* v = nullptr;
  void* out = nullptr;
  float* lse = nullptr;
  const void* dout = nullptr;
  void* dq = nullptr; void* dk = nullptr; void* dv = nullptr;
};

// Decode against a block KV cache. One layer's cache pool: k_cache, v_cache
// [num_blocks, block_size, Hkv, D]. Row b's logical position p lives in block
// block_table[b * max_blocks + p / block_size] at slot p % block_size.
// q [B, n_new, Hq, D]: the n_new newest tokens of row b, at positions
// ctx_lens[b] - n_new .. ctx_lens[b] - 1 (their K/V already written into the cache);
// each attends causally to positions <= its own. out [B, n_new, Hq, D] (write).
struct DecodeAttentionParams {
  int64_t B = 0, n_new = 1, Hq = 0, Hkv = 0, D = 0;
  int64_t block_size = 0, max_blocks = 0;
  const int32_t* block_table = nullptr;  // [B, max_blocks]
  const int32_t* ctx_lens = nullptr;     // [B]
  float scale = 1.0f;
  const void* q = nullptr;
  const void* k_cache = nullptr; const void* v_cache = nullptr;
  void* out = nullptr;
};
// Writes new K/V rows into the cache: k_new, v_new [B, n_new, Hkv, D] go to positions
// ctx_lens[b] - n_new + j of row b.
struct KvWriteParams {
  int64_t B = 0, n_new = 1, Hkv = 0, D = 0, block_size = 0, max_blocks = 0;
  const int32_t* block_table = nullptr; const int32_t* ctx_lens = nullptr;
  const void* k_new = nullptr; const void* v_new = nullptr;
  void* k_cache = nullptr; void* v_cache = nullptr;
};

// ---------------------------------------------------------------- fused LM head -> log-prob
// logits = hidden · weight^T (never materialised for all N at once: chunks of `chunk` rows)
// logprob[i] = logits[i, targets[i]] - lse[i];  targets[i] < 0 means ignore (logprob 0, no grad).
// hidden [N, H] (act), weight [V, H] (act), logprob, lse [N] (f32, write).
// When dlogp != nullptr, the same pass computes
//   dhidden [N, H] (write, act)  and  dweight [V, H] (f32, accumulate; nullptr: not made,
//   for a frozen LM head)
// for upstream gradients dlogp [N] on the per-token log-probabilities:
//   dlogits[i, j] = dlogp[i] * (1[j == t_i] - softmax[i, j]).
struct LogprobParams {
  int64_t N = 0, H = 0, V = 0;
  int64_t chunk = 0;  // 0: backend's choice
  const void* hidden = nullptr;
  const void* weight = nullptr;
  DType weight_type = DType::F32;  // dtype of weight: act, or bf16 for a frozen bf16 head on the CPU
  const int32_t* targets = nullptr;
  float* logprob = nullptr;
  float* lse = nullptr;
  const float* dlogp = nullptr;
  void* dhidden = nullptr;
  float* dweight = nullptr;
};

// ---------------------------------------------------------------- preference losses
// On per-sequence log-probability sums (over the step tokens) and lengths, P pairs.
//   DPO:   z = beta*((c - rc) - (r - rr));  loss = -(1-ls)*log σ(z) - ls*log σ(-z)
//   IPO:   h = (c - rc) - (r - rr);         loss = (h - 1/(2 beta))^2
//   SimPO: z = beta*(c/|c| - r/|r|) - gamma; loss = -log σ(z)
//   ORPO:  mc = c/|c|, mr = r/|r|; lo = log(p/(1-p)) with log p = m; 
//          loss = -mc + lambda * (-log σ(lo(mc) - lo(mr)))
//          (mc, mr are clamped to at most -1e-6 so that the log-odds stay finite)
// Outputs per pair (write): loss, d_chosen = dloss/dc, d_rejected = dloss/dr,
// chosen_reward / rejected_reward (beta*(c - rc) for DPO/IPO, beta*c/|c| for SimPO,
// log-odds for ORPO).
enum class PrefLoss : int32_t { DPO = 0, IPO = 1, SIMPO = 2, ORPO = 3 };
struct PreferenceParams {
  PrefLoss kind = PrefLoss::SIMPO;
  int64_t P = 0;
  float beta = 2.5f, gamma = 0.5f, label_smoothing = 0.0f, lambda = 0.1f;
  const float* chosen = nullptr; const float* rejected = nullptr;          // [P]
  const float* chosen_len = nullptr; const float* rejected_len = nullptr;  // [P]
  const float* ref_chosen = nullptr; const float* ref_rejected = nullptr;  // [P], DPO/IPO
  float* loss = nullptr; float* d_chosen = nullptr; float* d_rejected = nullptr;
  float* chosen_reward = nullptr; float* rejected_reward = nullptr;
};

// ---------------------------------------------------------------- optimizer
// AdamW (decoupled weight decay, bias correction), f32 state. g is read as grad*grad_scale.
//   m = b1 m + (1-b1) g ; v = b2 v + (1-b2) g^2
//   p -= lr * (m/(1-b1^t) / (sqrt(v/(1-b2^t)) + eps) + wd * p)
struct AdamWParams {
  int64_t n = 0;
  float* param = nullptr; const float* grad = nullptr; float* m = nullptr; float* v = nullptr;
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  int64_t step = 1;  // t, 1-based
  float grad_scale = 1.0f;
};

// ---------------------------------------------------------------- sampling
// From logits [B, V] (f32): temperature (<= 0: greedy), top_k (0: off), top_p (1: off).
// RNG: counter-based, u = uniform(seed, counters[b]); the caller advances counters.
// tokens [B] (write); logp_sampled [B]: log-prob under the sampling distribution
// (after temperature/top-k/top-p); logp_model [B]: under the raw log-softmax.
struct SampleParams {
  int64_t B = 0, V = 0;
  const float* logits = nullptr;
  float temperature = 1.0f; int64_t top_k = 0; float top_p = 1.0f;
  uint64_t seed = 0; const uint64_t* counters = nullptr;  // host memory, [B]
  int32_t* tokens = nullptr; float* logp_sampled = nullptr; float* logp_model = nullptr;  // host memory
};

// ---------------------------------------------------------------- the interface
class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  // dtype of activations this backend computes in (F32 on the CPU).
  virtual DType act_dtype() const { return DType::F32; }

  // memory
  virtual void* alloc(size_t bytes) = 0;  // throws Error(OutOfMemory) naming the size
  virtual void dealloc(void* p) = 0;
  virtual void memset_zero(void* p, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;  // device to device
  virtual void synchronize() {}
  // Converts n elements between dtypes on the device (f32<->bf16/f16).
  virtual void convert(const void* src, DType st, void* dst, DType dt, int64_t n) = 0;

  // ops
  virtual void gemm(const GemmParams& p) = 0;
  virtual void embedding_forward(const EmbeddingParams& p) = 0;
  virtual void embedding_backward(const EmbeddingParams& p) = 0;
  virtual void rmsnorm_forward(const RmsNormParams& p) = 0;
  virtual void rmsnorm_backward(const RmsNormParams& p) = 0;
  virtual void rope(const RopeParams& p) = 0;
  virtual void swiglu_forward(const SwigluParams& p) = 0;
  virtual void swiglu_backward(const SwigluParams& p) = 0;
  virtual void add(const AddParams& p) = 0;
  virtual void bias_forward(const BiasParams& p) = 0;
  virtual void bias_backward(const BiasParams& p) = 0;
  virtual void attention_forward(const AttentionParams& p) = 0;
  virtual void attention_backward(const AttentionParams& p) = 0;
  virtual void kv_write(const KvWriteParams& p) = 0;
  virtual void attention_decode(const DecodeAttentionParams& p) = 0;
  virtual void logprob(const LogprobParams& p) = 0;
  virtual void preference_loss(const PreferenceParams& p) = 0;
  virtual void adamw(const AdamWParams& p) = 0;
  // sum of squares of x [n] (f32), accumulated in double; returned to the host.
  virtual double sum_squares(const float* x, int64_t n) = 0;
  // x *= s (f32, in place)
  virtual void scale(float* x, int64_t n, float s) = 0;
  // y += a * x (f32)
  virtual void axpy(float* y, const float* x, int64_t n, float a) = 0;
  // true if any element of x [n] (f32) is NaN or Inf
  virtual bool has_nonfinite(const float* x, int64_t n) = 0;
  virtual void sample(const SampleParams& p) = 0;
};

// The process-wide backends. cpu() always exists; cuda(i) throws an Error that
// says why when CUDA is not built in or device i does not exist.
Backend* cpu_backend();
Backend* cuda_backend(int index);
Backend* backend_for(const Device& d);

}  // namespace itool
