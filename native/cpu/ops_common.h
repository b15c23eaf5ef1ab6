// Helpers shared by the CPU op files.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>
#include "../core/threadpool.h"
#include "cpu_backend.h"
#include "ops_kernels.h"

namespace itool {
namespace cpu {

inline const float* F(const void* p) { return static_cast<const float*>(p); }
inline float* F(void* p) { return static_cast<float*>(p); }

inline ThreadPool& pool() { return ThreadPool::global(); }

// Runs fn(i) for i in [0, n) with item i on thread i % threads (round robin: good
// balance for items of uneven cost; each item writes its own outputs).
template <class Fn>
void for_items(int64_t n, Fn&& fn) {
  if (n <= 0) return;
  ThreadPool& tp = pool();
  if (n == 1 || tp.size() == 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  tp.run([&](int tid, int nt) {
    for (int64_t i = tid; i < n; i += nt) fn(i);
  });
}

// Scratch floats from the CPU backend's block cache: no zero fill and no fresh pages per
// call (ops that need tens of MB per call: attention's transposed tiles, the log-prob
// op's logits chunk). Contents start unset.
struct Scratch {
  float* p = nullptr;
  Scratch() = default;
  explicit Scratch(size_t n) : p(static_cast<float*>(cpu_backend()->alloc(std::max<size_t>(1, n) * sizeof(float)))) {}
  ~Scratch() {
    if (p) cpu_backend()->dealloc(p);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  Scratch(Scratch&& o) noexcept : p(o.p) { o.p = nullptr; }
  Scratch& operator=(Scratch&& o) noexcept {
    std::swap(p, o.p);
    return *this;
  }
};

// A weight vector (norm weight, bias) as f32: the pointer itself when it is f32, else its
// bf16 values widened exactly into tmp. Other dtypes are refused naming the op.
inline const float* weights_f32(const void* w, DType t, int64_t n, std::vector<float>& tmp, const char* op) {
  if (t == DType::F32) return static_cast<const float*>(w);
  if (t != DType::BF16) throw_type(std::string("cpu ") + op + ": weights of dtype " + dtype_name(t) + " are not supported (f32, bf16)");
  tmp.resize(static_cast<size_t>(std::max<int64_t>(0, n)));
  const uint16_t* h = static_cast<const uint16_t*>(w);
  for (int64_t i = 0; i < n; ++i) tmp[size_t(i)] = bf16_to_f32(h[i]);
  return tmp.data();
}

inline void need(bool cond, const char* op, const char* what) {
  if (!cond) throw_error(std::string("cpu ") + op + ": " + what);
}

}  // namespace cpu
}  // namespace itool
