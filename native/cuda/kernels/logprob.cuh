// Row kernel of the fused LM head: from one chunk of f32 logits, the log-sum-exp, the
// target log-probability and (when asked) the bf16 logit gradient
//   dlogits[i, j] = dlogp[i] * (1[j == t_i] - softmax[i, j]).
#pragma once
#include "common.cuh"

namespace itool {
namespace cuda {

template <int THREADS>
__global__ void __launch_bounds__(THREADS) logprob_rows_kernel(const float* logits, int64_t V, const int32_t* targets,
                                                               float* logprob, float* lse_out, const float* dlogp,
                                                               bf16* dlogits, int* err) {
  __shared__ float red[32];
  const int64_t i = blockIdx.x;
  const float* x = logits + i * V;
  // online max / sum per thread, then combine
  float m = -INFINITY, s = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) {
    const float v = x[j];
    if (v > m) {
      s = s * __expf(m - v) + 1.f;
      m = v;
    } else {
      s += __expf(v - m);
    }
  }
  const float gm = block_max(m, red);
  const float gs = block_sum(m == -INFINITY ? 0.f : s * __expf(m - gm), red);
  // log-softmax as (x - max) - log(sum): x - (max + log(sum)) would round max + log(sum)
  // to the f32 grid at the max (half an ulp: ~5e-4 at logits of 1e4)
  const float lsum = logf(gs);
  const int32_t t = targets[i];
  const bool bad = t >= V;
  if (threadIdx.x == 0) {
    if (bad) set_error(err, kErrTarget);
    if (lse_out) lse_out[i] = gm + lsum;
    if (logprob) logprob[i] = (t < 0 || bad) ? 0.f : (x[t] - gm) - lsum;
  }
  if (dlogits) {
    const float g = (t < 0 || bad) ? 0.f : dlogp[i];
    bf16* dl = dlogits + i * V;
    for (int64_t j = threadIdx.x; j < V; j += THREADS) {
      const float p = __expf((x[j] - gm) - lsum);
      dl[j] = f2b(g * ((j == t ? 1.f : 0.f) - p));
    }
  }
}

}  // namespace cuda
}  // namespace itool
