// Shared pieces of the flash-attention-style kernels: the tile map over packed
// variable-length sequences, row loads into padded shared tiles, shared-memory layout.
#pragma once
#include <mma.h>
#include "common.cuh"

// Dynamic shared memory of the attention kernels (`extern __shared__`); the emulated build
// (native/cuda/emu) defines it as an exactly sized, bounds-checked block per block.
#ifndef ITOOL_DYNAMIC_SMEM
#define ITOOL_DYNAMIC_SMEM(type, name, align) extern __shared__ __align__(align) type name[]
#endif

namespace itool {
namespace cuda {

// Writes map[i] = (sequence, first token) for every tile of `tile` tokens of every
// sequence; unused entries get (-1, 0). Validates cu_seqlens (0 = cu[0] <= ... <= cu[nseq] = T).
// One thread: nseq is small next to the attention work.
static // With `reverse`, the entries are listed last tile first: for causal attention the tiles
// late in a sequence carry the most work, and blocks start in index order.
__global__ void tile_map_kernel(const int32_t* cu, int64_t nseq, int64_t T, int tile, int2* map, int64_t cap,
                                int* err, bool reverse) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  int64_t n = 0;
  bool ok = cu[0] == 0 && cu[nseq] == T;
  for (int64_t s = 0; s < nseq && ok; ++s) {
    const int32_t a = cu[s], b = cu[s + 1];
    if (b < a || b > T) { ok = false; break; }
    for (int32_t t = a; t < b; t += tile) {
      if (n >= cap) { ok = false; break; }
      map[n++] = make_int2((int)s, t);
    }
  }
  if (!ok) {
    set_error(err, kErrSeqlens);
    n = 0;
  }
  if (reverse)
    for (int64_t i = 0, j = n - 1; i < j; ++i, --j) {
      const int2 t = map[i];
      map[i] = map[j];
      map[j] = t;
    }
  for (int64_t i = n; i < cap; ++i) map[i] = make_int2(-1, 0);
}

// Loads `nrows` valid rows of D elements (row r at g + r * stride) into s[r * LD + d],
// zero for d >= D or r >= nrows, for ROWS x DP.
template <int ROWS, int DP, int LD, int THREADS>
__device__ __forceinline__ void load_rows(bf16* s, const bf16* g, int64_t stride, int nrows, int D, bool vec) {
  if (vec) {
    constexpr int VPR = DP / 8;
    for (int v = threadIdx.x; v < ROWS * VPR; v += THREADS) {
      const int r = v / VPR, d = (v % VPR) * 8;
      uint4 x = make_uint4(0, 0, 0, 0);
      if (r < nrows && d < D) x = *reinterpret_cast<const uint4*>(g + r * stride + d);
      *reinterpret_cast<uint4*>(s + r * LD + d) = x;
    }
  } else {
    for (int i = threadIdx.x; i < ROWS * DP; i += THREADS) {
      const int r = i / DP, d = i % DP;
      s[r * LD + d] = (r < nrows && d < D) ? g[r * stride + d] : f2b(0.f);
    }
  }
}

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__host__ __device__ constexpr int align128(int x) { return (x + 127) / 128 * 128; }

}  // namespace cuda
}  // namespace itool
