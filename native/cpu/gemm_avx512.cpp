// AVX-512 SGEMM micro-kernel: 14 x 32 register block (28 zmm accumulators, two
// zmm of B per k, A broadcast from memory). Compiled with -mavx512f..; only
// called when cpu_level() says AVX-512 (see gemm.cpp).
#include <immintrin.h>
#include "gemm_kernels.h"

namespace itool {
namespace cpu {
namespace {

constexpr int MR = 14;
constexpr int NR = 32;

inline __mmask16 lo_mask(int n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }
inline __mmask16 hi_mask(int n) { return n >= 32 ? __mmask16(0xFFFF) : n <= 16 ? __mmask16(0) : __mmask16((1u << (n - 16)) - 1u); }

template <int M>
void tile_m(int n, int64_t kc, const float* __restrict pa, const float* __restrict pb, float* __restrict c,
            int64_t ldc, float alpha, float beta) {
  __m512 c0[M], c1[M];
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
#pragma GCC unroll 14
  for (int i = 0; i < M; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(pb);
    const __m512 b1 = _mm512_load_ps(pb + 16);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      const __m512 a = _mm512_set1_ps(pa[i]);
      c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
    }
    pa += MR;
    pb += NR;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (n == NR) {
    if (beta == 0.f) {
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        _mm512_storeu_ps(c + i * ldc, _mm512_mul_ps(va, c0[i]));
        _mm512_storeu_ps(c + i * ldc + 16, _mm512_mul_ps(va, c1[i]));
      }
    } else {
      const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
      for (int i = 0; i < M; ++i) {
        float* r = c + i * ldc;
        _mm512_storeu_ps(r, _mm512_fmadd_ps(va, c0[i], _mm512_mul_ps(vb, _mm512_loadu_ps(r))));
        _mm512_storeu_ps(r + 16, _mm512_fmadd_ps(va, c1[i], _mm512_mul_ps(vb, _mm512_loadu_ps(r + 16))));
      }
    }
    return;
  }
  const __mmask16 m0 = lo_mask(n), m1 = hi_mask(n);
  if (beta == 0.f) {
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      _mm512_mask_storeu_ps(c + i * ldc, m0, _mm512_mul_ps(va, c0[i]));
      _mm512_mask_storeu_ps(c + i * ldc + 16, m1, _mm512_mul_ps(va, c1[i]));
    }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 14
    for (int i = 0; i < M; ++i) {
      float* r = c + i * ldc;
      _mm512_mask_storeu_ps(r, m0, _mm512_fmadd_ps(va, c0[i], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, r))));
      _mm512_mask_storeu_ps(r + 16, m1,
                            _mm512_fmadd_ps(va, c1[i], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, r + 16))));
    }
  }
}

void tile(int m, int n, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha,
          float beta) {
  switch (m) {
    case 14: tile_m<14>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 13: tile_m<13>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 12: tile_m<12>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 11: tile_m<11>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 10: tile_m<10>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 9: tile_m<9>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 8: tile_m<8>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 7: tile_m<7>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 6: tile_m<6>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 5: tile_m<5>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 4: tile_m<4>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 3: tile_m<3>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 2: tile_m<2>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    case 1: tile_m<1>(n, kc, pa, pb, c, ldc, alpha, beta); break;
    default: break;
  }
}

const GemmKernel kKernel = {"avx512 14x32", MR, NR, /*kc*/ 256, /*mc*/ 14 * 24, /*nc*/ 1024, tile};

}  // namespace

const GemmKernel* gemm_kernel_avx512() { return &kKernel; }

}  // namespace cpu
}  // namespace itool
