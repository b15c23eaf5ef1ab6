// AVX-512 SGEMM micro-kernel: 14 x 32 register block (28 zmm accumulators, two
// zmm of B per k, A broadcast from memory). Compiled with -mavx512f..; only
// called when cpu_level() says AVX-512 (see gemm.cpp).
#include <immintrin.h>
#include "gemm_kernels.h"

// GCC 12's AVX-512 headers build some intrinsics on _mm512_undefined_*(), which
// -Wall reports as uninitialised (a false positive in the system header).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

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
  for (int i = 0; i < M; ++i) {
    // the C tile is read and written after the k loop: fetch both lines of each row now
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
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

// ------------------------------------------------------------------ packing
// In-register 16 x 16 transpose: r[i] holds row i (16 floats); afterwards r[j] holds
// column j.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4g + j], per 128-bit lane l: rows 4g..4g+3 at column 4l + j
  __m512 u[16];
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512d lo_ab = _mm512_castps_pd(t[4 * g]), hi_ab = _mm512_castps_pd(t[4 * g + 1]);
    const __m512d lo_cd = _mm512_castps_pd(t[4 * g + 2]), hi_cd = _mm512_castps_pd(t[4 * g + 3]);
    u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(lo_ab, lo_cd));
    u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(lo_ab, lo_cd));
    u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(hi_ab, hi_cd));
    u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(hi_ab, hi_cd));
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const __m512 v = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44);
    const __m512 w = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
    const __m512 v2 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
    const __m512 w2 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_f32x4(v, w, 0x88);
    r[4 + j] = _mm512_shuffle_f32x4(v, w, 0xDD);
    r[8 + j] = _mm512_shuffle_f32x4(v2, w2, 0x88);
    r[12 + j] = _mm512_shuffle_f32x4(v2, w2, 0xDD);
  }
}

// 16 floats from f32, or widened exactly from bf16 (the 16 bits become the high half).
inline __m512 load16(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
inline __m512 load16(const uint16_t* p, __mmask16 m) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 load16(const uint16_t* p) {
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

// out[k * r + i] = src[i * ld + k] for i < h, 0 for h <= i < r; r <= 32. src f32 or bf16.
template <class T>
void pack_rows_t(int r, int h, int64_t kc, const T* src, int64_t ld, float* out) {
  for (int g = 0; g < r; g += 16) {
    const int rows = r - g < 16 ? r - g : 16;         // lanes this group writes
    const int valid = h - g < 0 ? 0 : (h - g < 16 ? h - g : 16);  // rows with data
    const __mmask16 store_mask = lo_mask(rows);
    for (int64_t k0 = 0; k0 < kc; k0 += 16) {
      const int kn = kc - k0 < 16 ? static_cast<int>(kc - k0) : 16;
      const __mmask16 load_mask = lo_mask(kn);
      __m512 v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = i < valid ? load16(src + (g + i) * ld + k0, load_mask) : _mm512_setzero_ps();
      if (k0 + 64 < kc)
        for (int i = 0; i < valid; ++i) _mm_prefetch(reinterpret_cast<const char*>(src + (g + i) * ld + k0 + 64), _MM_HINT_T0);
      transpose16(v);
      float* d = out + k0 * r + g;
      if (rows == 16) {
        for (int t = 0; t < kn; ++t) _mm512_storeu_ps(d + t * r, v[t]);
      } else {
        for (int t = 0; t < kn; ++t) _mm512_mask_storeu_ps(d + t * r, store_mask, v[t]);
      }
    }
  }
}

void pack_rows(int r, int h, int64_t kc, const float* src, int64_t ld, float* out) {
  pack_rows_t(r, h, kc, src, ld, out);
}
void pack_rows_bf16(int r, int h, int64_t kc, const uint16_t* src, int64_t ld, float* out) {
  pack_rows_t(r, h, kc, src, ld, out);
}

// out[k * r + i] = src[k * ld + i] for i < h, 0 for h <= i < r; r <= 32.
void pack_cols(int r, int h, int64_t kc, const float* src, int64_t ld, float* out) {
  const __mmask16 l0 = lo_mask(h), l1 = hi_mask(h);  // what is read
  const __mmask16 s0 = lo_mask(r), s1 = hi_mask(r);  // what is written (zeros past h)
  if (r == 32 && h == 32) {
    for (int64_t k = 0; k < kc; ++k) {
      const float* s = src + k * ld;
      _mm512_storeu_ps(out + k * 32, _mm512_loadu_ps(s));
      _mm512_storeu_ps(out + k * 32 + 16, _mm512_loadu_ps(s + 16));
    }
    return;
  }
  for (int64_t k = 0; k < kc; ++k) {
    const float* s = src + k * ld;
    _mm512_mask_storeu_ps(out + k * r, s0, _mm512_maskz_loadu_ps(l0, s));
    if (r > 16) _mm512_mask_storeu_ps(out + k * r + 16, s1, _mm512_maskz_loadu_ps(l1, s + 16));
  }
}

// ------------------------------------------------------------------ dots (few rows, B^T)
template <int MB, class TB>
void dots_block(int64_t k, const float* const* a, const TB* const* b, float s[MB][4]) {
  __m512 acc[MB][4];
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= k; p += 16) {
    __m512 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = load16(b[j] + p);
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m512 av = _mm512_loadu_ps(a[i] + p);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  if (p < k) {
    const __mmask16 mk = lo_mask(static_cast<int>(k - p));
    __m512 bv[4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = load16(b[j] + p, mk);
#pragma GCC unroll 4
    for (int i = 0; i < MB; ++i) {
      const __m512 av = _mm512_maskz_loadu_ps(mk, a[i] + p);
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) s[i][j] = _mm512_reduce_add_ps(acc[i][j]);
}

template <int MB, class TB>
void dots_rows(int nb, int64_t k, const float* A, int64_t lda, const TB* const* b, float* C, int64_t ldc,
               float alpha, float beta) {
  const float* a[MB];
  for (int i = 0; i < MB; ++i) a[i] = A + i * lda;
  float s[MB][4];
  dots_block<MB, TB>(k, a, b, s);
  for (int i = 0; i < MB; ++i) {
    float* c = C + i * ldc;
    for (int j = 0; j < nb; ++j) c[j] = beta == 0.f ? alpha * s[i][j] : alpha * s[i][j] + beta * c[j];
  }
}

// Four rows of B at a time (they stay in L1 while every row of A passes over them).
// B f32 or bf16 (widened exactly as it is loaded).
template <class TB>
void dots_t(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const TB* B, int64_t ldb, float* C,
            int64_t ldc, float alpha, float beta) {
  for (int64_t j0 = 0; j0 < n; j0 += 4) {
    const int nb = n - j0 < 4 ? static_cast<int>(n - j0) : 4;
    const TB* b[4];
    for (int j = 0; j < 4; ++j) b[j] = B + (j0 + (j < nb ? j : nb - 1)) * ldb;  // extra lanes repeat the last row
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) dots_rows<4>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta);
    switch (m - i) {
      case 3: dots_rows<3>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta); break;
      case 2: dots_rows<2>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta); break;
      case 1: dots_rows<1>(nb, k, A + i * lda, lda, b, C + i * ldc + j0, ldc, alpha, beta); break;
      default: break;
    }
  }
}

void dots(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
          int64_t ldc, float alpha, float beta) {
  dots_t(m, n, k, A, lda, B, ldb, C, ldc, alpha, beta);
}
void dots_bf16(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const uint16_t* B, int64_t ldb, float* C,
               int64_t ldc, float alpha, float beta) {
  dots_t(m, n, k, A, lda, B, ldb, C, ldc, alpha, beta);
}

void widen(const uint16_t* src, float* dst, int64_t n) { widen_bf16_loop(src, dst, n); }

const GemmKernel kKernel = {"avx512 14x32", MR,   NR,     /*kc*/ 256,    /*mc*/ 14 * 24, /*nc*/ 1024, tile, pack_rows,
                            pack_cols,      dots, widen, pack_rows_bf16, dots_bf16};

}  // namespace

const GemmKernel* gemm_kernel_avx512() { return &kKernel; }

}  // namespace cpu
}  // namespace itool
