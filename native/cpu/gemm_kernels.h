// Internal to the CPU GEMM (gemm*.cpp): the register-blocked micro-kernels, one
// per instruction set, and the packed-panel layout they share with the driver.
//
// Packed A micro-panel: mr rows by kc, stored k-major: pa[k * mr + i] = op(A)[i, k].
// Packed B micro-panel: kc by nr columns, stored k-major: pb[k * nr + j] = op(B)[k, j].
// Panels are zero-padded to mr / nr; pb is 64-byte aligned.
#pragma once
#include <cstdint>

namespace itool {
namespace cpu {

struct GemmKernel {
  const char* name;
  int mr, nr;
  // Cache blocking tuned for the kernel (elements): kc (depth), mc (rows of the
  // packed A block), nc (columns of the packed B block).
  int kc, mc, nc;
  // C[0:m, 0:n] = alpha * (pa · pb) + beta * C[0:m, 0:n], with m <= mr, n <= nr.
  // beta == 0 never reads C (NaN in C is ignored). The k loop runs in order 0..kc-1.
  void (*tile)(int m, int n, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc,
               float alpha, float beta);
};

const GemmKernel* gemm_kernel_scalar();
#if defined(ITOOL_HAVE_AVX2)
const GemmKernel* gemm_kernel_avx2();
#endif
#if defined(ITOOL_HAVE_AVX512)
const GemmKernel* gemm_kernel_avx512();
#endif
#if defined(ITOOL_HAVE_NEON)
const GemmKernel* gemm_kernel_neon();
#endif

}  // namespace cpu
}  // namespace itool
