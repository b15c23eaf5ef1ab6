// CUDA backend: the ops interface on one NVIDIA GPU. bf16 activations with f32
// accumulation; f32 master weights, gradients and optimizer state. This file holds the
// CudaBackend class (argument checks, the caching memory pool, the device error word,
// the stream); the kernels are in kernels/*.cuh and their launchers in launch_*.cu.
//
// Every CUDA failure becomes an itool::Error with the CUDA error string; running out
// of memory is ErrorKind::OutOfMemory naming the size asked for and what is free.
// Errors that kernels detect in device data (a token id out of range, a bad block
// table entry) are kept in a device word and raised at the next synchronising call.
#include <cuda_runtime.h>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
#include "../core/cuda_info.h"
#include "../core/ops.h"
#include "launch.h"

namespace itool {

namespace {

std::string mib(size_t b) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.1f MiB", b / 1048576.0);
  return buf;
}

// Caching allocator: freed blocks are kept per size and reused (stream-ordered: all
// work runs on the backend's one stream). cudaMalloc failure first releases the cache.
class CachingPool final : public cuda::Pool {
 public:
  explicit CachingPool(int device) : device_(device) {}
  ~CachingPool() override {
    // Process exit: the driver may already be gone; ignore errors.
    for (auto& kv : free_) cudaFree(kv.second);
  }
  static size_t round_up(size_t b) {
    if (b == 0) b = 1;
#ifdef ITOOL_CUDA_EMULATE
    return b;  // exact sizes, so that the emulator's ASan sees an overrun of any buffer
#endif
    if (b < (size_t(1) << 20)) return (b + 511) / 512 * 512;
    return (b + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
  }
  void* alloc(size_t bytes) override {
    std::lock_guard<std::mutex> lk(mu_);
    const size_t r = round_up(bytes);
    // best fit among cached blocks, wasting at most a quarter
    auto it = free_.lower_bound(r);
    if (it != free_.end() && it->first <= r + r / 4) {
      void* p = it->second;
      const size_t sz = it->first;
      free_.erase(it);
      cached_ -= sz;
      live_[p] = sz;
      in_use_ += sz;
      return p;
    }
    cudaSetDevice(device_);
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, r);
    if (e != cudaSuccess) {
      cudaGetLastError();
      release_locked();
      e = cudaMalloc(&p, r);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      cudaGetLastError();
      throw Error(ErrorKind::OutOfMemory,
                  "cuda:" + std::to_string(device_) + ": out of memory: asked for " + std::to_string(bytes) + " bytes (" +
                      mib(bytes) + "); the device has " + mib(fr) + " free of " + mib(tot) + ", itool holds " +
                      mib(in_use_) + " in use (" + cudaGetErrorString(e) + ")");
    }
    live_[p] = r;
    in_use_ += r;
    return p;
  }
  void dealloc(void* p) override {
    if (!p) return;
    std::lock_guard<std::mutex> lk(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: ignore rather than corrupt the pool
#ifdef ITOOL_CUDA_EMULATE
    // no cache: a freed block goes back at once (a use after free is then an ASan report)
    cudaFree(p);
    in_use_ -= it->second;
    live_.erase(it);
    return;
#endif
    free_.emplace(it->second, p);
    cached_ += it->second;
    in_use_ -= it->second;
    live_.erase(it);
  }
  size_t in_use() const { return in_use_; }
  size_t cached() const { return cached_; }

 private:
  void release_locked() {
    cudaSetDevice(device_);
    for (auto& kv : free_) cudaFree(kv.second);
    cudaGetLastError();
    free_.clear();
    cached_ = 0;
  }
  int device_;
  std::mutex mu_;
  std::multimap<size_t, void*> free_;
  std::unordered_map<void*, size_t> live_;
  size_t in_use_ = 0, cached_ = 0;
};

// u in [0, 1) from (seed, counter): the same hash as the CPU engine
// (native/cpu/ops_sample.cpp, cpu::uniform01), so both devices draw the same numbers.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double uniform01(uint64_t seed, uint64_t counter) {
  const uint64_t a = mix64(seed + 0x9e3779b97f4a7c15ULL * (counter + 1));
  const uint64_t b = mix64(a ^ counter);
  return static_cast<double>(b >> 11) * (1.0 / 9007199254740992.0);
}

bool is_float(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index), pool_(index) {
    cuda::check(cudaSetDevice(index_), "cudaSetDevice");
    cudaDeviceProp prop{};
    cuda::check(cudaGetDeviceProperties(&prop, index_), "cudaGetDeviceProperties");
    if (prop.major < 8)
      throw_error("cuda:" + std::to_string(index_) + ": " + prop.name + " has compute capability " +
                  std::to_string(prop.major) + "." + std::to_string(prop.minor) +
                  "; itool's CUDA kernels need 8.0 or newer (bf16 tensor cores)");
    cuda::check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    int optin = 0;
    cuda::check(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, index_),
                "cudaDeviceGetAttribute");
    ctx_.stream = stream_;
    ctx_.device = index_;
    ctx_.sm_count = prop.multiProcessorCount;
    ctx_.smem_optin = static_cast<size_t>(optin);
    ctx_.pool = &pool_;
    err_ = static_cast<int*>(pool_.alloc(sizeof(int)));
    cuda::check(cudaMemsetAsync(err_, 0, sizeof(int), stream_), "cudaMemset");
    ctx_.err = err_;
  }
  ~CudaBackend() override = default;  // process lifetime; the driver reclaims at exit

  Device device() const override { return Device{DeviceKind::CUDA, index_}; }
  std::string name() const override { return "cuda:" + std::to_string(index_); }
  DType act_dtype() const override { return DType::BF16; }

  // ------------------------------------------------------------ memory
  void* alloc(size_t bytes) override { return pool_.alloc(bytes); }
  void dealloc(void* p) override { pool_.dealloc(p); }
  void memset_zero(void* p, size_t bytes) override {
    if (!bytes) return;
    bind();
    cuda::check(cudaMemsetAsync(p, 0, bytes, stream_), "cudaMemsetAsync");
  }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    bind();
    // On the backend's stream (ordered after earlier work that may still use `dst`, a
    // block the pool handed out again), then waited for: the caller may free `src` at once.
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
    cuda::check(cudaStreamSynchronize(stream_), "copy to device");
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    bind();
    if (bytes) cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    sync_and_check("copy to host");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (!bytes || dst == src) return;
    bind();
    cuda::check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "copy on device");
  }
  void synchronize() override {
    bind();
    sync_and_check("synchronize");
  }
  void convert(const void* src, DType st, void* dst, DType dt, int64_t n) override {
    if (!is_float(st) || !is_float(dt))
      throw_type(std::string("convert: only f32/bf16/f16 convert, got ") + dtype_name(st) + " -> " + dtype_name(dt));
    if (n < 0) throw_range("convert: n must be >= 0");
    if (n == 0) return;
    bind();
    if (st == dt) {
      copy(dst, src, static_cast<size_t>(n) * dtype_size(st));
      return;
    }
    cuda::convert(ctx_, src, st, dst, dt, n);
  }

  // ------------------------------------------------------------ ops
  void gemm(const GemmParams& p) override {
    if (p.M < 0 || p.N < 0 || p.K < 0 || p.batch < 0) throw_range("gemm: M, N, K and batch must be >= 0");
    if (!is_float(p.a_type) || !is_float(p.b_type) || !is_float(p.c_type)) throw_type("gemm: A, B and C must be float dtypes");
    if (p.M == 0 || p.N == 0 || p.batch == 0) return;
    if (!p.C || (p.K > 0 && (!p.A || !p.B))) throw_error("gemm: null A, B or C");
    if (p.ldc < p.N) throw_range("gemm: ldc < N");
    if (p.K > 0 && p.lda < (p.transA ? p.M : p.K)) throw_range("gemm: lda too small");
    if (p.K > 0 && p.ldb < (p.transB ? p.K : p.N)) throw_range("gemm: ldb too small");
    bind();
    cuda::gemm(ctx_, p);
  }
  void embedding_forward(const EmbeddingParams& p) override {
    if (p.n < 0 || p.dim < 0 || p.vocab < 0) throw_range("embedding_forward: negative size");
    if (p.n > 0 && p.dim > 0 && (!p.ids || !p.table || !p.out)) throw_error("embedding_forward: null ids, table or out");
    bind();
    cuda::embedding_forward(ctx_, p);
  }
  void embedding_backward(const EmbeddingParams& p) override {
    if (p.n < 0 || p.dim < 0 || p.vocab < 0) throw_range("embedding_backward: negative size");
    if (p.n > 0 && p.dim > 0 && (!p.ids || !p.dout || !p.dtable)) throw_error("embedding_backward: null ids, dout or dtable");
    bind();
    cuda::embedding_backward(ctx_, p);
  }
  void rmsnorm_forward(const RmsNormParams& p) override {
    if (p.n < 0 || p.d <= 0) throw_range("rmsnorm_forward: n must be >= 0 and d > 0");
    if (p.n > 0 && (!p.x || !p.w || !p.y)) throw_error("rmsnorm_forward: null x, w or y");
    bind();
    cuda::rmsnorm_forward(ctx_, p);
  }
  void rmsnorm_backward(const RmsNormParams& p) override {
    if (p.n < 0 || p.d <= 0) throw_range("rmsnorm_backward: n must be >= 0 and d > 0");
    if (p.n > 0 && (!p.x || !p.w || !p.dy)) throw_error("rmsnorm_backward: null x, w or dy");
    bind();
    cuda::rmsnorm_backward(ctx_, p);
  }
  void rope(const RopeParams& p) override {
    if (p.T < 0 || p.H < 0 || p.D < 0 || p.D % 2 != 0) throw_range("rope: T, H >= 0 and an even D are required");
    if (p.T * p.H * p.D > 0 && (!p.x || !p.pos || !p.inv_freq)) throw_error("rope: null x, pos or inv_freq");
    bind();
    cuda::rope(ctx_, p);
  }
  void swiglu_forward(const SwigluParams& p) override {
    if (p.n < 0) throw_range("swiglu_forward: n must be >= 0");
    if (p.n > 0 && (!p.gate || !p.up || !p.out)) throw_error("swiglu_forward: null gate, up or out");
    bind();
    cuda::swiglu_forward(ctx_, p);
  }
  void swiglu_backward(const SwigluParams& p) override {
    if (p.n < 0) throw_range("swiglu_backward: n must be >= 0");
    if (p.n > 0 && (!p.gate || !p.up || !p.dout)) throw_error("swiglu_backward: null gate, up or dout");
    bind();
    cuda::swiglu_backward(ctx_, p);
  }
  void add(const AddParams& p) override {
    if (p.n < 0) throw_range("add: n must be >= 0");
    if (p.n > 0 && (!p.a || !p.b || !p.out)) throw_error("add: null a, b or out");
    bind();
    cuda::add(ctx_, p);
  }
  void bias_forward(const BiasParams& p) override {
    if (p.n < 0 || p.d < 0) throw_range("bias_forward: negative size");
    if (p.n * p.d > 0 && (!p.x || !p.bias)) throw_error("bias_forward: null x or bias");
    bind();
    cuda::bias_forward(ctx_, p);
  }
  void bias_backward(const BiasParams& p) override {
    if (p.n < 0 || p.d < 0) throw_range("bias_backward: negative size");
    if (p.n * p.d > 0 && (!p.dy || !p.dbias)) throw_error("bias_backward: null dy or dbias");
    bind();
    cuda::bias_backward(ctx_, p);
  }
  void attention_forward(const AttentionParams& p) override {
    check_attention(p, "attention_forward");
    if (p.T > 0 && (!p.q || !p.k || !p.v || !p.out || !p.cu_seqlens)) throw_error("attention_forward: null q, k, v, out or cu_seqlens");
    bind();
    cuda::attention_forward(ctx_, p);
  }
  void attention_backward(const AttentionParams& p) override {
    check_attention(p, "attention_backward");
    if (p.T > 0 && (!p.q || !p.k || !p.v || !p.out || !p.lse || !p.dout || !p.dq || !p.dk || !p.dv || !p.cu_seqlens))
      throw_error("attention_backward: needs q, k, v, out, lse, dout, dq, dk, dv and cu_seqlens");
    bind();
    cuda::attention_backward(ctx_, p);
  }
  void kv_write(const KvWriteParams& p) override {
    if (p.B < 0 || p.n_new < 0 || p.Hkv <= 0 || p.D <= 0 || p.block_size <= 0 || p.max_blocks <= 0)
      throw_range("kv_write: B, n_new >= 0 and Hkv, D, block_size, max_blocks > 0 are required");
    if (p.B * p.n_new > 0 && (!p.block_table || !p.ctx_lens || !p.k_new || !p.v_new || !p.k_cache || !p.v_cache))
      throw_error("kv_write: null pointer argument");
    bind();
    cuda::kv_write(ctx_, p);
  }
  void attention_decode(const DecodeAttentionParams& p) override {
    if (p.B < 0 || p.n_new < 0 || p.Hq <= 0 || p.Hkv <= 0 || p.D <= 0 || p.block_size <= 0 || p.max_blocks <= 0)
      throw_range("attention_decode: B, n_new >= 0 and Hq, Hkv, D, block_size, max_blocks > 0 are required");
    if (p.Hq % p.Hkv != 0) throw_range("attention_decode: Hq must be a multiple of Hkv");
    if (p.B * p.n_new > 0 && (!p.block_table || !p.ctx_lens || !p.q || !p.k_cache || !p.v_cache || !p.out))
      throw_error("attention_decode: null pointer argument");
    bind();
    cuda::attention_decode(ctx_, p);
  }
  void logprob(const LogprobParams& p) override {
    if (p.N < 0 || p.H <= 0 || p.V <= 0 || p.chunk < 0) throw_range("logprob: N >= 0, H > 0, V > 0, chunk >= 0 required");
    if (p.N > 0 && (!p.hidden || !p.weight || !p.targets)) throw_error("logprob: null hidden, weight or targets");
    bind();
    cuda::logprob(ctx_, p);
  }
  void preference_loss(const PreferenceParams& p) override {
    if (p.P < 0) throw_range("preference_loss: P must be >= 0");
    const int k = static_cast<int>(p.kind);
    if (k < 0 || k > 3) throw_range("preference_loss: unknown loss kind " + std::to_string(k));
    if (p.P > 0) {
      if (!p.chosen || !p.rejected) throw_error("preference_loss: null chosen or rejected");
      if ((p.kind == PrefLoss::DPO || p.kind == PrefLoss::IPO) && (!p.ref_chosen || !p.ref_rejected))
        throw_error("preference_loss: DPO and IPO need ref_chosen and ref_rejected");
      if ((p.kind == PrefLoss::SIMPO || p.kind == PrefLoss::ORPO) && (!p.chosen_len || !p.rejected_len))
        throw_error("preference_loss: SimPO and ORPO need chosen_len and rejected_len");
      if (p.kind == PrefLoss::IPO && !(p.beta > 0)) throw_range("preference_loss: IPO needs beta > 0");
    }
    bind();
    cuda::preference_loss(ctx_, p);
  }
  void adamw(const AdamWParams& p) override {
    if (p.n < 0 || p.step < 1) throw_range("adamw: n >= 0 and step >= 1 required");
    if (p.n > 0 && (!p.param || !p.grad || !p.m || !p.v)) throw_error("adamw: null param, grad, m or v");
    bind();
    cuda::adamw(ctx_, p);
  }
  double sum_squares(const float* x, int64_t n) override {
    if (n < 0) throw_range("sum_squares: n must be >= 0");
    if (n > 0 && !x) throw_error("sum_squares: null x");
    bind();
    const double r = cuda::sum_squares(ctx_, x, n);
    check_device_errors("sum_squares");
    return r;
  }
  void scale(float* x, int64_t n, float s) override {
    if (n < 0) throw_range("scale: n must be >= 0");
    if (n > 0 && !x) throw_error("scale: null x");
    bind();
    cuda::scale(ctx_, x, n, s);
  }
  void axpy(float* y, const float* x, int64_t n, float a) override {
    if (n < 0) throw_range("axpy: n must be >= 0");
    if (n > 0 && (!x || !y)) throw_error("axpy: null x or y");
    bind();
    cuda::axpy(ctx_, y, x, n, a);
  }
  bool has_nonfinite(const float* x, int64_t n) override {
    if (n < 0) throw_range("has_nonfinite: n must be >= 0");
    if (n > 0 && !x) throw_error("has_nonfinite: null x");
    bind();
    const bool r = cuda::has_nonfinite(ctx_, x, n);
    check_device_errors("has_nonfinite");
    return r;
  }
  void sample(const SampleParams& p) override {
    if (p.B < 0 || p.V <= 0) throw_range("sample: B >= 0 and V > 0 required");
    if (p.top_k < 0) throw_range("sample: top_k must be >= 0");
    if (!(p.top_p > 0.f && p.top_p <= 1.f)) throw_range("sample: top_p must be in (0, 1]");
    if (p.B > 0 && (!p.logits || !p.counters)) throw_error("sample: null logits or counters");
    bind();
    std::vector<double> u(static_cast<size_t>(p.B));
    for (int64_t b = 0; b < p.B; ++b) u[b] = uniform01(p.seed, p.counters[b]);
    cuda::sample(ctx_, p, u.data());
    check_device_errors("sample");
  }

  // Memory figures for info/benchmarks.
  size_t pool_in_use() const { return pool_.in_use(); }
  size_t pool_cached() const { return pool_.cached(); }

 private:
  void bind() { cuda::check(cudaSetDevice(index_), "cudaSetDevice"); }
  void sync_and_check(const char* what) {
    cuda::check(cudaStreamSynchronize(stream_), what);
    check_device_errors(what);
  }
  void check_device_errors(const char* what) {
    int code = 0;
    cuda::check(cudaMemcpyAsync(&code, err_, sizeof(int), cudaMemcpyDeviceToHost, stream_), what);
    cuda::check(cudaStreamSynchronize(stream_), what);
    if (code == 0) return;
    cuda::check(cudaMemsetAsync(err_, 0, sizeof(int), stream_), what);
    const char* why = "unknown kernel error";
    switch (code) {
      case 1: why = "embedding: a token id is outside [0, vocab)"; break;
      case 2: why = "logprob: a target is >= the vocabulary size"; break;
      case 3: why = "kv cache: a position falls outside the block table, or a block id is negative"; break;
      case 4: why = "attention: cu_seqlens must rise from 0 to T"; break;
      case 6: why = "preference_loss: sequence lengths must be > 0"; break;
    }
    throw_range(std::string("cuda: ") + why + " (detected on the device, reported at " + what + ")");
  }
  void check_attention(const AttentionParams& p, const char* op) {
    if (p.T < 0 || p.Hq <= 0 || p.Hkv <= 0 || p.D <= 0 || p.nseq < 0)
      throw_range(std::string(op) + ": T >= 0, Hq, Hkv, D > 0 and nseq >= 0 required");
    if (p.Hq % p.Hkv != 0) throw_range(std::string(op) + ": Hq must be a multiple of Hkv");
    if (p.D > cuda::kMaxHeadDim)
      throw_range(std::string(op) + ": head dim " + std::to_string(p.D) + " is larger than the CUDA kernels take (" +
                  std::to_string(cuda::kMaxHeadDim) + ")");
    if (p.T > 0 && p.nseq < 1) throw_range(std::string(op) + ": nseq must be >= 1 when T > 0");
    if (p.T > 2147483647LL / (p.Hq * p.D)) throw_range(std::string(op) + ": T * Hq * D too large");
  }

  int index_;
  CachingPool pool_;
  cudaStream_t stream_ = nullptr;
  cuda::Ctx ctx_;
  int* err_ = nullptr;
};

Backend* cuda_backend(int index) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaBackend>>* backends = new std::map<int, std::unique_ptr<CudaBackend>>();
  std::lock_guard<std::mutex> lk(mu);
  auto it = backends->find(index);
  if (it != backends->end()) return it->second.get();
  CudaInfo info = cuda_info();
  if (info.devices.empty()) throw_error("cuda: no CUDA device available: " + info.reason);
  if (index < 0 || index >= static_cast<int>(info.devices.size()))
    throw_range("cuda: device index " + std::to_string(index) + " out of range (" +
                std::to_string(info.devices.size()) + " devices)");
  auto b = std::make_unique<CudaBackend>(index);
  Backend* r = b.get();
  (*backends)[index] = std::move(b);
  return r;
}

}  // namespace itool
