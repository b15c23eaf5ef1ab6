// Flash-attention-style forward: causal GQA over packed variable-length sequences.
// One block = one query tile of BR = 64 rows of one head; 4 warps, warp w owns rows
// [16w, 16w + 16) from S = Q K^T through the online softmax to O += P V, so only the
// K/V tile loads need block barriers. bf16 tensor cores (wmma), f32 softmax and
// accumulation in shared memory; DP is the head dim padded to 32/64/128.
#pragma once
#include "attention_common.cuh"

namespace itool {
namespace cuda {

struct AttnFwdArgs {
  int64_t T, Hq, Hkv, D;
  const int32_t* cu;
  const int2* map;
  float scale_log2;  // scale * log2(e)
  const bf16 *q, *k, *v;
  bf16* out;
  float* lse;
  bool vec;
};

template <int DP>
struct AttnFwdCfg {
  static constexpr int BR = 64, BC = 64, THREADS = 128;
  static constexpr int LDQ = DP + 8, LDS = BC + 4, LDP = BC + 8, LDO = DP + 4;
  static constexpr int OFF_Q = 0;
  static constexpr int OFF_K = OFF_Q + align128(BR * LDQ * 2);
  static constexpr int OFF_V = OFF_K + align128(BC * LDQ * 2);
  static constexpr int OFF_S = OFF_V + align128(BC * LDQ * 2);
  static constexpr int OFF_P = OFF_S + align128(BR * LDS * 4);
  static constexpr int OFF_O = OFF_P + align128(BR * LDP * 2);
  static constexpr int SMEM = OFF_O + align128(BR * LDO * 4);
};

template <int DP>
__global__ void __launch_bounds__(128) attn_fwd_kernel(AttnFwdArgs a) {
  using namespace nvcuda;
  using Cfg = AttnFwdCfg<DP>;
  constexpr int BR = Cfg::BR, BC = Cfg::BC, LDQ = Cfg::LDQ, LDS = Cfg::LDS, LDP = Cfg::LDP, LDO = Cfg::LDO;
  ITOOL_DYNAMIC_SMEM(unsigned char, smem, 128);
  bf16* Qs = reinterpret_cast<bf16*>(smem + Cfg::OFF_Q);
  bf16* Ks = reinterpret_cast<bf16*>(smem + Cfg::OFF_K);
  bf16* Vs = reinterpret_cast<bf16*>(smem + Cfg::OFF_V);
  float* Ss = reinterpret_cast<float*>(smem + Cfg::OFF_S);
  bf16* Ps = reinterpret_cast<bf16*>(smem + Cfg::OFF_P);
  float* Os = reinterpret_cast<float*>(smem + Cfg::OFF_O);

  const int2 e = a.map[blockIdx.x];
  if (e.x < 0) return;
  const int h = blockIdx.y;
  const int hk = h / (int)(a.Hq / a.Hkv);
  const int seq_start = a.cu[e.x], seq_end = a.cu[e.x + 1];
  const int q0 = e.y;
  const int nq = min(BR, seq_end - q0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = (int)a.D;

  load_rows<BR, DP, LDQ, 128>(Qs, a.q + ((int64_t)q0 * a.Hq + h) * D, a.Hq * D, nq, D, a.vec);
  for (int i = threadIdx.x; i < BR * LDO; i += 128) Os[i] = 0.f;

  // lane -> (row, half of the columns)
  const int r = warp * 16 + (lane >> 1), half = lane & 1;
  const int qi = q0 + r;
  const bool row_ok = r < nq;
  float m = -INFINITY, l = 0.f;

  const int kend = min(seq_end, q0 + nq);
  for (int k0 = seq_start; k0 < kend; k0 += BC) {
    const int nk = min(BC, seq_end - k0);
    __syncthreads();
    load_rows<BC, DP, LDQ, 128>(Ks, a.k + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);
    load_rows<BC, DP, LDQ, 128>(Vs, a.v + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);
    __syncthreads();
    // S band = Q band K^T
#pragma unroll
    for (int n = 0; n < BC / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::fill_fragment(acc, 0.f);
#pragma unroll
      for (int kk = 0; kk < DP; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, Qs + warp * 16 * LDQ + kk, LDQ);
        wmma::load_matrix_sync(fb, Ks + n * 16 * LDQ + kk, LDQ);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(Ss + warp * 16 * LDS + n * 16, acc, LDS, wmma::mem_row_major);
    }
    __syncwarp();
    // online softmax on this lane's half row
    constexpr int HC = BC / 2;
    float sv[HC];
    float mloc = -INFINITY;
#pragma unroll
    for (int c = 0; c < HC; ++c) {
      const int col = half * HC + c, kj = k0 + col;
      const bool ok = row_ok && col < nk && kj <= qi;
      sv[c] = ok ? Ss[r * LDS + col] * a.scale_log2 : -INFINITY;
      mloc = fmaxf(mloc, sv[c]);
    }
    mloc = fmaxf(mloc, __shfl_xor_sync(0xffffffffu, mloc, 1));
    const float mnew = fmaxf(m, mloc);
    const float alpha = mnew == -INFINITY ? 1.f : exp2f(m - mnew);
    float sum = 0.f;
#pragma unroll
    for (int c = 0; c < HC; ++c) {
      const float p = mnew == -INFINITY ? 0.f : exp2f(sv[c] - mnew);
      Ps[r * LDP + half * HC + c] = f2b(p);
      sum += p;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * alpha + sum;
    m = mnew;
    if (alpha != 1.f) {
#pragma unroll 8
      for (int d = half * (DP / 2); d < (half + 1) * (DP / 2); ++d) Os[r * LDO + d] *= alpha;
    }
    __syncwarp();
    // O band += P band V
#pragma unroll
    for (int d = 0; d < DP / 16; ++d) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
      wmma::load_matrix_sync(acc, Os + warp * 16 * LDO + d * 16, LDO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < BC; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, Ps + warp * 16 * LDP + kk, LDP);
        wmma::load_matrix_sync(fb, Vs + kk * LDQ + d * 16, LDQ);
        wmma::mma_sync(acc, fa, fb, acc);
      }
      wmma::store_matrix_sync(Os + warp * 16 * LDO + d * 16, acc, LDO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (row_ok) {
    const float inv = l > 0.f ? 1.f / l : 0.f;
    bf16* o = a.out + ((int64_t)qi * a.Hq + h) * D;
    for (int d = half * (DP / 2); d < (half + 1) * (DP / 2); ++d)
      if (d < D) o[d] = f2b(Os[r * LDO + d] * inv);
    if (half == 0 && a.lse) a.lse[(int64_t)qi * a.Hq + h] = (m + log2f(l)) * kLn2;
  }
}

}  // namespace cuda
}  // namespace itool
