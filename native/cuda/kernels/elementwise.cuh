// Elementwise and row-wise kernels: convert, embedding, RMSNorm, RoPE, SwiGLU, add, bias,
// and the deterministic column sums used by the backward passes (no atomics).
#pragma once
#include "common.cuh"

namespace itool {
namespace cuda {

__global__ void convert_kernel(const void* src, int st, void* dst, int dt, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    store_from_float(dst, dt, i, load_as_float(src, st, i));
}

__global__ void embedding_fwd_kernel(const int32_t* ids, int64_t n, int64_t vocab, int64_t dim, const bf16* table,
                                     bf16* out, int* err) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n * dim; e += (int64_t)gridDim.x * blockDim.x) {
    int64_t i = e / dim, j = e % dim;
    int32_t id = ids[i];
    if (id < 0 || id >= vocab) {
      if (j == 0) set_error(err, kErrTokenId);
      out[e] = f2b(0.f);
    } else {
      out[e] = table[(int64_t)id * dim + j];
    }
  }
}

// Deterministic scatter-add: each thread owns one column and walks the tokens in order.
__global__ void embedding_bwd_kernel(const int32_t* ids, int64_t n, int64_t vocab, int64_t dim, const bf16* dout,
                                     float* dtable, int* err) {
  int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= dim) return;
  for (int64_t i = 0; i < n; ++i) {
    int32_t id = ids[i];
    if (id < 0 || id >= vocab) {
      if (j == 0) set_error(err, kErrTokenId);
      continue;
    }
    dtable[(int64_t)id * dim + j] += b2f(dout[i * dim + j]);
  }
}

// One warp per row.
__global__ void rmsnorm_fwd_kernel(int64_t n, int64_t d, float eps, const bf16* x, const bf16* w, bf16* y,
                                   float* rstd) {
  const int64_t row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const bf16* xr = x + row * d;
  float ss = 0.f;
  for (int64_t j = lane; j < d; j += 32) {
    float v = b2f(xr[j]);
    ss += v * v;
  }
  ss = warp_sum(ss);
  const float r = rsqrtf(ss / (float)d + eps);
  if (rstd && lane == 0) rstd[row] = r;
  if (y) {
    bf16* yr = y + row * d;
    for (int64_t j = lane; j < d; j += 32) yr[j] = f2b(b2f(xr[j]) * r * b2f(w[j]));
  }
}

// dx = rstd * (g - xhat * mean(g * xhat)), g = dy * w, xhat = x * rstd.
__global__ void rmsnorm_bwd_dx_kernel(int64_t n, int64_t d, const bf16* x, const bf16* w, const float* rstd,
                                      const bf16* dy, bf16* dx) {
  const int64_t row = blockIdx.x * (int64_t)(blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= n) return;
  const bf16 *xr = x + row * d, *dyr = dy + row * d;
  const float r = rstd[row];
  float dot = 0.f;
  for (int64_t j = lane; j < d; j += 32) dot += b2f(dyr[j]) * b2f(w[j]) * b2f(xr[j]) * r;
  dot = warp_sum(dot) / (float)d;
  bf16* dxr = dx + row * d;
  for (int64_t j = lane; j < d; j += 32) {
    float xh = b2f(xr[j]) * r;
    dxr[j] = f2b(r * (b2f(dyr[j]) * b2f(w[j]) - xh * dot));
  }
}

// Column partial sums over a slice of rows: part[s, j] = sum_{i in slice s} f(i, j)
// with f = dy * x * rstd (mode 0, RMSNorm dw) or dy (mode 1, bias).
__global__ void colsum_partial_kernel(int64_t n, int64_t d, int64_t rows_per_split, const bf16* dy, const bf16* x,
                                      const float* rstd, float* part, int mode) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  const int64_t s = blockIdx.y;
  if (j >= d) return;
  const int64_t i0 = s * rows_per_split, i1 = min(n, i0 + rows_per_split);
  float acc = 0.f;
  for (int64_t i = i0; i < i1; ++i) {
    float g = b2f(dy[i * d + j]);
    if (mode == 0) g *= b2f(x[i * d + j]) * rstd[i];
    acc += g;
  }
  part[s * d + j] = acc;
}
__global__ void colsum_finish_kernel(int64_t d, int64_t splits, const float* part, float* out) {
  const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (j >= d) return;
  float acc = 0.f;
  for (int64_t s = 0; s < splits; ++s) acc += part[s * d + j];
  out[j] += acc;
}

// HF half-split RoPE, in place on x [T, H, D]. Every position is rotated, negative ones
// too (a rotation by -p, as the CPU engine and HF's cos/sin of position * inv_freq); the
// model binding keeps the model's own positions in [0, 2^24].
__global__ void rope_kernel(bf16* x, const int32_t* pos, const float* inv_freq, int64_t T, int64_t H, int64_t D,
                            bool inverse) {
  const int64_t half = D / 2;
  const int64_t total = T * H * half;
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = e % half, th = e / half, t = th / H;
    const int32_t p = pos[t];
    const float ang = (float)p * inv_freq[i];
    float s, c;
    sincosf(ang, &s, &c);
    if (inverse) s = -s;
    bf16* row = x + th * D;
    const float x1 = b2f(row[i]), x2 = b2f(row[i + half]);
    row[i] = f2b(x1 * c - x2 * s);
    row[i + half] = f2b(x2 * c + x1 * s);
  }
}

__device__ __forceinline__ float sigmoidf_(float g) { return 1.f / (1.f + __expf(-g)); }

__global__ void swiglu_fwd_kernel(int64_t n, const bf16* gate, const bf16* up, bf16* out) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = b2f(gate[i]);
    out[i] = f2b(g * sigmoidf_(g) * b2f(up[i]));
  }
}
__global__ void swiglu_bwd_kernel(int64_t n, const bf16* gate, const bf16* up, const bf16* dout, bf16* dgate,
                                  bf16* dup) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = b2f(gate[i]), u = b2f(up[i]), d = b2f(dout[i]);
    const float sg = sigmoidf_(g);
    if (dgate) dgate[i] = f2b(d * u * sg * (1.f + g * (1.f - sg)));
    if (dup) dup[i] = f2b(d * g * sg);
  }
}

__global__ void add_kernel(int64_t n, const bf16* a, const bf16* b, bf16* out) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = f2b(b2f(a[i]) + b2f(b[i]));
}

__global__ void bias_fwd_kernel(int64_t n, int64_t d, bf16* x, const bf16* bias) {
  for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < n * d; e += (int64_t)gridDim.x * blockDim.x)
    x[e] = f2b(b2f(x[e]) + b2f(bias[e % d]));
}

}  // namespace cuda
}  // namespace itool
