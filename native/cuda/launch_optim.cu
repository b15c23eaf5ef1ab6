// Launchers: AdamW, gradient reductions (sum of squares, scale, axpy, non-finite check),
// preference losses and sampling.
#include <cmath>
#include <vector>
#include "kernels/optim.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

static constexpr int kThreads = 256;

void adamw(Ctx& c, const AdamWParams& p) {
  if (p.n == 0) return;
  const double bc1 = 1.0 - std::pow((double)p.beta1, (double)p.step);
  const double bc2 = 1.0 - std::pow((double)p.beta2, (double)p.step);
  ITOOL_LAUNCH(adamw_kernel, grid_for(p.n, kThreads, 4096), kThreads, 0, c.stream)(
      p.n, p.param, p.grad, p.m, p.v, p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, (float)(1.0 / bc1),
      (float)(1.0 / std::sqrt(bc2)), p.grad_scale);
  check_launch("adamw");
}

double sum_squares(Ctx& c, const float* x, int64_t n) {
  if (n == 0) return 0.0;
  const int parts = (int)std::min<int64_t>(1024, (n + kThreads - 1) / kThreads);
  Scratch part(c, (parts + 1) * sizeof(double));
  ITOOL_LAUNCH(sumsq_partial_kernel, parts, kThreads, 0, c.stream)(x, n, part.as<double>());
  check_launch("sum_squares");
  ITOOL_LAUNCH(sumsq_finish_kernel, 1, 1024, 0, c.stream)(part.as<double>(), parts, part.as<double>() + parts);
  check_launch("sum_squares");
  double r = 0.0;
  check(cudaMemcpyAsync(&r, part.as<double>() + parts, sizeof(double), cudaMemcpyDeviceToHost, c.stream),
        "sum_squares: copy result");
  check(cudaStreamSynchronize(c.stream), "sum_squares");
  return r;
}

void scale(Ctx& c, float* x, int64_t n, float s) {
  if (n == 0) return;
  ITOOL_LAUNCH(scale_kernel, grid_for(n, kThreads, 4096), kThreads, 0, c.stream)(x, n, s);
  check_launch("scale");
}

void axpy(Ctx& c, float* y, const float* x, int64_t n, float a) {
  if (n == 0) return;
  ITOOL_LAUNCH(axpy_kernel, grid_for(n, kThreads, 4096), kThreads, 0, c.stream)(y, x, n, a);
  check_launch("axpy");
}

bool has_nonfinite(Ctx& c, const float* x, int64_t n) {
  if (n == 0) return false;
  Scratch flag(c, sizeof(int));
  check(cudaMemsetAsync(flag.get(), 0, sizeof(int), c.stream), "has_nonfinite: memset");
  ITOOL_LAUNCH(nonfinite_kernel, grid_for(n, kThreads, 4096), kThreads, 0, c.stream)(x, n, flag.as<int>());
  check_launch("has_nonfinite");
  int h = 0;
  check(cudaMemcpyAsync(&h, flag.get(), sizeof(int), cudaMemcpyDeviceToHost, c.stream), "has_nonfinite: copy");
  check(cudaStreamSynchronize(c.stream), "has_nonfinite");
  return h != 0;
}

void preference_loss(Ctx& c, const PreferenceParams& p) {
  if (p.P == 0) return;
  ITOOL_LAUNCH(preference_kernel, grid_for(p.P, 128), 128, 0, c.stream)(
      (int)p.kind, p.P, p.beta, p.gamma, p.label_smoothing, p.lambda, p.chosen, p.rejected, p.chosen_len,
      p.rejected_len, p.ref_chosen, p.ref_rejected, p.loss, p.d_chosen, p.d_rejected, p.chosen_reward,
      p.rejected_reward, c.err);
  check_launch("preference_loss");
}

void sample(Ctx& c, const SampleParams& p, const double* u_host) {
  if (p.B == 0) return;
  Scratch u(c, p.B * sizeof(double));
  Scratch out(c, p.B * sizeof(SampleOut));
  check(cudaMemcpyAsync(u.get(), u_host, p.B * sizeof(double), cudaMemcpyHostToDevice, c.stream), "sample: copy u");
  if (p.B > 2147483647) throw_range("cuda: sample: B too large");
  ITOOL_LAUNCH(sample_kernel<1024>, (unsigned)p.B, 1024, 0, c.stream)(p.logits, p.V, p.temperature, p.top_k, p.top_p,
                                                             u.as<double>(), out.as<SampleOut>());
  check_launch("sample");
  std::vector<SampleOut> h(p.B);
  check(cudaMemcpyAsync(h.data(), out.get(), p.B * sizeof(SampleOut), cudaMemcpyDeviceToHost, c.stream),
        "sample: copy result");
  check(cudaStreamSynchronize(c.stream), "sample");
  for (int64_t b = 0; b < p.B; ++b) {
    if (p.tokens) p.tokens[b] = h[b].token;
    if (p.logp_sampled) p.logp_sampled[b] = h[b].logp_sampled;
    if (p.logp_model) p.logp_model[b] = h[b].logp_model;
  }
}

}  // namespace cuda
}  // namespace itool
