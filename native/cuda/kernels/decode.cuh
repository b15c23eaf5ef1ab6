// KV-cache write and decode attention over the block KV cache.
// Decode: one warp per (row b, new token j, query head h); lanes split the head dim
// (D <= 128 -> at most 4 elements per lane) and walk the row's positions <= its own with
// an online softmax in f32. Blocks come from the row's block table, so forked rows that
// share blocks read the same memory.
#pragma once
#include "common.cuh"

namespace itool {
namespace cuda {

struct KvArgs {
  int64_t B, n_new, Hq, Hkv, D, block_size, max_blocks;
  const int32_t* block_table;
  const int32_t* ctx_lens;
  float scale;
  const bf16* q;
  const bf16* k_new;
  const bf16* v_new;
  bf16* k_cache;
  bf16* v_cache;
  const bf16* kc;
  const bf16* vc;
  bf16* out;
  int* err;
};

__global__ void kv_write_kernel(KvArgs a) {
  const int64_t total = a.B * a.n_new * a.Hkv * a.D;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t d = e % a.D;
    const int64_t hk = (e / a.D) % a.Hkv;
    const int64_t j = (e / (a.D * a.Hkv)) % a.n_new;
    const int64_t b = e / (a.D * a.Hkv * a.n_new);
    const int64_t pos = (int64_t)a.ctx_lens[b] - a.n_new + j;
    const int64_t slot = pos < 0 ? -1 : pos / a.block_size;
    const int32_t blk = (slot >= 0 && slot < a.max_blocks) ? a.block_table[b * a.max_blocks + slot] : -1;
    if (blk < 0) {
      if (d == 0) set_error(a.err, kErrKvSlot);
      continue;
    }
    const int64_t dst = (((int64_t)blk * a.block_size + pos % a.block_size) * a.Hkv + hk) * a.D + d;
    a.k_cache[dst] = a.k_new[e];
    a.v_cache[dst] = a.v_new[e];
  }
}

__global__ void __launch_bounds__(128) decode_kernel(KvArgs a) {
  const int64_t w = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (w >= a.B * a.n_new * a.Hq) return;
  const int64_t h = w % a.Hq;
  const int64_t j = (w / a.Hq) % a.n_new;
  const int64_t b = w / (a.Hq * a.n_new);
  const int64_t hk = h / (a.Hq / a.Hkv);
  const int64_t D = a.D;
  const int64_t last = (int64_t)a.ctx_lens[b] - a.n_new + j;  // this token's position
  constexpr int E = 4;                                         // D <= 128
  float q[E], acc[E];
  const bf16* qp = a.q + w * D;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t d = lane + 32 * i;
    q[i] = d < D ? b2f(qp[d]) * a.scale * 1.4426950408889634f : 0.f;
    acc[i] = 0.f;
  }
  float m = -INFINITY, l = 0.f;
  bool bad = last < 0;
  for (int64_t p = 0; p <= last; ++p) {
    const int64_t slot = p / a.block_size;
    const int32_t blk = slot < a.max_blocks ? a.block_table[b * a.max_blocks + slot] : -1;
    if (blk < 0) { bad = true; break; }
    const int64_t base = (((int64_t)blk * a.block_size + p % a.block_size) * a.Hkv + hk) * D;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const int64_t d = lane + 32 * i;
      if (d < D) s += q[i] * b2f(a.kc[base + d]);
    }
    s = warp_sum(s);
    const float mn = fmaxf(m, s);
    const float alpha = exp2f(m - mn);
    const float pe = exp2f(s - mn);
    l = l * alpha + pe;
#pragma unroll
    for (int i = 0; i < E; ++i) {
      const int64_t d = lane + 32 * i;
      acc[i] = acc[i] * alpha + (d < D ? pe * b2f(a.vc[base + d]) : 0.f);
    }
    m = mn;
  }
  if (bad && lane == 0) set_error(a.err, kErrKvSlot);
  const float inv = (!bad && l > 0.f) ? 1.f / l : 0.f;
  bf16* o = a.out + w * D;
#pragma unroll
  for (int i = 0; i < E; ++i) {
    const int64_t d = lane + 32 * i;
    if (d < D) o[d] = f2b(acc[i] * inv);
  }
}

}  // namespace cuda
}  // namespace itool
