// CUDA backend: memory, copies and conversions. Kernels land in issue 10; until then
// every op throws a clear error (the model refuses device 'cuda' rather than crash).
#include <cuda_runtime.h>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include "../core/cuda_info.h"
#include "../core/ops.h"

namespace itool {

static void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    throw_error(std::string("cuda: ") + what + ": " + cudaGetErrorString(e));
  }
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int index) : index_(index) {}
  Device device() const override { return Device{DeviceKind::CUDA, index_}; }
  std::string name() const override { return "cuda:" + std::to_string(index_); }
  DType act_dtype() const override { return DType::BF16; }
  void* alloc(size_t bytes) override {
    cuda_check(cudaSetDevice(index_), "cudaSetDevice");
    void* p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes == 0 ? 1 : bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t fr = 0, tot = 0;
      cudaMemGetInfo(&fr, &tot);
      throw Error(ErrorKind::OutOfMemory, "cuda:" + std::to_string(index_) + ": out of memory allocating " +
                                              std::to_string(bytes) + " bytes (" + std::to_string(fr) +
                                              " free of " + std::to_string(tot) + ")");
    }
    return p;
  }
  void dealloc(void* p) override { cudaFree(p); }
  void memset_zero(void* p, size_t bytes) override { cuda_check(cudaMemset(p, 0, bytes), "cudaMemset"); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
  }
  void synchronize() override { cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize"); }
  void convert(const void*, DType, void*, DType, int64_t) override { not_yet("convert"); }
  void gemm(const GemmParams&) override { not_yet("gemm"); }
  void embedding_forward(const EmbeddingParams&) override { not_yet("embedding_forward"); }
  void embedding_backward(const EmbeddingParams&) override { not_yet("embedding_backward"); }
  void rmsnorm_forward(const RmsNormParams&) override { not_yet("rmsnorm_forward"); }
  void rmsnorm_backward(const RmsNormParams&) override { not_yet("rmsnorm_backward"); }
  void rope(const RopeParams&) override { not_yet("rope"); }
  void swiglu_forward(const SwigluParams&) override { not_yet("swiglu_forward"); }
  void swiglu_backward(const SwigluParams&) override { not_yet("swiglu_backward"); }
  void add(const AddParams&) override { not_yet("add"); }
  void bias_forward(const BiasParams&) override { not_yet("bias_forward"); }
  void bias_backward(const BiasParams&) override { not_yet("bias_backward"); }
  void attention_forward(const AttentionParams&) override { not_yet("attention_forward"); }
  void attention_backward(const AttentionParams&) override { not_yet("attention_backward"); }
  void kv_write(const KvWriteParams&) override { not_yet("kv_write"); }
  void attention_decode(const DecodeAttentionParams&) override { not_yet("attention_decode"); }
  void logprob(const LogprobParams&) override { not_yet("logprob"); }
  void preference_loss(const PreferenceParams&) override { not_yet("preference_loss"); }
  void adamw(const AdamWParams&) override { not_yet("adamw"); }
  double sum_squares(const float*, int64_t) override { not_yet("sum_squares"); }
  void scale(float*, int64_t, float) override { not_yet("scale"); }
  void axpy(float*, const float*, int64_t, float) override { not_yet("axpy"); }
  bool has_nonfinite(const float*, int64_t) override { not_yet("has_nonfinite"); }
  void sample(const SampleParams&) override { not_yet("sample"); }

 private:
  [[noreturn]] void not_yet(const char* op) {
    throw_error(std::string("cuda: op '") + op + "' is not implemented on CUDA yet (issue 10); use device 'cpu'");
  }
  int index_;
};

Backend* cuda_backend(int index) {
  static std::mutex mu;
  static std::map<int, std::unique_ptr<CudaBackend>> backends;
  std::lock_guard<std::mutex> lk(mu);
  auto it = backends.find(index);
  if (it != backends.end()) return it->second.get();
  CudaInfo info = cuda_info();
  if (info.devices.empty()) throw_error("cuda: no CUDA device available: " + info.reason);
  if (index < 0 || index >= static_cast<int>(info.devices.size()))
    throw_range("cuda: device index " + std::to_string(index) + " out of range (" +
                std::to_string(info.devices.size()) + " devices)");
  auto b = std::make_unique<CudaBackend>(index);
  Backend* r = b.get();
  backends[index] = std::move(b);
  return r;
}

}  // namespace itool
