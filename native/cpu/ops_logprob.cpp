// Fused LM head -> log-softmax -> log-probability of the target token, chunked over
// tokens: for each chunk of rows the logits [chunk, V] are made by one GEMM, reduced
// to log-sum-exp and the target's log-prob, and (when dlogp is given) turned in place
// into dlogits, from which two more GEMMs give dhidden (written) and dweight
// (accumulated; skipped when dweight is null, a frozen head). The scratch is chunk*V floats; N*V logits never exist at once.
#include <cmath>
#include <vector>
#include "gemm.h"
#include "ops_common.h"

namespace itool {

using cpu::F;
using cpu::kernels;

namespace cpu {
// Rows per chunk when the caller leaves it to the backend: at most 64 MiB of logits,
// at least 16 rows, a multiple of 16, and at most 256 rows for the forward alone or
// 1024 with the gradient. Measured (2 threads, AVX-512): the forward at V 8192 ran
// 1.5x faster with 256 rows than with 1024 (the chunk's logits are read back by the
// softmax while still cached); with the gradient, dweight [V, H] is read and written
// once per chunk, so larger chunks win (V 32000: 400 ms at 1024 rows, 438 at 256).
int64_t logprob_chunk(int64_t N, int64_t V, int64_t requested, bool backward) {
  int64_t c = requested > 0 ? requested : ((int64_t(16) << 20) / std::max<int64_t>(1, V)) / 16 * 16;
  if (requested <= 0) c = std::min<int64_t>(backward ? 1024 : 256, std::max<int64_t>(16, c));
  return std::max<int64_t>(1, std::min(c, std::max<int64_t>(1, N)));
}
}  // namespace cpu

void CpuBackend::logprob(const LogprobParams& p) {
  const int64_t N = p.N, H = p.H, V = p.V;
  if (N == 0) return;
  if (V <= 0) throw_range("cpu logprob: V must be >= 1");
  for (int64_t i = 0; i < N; ++i)
    if (p.targets[i] < -1 || p.targets[i] >= V)
      throw_range("cpu logprob: targets[" + std::to_string(i) + "] = " + std::to_string(p.targets[i]) +
                  " is outside [-1, V)");
  const bool bwd = p.dlogp != nullptr;
  if (bwd && !p.dhidden) throw_error("cpu logprob: dlogp needs dhidden");
  const int64_t C = cpu::logprob_chunk(N, V, p.chunk, bwd);
  const float* hidden = F(p.hidden);
  // the head's weight: f32, or bf16 (frozen weights) read through the GEMM's bf16-B path
  if (p.weight_type != DType::F32 && p.weight_type != DType::BF16)
    throw_type(std::string("cpu logprob: a weight of dtype ") + dtype_name(p.weight_type) + " is not supported (f32, bf16)");
  const void* W = p.weight;
  const auto& kn = kernels();
  const cpu::Scratch scratch(static_cast<size_t>(C * V));  // the logits of one chunk
  float* const buf = scratch.p;
  for (int64_t r0 = 0; r0 < N; r0 += C) {
    const int64_t n = std::min(C, N - r0);
    GemmParams g;  // logits = hidden[r0:r0+n] · W^T
    g.M = n; g.N = V; g.K = H; g.transB = true;
    g.A = hidden + r0 * H; g.lda = H; g.B = W; g.ldb = H; g.C = buf; g.ldc = V; g.b_type = p.weight_type;
    if (H > 0) cpu::sgemm(g);
    else std::fill(buf, buf + n * V, 0.0f);
    cpu::pool().parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        float* row = buf + i * V;
        const int64_t t = p.targets[r0 + i];
        const float lt = t >= 0 ? row[t] : 0.0f;
        const float m = kn.max(row, V);
        const float s = kn.exp_sub_sum(row, row, m, V);  // row = exp(logit - m)
        const float lse = m + std::log(s);
        if (p.lse) p.lse[r0 + i] = lse;
        p.logprob[r0 + i] = t >= 0 ? lt - lse : 0.0f;
        if (!bwd) continue;
        const float d = t >= 0 ? p.dlogp[r0 + i] : 0.0f;
        // dlogits = d * (onehot(t) - softmax)
        kn.scal(row, -d / s, V);
        if (t >= 0) row[t] += d;
      }
    });
    if (!bwd) continue;
    GemmParams dh;  // dhidden = dlogits · W
    dh.M = n; dh.N = H; dh.K = V;
    dh.A = buf; dh.lda = V; dh.B = W; dh.ldb = H; dh.C = F(p.dhidden) + r0 * H; dh.ldc = H; dh.b_type = p.weight_type;
    if (H > 0) cpu::sgemm(dh);
    GemmParams dw;  // dweight += dlogits^T · hidden
    dw.M = V; dw.N = H; dw.K = n; dw.transA = true;
    dw.A = buf; dw.lda = V; dw.B = hidden + r0 * H; dw.ldb = H; dw.C = p.dweight; dw.ldc = H; dw.beta = 1.0f;
    if (H > 0 && p.dweight) {  // no dweight: a frozen head
      if (p.weight_type != DType::F32) throw_error("cpu logprob: dweight needs an f32 weight (a bf16 head is frozen)");
      cpu::sgemm(dw);
    }
  }
}

}  // namespace itool
