// Flash-attention-style backward, deterministic (no atomics), in three kernels:
//  1. attn_bwd_dot_kernel: Dvec[t, h] = sum_d dO * O, and lse in log2 units.
//  2. attn_bwd_dkdv_kernel: one block per key tile of one KV head; loops over the
//     query heads of its group and the query tiles that see the keys, recomputing
//     P = exp(S - lse); dV += P^T dO, dK += dS^T Q with dS = P (dP - Dvec), dP = dO V^T.
//     dK/dV accumulate in wmma fragments (registers), warp w owns key rows [16w, 16w+16).
//  3. attn_bwd_dq_kernel: one block per query tile of one head; dQ += dS K, recomputing
//     S and dP (two extra tile products instead of atomics on dQ).
#pragma once
#include "attention_common.cuh"

namespace itool {
namespace cuda {

struct AttnBwdArgs {
  int64_t T, Hq, Hkv, D;
  const int32_t* cu;
  const int2* map;
  float scale, scale_log2;
  const bf16 *q, *k, *v, *out, *dout;
  const float* lse;   // natural-log lse from the forward [T, Hq]
  float* lse2;        // lse * log2(e) [T, Hq] (written by kernel 1)
  float* dvec;        // [T, Hq]
  bf16 *dq, *dk, *dv;
  // GQA split: when set, block (tile, h) handles one query head h and writes its share of
  // dK (scaled) and dV in f32 to [T, Hq, D]; attn_bwd_gqa_reduce_kernel sums each group.
  float *dk_part, *dv_part;
  bool vec;
};

// One warp per (token, head).
__global__ void attn_bwd_dot_kernel(AttnBwdArgs a) {
  const int64_t w = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= a.T * a.Hq) return;
  const bf16* o = a.out + w * a.D;
  const bf16* d = a.dout + w * a.D;
  float s = 0.f;
  for (int64_t j = lane; j < a.D; j += 32) s += b2f(o[j]) * b2f(d[j]);
  s = warp_sum(s);
  if (lane == 0) {
    a.dvec[w] = s;
    a.lse2[w] = a.lse[w] * kLog2e;
  }
}

template <int DP>
struct AttnBwdCfg {
  static constexpr int BC = 64, BR = DP >= 128 ? 32 : 64, THREADS = 128;
  static constexpr int LDQ = DP + 8;
  // dkdv kernel: S^T/dP^T tiles are [BC, BR]
  static constexpr int LDT = BR + 4, LDTB = BR + 8;
  static constexpr int KV_K = 0;
  static constexpr int KV_V = KV_K + align128(BC * LDQ * 2);
  static constexpr int KV_Q = KV_V + align128(BC * LDQ * 2);
  static constexpr int KV_DO = KV_Q + align128(BR * LDQ * 2);
  static constexpr int KV_S = KV_DO + align128(BR * LDQ * 2);
  static constexpr int KV_DP = KV_S + align128(BC * LDT * 4);
  static constexpr int KV_PB = KV_DP + align128(BC * LDT * 4);
  static constexpr int KV_DSB = KV_PB + align128(BC * LDTB * 2);
  static constexpr int KV_L = KV_DSB + align128(BC * LDTB * 2);
  static constexpr int KV_DV = KV_L + align128(BR * 4);
  static constexpr int KV_SMEM = KV_DV + align128(BR * 4);
  // dq kernel: query tile of QR = 64 rows, S/dP tiles are [QR, BC]
  static constexpr int QR = 64;
  static constexpr int LDS = BC + 4, LDSB = BC + 8;
  static constexpr int DQ_Q = 0;
  static constexpr int DQ_DO = DQ_Q + align128(QR * LDQ * 2);
  static constexpr int DQ_K = DQ_DO + align128(QR * LDQ * 2);
  static constexpr int DQ_V = DQ_K + align128(BC * LDQ * 2);
  static constexpr int DQ_S = DQ_V + align128(BC * LDQ * 2);
  static constexpr int DQ_DP = DQ_S + align128(QR * LDS * 4);
  static constexpr int DQ_DSB = DQ_DP + align128(QR * LDS * 4);
  static constexpr int DQ_SMEM = DQ_DSB + align128(QR * LDSB * 2);
};

template <int DP>
__global__ void __launch_bounds__(128) attn_bwd_dkdv_kernel(AttnBwdArgs a) {
  using namespace nvcuda;
  using Cfg = AttnBwdCfg<DP>;
  constexpr int BC = Cfg::BC, BR = Cfg::BR, LDQ = Cfg::LDQ, LDT = Cfg::LDT, LDTB = Cfg::LDTB;
  ITOOL_DYNAMIC_SMEM(unsigned char, smem, 128);
  bf16* Ks = reinterpret_cast<bf16*>(smem + Cfg::KV_K);
  bf16* Vs = reinterpret_cast<bf16*>(smem + Cfg::KV_V);
  bf16* Qs = reinterpret_cast<bf16*>(smem + Cfg::KV_Q);
  bf16* dOs = reinterpret_cast<bf16*>(smem + Cfg::KV_DO);
  float* St = reinterpret_cast<float*>(smem + Cfg::KV_S);
  float* dPt = reinterpret_cast<float*>(smem + Cfg::KV_DP);
  bf16* Pb = reinterpret_cast<bf16*>(smem + Cfg::KV_PB);
  bf16* dSb = reinterpret_cast<bf16*>(smem + Cfg::KV_DSB);
  float* Ls = reinterpret_cast<float*>(smem + Cfg::KV_L);
  float* Dv = reinterpret_cast<float*>(smem + Cfg::KV_DV);

  const int2 e = a.map[blockIdx.x];
  if (e.x < 0) return;
  const int G = (int)(a.Hq / a.Hkv);
  const bool split = a.dk_part != nullptr;
  // split: grid.y runs over query heads, each block one head; else over KV heads, each
  // block the whole group
  const int hk = split ? (int)blockIdx.y / G : (int)blockIdx.y;
  const int g_begin = split ? (int)blockIdx.y % G : 0, g_end = split ? g_begin + 1 : G;
  const int seq_end = a.cu[e.x + 1];
  const int k0 = e.y;
  const int nk = min(BC, seq_end - k0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = (int)a.D;

  load_rows<BC, DP, LDQ, 128>(Ks, a.k + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);
  load_rows<BC, DP, LDQ, 128>(Vs, a.v + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dK[DP / 16], dV[DP / 16];
#pragma unroll
  for (int d = 0; d < DP / 16; ++d) {
    wmma::fill_fragment(dK[d], 0.f);
    wmma::fill_fragment(dV[d], 0.f);
  }
  // lane -> (key row, half of the query columns)
  const int r = warp * 16 + (lane >> 1), half = lane & 1;
  const int kj = k0 + r;
  constexpr int HC = BR / 2;

  for (int g = g_begin; g < g_end; ++g) {
    const int h = hk * G + g;
    for (int q0 = k0; q0 < seq_end; q0 += BR) {
      const int nq = min(BR, seq_end - q0);
      __syncthreads();
      load_rows<BR, DP, LDQ, 128>(Qs, a.q + ((int64_t)q0 * a.Hq + h) * D, a.Hq * D, nq, D, a.vec);
      load_rows<BR, DP, LDQ, 128>(dOs, a.dout + ((int64_t)q0 * a.Hq + h) * D, a.Hq * D, nq, D, a.vec);
      for (int i = threadIdx.x; i < BR; i += 128) {
        Ls[i] = i < nq ? a.lse2[(int64_t)(q0 + i) * a.Hq + h] : 0.f;
        Dv[i] = i < nq ? a.dvec[(int64_t)(q0 + i) * a.Hq + h] : 0.f;
      }
      __syncthreads();
      // S^T band = K band Q^T ; dP^T band = V band dO^T
#pragma unroll
      for (int n = 0; n < BR / 16; ++n) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> s, dp;
        wmma::fill_fragment(s, 0.f);
        wmma::fill_fragment(dp, 0.f);
#pragma unroll
        for (int kk = 0; kk < DP; kk += 16) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
          wmma::load_matrix_sync(fa, Ks + warp * 16 * LDQ + kk, LDQ);
          wmma::load_matrix_sync(fb, Qs + n * 16 * LDQ + kk, LDQ);
          wmma::mma_sync(s, fa, fb, s);
          wmma::load_matrix_sync(fa, Vs + warp * 16 * LDQ + kk, LDQ);
          wmma::load_matrix_sync(fb, dOs + n * 16 * LDQ + kk, LDQ);
          wmma::mma_sync(dp, fa, fb, dp);
        }
        wmma::store_matrix_sync(St + warp * 16 * LDT + n * 16, s, LDT, wmma::mem_row_major);
        wmma::store_matrix_sync(dPt + warp * 16 * LDT + n * 16, dp, LDT, wmma::mem_row_major);
      }
      __syncwarp();
#pragma unroll 4
      for (int c = 0; c < HC; ++c) {
        const int col = half * HC + c, qi = q0 + col;
        const bool ok = r < nk && col < nq && kj <= qi;
        const float p = ok ? exp2f(St[r * LDT + col] * a.scale_log2 - Ls[col]) : 0.f;
        Pb[r * LDTB + col] = f2b(p);
        dSb[r * LDTB + col] = f2b(p * (dPt[r * LDT + col] - Dv[col]));
      }
      __syncwarp();
      // dV += P^T dO ; dK += dS^T Q
#pragma unroll
      for (int d = 0; d < DP / 16; ++d) {
#pragma unroll
        for (int kk = 0; kk < BR; kk += 16) {
          wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
          wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
          wmma::load_matrix_sync(fa, Pb + warp * 16 * LDTB + kk, LDTB);
          wmma::load_matrix_sync(fb, dOs + kk * LDQ + d * 16, LDQ);
          wmma::mma_sync(dV[d], fa, fb, dV[d]);
          wmma::load_matrix_sync(fa, dSb + warp * 16 * LDTB + kk, LDTB);
          wmma::load_matrix_sync(fb, Qs + kk * LDQ + d * 16, LDQ);
          wmma::mma_sync(dK[d], fa, fb, dK[d]);
        }
      }
    }
  }
  // write dK * scale and dV through this warp's band of St (16 x LDT >= 16 x 16)
  __syncwarp();
  float* sc = St + warp * 16 * LDT;
#pragma unroll
  for (int which = 0; which < 2; ++which) {
    bf16* dst = which == 0 ? a.dk : a.dv;
    const float mul = which == 0 ? a.scale : 1.f;
#pragma unroll
    for (int d = 0; d < DP / 16; ++d) {
      wmma::store_matrix_sync(sc, which == 0 ? dK[d] : dV[d], LDT, wmma::mem_row_major);
      __syncwarp();
      for (int i = lane; i < 256; i += 32) {
        const int rr = warp * 16 + i / 16, dd = d * 16 + i % 16;
        if (rr >= nk || dd >= D) continue;
        const float val = sc[(i / 16) * LDT + i % 16] * mul;
        if (split)
          (which == 0 ? a.dk_part : a.dv_part)[((int64_t)(k0 + rr) * a.Hq + hk * G + g_begin) * D + dd] = val;
        else
          dst[((int64_t)(k0 + rr) * a.Hkv + hk) * D + dd] = f2b(val);
      }
      __syncwarp();
    }
  }
}

// dk[t, hk, :] = sum over the group's heads of dk_part[t, h, :] (fixed order), same for dv.
__global__ void attn_bwd_gqa_reduce_kernel(AttnBwdArgs a) {
  const int64_t total = a.T * a.Hkv * a.D;
  const int64_t G = a.Hq / a.Hkv;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = e % a.D, hk = (e / a.D) % a.Hkv, t = e / (a.D * a.Hkv);
    float sk = 0.f, sv = 0.f;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t src = (t * a.Hq + hk * G + g) * a.D + d;
      sk += a.dk_part[src];
      sv += a.dv_part[src];
    }
    a.dk[e] = f2b(sk);
    a.dv[e] = f2b(sv);
  }
}

template <int DP>
__global__ void __launch_bounds__(128) attn_bwd_dq_kernel(AttnBwdArgs a) {
  using namespace nvcuda;
  using Cfg = AttnBwdCfg<DP>;
  constexpr int BC = Cfg::BC, QR = Cfg::QR, LDQ = Cfg::LDQ, LDS = Cfg::LDS, LDSB = Cfg::LDSB;
  ITOOL_DYNAMIC_SMEM(unsigned char, smem, 128);
  bf16* Qs = reinterpret_cast<bf16*>(smem + Cfg::DQ_Q);
  bf16* dOs = reinterpret_cast<bf16*>(smem + Cfg::DQ_DO);
  bf16* Ks = reinterpret_cast<bf16*>(smem + Cfg::DQ_K);
  bf16* Vs = reinterpret_cast<bf16*>(smem + Cfg::DQ_V);
  float* Ss = reinterpret_cast<float*>(smem + Cfg::DQ_S);
  float* dPs = reinterpret_cast<float*>(smem + Cfg::DQ_DP);
  bf16* dSb = reinterpret_cast<bf16*>(smem + Cfg::DQ_DSB);

  const int2 e = a.map[blockIdx.x];
  if (e.x < 0) return;
  const int h = blockIdx.y;
  const int hk = h / (int)(a.Hq / a.Hkv);
  const int seq_start = a.cu[e.x], seq_end = a.cu[e.x + 1];
  const int q0 = e.y;
  const int nq = min(QR, seq_end - q0);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int D = (int)a.D;

  load_rows<QR, DP, LDQ, 128>(Qs, a.q + ((int64_t)q0 * a.Hq + h) * D, a.Hq * D, nq, D, a.vec);
  load_rows<QR, DP, LDQ, 128>(dOs, a.dout + ((int64_t)q0 * a.Hq + h) * D, a.Hq * D, nq, D, a.vec);
  const int r = warp * 16 + (lane >> 1), half = lane & 1;
  const int qi = q0 + r;
  const bool row_ok = r < nq;
  const float l2 = row_ok ? a.lse2[(int64_t)qi * a.Hq + h] : 0.f;
  const float dvr = row_ok ? a.dvec[(int64_t)qi * a.Hq + h] : 0.f;
  constexpr int HC = BC / 2;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> dQ[DP / 16];
#pragma unroll
  for (int d = 0; d < DP / 16; ++d) wmma::fill_fragment(dQ[d], 0.f);

  const int kend = min(seq_end, q0 + nq);
  for (int k0 = seq_start; k0 < kend; k0 += BC) {
    const int nk = min(BC, seq_end - k0);
    __syncthreads();
    load_rows<BC, DP, LDQ, 128>(Ks, a.k + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);
    load_rows<BC, DP, LDQ, 128>(Vs, a.v + ((int64_t)k0 * a.Hkv + hk) * D, a.Hkv * D, nk, D, a.vec);
    __syncthreads();
#pragma unroll
    for (int n = 0; n < BC / 16; ++n) {
      wmma::fragment<wmma::accumulator, 16, 16, 16, float> s, dp;
      wmma::fill_fragment(s, 0.f);
      wmma::fill_fragment(dp, 0.f);
#pragma unroll
      for (int kk = 0; kk < DP; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> fb;
        wmma::load_matrix_sync(fa, Qs + warp * 16 * LDQ + kk, LDQ);
        wmma::load_matrix_sync(fb, Ks + n * 16 * LDQ + kk, LDQ);
        wmma::mma_sync(s, fa, fb, s);
        wmma::load_matrix_sync(fa, dOs + warp * 16 * LDQ + kk, LDQ);
        wmma::load_matrix_sync(fb, Vs + n * 16 * LDQ + kk, LDQ);
        wmma::mma_sync(dp, fa, fb, dp);
      }
      wmma::store_matrix_sync(Ss + warp * 16 * LDS + n * 16, s, LDS, wmma::mem_row_major);
      wmma::store_matrix_sync(dPs + warp * 16 * LDS + n * 16, dp, LDS, wmma::mem_row_major);
    }
    __syncwarp();
#pragma unroll 4
    for (int c = 0; c < HC; ++c) {
      const int col = half * HC + c, kj = k0 + col;
      const bool ok = row_ok && col < nk && kj <= qi;
      const float p = ok ? exp2f(Ss[r * LDS + col] * a.scale_log2 - l2) : 0.f;
      dSb[r * LDSB + col] = f2b(p * (dPs[r * LDS + col] - dvr));
    }
    __syncwarp();
#pragma unroll
    for (int d = 0; d < DP / 16; ++d) {
#pragma unroll
      for (int kk = 0; kk < BC; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> fa;
        wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> fb;
        wmma::load_matrix_sync(fa, dSb + warp * 16 * LDSB + kk, LDSB);
        wmma::load_matrix_sync(fb, Ks + kk * LDQ + d * 16, LDQ);
        wmma::mma_sync(dQ[d], fa, fb, dQ[d]);
      }
    }
  }
  __syncwarp();
  float* sc = Ss + warp * 16 * LDS;
#pragma unroll
  for (int d = 0; d < DP / 16; ++d) {
    wmma::store_matrix_sync(sc, dQ[d], LDS, wmma::mem_row_major);
    __syncwarp();
    for (int i = lane; i < 256; i += 32) {
      const int rr = warp * 16 + i / 16, dd = d * 16 + i % 16;
      if (rr < nq && dd < D) a.dq[((int64_t)(q0 + rr) * a.Hq + h) * D + dd] = f2b(sc[(i / 16) * LDS + i % 16] * a.scale);
    }
    __syncwarp();
  }
}

}  // namespace cuda
}  // namespace itool
