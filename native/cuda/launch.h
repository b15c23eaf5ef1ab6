// Host-side launchers of the CUDA kernels (one launch_*.cu file each group), and the
// context they run in. The CudaBackend (cuda_backend.cu) validates arguments, then
// calls these. Parameter structs are the plain ones of native/core/ops.h.
#pragma once
#include <cuda_runtime.h>
#include <cstddef>
#include <cstdint>
#include <string>
#include "../core/ops.h"

// Kernel launch: ITOOL_LAUNCH(kernel, grid, block, smem, stream)(args...) is the
// triple-chevron launch under nvcc; the emulated build (native/cuda/emu) defines it to
// run the kernel on the CPU.
#ifndef ITOOL_LAUNCH
#define ITOOL_LAUNCH(kernel, grid, block, smem, stream) kernel<<<grid, block, smem, stream>>>
#endif

namespace itool {
namespace cuda {

// Throws itool::Error carrying the CUDA error string (never aborts).
void check(cudaError_t e, const char* what);
// After a kernel launch: a launch-configuration error becomes an itool::Error.
void check_launch(const char* what);

// Scratch memory from the backend's caching pool.
class Pool {
 public:
  virtual ~Pool() = default;
  virtual void* alloc(size_t bytes) = 0;
  virtual void dealloc(void* p) = 0;
};

struct Ctx {
  cudaStream_t stream = nullptr;
  int device = 0;
  int sm_count = 1;
  size_t smem_optin = 48 * 1024;  // max dynamic shared memory per block (opt-in)
  int* err = nullptr;             // device error word (kErr* codes), see kernels/common.cuh
  Pool* pool = nullptr;
  void* blas = nullptr;           // cublasLtHandle_t when built with cuBLAS
  void* blas_ws = nullptr;        // cuBLASLt workspace
  size_t blas_ws_bytes = 0;
};

// RAII scratch buffer from the pool (stream-ordered: freed blocks are only reused by
// work queued after them on the same stream).
class Scratch {
 public:
  Scratch(Ctx& c, size_t bytes) : c_(c), p_(bytes ? c.pool->alloc(bytes) : nullptr) {}
  ~Scratch() { if (p_) c_.pool->dealloc(p_); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T> T* as() const { return static_cast<T*>(p_); }
  void* get() const { return p_; }
 private:
  Ctx& c_;
  void* p_;
};

// ---- GEMM (launch_gemm.cu)
void gemm(Ctx& c, const GemmParams& p);
void blas_init(Ctx& c);     // creates the cuBLASLt handle when built with cuBLAS (no-op otherwise)
void blas_destroy(Ctx& c);
bool blas_available();

// ---- elementwise and normalisation (launch_elementwise.cu)
void convert(Ctx& c, const void* src, DType st, void* dst, DType dt, int64_t n);
void embedding_forward(Ctx& c, const EmbeddingParams& p);
void embedding_backward(Ctx& c, const EmbeddingParams& p);
void rmsnorm_forward(Ctx& c, const RmsNormParams& p);
void rmsnorm_backward(Ctx& c, const RmsNormParams& p);
void rope(Ctx& c, const RopeParams& p);
void swiglu_forward(Ctx& c, const SwigluParams& p);
void swiglu_backward(Ctx& c, const SwigluParams& p);
void add(Ctx& c, const AddParams& p);
void bias_forward(Ctx& c, const BiasParams& p);
void bias_backward(Ctx& c, const BiasParams& p);

// ---- attention (launch_attention_fwd.cu, launch_attention_bwd.cu, launch_decode.cu)
void attention_forward(Ctx& c, const AttentionParams& p);
void attention_backward(Ctx& c, const AttentionParams& p);
void kv_write(Ctx& c, const KvWriteParams& p);
void attention_decode(Ctx& c, const DecodeAttentionParams& p);
// Head dims the attention kernels take (D <= kMaxHeadDim; padded to 32/64/128 inside).
constexpr int64_t kMaxHeadDim = 128;

// ---- fused LM head -> log-prob (launch_logprob.cu)
void logprob(Ctx& c, const LogprobParams& p);
// Rows per chunk the logprob op uses for V columns when the caller leaves chunk = 0.
int64_t logprob_default_chunk(int64_t N, int64_t V);

// ---- optimizer, reductions, losses, sampling (launch_optim.cu)
void preference_loss(Ctx& c, const PreferenceParams& p);
void adamw(Ctx& c, const AdamWParams& p);
double sum_squares(Ctx& c, const float* x, int64_t n);
void scale(Ctx& c, float* x, int64_t n, float s);
void axpy(Ctx& c, float* y, const float* x, int64_t n, float a);
bool has_nonfinite(Ctx& c, const float* x, int64_t n);
// Sampling: u [B] uniforms in [0, 1) are drawn on the host; tokens/logps are host memory.
void sample(Ctx& c, const SampleParams& p, const double* u_host);

}  // namespace cuda
}  // namespace itool
