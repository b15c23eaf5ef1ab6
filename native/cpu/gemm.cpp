// Placeholder GEMM (correct, slow) until the packed micro-kernel GEMM lands.
#include "gemm.h"
#include "../core/threadpool.h"

namespace itool {
namespace cpu {

void sgemm(const GemmParams& p) {
  if (p.a_type != DType::F32 || p.b_type != DType::F32 || p.c_type != DType::F32)
    throw_type("gemm: the CPU engine computes in f32 only");
  for (int64_t b = 0; b < p.batch; ++b) {
    const float* A = static_cast<const float*>(p.A) + b * p.strideA;
    const float* B = static_cast<const float*>(p.B) + b * p.strideB;
    float* C = static_cast<float*>(p.C) + b * p.strideC;
    ThreadPool::global().parallel_for(p.M, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m)
        for (int64_t n = 0; n < p.N; ++n) {
          float acc = 0.f;
          for (int64_t k = 0; k < p.K; ++k) {
            float a = p.transA ? A[k * p.lda + m] : A[m * p.lda + k];
            float bb = p.transB ? B[n * p.ldb + k] : B[k * p.ldb + n];
            acc += a * bb;
          }
          float c = p.alpha * acc;
          if (p.beta != 0.f) c += p.beta * C[m * p.ldc + n];
          C[m * p.ldc + n] = c;
        }
    });
  }
}

}  // namespace cpu
}  // namespace itool
