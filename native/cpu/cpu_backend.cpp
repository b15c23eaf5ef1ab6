// CPU backend: memory and conversions. The ops live in their own files (ops_*.cpp).
#include "cpu_backend.h"
#include <cstdlib>
#include <cstring>
#include "../core/cpu_features.h"
#include "../core/threadpool.h"

namespace itool {

std::string CpuBackend::name() const {
  return std::string("cpu (") + cpu_level_name(cpu_level()) + ", " +
         std::to_string(ThreadPool::global().size()) + " threads)";
}

void* CpuBackend::alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw Error(ErrorKind::OutOfMemory, "cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
  return p;
}
void CpuBackend::dealloc(void* p) { std::free(p); }
void CpuBackend::memset_zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) { if (bytes) std::memmove(dst, src, bytes); }

void CpuBackend::convert(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (st == dt) {
    copy(dst, src, static_cast<size_t>(n) * dtype_size(st));
    return;
  }
  auto load = [&](int64_t i) -> float {
    switch (st) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::I32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    }
    return 0.f;
  };
  for (int64_t i = 0; i < n; ++i) {
    float f = load(i);
    switch (dt) {
      case DType::F32: static_cast<float*>(dst)[i] = f; break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(f); break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(f); break;
      case DType::I32: throw_type("convert: cannot convert " + std::string(dtype_name(st)) + " to i32");
    }
  }
}

Backend* cpu_backend() {
  static CpuBackend b;
  return &b;
}

}  // namespace itool
