// The CPU implementation of the ops interface (f32 compute).
#pragma once
#include "../core/ops.h"

namespace itool {

// The CPU allocator's own counters, in bytes: current = blocks handed out and not yet given
// back (each at the size it occupies: the request rounded up to 64 bytes, or to its size class,
// at most 25% more, for blocks of 64 KiB and more); peak = the most `current` has been since the
// last cpu_alloc_reset_peak() (or the start); cached = freed blocks kept for reuse.
struct CpuAllocStats {
  size_t current = 0, peak = 0, cached = 0;
};
CpuAllocStats cpu_alloc_stats();
void cpu_alloc_reset_peak();

class CpuBackend final : public Backend {
 public:
  Device device() const override { return Device{DeviceKind::CPU, 0}; }
  std::string name() const override;
  void* alloc(size_t bytes) override;
  void dealloc(void* p) override;
  void memset_zero(void* p, size_t bytes) override;
  void copy_from_host(void* dst, const void* src, size_t bytes) override;
  void copy_to_host(void* dst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void convert(const void* src, DType st, void* dst, DType dt, int64_t n) override;

  void gemm(const GemmParams& p) override;
  void embedding_forward(const EmbeddingParams& p) override;
  void embedding_backward(const EmbeddingParams& p) override;
  void rmsnorm_forward(const RmsNormParams& p) override;
  void rmsnorm_backward(const RmsNormParams& p) override;
  void rope(const RopeParams& p) override;
  void swiglu_forward(const SwigluParams& p) override;
  void swiglu_backward(const SwigluParams& p) override;
  void add(const AddParams& p) override;
  void bias_forward(const BiasParams& p) override;
  void bias_backward(const BiasParams& p) override;
  void attention_forward(const AttentionParams& p) override;
  void attention_backward(const AttentionParams& p) override;
  void kv_write(const KvWriteParams& p) override;
  void attention_decode(const DecodeAttentionParams& p) override;
  void logprob(const LogprobParams& p) override;
  void preference_loss(const PreferenceParams& p) override;
  void adamw(const AdamWParams& p) override;
  double sum_squares(const float* x, int64_t n) override;
  void scale(float* x, int64_t n, float s) override;
  void axpy(float* y, const float* x, int64_t n, float a) override;
  bool has_nonfinite(const float* x, int64_t n) override;
  void sample(const SampleParams& p) override;
};

}  // namespace itool
