// nvcuda::wmma for the emulator: 16x16x16 fragments. Every lane holds the whole tile
// (row-major, logical coordinates) instead of its slice; load/store/mma are
// warp-uniform operations run once per warp when all 32 lanes have arrived, with the
// device's rules checked: a 32-byte aligned pointer, ldm a multiple of 16 bytes, the same
// pointer and ldm on every lane. mma_sync computes in f32 with exact products of the
// bf16/f16 inputs, accumulating k = 0..15 in order (the tensor core's order and internal
// rounding are not modelled).
#pragma once

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the emulator has 16x16x16 wmma fragments only");
  using element_type = T;
  static constexpr int num_elements = 256;
  T x[256];
};

namespace detail {
struct Req {
  void* frag;
  const void* ptr;
  unsigned ldm;
  int layout;  // 0 row-major, 1 col-major
  const void* a;
  const void* b;
  const void* c;
};
inline int first_lane(void* const* lanes) {
  for (int i = 0; i < 32; ++i)
    if (lanes[i]) return i;
  return -1;
}
template <class T>
inline void check_ptr(const char* what, void* const* lanes) {
  const int f = first_lane(lanes);
  const Req* r0 = static_cast<const Req*>(lanes[f]);
  for (int i = 0; i < 32; ++i) {
    const Req* r = static_cast<const Req*>(lanes[i]);
    if (r && (r->ptr != r0->ptr || r->ldm != r0->ldm))
      itool_emu::fail(cudaErrorIllegalInstruction,
                      "%s: lanes pass different arguments (lane %d: %p ldm %u, lane %d: %p ldm %u); wmma needs the same on every lane",
                      what, f, r0->ptr, r0->ldm, i, r->ptr, r->ldm);
  }
  if (reinterpret_cast<uintptr_t>(r0->ptr) % 32 != 0)
    itool_emu::fail(cudaErrorMisalignedAddress, "%s: pointer %p is not 32-byte aligned", what, r0->ptr);
  const unsigned mult = 16 / sizeof(T);
  if (r0->ldm % mult != 0)
    itool_emu::fail(cudaErrorMisalignedAddress, "%s: ldm %u is not a multiple of %u (%zu-byte elements)", what, r0->ldm,
                    mult, sizeof(T));
}
template <class F>
inline void broadcast(void* const* lanes, int from) {
  const F* src = static_cast<const F*>(static_cast<const Req*>(lanes[from])->frag);
  for (int i = 0; i < 32; ++i)
    if (lanes[i] && i != from) *static_cast<F*>(static_cast<const Req*>(lanes[i])->frag) = *src;
}
// Operand A is [16 rows = m][16 cols = k], B is [k][n]; row_major means element
// (r, c) at p[r * ldm + c], col_major at p[c * ldm + r].
template <class F, class T, bool COL>
void exec_load(void* const* lanes) {
  check_ptr<T>("wmma::load_matrix_sync", lanes);
  const int f = first_lane(lanes);
  const Req* r = static_cast<const Req*>(lanes[f]);
  const T* p = static_cast<const T*>(r->ptr);
  F* frag = static_cast<F*>(r->frag);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) frag->x[i * 16 + j] = COL ? p[j * r->ldm + i] : p[i * r->ldm + j];
  broadcast<F>(lanes, f);
}
template <class F>
void exec_load_acc(void* const* lanes) {
  check_ptr<float>("wmma::load_matrix_sync (accumulator)", lanes);
  const int f = first_lane(lanes);
  const Req* r = static_cast<const Req*>(lanes[f]);
  const float* p = static_cast<const float*>(r->ptr);
  F* frag = static_cast<F*>(r->frag);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) frag->x[i * 16 + j] = r->layout ? p[j * r->ldm + i] : p[i * r->ldm + j];
  broadcast<F>(lanes, f);
}
template <class F>
void exec_store(void* const* lanes) {
  check_ptr<float>("wmma::store_matrix_sync", lanes);
  const int f = first_lane(lanes);
  const Req* r = static_cast<const Req*>(lanes[f]);
  // lanes must hold the same tile (they do unless a lane changed its copy alone)
  for (int i = 0; i < 32; ++i) {
    const Req* q = static_cast<const Req*>(lanes[i]);
    if (q && i != f && std::memcmp(q->frag, r->frag, sizeof(F)) != 0)
      itool_emu::fail(cudaErrorIllegalInstruction,
                      "wmma::store_matrix_sync: lane %d's accumulator differs from lane %d's (elements of a fragment "
                      "were changed on some lanes only; their layout is opaque)", i, f);
  }
  float* p = const_cast<float*>(static_cast<const float*>(r->ptr));
  const F* frag = static_cast<const F*>(r->frag);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) (r->layout ? p[j * r->ldm + i] : p[i * r->ldm + j]) = frag->x[i * 16 + j];
}
template <class FD, class FA, class FB, class FC>
void exec_mma(void* const* lanes) {
  const int f = first_lane(lanes);
  const Req* r = static_cast<const Req*>(lanes[f]);
  const FA* a = static_cast<const FA*>(r->a);
  const FB* b = static_cast<const FB*>(r->b);
  const FC* c = static_cast<const FC*>(r->c);
  FD d;
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 16; ++j) {
      float acc = static_cast<float>(c->x[i * 16 + j]);
      for (int k = 0; k < 16; ++k)
        acc = fmaf(static_cast<float>(a->x[i * 16 + k]), static_cast<float>(b->x[k * 16 + j]), acc);
      d.x[i * 16 + j] = acc;
    }
  for (int i = 0; i < 32; ++i)
    if (lanes[i]) *static_cast<FD*>(static_cast<const Req*>(lanes[i])->frag) = d;
}
}  // namespace detail

template <class Use, class T, class L, class V>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, L>& f, const V& v) {
  const T t = static_cast<T>(static_cast<float>(v));
  for (int i = 0; i < 256; ++i) f.x[i] = t;
}

template <class Use, class T, class L>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, L>& f, const T* p, unsigned ldm, ITOOL_EMU_SITE) {
  static_assert(std::is_same<Use, matrix_a>::value || std::is_same<Use, matrix_b>::value, "operand fragment expected");
  using F = fragment<Use, 16, 16, 16, T, L>;
  detail::Req r{&f, p, ldm, 0, nullptr, nullptr, nullptr};
  itool_emu::warp_uniform(itool_emu::kWmmaLoad, "wmma::load_matrix_sync", &r,
                          &detail::exec_load<F, T, std::is_same<L, col_major>::value>, file, line);
}
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm, layout_t l,
                             ITOOL_EMU_SITE) {
  using F = fragment<accumulator, 16, 16, 16, float>;
  detail::Req r{&f, p, ldm, l == mem_col_major ? 1 : 0, nullptr, nullptr, nullptr};
  itool_emu::warp_uniform(itool_emu::kWmmaLoad, "wmma::load_matrix_sync", &r, &detail::exec_load_acc<F>, file, line);
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm, layout_t l,
                              ITOOL_EMU_SITE) {
  using F = fragment<accumulator, 16, 16, 16, float>;
  detail::Req r{const_cast<F*>(&f), p, ldm, l == mem_col_major ? 1 : 0, nullptr, nullptr, nullptr};
  itool_emu::warp_uniform(itool_emu::kWmmaStore, "wmma::store_matrix_sync", &r, &detail::exec_store<F>, file, line);
}
template <class TA, class LA, class TB, class LB, class TC>
inline void mma_sync(fragment<accumulator, 16, 16, 16, TC>& d, const fragment<matrix_a, 16, 16, 16, TA, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, TB, LB>& b, const fragment<accumulator, 16, 16, 16, TC>& c,
                     ITOOL_EMU_SITE) {
  using FD = fragment<accumulator, 16, 16, 16, TC>;
  detail::Req r{&d, nullptr, 0, 0, &a, &b, &c};
  itool_emu::warp_uniform(itool_emu::kWmmaMma, "wmma::mma_sync", &r,
                          &detail::exec_mma<FD, fragment<matrix_a, 16, 16, 16, TA, LA>, fragment<matrix_b, 16, 16, 16, TB, LB>, FD>,
                          file, line);
}

}  // namespace wmma
}  // namespace nvcuda
