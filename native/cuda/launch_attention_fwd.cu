// Attention forward launcher: tile map over the packed sequences, then the flash kernel
// for the head dim padded to 32, 64 or 128.
#include <cmath>
#include <string>
#include "kernels/attention_fwd.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

static bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Shared with the backward launcher (declared there too).
void build_tile_map(Ctx& c, const int32_t* cu, int64_t nseq, int64_t T, int tile, Scratch& map, int64_t& cap,
                    bool reverse) {
  cap = (T + tile - 1) / tile + nseq;
  if (cap < 1) cap = 1;
  if (cap > 2147483647LL) throw_range("cuda: attention: too many tiles");
  ITOOL_LAUNCH(tile_map_kernel, 1, 1, 0, c.stream)(cu, nseq, T, tile, map.as<int2>(), cap, c.err, reverse);
  check_launch("attention tile map");
}

template <int DP>
static void run_fwd(Ctx& c, const AttnFwdArgs& a, int64_t cap) {
  using Cfg = AttnFwdCfg<DP>;
  if ((size_t)Cfg::SMEM > c.smem_optin)
    throw_error("cuda: attention_forward: needs " + std::to_string(Cfg::SMEM) + " bytes of shared memory per block, the device allows " + std::to_string(c.smem_optin));
  check(cudaFuncSetAttribute(attn_fwd_kernel<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::SMEM),
        "attention_forward: cudaFuncSetAttribute");
  dim3 grid((unsigned)cap, (unsigned)a.Hq);
  ITOOL_LAUNCH(attn_fwd_kernel<DP>, grid, Cfg::THREADS, Cfg::SMEM, c.stream)(a);
  check_launch("attention_forward");
}

void attention_forward(Ctx& c, const AttentionParams& p) {
  if (p.T == 0 || p.Hq == 0) return;
  if (p.D > kMaxHeadDim) throw_range("cuda: attention_forward: head dim " + std::to_string(p.D) + " > " + std::to_string(kMaxHeadDim) + " is not supported on CUDA");
  if (p.Hq > 65535) throw_range("cuda: attention_forward: Hq too large");
  Scratch map(c, ((p.T + 63) / 64 + p.nseq + 1) * sizeof(int2));
  int64_t cap = 0;
  build_tile_map(c, p.cu_seqlens, p.nseq, p.T, AttnFwdCfg<64>::BR, map, cap, true);
  AttnFwdArgs a{};
  a.T = p.T; a.Hq = p.Hq; a.Hkv = p.Hkv; a.D = p.D;
  a.cu = p.cu_seqlens;
  a.map = map.as<int2>();
  a.scale_log2 = p.scale * kLog2e;
  a.q = static_cast<const bf16*>(p.q);
  a.k = static_cast<const bf16*>(p.k);
  a.v = static_cast<const bf16*>(p.v);
  a.out = static_cast<bf16*>(p.out);
  a.lse = p.lse;
  a.vec = p.D % 8 == 0 && aligned16(p.q) && aligned16(p.k) && aligned16(p.v);
  if (p.D <= 32) run_fwd<32>(c, a, cap);
  else if (p.D <= 64) run_fwd<64>(c, a, cap);
  else run_fwd<128>(c, a, cap);
}

}  // namespace cuda
}  // namespace itool
