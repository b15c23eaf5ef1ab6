// KV-cache write and decode-attention launchers.
#include <string>
#include "kernels/decode.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

void kv_write(Ctx& c, const KvWriteParams& p) {
  const int64_t total = p.B * p.n_new * p.Hkv * p.D;
  if (total == 0) return;
  KvArgs a{};
  a.B = p.B; a.n_new = p.n_new; a.Hkv = p.Hkv; a.D = p.D;
  a.block_size = p.block_size; a.max_blocks = p.max_blocks;
  a.block_table = p.block_table; a.ctx_lens = p.ctx_lens;
  a.k_new = static_cast<const bf16*>(p.k_new);
  a.v_new = static_cast<const bf16*>(p.v_new);
  a.k_cache = static_cast<bf16*>(p.k_cache);
  a.v_cache = static_cast<bf16*>(p.v_cache);
  a.err = c.err;
  ITOOL_LAUNCH(kv_write_kernel, grid_for(total, 256), 256, 0, c.stream)(a);
  check_launch("kv_write");
}

void attention_decode(Ctx& c, const DecodeAttentionParams& p) {
  const int64_t warps = p.B * p.n_new * p.Hq;
  if (warps == 0) return;
  if (p.D > kMaxHeadDim) throw_range("cuda: attention_decode: head dim " + std::to_string(p.D) + " > " + std::to_string(kMaxHeadDim) + " is not supported on CUDA");
  KvArgs a{};
  a.B = p.B; a.n_new = p.n_new; a.Hq = p.Hq; a.Hkv = p.Hkv; a.D = p.D;
  a.block_size = p.block_size; a.max_blocks = p.max_blocks;
  a.block_table = p.block_table; a.ctx_lens = p.ctx_lens;
  a.scale = p.scale;
  a.q = static_cast<const bf16*>(p.q);
  a.kc = static_cast<const bf16*>(p.k_cache);
  a.vc = static_cast<const bf16*>(p.v_cache);
  a.out = static_cast<bf16*>(p.out);
  a.err = c.err;
  ITOOL_LAUNCH(decode_kernel, (unsigned)((warps + 3) / 4), 128, 0, c.stream)(a);
  check_launch("attention_decode");
}

}  // namespace cuda
}  // namespace itool
