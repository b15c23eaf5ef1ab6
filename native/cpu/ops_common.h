// Helpers shared by the CPU op files.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
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

inline void need(bool cond, const char* op, const char* what) {
  if (!cond) throw_error(std::string("cpu ") + op + ": " + what);
}

}  // namespace cpu
}  // namespace itool
