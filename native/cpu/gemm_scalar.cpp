// Portable SGEMM micro-kernel (no intrinsics): 4 x 16 block, plain loops the compiler
// may vectorise with the baseline instruction set. Used when no SIMD level is
// available or when ITOOL_CPU=scalar / setCpuKernels('scalar') asks for it.
#include "gemm_kernels.h"

namespace itool {
namespace cpu {
namespace {

constexpr int MR = 4;
constexpr int NR = 16;

void tile(int m, int n, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha,
          float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; ++k) {
    const float* a = pa + k * MR;
    const float* b = pb + k * NR;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  }
  for (int i = 0; i < m; ++i) {
    float* r = c + i * ldc;
    if (beta == 0.f) {
      for (int j = 0; j < n; ++j) r[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < n; ++j) r[j] = alpha * acc[i][j] + beta * r[j];
    }
  }
}

const GemmKernel kKernel = {"scalar 4x16", MR, NR, /*kc*/ 256, /*mc*/ 128, /*nc*/ 1024, tile, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

const GemmKernel* gemm_kernel_scalar() { return &kKernel; }

}  // namespace cpu
}  // namespace itool
