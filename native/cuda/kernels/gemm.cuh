// Built-in GEMM kernels, used when cuBLAS is not available (and for operand types
// cuBLASLt is not asked to handle). Row-major; op(A) [M,K], op(B) [K,N], C [M,N].
//  - gemm_wmma_kernel: bf16 tensor cores (wmma 16x16x16), f32 accumulation; A and B
//    of any float dtype are rounded to bf16 in shared memory. 128x128x32 tiles, 8 warps.
//  - gemm_f32_kernel: exact f32 SIMT path when both A and B are f32.
#pragma once
#include <mma.h>
#include "common.cuh"

namespace itool {
namespace cuda {

struct GemmArgs {
  int64_t M, N, K;
  const void* A; int64_t lda, strideA; int a_type; bool transA;
  const void* B; int64_t ldb, strideB; int b_type; bool transB;
  void* C; int64_t ldc, strideC; int c_type;
  float alpha, beta;
  bool a_vec, b_vec;  // 16-byte vector loads allowed along the contiguous dimension
  int64_t batch0;     // first batch index of this launch (grid.z counts from it)
};

// Element (r, c) of a logical [R, C] tile source lives at g[c*ld + r] when `trans`
// (stored transposed) and at g[r*ld + c] otherwise. Writes s[r*LDS + c] as bf16,
// zero outside [R, C].
template <int ROWS, int COLS, int LDS, int THREADS>
__device__ __forceinline__ void load_tile_bf16(bf16* s, const void* g, int dt, int64_t ld, bool trans, int64_t r0,
                                               int64_t c0, int64_t R, int64_t C, bool vec) {
  const bool full = (r0 + ROWS <= R) && (c0 + COLS <= C);
  if (vec && full && dt == kBF16) {
    const bf16* gb = static_cast<const bf16*>(g);
    if (!trans) {
      constexpr int VPR = COLS / 8;
      for (int v = threadIdx.x; v < ROWS * VPR; v += THREADS) {
        int r = v / VPR, c = (v % VPR) * 8;
        uint4 x = *reinterpret_cast<const uint4*>(gb + (r0 + r) * ld + c0 + c);
        *reinterpret_cast<uint4*>(s + r * LDS + c) = x;
      }
    } else {
      constexpr int VPC = ROWS / 8;
      for (int v = threadIdx.x; v < COLS * VPC; v += THREADS) {
        int c = v / VPC, r = (v % VPC) * 8;
        uint4 x = *reinterpret_cast<const uint4*>(gb + (c0 + c) * ld + r0 + r);
        const bf16* xe = reinterpret_cast<const bf16*>(&x);
#pragma unroll
        for (int e = 0; e < 8; ++e) s[(r + e) * LDS + c] = xe[e];
      }
    }
    return;
  }
  if (!trans) {
    for (int i = threadIdx.x; i < ROWS * COLS; i += THREADS) {
      int r = i / COLS, c = i % COLS;
      int64_t gr = r0 + r, gc = c0 + c;
      s[r * LDS + c] = (gr < R && gc < C) ? load_as_bf16(g, dt, gr * ld + gc) : f2b(0.f);
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * COLS; i += THREADS) {
      int r = i % ROWS, c = i / ROWS;
      int64_t gr = r0 + r, gc = c0 + c;
      s[r * LDS + c] = (gr < R && gc < C) ? load_as_bf16(g, dt, gc * ld + gr) : f2b(0.f);
    }
  }
}

constexpr int kGemmBM = 128, kGemmBN = 128, kGemmBK = 32, kGemmThreads = 256;

__global__ void __launch_bounds__(kGemmThreads) gemm_wmma_kernel(GemmArgs a) {
  using namespace nvcuda;
  constexpr int BM = kGemmBM, BN = kGemmBN, BK = kGemmBK;
  constexpr int LDA = BK + 8, LDB = BN + 8;
  __shared__ __align__(128) bf16 As[BM * LDA];
  __shared__ __align__(128) bf16 Bs[BK * LDB];
  __shared__ __align__(128) float scratch[8][16 * 16];

  const int64_t b = a.batch0 + blockIdx.z;
  const void* A = static_cast<const char*>(a.A) + b * a.strideA * (a.a_type == kF32 ? 4 : 2);
  const void* B = static_cast<const char*>(a.B) + b * a.strideB * (a.b_type == kF32 ? 4 : 2);
  void* C = static_cast<char*>(a.C) + b * a.strideC * (a.c_type == kF32 ? 4 : 2);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp >> 2, wn = warp & 3;  // 2 x 4 warps, warp tile 64 x 32

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  for (int64_t k0 = 0; k0 < a.K; k0 += BK) {
    load_tile_bf16<BM, BK, LDA, kGemmThreads>(As, A, a.a_type, a.lda, a.transA, m0, k0, a.M, a.K, a.a_vec);
    load_tile_bf16<BK, BN, LDB, kGemmThreads>(Bs, B, a.b_type, a.ldb, a.transB, k0, n0, a.K, a.N, a.b_vec);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) wmma::load_matrix_sync(fa[i], As + (wm * 64 + i * 16) * LDA + kk, LDA);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], Bs + kk * LDB + wn * 32 + j * 16, LDB);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }

  float* sc = scratch[warp];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(sc, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int64_t rb = m0 + wm * 64 + i * 16, cb = n0 + wn * 32 + j * 16;
      for (int e = lane; e < 256; e += 32) {
        int64_t r = rb + e / 16, c = cb + e % 16;
        if (r < a.M && c < a.N) {
          float v = a.alpha * sc[e];
          int64_t off = r * a.ldc + c;
          if (a.beta != 0.f) v += a.beta * load_as_float(C, a.c_type, off);
          store_from_float(C, a.c_type, off, v);
        }
      }
      __syncwarp();
    }
}

// Fast path for bf16 A and B whose contiguous dimensions are multiples of 8 (16-byte
// vectors never straddle a matrix edge, so edge vectors are loaded or zeroed whole):
// the next k-tile is loaded into registers while the current one is multiplied, then
// stored into the other of two shared buffers (one barrier per k-tile).
template <int ROWS, int COLS>
__device__ __forceinline__ void vec_load2(uint4 (&v)[2], const bf16* g, int64_t ld, bool trans, int64_t r0, int64_t c0,
                                          int64_t R, int64_t C) {
  static_assert(ROWS * COLS / 8 == 2 * kGemmThreads, "two vectors per thread");
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int i = threadIdx.x + j * kGemmThreads;
    int r, c;
    if (!trans) { r = i / (COLS / 8); c = (i % (COLS / 8)) * 8; }
    else { c = i / (ROWS / 8); r = (i % (ROWS / 8)) * 8; }
    const bool ok = (r0 + r < R) && (c0 + c < C);
    v[j] = ok ? *reinterpret_cast<const uint4*>(g + (trans ? (c0 + c) * ld + r0 + r : (r0 + r) * ld + c0 + c))
              : make_uint4(0, 0, 0, 0);
  }
}
template <int ROWS, int COLS, int LDS>
__device__ __forceinline__ void vec_store2(bf16* s, const uint4 (&v)[2], bool trans) {
#pragma unroll
  for (int j = 0; j < 2; ++j) {
    const int i = threadIdx.x + j * kGemmThreads;
    if (!trans) {
      const int r = i / (COLS / 8), c = (i % (COLS / 8)) * 8;
      *reinterpret_cast<uint4*>(s + r * LDS + c) = v[j];
    } else {
      const int c = i / (ROWS / 8), r = (i % (ROWS / 8)) * 8;
      const bf16* e = reinterpret_cast<const bf16*>(&v[j]);
#pragma unroll
      for (int k = 0; k < 8; ++k) s[(r + k) * LDS + c] = e[k];
    }
  }
}

__global__ void __launch_bounds__(kGemmThreads) gemm_wmma_pipelined_kernel(GemmArgs a) {
  using namespace nvcuda;
  constexpr int BM = kGemmBM, BN = kGemmBN, BK = kGemmBK;
  constexpr int LDA = BK + 8, LDB = BN + 8;
  __shared__ __align__(128) bf16 As[2][BM * LDA];
  __shared__ __align__(128) bf16 Bs[2][BK * LDB];
  __shared__ __align__(128) float scratch[8][16 * 16];

  const int64_t b = a.batch0 + blockIdx.z;
  const bf16* A = static_cast<const bf16*>(a.A) + b * a.strideA;
  const bf16* B = static_cast<const bf16*>(a.B) + b * a.strideB;
  void* C = static_cast<char*>(a.C) + b * a.strideC * (a.c_type == kF32 ? 4 : 2);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int wm = warp >> 2, wn = warp & 3;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  const int64_t nk = (a.K + BK - 1) / BK;
  uint4 ra[2], rb[2];
  if (nk > 0) {
    vec_load2<BM, BK>(ra, A, a.lda, a.transA, m0, 0, a.M, a.K);
    vec_load2<BK, BN>(rb, B, a.ldb, a.transB, 0, n0, a.K, a.N);
    vec_store2<BM, BK, LDA>(As[0], ra, a.transA);
    vec_store2<BK, BN, LDB>(Bs[0], rb, a.transB);
  }
  __syncthreads();
  for (int64_t kt = 0; kt < nk; ++kt) {
    const int cur = (int)(kt & 1);
    const bool more = kt + 1 < nk;
    if (more) {
      vec_load2<BM, BK>(ra, A, a.lda, a.transA, m0, (kt + 1) * BK, a.M, a.K);
      vec_load2<BK, BN>(rb, B, a.ldb, a.transB, (kt + 1) * BK, n0, a.K, a.N);
    }
#pragma unroll
    for (int kk = 0; kk < BK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa[4];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb[2];
#pragma unroll
      for (int i = 0; i < 4; ++i) wmma::load_matrix_sync(fa[i], As[cur] + (wm * 64 + i * 16) * LDA + kk, LDA);
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::load_matrix_sync(fb[j], Bs[cur] + kk * LDB + wn * 32 + j * 16, LDB);
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 2; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    if (more) {
      vec_store2<BM, BK, LDA>(As[cur ^ 1], ra, a.transA);
      vec_store2<BK, BN, LDB>(Bs[cur ^ 1], rb, a.transB);
    }
    __syncthreads();
  }

  float* sc = scratch[warp];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      wmma::store_matrix_sync(sc, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      const int64_t rb0 = m0 + wm * 64 + i * 16, cb = n0 + wn * 32 + j * 16;
      for (int e = lane; e < 256; e += 32) {
        int64_t r = rb0 + e / 16, c = cb + e % 16;
        if (r < a.M && c < a.N) {
          float v = a.alpha * sc[e];
          int64_t off = r * a.ldc + c;
          if (a.beta != 0.f) v += a.beta * load_as_float(C, a.c_type, off);
          store_from_float(C, a.c_type, off, v);
        }
      }
      __syncwarp();
    }
}

// Exact f32 path: 64x64 tiles, BK 16, 256 threads with 4x4 outputs each.
__global__ void __launch_bounds__(256) gemm_f32_kernel(GemmArgs a) {
  constexpr int BM = 64, BN = 64, BK = 16;
  __shared__ float As[BK][BM + 4];
  __shared__ float Bs[BK][BN + 4];
  const int64_t b = a.batch0 + blockIdx.z;
  const float* A = static_cast<const float*>(a.A) + b * a.strideA;
  const float* B = static_cast<const float*>(a.B) + b * a.strideB;
  void* C = static_cast<char*>(a.C) + b * a.strideC * (a.c_type == kF32 ? 4 : 2);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < a.K; k0 += BK) {
    for (int i = threadIdx.x; i < BM * BK; i += 256) {
      int m, k;
      if (!a.transA) { m = i / BK; k = i % BK; } else { k = i / BM; m = i % BM; }
      int64_t gm = m0 + m, gk = k0 + k;
      As[k][m] = (gm < a.M && gk < a.K) ? (a.transA ? A[gk * a.lda + gm] : A[gm * a.lda + gk]) : 0.f;
    }
    for (int i = threadIdx.x; i < BN * BK; i += 256) {
      int n, k;
      if (a.transB) { n = i / BK; k = i % BK; } else { k = i / BN; n = i % BN; }
      int64_t gn = n0 + n, gk = k0 + k;
      Bs[k][n] = (gn < a.N && gk < a.K) ? (a.transB ? B[gn * a.ldb + gk] : B[gk * a.ldb + gn]) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < BK; ++k) {
      float av[4], bv[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) av[i] = As[k][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bv[j] = Bs[k][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      int64_t r = m0 + ty + 16 * i, c = n0 + tx + 16 * j;
      if (r < a.M && c < a.N) {
        float v = a.alpha * acc[i][j];
        int64_t off = r * a.ldc + c;
        if (a.beta != 0.f) v += a.beta * load_as_float(C, a.c_type, off);
        store_from_float(C, a.c_type, off, v);
      }
    }
}

}  // namespace cuda
}  // namespace itool
