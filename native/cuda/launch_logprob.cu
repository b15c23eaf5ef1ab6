// Fused LM head -> log-softmax -> target log-probability, chunked over tokens so that
// only [chunk, V] logits exist at once (f32) plus their bf16 gradient; the gradient
// GEMMs for dhidden and dweight run on each chunk in the same pass.
#include <algorithm>
#include <string>
#include "kernels/logprob.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

int64_t logprob_default_chunk(int64_t N, int64_t V) {
  // ~32M logits per chunk: 128 MiB f32 + 64 MiB bf16 gradient
  const int64_t budget = int64_t(32) << 20;
  int64_t c = std::max<int64_t>(64, budget / std::max<int64_t>(1, V));
  c = c / 64 * 64;
  return std::max<int64_t>(1, std::min(c, N));
}

void logprob(Ctx& c, const LogprobParams& p) {
  if (p.N == 0) return;
  const int64_t chunk = p.chunk > 0 ? std::min(p.chunk, p.N) : logprob_default_chunk(p.N, p.V);
  if (chunk > 2147483647LL) throw_range("cuda: logprob: chunk too large");
  const bool grad = p.dlogp != nullptr;
  Scratch logits(c, (size_t)(chunk * p.V) * sizeof(float));
  std::unique_ptr<Scratch> dlog;
  if (grad) dlog.reset(new Scratch(c, (size_t)(chunk * p.V) * sizeof(uint16_t)));
  const bf16* hidden = static_cast<const bf16*>(p.hidden);
  for (int64_t c0 = 0; c0 < p.N; c0 += chunk) {
    const int64_t cn = std::min(chunk, p.N - c0);
    GemmParams g;
    g.M = cn; g.N = p.V; g.K = p.H;
    g.A = hidden + c0 * p.H; g.lda = p.H; g.a_type = DType::BF16;
    g.B = p.weight; g.ldb = p.H; g.transB = true; g.b_type = DType::BF16;
    g.C = logits.get(); g.ldc = p.V; g.c_type = DType::F32;
    gemm(c, g);
    ITOOL_LAUNCH(logprob_rows_kernel<1024>, (unsigned)cn, 1024, 0, c.stream)(
        logits.as<float>(), p.V, p.targets + c0, p.logprob ? p.logprob + c0 : nullptr, p.lse ? p.lse + c0 : nullptr,
        grad ? p.dlogp + c0 : nullptr, grad ? dlog->as<bf16>() : nullptr, c.err);
    check_launch("logprob");
    if (!grad) continue;
    if (p.dhidden) {
      GemmParams d;
      d.M = cn; d.N = p.H; d.K = p.V;
      d.A = dlog->get(); d.lda = p.V; d.a_type = DType::BF16;
      d.B = p.weight; d.ldb = p.H; d.b_type = DType::BF16;
      d.C = static_cast<bf16*>(p.dhidden) + c0 * p.H; d.ldc = p.H; d.c_type = DType::BF16;
      gemm(c, d);
    }
    if (p.dweight) {
      GemmParams w;
      w.M = p.V; w.N = p.H; w.K = cn;
      w.A = dlog->get(); w.lda = p.V; w.transA = true; w.a_type = DType::BF16;
      w.B = hidden + c0 * p.H; w.ldb = p.H; w.b_type = DType::BF16;
      w.C = p.dweight; w.ldc = p.H; w.c_type = DType::F32; w.beta = 1.f;
      gemm(c, w);
    }
  }
}

}  // namespace cuda
}  // namespace itool
