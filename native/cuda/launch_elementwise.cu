// Launchers for convert, embedding, RMSNorm, RoPE, SwiGLU, add and bias (bf16 activations,
// f32 statistics and gradients of parameters).
#include <algorithm>
#include "kernels/elementwise.cuh"
#include "launch.h"

namespace itool {
namespace cuda {

static constexpr int kThreads = 256;

void convert(Ctx& c, const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (n <= 0) return;
  ITOOL_LAUNCH(convert_kernel, grid_for(n, kThreads), kThreads, 0, c.stream)(src, (int)st, dst, (int)dt, n);
  check_launch("convert");
}

void embedding_forward(Ctx& c, const EmbeddingParams& p) {
  if (p.n == 0 || p.dim == 0) return;
  ITOOL_LAUNCH(embedding_fwd_kernel, grid_for(p.n * p.dim, kThreads), kThreads, 0, c.stream)(
      p.ids, p.n, p.vocab, p.dim, static_cast<const bf16*>(p.table), static_cast<bf16*>(p.out), c.err);
  check_launch("embedding_forward");
}

void embedding_backward(Ctx& c, const EmbeddingParams& p) {
  if (p.n == 0 || p.dim == 0) return;
  const int threads = 128;
  ITOOL_LAUNCH(embedding_bwd_kernel, (unsigned)((p.dim + threads - 1) / threads), threads, 0, c.stream)(
      p.ids, p.n, p.vocab, p.dim, static_cast<const bf16*>(p.dout), p.dtable, c.err);
  check_launch("embedding_backward");
}

void rmsnorm_forward(Ctx& c, const RmsNormParams& p) {
  if (p.n == 0) return;
  const int rows_per_block = kThreads / 32;
  ITOOL_LAUNCH(rmsnorm_fwd_kernel, (unsigned)((p.n + rows_per_block - 1) / rows_per_block), kThreads, 0, c.stream)(
      p.n, p.d, p.eps, static_cast<const bf16*>(p.x), static_cast<const bf16*>(p.w), static_cast<bf16*>(p.y), p.rstd);
  check_launch("rmsnorm_forward");
}

// Deterministic sum over rows of f(i, j) into out[j] (accumulate).
static void column_sum(Ctx& c, int64_t n, int64_t d, const bf16* dy, const bf16* x, const float* rstd, float* out,
                       int mode, const char* what) {
  if (n == 0 || d == 0 || !out) return;
  const int threads = 128;
  const int64_t col_blocks = (d + threads - 1) / threads;
  // enough row splits to fill the GPU, each of at least 64 rows
  int64_t splits = std::max<int64_t>(1, std::min<int64_t>((c.sm_count * 8 + col_blocks - 1) / col_blocks, (n + 63) / 64));
  splits = std::min<int64_t>(splits, 65535);
  const int64_t rows = (n + splits - 1) / splits;
  splits = (n + rows - 1) / rows;
  Scratch part(c, (size_t)(splits * d) * sizeof(float));
  ITOOL_LAUNCH(colsum_partial_kernel, dim3((unsigned)col_blocks, (unsigned)splits), threads, 0, c.stream)(
      n, d, rows, dy, x, rstd, part.as<float>(), mode);
  check_launch(what);
  ITOOL_LAUNCH(colsum_finish_kernel, (unsigned)col_blocks, threads, 0, c.stream)(d, splits, part.as<float>(), out);
  check_launch(what);
}

void rmsnorm_backward(Ctx& c, const RmsNormParams& p) {
  if (p.n == 0) return;
  const int rows_per_block = kThreads / 32;
  const unsigned blocks = (unsigned)((p.n + rows_per_block - 1) / rows_per_block);
  const bf16* x = static_cast<const bf16*>(p.x);
  const bf16* w = static_cast<const bf16*>(p.w);
  const bf16* dy = static_cast<const bf16*>(p.dy);
  // rstd saved by the forward, or recomputed here when the caller did not keep it
  std::unique_ptr<Scratch> own;
  const float* rstd = p.rstd;
  if (!rstd) {
    own.reset(new Scratch(c, (size_t)p.n * sizeof(float)));
    ITOOL_LAUNCH(rmsnorm_fwd_kernel, blocks, kThreads, 0, c.stream)(p.n, p.d, p.eps, x, w, nullptr, own->as<float>());
    check_launch("rmsnorm_backward");
    rstd = own->as<float>();
  }
  if (p.dx) {
    ITOOL_LAUNCH(rmsnorm_bwd_dx_kernel, blocks, kThreads, 0, c.stream)(p.n, p.d, x, w, rstd, dy, static_cast<bf16*>(p.dx));
    check_launch("rmsnorm_backward");
  }
  column_sum(c, p.n, p.d, dy, x, rstd, p.dw, 0, "rmsnorm_backward");
}

void rope(Ctx& c, const RopeParams& p) {
  const int64_t total = p.T * p.H * (p.D / 2);
  if (total == 0) return;
  ITOOL_LAUNCH(rope_kernel, grid_for(total, kThreads), kThreads, 0, c.stream)(static_cast<bf16*>(p.x), p.pos, p.inv_freq, p.T,
                                                                     p.H, p.D, p.inverse);
  check_launch("rope");
}

void swiglu_forward(Ctx& c, const SwigluParams& p) {
  if (p.n == 0) return;
  ITOOL_LAUNCH(swiglu_fwd_kernel, grid_for(p.n, kThreads), kThreads, 0, c.stream)(
      p.n, static_cast<const bf16*>(p.gate), static_cast<const bf16*>(p.up), static_cast<bf16*>(p.out));
  check_launch("swiglu_forward");
}

void swiglu_backward(Ctx& c, const SwigluParams& p) {
  if (p.n == 0) return;
  ITOOL_LAUNCH(swiglu_bwd_kernel, grid_for(p.n, kThreads), kThreads, 0, c.stream)(
      p.n, static_cast<const bf16*>(p.gate), static_cast<const bf16*>(p.up), static_cast<const bf16*>(p.dout),
      static_cast<bf16*>(p.dgate), static_cast<bf16*>(p.dup));
  check_launch("swiglu_backward");
}

void add(Ctx& c, const AddParams& p) {
  if (p.n == 0) return;
  ITOOL_LAUNCH(add_kernel, grid_for(p.n, kThreads), kThreads, 0, c.stream)(p.n, static_cast<const bf16*>(p.a),
                                                                  static_cast<const bf16*>(p.b), static_cast<bf16*>(p.out));
  check_launch("add");
}

void bias_forward(Ctx& c, const BiasParams& p) {
  if (p.n == 0 || p.d == 0) return;
  ITOOL_LAUNCH(bias_fwd_kernel, grid_for(p.n * p.d, kThreads), kThreads, 0, c.stream)(p.n, p.d, static_cast<bf16*>(p.x),
                                                                              static_cast<const bf16*>(p.bias));
  check_launch("bias_forward");
}

void bias_backward(Ctx& c, const BiasParams& p) {
  column_sum(c, p.n, p.d, static_cast<const bf16*>(p.dy), nullptr, nullptr, p.dbias, 1, "bias_backward");
}

}  // namespace cuda
}  // namespace itool
