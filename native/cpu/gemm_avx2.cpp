// AVX2 + FMA SGEMM micro-kernel: 6 x 16 register block (12 ymm accumulators, two
// ymm of B per k, A broadcast). Compiled with -mavx2 -mfma; only called when
// cpu_level() is AVX2 or higher was turned down to AVX2 (see gemm.cpp).
#include <immintrin.h>
#include "gemm_kernels.h"

namespace itool {
namespace cpu {
namespace {

constexpr int MR = 6;
constexpr int NR = 16;

template <int M>
void tile_m(int n, int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c,
            int64_t ldc, float alpha, float beta) {
  __m256 c0[M], c1[M];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    c0[i] = _mm256_setzero_ps();
    c1[i] = _mm256_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(pb);
    const __m256 b1 = _mm256_load_ps(pb + 8);
#pragma GCC unroll 6
    for (int i = 0; i < M; ++i) {
      const __m256 a = _mm256_broadcast_ss(pa + i);
      c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
    }
    pa += MR;
    pb += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  if (n == NR) {
    if (beta == 0.f) {
#pragma GCC unroll 6
      for (int i = 0; i < M; ++i) {
        _mm256_storeu_ps(c + i * ldc, _mm256_mul_ps(va, c0[i]));
        _mm256_storeu_ps(c + i * ldc + 8, _mm256_mul_ps(va, c1[i]));
      }
    } else {
      const __m256 vb = _mm256_set1_ps(beta);
#pragma GCC unroll 6
      for (int i = 0; i < M; ++i) {
        float* r = c + i * ldc;
        _mm256_storeu_ps(r, _mm256_fmadd_ps(va, c0[i], _mm256_mul_ps(vb, _mm256_loadu_ps(r))));
        _mm256_storeu_ps(r + 8, _mm256_fmadd_ps(va, c1[i], _mm256_mul_ps(vb, _mm256_loadu_ps(r + 8))));
      }
    }
    return;
  }
  // Edge columns: spill the block and finish in scalar code.
  alignas(32) float t[M][NR];
#pragma GCC unroll 6
  for (int i = 0; i < M; ++i) {
    _mm256_store_ps(t[i], c0[i]);
    _mm256_store_ps(t[i] + 8, c1[i]);
  }
  for (int i = 0; i < M; ++i) {
    float* r = c + i * ldc;
    if (beta == 0.f) {
      for (int j = 0; j < n; ++j) r[j] = alpha * t[i][j];
    } else {
      for (int j = 0; j < n; ++j) r[j] = alpha * t[i][j] + beta * r[j];
    }
  }
}

void tile(int m, int n, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha,
          float beta) {
  switch (m) {
    case 6: tile_m<6>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 5: tile_m<5>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 4: tile_m<4>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 3: tile_m<3>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 2: tile_m<2>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 1: tile_m<1>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    default: break;
  }
}

// ------------------------------------------------------------------ dots (few rows, B^T)
inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int MB>
void dots_rows(int nb, int64_t k, const float* A, int64_t lda, const float* const* b, float* C, int64_t ldc,
               float alpha, float beta) {
  __m256 acc[MB][4];
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= k; p += 8) {
    __m256 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = _mm256_loadu_ps(b[j] + p);
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m256 av = _mm256_loadu_ps(A + i * lda + p);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm256_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  float s[MB][4];
  for (int i = 0; i < MB; ++i)
    for (int j = 0; j < 4; ++j) {
      float t = hsum(acc[i][j]);
      for (int64_t q = p; q < k; ++q) t += A[i * lda + q] * b[j][q];
      s[i][j] = t;
    }
  for (int i = 0; i < MB; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < nb; ++j) c[j] = beta == 0.f ? alpha * s[i][j] : alpha * s[i][j] + beta * c[j];
  }
}

void dots(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, float alpha, float beta) {
  for (int64_t j0 = 0; j0 < n; j0 += 4) {
    const int nb = n - j0 < 4 ? static_cast<int>(n - j0) : 4;
    const float* b[4];
    for (int j = 0; j < 4; ++j) b[j] = B + (j0 + (j < nb ? j : nb - 1)) * ldb;  // extra lanes repeat the last row
    int64_t i = 0;
    for (; i + 3 <= m; i += 3) dots_rows<3>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta);
    switch (m - i) {
      case 2: dots_rows<2>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta); break;
      case 1: dots_rows<1>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta); break;
      default: break;
    }
  }
}

void widen(const uint16_t* src, float* dst, int64_t n) { widen_bf16_loop(src, dst, n); }

const GemmKernel kKernel = {"avx2 6x16", MR, NR, /*kc*/ 256, /*mc*/ 6 * 24, /*nc*/ 1024, tile, nullptr, nullptr, dots, widen, nullptr, nullptr};

}  // namespace

const GemmKernel* gemm_kernel_avx2() { return &kKernel; }

}  // namespace cpu
}  // namespace itool
