// CPU attention: causal grouped-query attention over packed variable-length
// sequences (forward and backward, FlashAttention-2 style tiles with an online
// softmax: the largest score buffer is one [Bq, Bk] tile), the KV-cache write and
// the decode path.
//
// Work is split into items that each own their outputs, handed to threads round
// robin: forward and dQ by (sequence, query head, query tile), dK/dV by (sequence,
// kv head, key tile) looping over the query heads of its group, decode by (row, new
// token, kv head). Within an item the sums run in a fixed order, so results do not
// depend on the thread count. Keys (and values, for the backward) are transposed once
// per call into contiguous [D, BK] blocks per (kv head, sequence, key tile).
// The backward makes one pass per (sequence, kv head) when there are at least two such
// items per thread: dQ of the whole sequence is then the item's own. Otherwise it makes
// two passes (dK/dV, then dQ) instead of accumulating dQ across key tiles with atomics:
// 7 tile products per tile pair instead of 5, but no races. Both give the same bits.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#include "ops_common.h"

namespace itool {

using cpu::F;
using cpu::Scratch;
using cpu::kernels;

namespace {

constexpr int64_t BQ = 32;  // query rows per tile
constexpr int64_t BK = 64;  // keys per tile

struct Item {
  int32_t s;   // sequence
  int32_t h;   // head (query head, or kv head for dK/dV)
  int32_t t0;  // first row of the tile, relative to the sequence start
};

std::vector<Item> make_items(const int32_t* cu, int64_t nseq, int64_t heads, int64_t tile) {
  std::vector<Item> items;
  for (int64_t s = 0; s < nseq; ++s) {
    int64_t L = cu[s + 1] - cu[s];
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t0 = 0; t0 < L; t0 += tile) items.push_back({int32_t(s), int32_t(h), int32_t(t0)});
  }
  // longest work first (causal: later tiles see more keys), stable for determinism of the split
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.t0 > b.t0; });
  return items;
}

void check_cu(const AttentionParams& p, const char* op) {
  if (p.Hkv <= 0 || p.Hq % p.Hkv != 0) throw_range(std::string("cpu ") + op + ": Hq must be a multiple of Hkv");
  if (p.cu_seqlens[0] != 0 || p.cu_seqlens[p.nseq] != p.T)
    throw_range(std::string("cpu ") + op + ": cu_seqlens must start at 0 and end at T");
  for (int64_t s = 0; s < p.nseq; ++s)
    if (p.cu_seqlens[s + 1] < p.cu_seqlens[s]) throw_range(std::string("cpu ") + op + ": cu_seqlens must be non-decreasing");
}

// Copies rows [r0, r0+n) of head h of x [T, H, D] into dst [n, D].
inline void gather_rows(float* dst, const float* x, int64_t r0, int64_t n, int64_t H, int64_t h, int64_t D) {
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + i * D, x + ((r0 + i) * H + h) * D, D * sizeof(float));
}
// Keys (or values) in tile-major transposed blocks: for kv head h, sequence s and key
// tile t (BK positions from the sequence start), a contiguous [D, BK] block. A key tile
// is then read with a row stride of BK floats (a row stride of T floats, a multiple of
// 4 KiB for long packs, makes the D rows of a tile collide in the same cache sets).
struct TileT {
  Scratch buf;
  std::vector<int64_t> base;  // first tile of each sequence
  int64_t ntiles = 0, D = 0;
  // positions past a sequence's end in its last tile are left unset: never read
  const float* tile(int64_t h, int64_t s, int64_t j0) const {
    return buf.p + ((h * ntiles) + base[s] + j0 / BK) * D * BK;
  }
};
TileT tile_transpose(const float* x, const int32_t* cu, int64_t nseq, int64_t H, int64_t D) {
  TileT t;
  t.D = D;
  t.base.resize(static_cast<size_t>(nseq) + 1);
  for (int64_t s = 0; s < nseq; ++s) t.base[s + 1] = t.base[s] + (cu[s + 1] - cu[s] + BK - 1) / BK;
  t.ntiles = t.base[nseq];
  t.buf = Scratch(static_cast<size_t>(H * t.ntiles * D * BK));
  // (head, tile) pairs; the sequence of a tile found by a walk over base
  std::vector<int32_t> seq_of(static_cast<size_t>(t.ntiles));
  for (int64_t s = 0; s < nseq; ++s)
    for (int64_t k = t.base[s]; k < t.base[s + 1]; ++k) seq_of[k] = int32_t(s);
  cpu::pool().parallel_for(H * t.ntiles, [&](int64_t b, int64_t e) {
    for (int64_t it = b; it < e; ++it) {
      const int64_t h = it / t.ntiles, k = it % t.ntiles, s = seq_of[k];
      const int64_t start = cu[s], L = cu[s + 1] - start, j0 = (k - t.base[s]) * BK, nk = std::min(BK, L - j0);
      float* blk = t.buf.p + (h * t.ntiles + k) * D * BK;
      const float* src = x + ((start + j0) * H + h) * D;
      for (int64_t d = 0; d < D; ++d)
        for (int64_t j = 0; j < nk; ++j) blk[d * BK + j] = src[j * H * D + d];
    }
  });
  return t;
}

}  // namespace

void CpuBackend::attention_forward(const AttentionParams& p) {
  check_cu(p, "attention_forward");
  const int32_t* cu = p.cu_seqlens;
  const float *q = F(p.q), *k = F(p.k), *v = F(p.v);
  float* out = F(p.out);
  const int64_t D = p.D, Hq = p.Hq, Hkv = p.Hkv, group = p.Hq / p.Hkv;
  auto items = make_items(cu, p.nseq, Hq, BQ);
  const auto& kn = kernels();
  const TileT kt = tile_transpose(k, cu, p.nseq, Hkv, D);
  cpu::pool().run([&](int tid, int nt) {
    std::vector<float> Qs(BQ * D), S(BQ * BK), O(BQ * D), m(BQ), l(BQ);
    for (size_t it = tid; it < items.size(); it += nt) {
      const Item& w = items[it];
      const int64_t start = cu[w.s], L = cu[w.s + 1] - start;
      const int64_t i0 = w.t0, nq = std::min(BQ, L - i0), h = w.h, kvh = h / group;
      gather_rows(Qs.data(), q, start + i0, nq, Hq, h, D);
      std::fill(O.begin(), O.begin() + nq * D, 0.0f);
      std::fill(m.begin(), m.end(), -INFINITY);
      std::fill(l.begin(), l.end(), 0.0f);
      const int64_t kend = i0 + nq;  // keys [0, kend) are visible to some row of the tile
      for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t nk = std::min(BK, kend - j0);
        kn.tile_scores(S.data(), BK, Qs.data(), D, kt.tile(kvh, w.s, j0), BK, nq, nk, D, p.scale);
        for (int64_t i = 0; i < nq; ++i) {
          float* srow = S.data() + i * BK;
          const int64_t last = i0 + i - j0;  // keys j <= last are visible
          for (int64_t j = std::max<int64_t>(0, last + 1); j < nk; ++j) srow[j] = -INFINITY;
          if (last < 0) {
            for (int64_t j = 0; j < nk; ++j) srow[j] = 0.0f;
            continue;
          }
          float mx = kn.max(srow, nk);
          float mnew = std::max(m[i], mx);
          float alpha = std::exp(m[i] - mnew);  // 0 for the first tile (m = -inf)
          float sum = kn.exp_sub_sum(srow, srow, mnew, nk);
          l[i] = l[i] * alpha + sum;
          m[i] = mnew;
          if (alpha != 1.0f) kn.scal(O.data() + i * D, alpha, D);
        }
        // O += P V   (P: [nq, nk], V rows of kv head kvh)
        kn.mm_nn_acc(O.data(), D, S.data(), BK, v + ((start + j0) * Hkv + kvh) * D, Hkv * D, nq, nk, D, 1.0f);
      }
      for (int64_t i = 0; i < nq; ++i) {
        float* orow = out + ((start + i0 + i) * Hq + h) * D;
        float inv = 1.0f / l[i];
        for (int64_t d = 0; d < D; ++d) orow[d] = O[i * D + d] * inv;
        if (p.lse) p.lse[(start + i0 + i) * Hq + h] = m[i] + std::log(l[i]);
      }
    }
  });
}

// Needs p.out and p.lse from the forward. dq, dk, dv are written.
void CpuBackend::attention_backward(const AttentionParams& p) {
  check_cu(p, "attention_backward");
  if (!p.out || !p.lse || !p.dout) throw_error("cpu attention_backward: out, lse and dout are required");
  const int32_t* cu = p.cu_seqlens;
  const float *q = F(p.q), *k = F(p.k), *v = F(p.v), *o = F(p.out), *dout = F(p.dout);
  float *dq = F(p.dq), *dk = F(p.dk), *dv = F(p.dv);
  const int64_t D = p.D, Hq = p.Hq, Hkv = p.Hkv, group = p.Hq / p.Hkv, T = p.T;
  const float scale = p.scale;
  const auto& kn = kernels();
  // Delta[t, h] = dout · out
  Scratch delta_buf(static_cast<size_t>(T * Hq));
  float* const delta = delta_buf.p;
  cpu::pool().parallel_for(T * Hq, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) delta[i] = kn.dot(dout + i * D, o + i * D, D);
  }, 256);

  // P[i, j] = exp(scale*q_i·k_j - lse_i) with the causal mask; rows i of the query tile
  // starting at i0, keys from j0; dP = dO V^T; dS = P * (dP - Delta)
  const TileT kt = tile_transpose(k, cu, p.nseq, Hkv, D), vt = tile_transpose(v, cu, p.nseq, Hkv, D);
  // S and dP have row stride BK
  auto tile_ds = [&](float* S, float* dP, const float* Qs, const float* dOs, int64_t kvh, int64_t seq,
                     const float* lse_rows, const float* delta_rows, int64_t i0, int64_t nq, int64_t j0, int64_t nk) {
    kn.tile_scores(S, BK, Qs, D, kt.tile(kvh, seq, j0), BK, nq, nk, D, scale);
    kn.tile_scores(dP, BK, dOs, D, vt.tile(kvh, seq, j0), BK, nq, nk, D, 1.0f);
    for (int64_t i = 0; i < nq; ++i) {
      float* srow = S + i * BK;
      float* dprow = dP + i * BK;
      const int64_t last = i0 + i - j0;
      int64_t jv = std::min(nk, std::max<int64_t>(0, last + 1));  // visible keys: [0, jv)
      kn.exp_sub_sum(srow, srow, lse_rows[i], jv);
      for (int64_t j = jv; j < nk; ++j) srow[j] = 0.0f;
      const float dl = delta_rows[i];
      for (int64_t j = 0; j < nk; ++j) dprow[j] = srow[j] * (dprow[j] - dl);
    }
  };

  // Per-thread tiles, and one (query tile, key tile) pair of query head h: S, P, dP, dS,
  // then dV += P^T dO and dK += scale dS^T Q into the key tile's accumulators.
  struct Tiles {
    std::vector<float> Qs, dOs, S, dP, dK, dV, lse_r, del_r;
    explicit Tiles(int64_t D)
        : Qs(BQ * D), dOs(BQ * D), S(BQ * BK), dP(BQ * BK), dK(BK * D), dV(BK * D), lse_r(BQ), del_r(BQ) {}
  };
  auto tile_pair = [&](Tiles& b, int64_t start, int64_t seq, int64_t h, int64_t kvh, int64_t i0, int64_t nq, int64_t j0,
                       int64_t nk) {
    gather_rows(b.Qs.data(), q, start + i0, nq, Hq, h, D);
    gather_rows(b.dOs.data(), dout, start + i0, nq, Hq, h, D);
    for (int64_t i = 0; i < nq; ++i) {
      b.lse_r[i] = p.lse[(start + i0 + i) * Hq + h];
      b.del_r[i] = delta[(start + i0 + i) * Hq + h];
    }
    tile_ds(b.S.data(), b.dP.data(), b.Qs.data(), b.dOs.data(), kvh, seq, b.lse_r.data(), b.del_r.data(), i0, nq, j0, nk);
    kn.mm_tn_acc(b.dV.data(), D, b.S.data(), BK, b.dOs.data(), D, nk, nq, D, 1.0f);    // dV += P^T dO
    kn.mm_tn_acc(b.dK.data(), D, b.dP.data(), BK, b.Qs.data(), D, nk, nq, D, scale);  // dK += scale dS^T Q
  };
  auto start_key_tile = [&](Tiles& b, int64_t nk) {
    std::fill(b.dK.begin(), b.dK.begin() + nk * D, 0.0f);
    std::fill(b.dV.begin(), b.dV.begin() + nk * D, 0.0f);
  };
  auto store_key_tile = [&](const Tiles& b, int64_t start, int64_t kvh, int64_t j0, int64_t nk) {
    for (int64_t j = 0; j < nk; ++j) {
      std::memcpy(dk + ((start + j0 + j) * Hkv + kvh) * D, b.dK.data() + j * D, D * sizeof(float));
      std::memcpy(dv + ((start + j0 + j) * Hkv + kvh) * D, b.dV.data() + j * D, D * sizeof(float));
    }
  };

  // One pass per (sequence, kv head) when there are enough of them to keep every thread
  // busy and its dQ fits a per-thread buffer: each tile pair's S, P, dP and dS are made
  // once and give dV, dK and dQ together (5 tile products instead of 7). dQ rows sum
  // their key tiles in increasing order, as pass B does, and dK/dV sum heads then query
  // tiles, as pass A does: the two ways give the same bits.
  const int64_t threads = cpu::pool().size();
  int64_t maxL = 0;
  for (int64_t s = 0; s < p.nseq; ++s) maxL = std::max<int64_t>(maxL, cu[s + 1] - cu[s]);
  bool one_pass = p.nseq * Hkv >= 2 * threads && group * maxL * D <= (int64_t(2) << 20);
  // ITOOL_ATTENTION_BACKWARD=one-pass|two-pass forces a way (tests check they agree bitwise)
  static const int forced = [] {
    const char* e = std::getenv("ITOOL_ATTENTION_BACKWARD");
    if (e == nullptr) return 0;
    const std::string v = e;
    return v == "one-pass" ? 1 : v == "two-pass" ? 2 : 0;
  }();
  if (forced == 1) one_pass = true;
  if (forced == 2) one_pass = false;
  if (one_pass) {
    std::vector<Item> items;
    for (int64_t s = 0; s < p.nseq; ++s)
      for (int64_t h = 0; h < Hkv; ++h) items.push_back({int32_t(s), int32_t(h), 0});
    // longest sequences first (their work grows with L^2), stable for a fixed split
    std::stable_sort(items.begin(), items.end(), [&](const Item& a, const Item& b) {
      return cu[a.s + 1] - cu[a.s] > cu[b.s + 1] - cu[b.s];
    });
    cpu::pool().run([&](int tid, int nt) {
      Tiles b(D);
      std::vector<float> dQ(static_cast<size_t>(group * maxL * D));
      for (size_t it = tid; it < items.size(); it += nt) {
        const Item& w = items[it];
        const int64_t start = cu[w.s], L = cu[w.s + 1] - start, kvh = w.h;
        std::fill(dQ.begin(), dQ.begin() + group * L * D, 0.0f);  // [group, L, D]
        for (int64_t j0 = 0; j0 < L; j0 += BK) {
          const int64_t nk = std::min(BK, L - j0);
          start_key_tile(b, nk);
          const float* kj = k + ((start + j0) * Hkv + kvh) * D;
          for (int64_t g = 0; g < group; ++g) {
            for (int64_t i0 = (j0 / BQ) * BQ; i0 < L; i0 += BQ) {
              const int64_t nq = std::min(BQ, L - i0);
              tile_pair(b, start, w.s, kvh * group + g, kvh, i0, nq, j0, nk);
              // dQ += scale dS K (only key tiles the query tile sees: as pass B's loop)
              kn.mm_nn_acc(dQ.data() + (g * L + i0) * D, D, b.dP.data(), BK, kj, Hkv * D, nq, std::min(nk, i0 + nq - j0),
                           D, scale);
            }
          }
          store_key_tile(b, start, kvh, j0, nk);
        }
        for (int64_t g = 0; g < group; ++g)
          for (int64_t i = 0; i < L; ++i)
            std::memcpy(dq + ((start + i) * Hq + kvh * group + g) * D, dQ.data() + (g * L + i) * D, D * sizeof(float));
      }
    });
    return;
  }
  // pass A: dK, dV per (sequence, kv head, key tile)
  {
    auto items = make_items(cu, p.nseq, Hkv, BK);
    // reverse the order: early key tiles see the most queries
    std::reverse(items.begin(), items.end());
    cpu::pool().run([&](int tid, int nt) {
      Tiles b(D);
      for (size_t it = tid; it < items.size(); it += nt) {
        const Item& w = items[it];
        const int64_t start = cu[w.s], L = cu[w.s + 1] - start;
        const int64_t j0 = w.t0, nk = std::min(BK, L - j0), kvh = w.h;
        start_key_tile(b, nk);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
          for (int64_t i0 = (j0 / BQ) * BQ; i0 < L; i0 += BQ) tile_pair(b, start, w.s, h, kvh, i0, std::min(BQ, L - i0), j0, nk);
        store_key_tile(b, start, kvh, j0, nk);
      }
    });
  }
  // pass B: dQ per (sequence, query head, query tile)
  {
    auto items = make_items(cu, p.nseq, Hq, BQ);
    cpu::pool().run([&](int tid, int nt) {
      std::vector<float> Qs(BQ * D), dOs(BQ * D), S(BQ * BK), dP(BQ * BK), dQ(BQ * D), lse_r(BQ), del_r(BQ);
      for (size_t it = tid; it < items.size(); it += nt) {
        const Item& w = items[it];
        const int64_t start = cu[w.s], L = cu[w.s + 1] - start;
        const int64_t i0 = w.t0, nq = std::min(BQ, L - i0), h = w.h, kvh = h / group;
        gather_rows(Qs.data(), q, start + i0, nq, Hq, h, D);
        gather_rows(dOs.data(), dout, start + i0, nq, Hq, h, D);
        for (int64_t i = 0; i < nq; ++i) {
          lse_r[i] = p.lse[(start + i0 + i) * Hq + h];
          del_r[i] = delta[(start + i0 + i) * Hq + h];
        }
        std::fill(dQ.begin(), dQ.begin() + nq * D, 0.0f);
        const int64_t kend = i0 + nq;
        for (int64_t j0 = 0; j0 < kend; j0 += BK) {
          const int64_t nk = std::min(BK, kend - j0);
          tile_ds(S.data(), dP.data(), Qs.data(), dOs.data(), kvh, w.s, lse_r.data(), del_r.data(), i0, nq, j0, nk);
          // dQ += scale dS K
          kn.mm_nn_acc(dQ.data(), D, dP.data(), BK, k + ((start + j0) * Hkv + kvh) * D, Hkv * D, nq, nk, D, scale);
        }
        for (int64_t i = 0; i < nq; ++i)
          std::memcpy(dq + ((start + i0 + i) * Hq + h) * D, dQ.data() + i * D, D * sizeof(float));
      }
    });
  }
}

// ------------------------------------------------------------------ KV cache
void CpuBackend::kv_write(const KvWriteParams& p) {
  const int64_t row = p.Hkv * p.D;
  const float *kn = F(p.k_new), *vn = F(p.v_new);
  float *kc = F(p.k_cache), *vc = F(p.v_cache);
  for (int64_t b = 0; b < p.B; ++b) {
    int64_t len = p.ctx_lens[b];
    if (len < p.n_new || len > p.max_blocks * p.block_size) throw_range("cpu kv_write: ctx_lens out of range");
    for (int64_t j = 0; j < p.n_new; ++j) {
      int64_t pos = len - p.n_new + j;
      int64_t blk = p.block_table[b * p.max_blocks + pos / p.block_size];
      if (blk < 0) throw_range("cpu kv_write: negative block id");
      int64_t off = (blk * p.block_size + pos % p.block_size) * row;
      std::memcpy(kc + off, kn + (b * p.n_new + j) * row, row * sizeof(float));
      std::memcpy(vc + off, vn + (b * p.n_new + j) * row, row * sizeof(float));
    }
  }
}

// One item per (row, new token, kv head): the query heads of the group are scored
// against each cache block's keys together (each key row is read once for the group),
// then softmax and the weighted sum of the values, block by block. Scratch: one context
// length of scores per head of the group, per thread.
void CpuBackend::attention_decode(const DecodeAttentionParams& p) {
  if (p.Hkv <= 0 || p.Hq % p.Hkv != 0) throw_range("cpu attention_decode: Hq must be a multiple of Hkv");
  const int64_t D = p.D, group = p.Hq / p.Hkv, row = p.Hkv * p.D, bs = p.block_size;
  const float *q = F(p.q), *kc = F(p.k_cache), *vc = F(p.v_cache);
  float* out = F(p.out);
  for (int64_t b = 0; b < p.B; ++b)
    if (p.ctx_lens[b] < p.n_new || p.ctx_lens[b] > p.max_blocks * p.block_size)
      throw_range("cpu attention_decode: ctx_lens out of range");
  const auto& kn = kernels();
  const int64_t n_items = p.B * p.n_new * p.Hkv;
  int64_t maxlen = 1;
  for (int64_t b = 0; b < p.B; ++b) maxlen = std::max<int64_t>(maxlen, p.ctx_lens[b]);
  cpu::for_items(n_items, [&](int64_t it) {
    thread_local std::vector<float> s, acc;
    s.resize(static_cast<size_t>(group * maxlen));
    acc.resize(static_cast<size_t>(group * D));
    const int64_t kvh = it % p.Hkv, j = (it / p.Hkv) % p.n_new, b = it / (p.Hkv * p.n_new);
    const int64_t npos = p.ctx_lens[b] - p.n_new + j + 1;  // positions 0 .. own
    const float* qg = q + ((b * p.n_new + j) * p.Hq + kvh * group) * D;  // [group, D], contiguous
    const int32_t* bt = p.block_table + b * p.max_blocks;
    for (int64_t t0 = 0; t0 < npos; t0 += bs) {
      const int64_t cnt = std::min(bs, npos - t0);
      const float* kb = kc + int64_t(bt[t0 / bs]) * bs * row + kvh * D;
      kn.rows_dot(s.data() + t0, maxlen, qg, group, kb, row, cnt, D, p.scale);
    }
    std::vector<float> sums(static_cast<size_t>(group));
    for (int64_t h = 0; h < group; ++h) {
      float* sh = s.data() + h * maxlen;
      const float mx = kn.max(sh, npos);
      sums[h] = kn.exp_sub_sum(sh, sh, mx, npos);
    }
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t t0 = 0; t0 < npos; t0 += bs) {
      const int64_t cnt = std::min(bs, npos - t0);
      const float* vb = vc + int64_t(bt[t0 / bs]) * bs * row + kvh * D;
      kn.mm_nn_acc(acc.data(), D, s.data() + t0, maxlen, vb, row, group, cnt, D, 1.0f);
    }
    for (int64_t h = 0; h < group; ++h) {
      float* orow = out + ((b * p.n_new + j) * p.Hq + kvh * group + h) * D;
      const float inv = 1.0f / sums[h];
      for (int64_t d = 0; d < D; ++d) orow[d] = acc[h * D + d] * inv;
    }
  });
}

}  // namespace itool
