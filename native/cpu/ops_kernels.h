// Inner loops of the CPU ops (not the GEMM), compiled three times from one source
// (ops_kernels.inc): baseline (ops_kernels.cpp), AVX2+FMA (ops_kernels_avx2.cpp) and
// AVX-512 (ops_kernels_avx512.cpp); kernels() picks the table for cpu_level().
// Reductions use a fixed number of lanes (16) and a fixed combining order, so a
// result depends only on the inputs and the kernel level, never on threads.
#pragma once
#include <cstdint>

namespace itool {
namespace cpu {

struct OpKernels {
  const char* name;
  float (*dot)(const float* a, const float* b, int64_t n);
  bool (*any_nonfinite)(const float* x, int64_t n);
  float (*sumsq)(const float* x, int64_t n);
  float (*max)(const float* x, int64_t n);
  // y = exp(x - sub) (y may alias x); returns the sum of y
  float (*exp_sub_sum)(float* y, const float* x, float sub, int64_t n);
  void (*axpy)(float* y, const float* x, float a, int64_t n);         // y += a*x
  void (*scal)(float* y, float s, int64_t n);                         // y *= s
  void (*add)(float* out, const float* a, const float* b, int64_t n); // out = a + b
  void (*mul_scale)(float* y, const float* x, const float* w, float s, int64_t n);  // y = x*s*w
  // rmsnorm backward row: dx = r*(w*dy) - x*c ; dw is accumulated elsewhere
  void (*rms_bwd_row)(float* dx, const float* x, const float* w, const float* dy, float r, float c, int64_t n);
  // sum_j w_j*dy_j*x_j
  float (*dot3)(const float* a, const float* b, const float* c, int64_t n);
  void (*swiglu_fwd)(float* out, const float* g, const float* u, int64_t n);
  void (*swiglu_bwd)(float* dg, float* du, const float* g, const float* u, const float* dout, int64_t n);
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
                float wd, float bc1, float bc2, float gscale);
  // S[i*lds + j] = s * sum_d A[i*lda + d] * Bt[d*ldb + j]  for i < rows, j < cols
  void (*tile_scores)(float* S, int64_t lds, const float* A, int64_t lda, const float* Bt, int64_t ldb, int64_t rows,
                      int64_t cols, int64_t D, float s);
  // out[h*ldo + p] = s * sum_d Q[h*D + d] * K[p*ldk + d]   (h < nq, p < n): a few query
  // rows against n key rows (the decode path)
  void (*rows_dot)(float* out, int64_t ldo, const float* Q, int64_t nq, const float* K, int64_t ldk, int64_t n,
                   int64_t D, float s);
  // C[m*ldc + n] += alpha * sum_k A[m*lda + k] * B[k*ldb + n]   (m < M, k < K, n < N)
  void (*mm_nn_acc)(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                    int64_t K, int64_t N, float alpha);
  // C[m*ldc + n] += alpha * sum_k A[k*lda + m] * B[k*ldb + n]
  void (*mm_tn_acc)(float* C, int64_t ldc, const float* A, int64_t lda, const float* B, int64_t ldb, int64_t M,
                    int64_t K, int64_t N, float alpha);
  // w[j] = exp((x[j] - m) / t) in double (about 1e-16 relative; 0 below exp(-708)) for
  // j < n; returns sum_j w[j] (8 lanes, fixed combining order). The sampler's weights.
  double (*exp_sum_f64)(double* w, const float* x, float m, double t, int64_t n);
};

const OpKernels& kernels();  // for the current cpu_level()

extern const OpKernels kernels_base;
#if defined(ITOOL_HAVE_AVX2)
extern const OpKernels kernels_avx2;
#endif
#if defined(ITOOL_HAVE_AVX512)
extern const OpKernels kernels_avx512;
#endif

}  // namespace cpu
}  // namespace itool
