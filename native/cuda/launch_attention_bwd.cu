// Attention backward launcher: Dvec and lse in log2 units, then the dK/dV and dQ kernels.
#include <memory>
#include <string>
#include "kernels/attention_bwd.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

void build_tile_map(Ctx& c, const int32_t* cu, int64_t nseq, int64_t T, int tile, Scratch& map, int64_t& cap,
                    bool reverse);

static bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <int DP>
static void run_bwd(Ctx& c, AttnBwdArgs a, const AttentionParams& p) {
  using Cfg = AttnBwdCfg<DP>;
  const size_t need = (size_t)std::max(Cfg::KV_SMEM, Cfg::DQ_SMEM);
  if (need > c.smem_optin)
    throw_error("cuda: attention_backward: needs " + std::to_string(need) + " bytes of shared memory per block, the device allows " + std::to_string(c.smem_optin));
  // dK, dV: tiles of BC keys per KV head
  {
    Scratch map(c, ((p.T + Cfg::BC - 1) / Cfg::BC + p.nseq + 1) * sizeof(int2));
    int64_t cap = 0;
    build_tile_map(c, p.cu_seqlens, p.nseq, p.T, Cfg::BC, map, cap, false);  // early key tiles: most work
    a.map = map.as<int2>();
    check(cudaFuncSetAttribute(attn_bwd_dkdv_kernel<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::KV_SMEM),
          "attention_backward: cudaFuncSetAttribute");
    const bool split = a.dk_part != nullptr;
    ITOOL_LAUNCH(attn_bwd_dkdv_kernel<DP>, dim3((unsigned)cap, (unsigned)(split ? p.Hq : p.Hkv)), Cfg::THREADS, Cfg::KV_SMEM, c.stream)(a);
    check_launch("attention_backward (dk, dv)");
    if (split) {
      ITOOL_LAUNCH(attn_bwd_gqa_reduce_kernel, grid_for(p.T * p.Hkv * p.D, 256), 256, 0, c.stream)(a);
      check_launch("attention_backward (GQA reduce)");
    }
  }
  // dQ: tiles of QR queries per query head
  {
    Scratch map(c, ((p.T + Cfg::QR - 1) / Cfg::QR + p.nseq + 1) * sizeof(int2));
    int64_t cap = 0;
    build_tile_map(c, p.cu_seqlens, p.nseq, p.T, Cfg::QR, map, cap, true);  // late query tiles: most work
    a.map = map.as<int2>();
    check(cudaFuncSetAttribute(attn_bwd_dq_kernel<DP>, cudaFuncAttributeMaxDynamicSharedMemorySize, Cfg::DQ_SMEM),
          "attention_backward: cudaFuncSetAttribute");
    ITOOL_LAUNCH(attn_bwd_dq_kernel<DP>, dim3((unsigned)cap, (unsigned)p.Hq), Cfg::THREADS, Cfg::DQ_SMEM, c.stream)(a);
    check_launch("attention_backward (dq)");
  }
}

void attention_backward(Ctx& c, const AttentionParams& p) {
  if (p.T == 0 || p.Hq == 0) return;
  if (p.D > kMaxHeadDim) throw_range("cuda: attention_backward: head dim " + std::to_string(p.D) + " > " + std::to_string(kMaxHeadDim) + " is not supported on CUDA");
  if (p.Hq > 65535) throw_range("cuda: attention_backward: Hq too large");
  Scratch lse2(c, (size_t)(p.T * p.Hq) * sizeof(float));
  Scratch dvec(c, (size_t)(p.T * p.Hq) * sizeof(float));
  AttnBwdArgs a{};
  a.T = p.T; a.Hq = p.Hq; a.Hkv = p.Hkv; a.D = p.D;
  a.cu = p.cu_seqlens;
  a.scale = p.scale;
  a.scale_log2 = p.scale * kLog2e;
  a.q = static_cast<const bf16*>(p.q);
  a.k = static_cast<const bf16*>(p.k);
  a.v = static_cast<const bf16*>(p.v);
  a.out = static_cast<const bf16*>(p.out);
  a.dout = static_cast<const bf16*>(p.dout);
  a.lse = p.lse;
  a.lse2 = lse2.as<float>();
  a.dvec = dvec.as<float>();
  a.dq = static_cast<bf16*>(p.dq);
  a.dk = static_cast<bf16*>(p.dk);
  a.dv = static_cast<bf16*>(p.dv);
  a.vec = p.D % 8 == 0 && aligned16(p.q) && aligned16(p.k) && aligned16(p.v) && aligned16(p.dout);
  // GQA: one block per query head (Hq/Hkv times the parallelism), partial dK/dV in f32
  // summed per group afterwards in a fixed order (deterministic, no atomics)
  std::unique_ptr<Scratch> parts;
  if (p.Hq != p.Hkv) {
    parts.reset(new Scratch(c, (size_t)(2 * p.T * p.Hq * p.D) * sizeof(float)));
    a.dk_part = parts->as<float>();
    a.dv_part = parts->as<float>() + p.T * p.Hq * p.D;
  }
  const int64_t warps = p.T * p.Hq;
  ITOOL_LAUNCH(attn_bwd_dot_kernel, (unsigned)((warps + 7) / 8), 256, 0, c.stream)(a);
  check_launch("attention_backward (dot)");
  if (p.D <= 32) run_bwd<32>(c, a, p);
  else if (p.D <= 64) run_bwd<64>(c, a, p);
  else run_bwd<128>(c, a, p);
}

}  // namespace cuda
}  // namespace itool
