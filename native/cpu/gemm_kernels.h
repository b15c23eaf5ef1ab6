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
  // Optional (nullptr: the driver's portable code).
  // Packs h <= r rows of a row-major matrix (src[i * ld + k], k < kc) into a k-major
  // panel of r rows: out[k * r + i], rows h..r-1 zero. r is mr (A) or nr (B^T).
  void (*pack_rows)(int r, int h, int64_t kc, const float* src, int64_t ld, float* out);
  // Packs h <= r contiguous columns of kc rows (src[k * ld + i]) into out[k * r + i],
  // columns h..r-1 zero. r is mr (A^T) or nr (B).
  void (*pack_cols)(int r, int h, int64_t kc, const float* src, int64_t ld, float* out);
  // C[i, j] = alpha * dot(A[i, :], B[j, :]) + beta * C[i, j] for i < m, j < n, with A and B
  // both row-major along k (the transB case without packing, for few rows of C).
  // One pass over k per element, in a fixed order.
  void (*dots)(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb,
               float* C, int64_t ldc, float alpha, float beta);
  // Optional: dst[i] = the f32 of bf16 src[i] (exact), compiled for the kernel's
  // instruction set (a bf16 B is widened block by block before packing).
  void (*widen_bf16)(const uint16_t* src, float* dst, int64_t n);
  // Optional: pack_rows and dots reading a bf16 source, widening as they load (the same
  // packed values and products as for the widened f32 source).
  void (*pack_rows_bf16)(int r, int h, int64_t kc, const uint16_t* src, int64_t ld, float* out);
  void (*dots_bf16)(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const uint16_t* B, int64_t ldb,
                    float* C, int64_t ldc, float alpha, float beta);
};

// The widening loop, written once; each ISA file instantiates it with its own flags.
inline void widen_bf16_loop(const uint16_t* __restrict src, float* __restrict dst, int64_t n) {
  uint32_t* d = reinterpret_cast<uint32_t*>(dst);
  for (int64_t i = 0; i < n; ++i) d[i] = uint32_t(src[i]) << 16;
}

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
