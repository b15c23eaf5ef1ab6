// AdamW, reductions over f32 gradients, preference losses and sampling kernels.
#pragma once
#include "common.cuh"

namespace itool {
namespace cuda {

__global__ void adamw_kernel(int64_t n, float* param, const float* grad, float* m, float* v, float lr, float b1,
                             float b2, float eps, float wd, float inv_bc1, float inv_sqrt_bc2, float gs) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const float g = grad[i] * gs;
    const float mi = b1 * m[i] + (1.f - b1) * g;
    const float vi = b2 * v[i] + (1.f - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float p = param[i];
    param[i] = p - lr * ((mi * inv_bc1) / (sqrtf(vi) * inv_sqrt_bc2 + eps) + wd * p);
  }
}

// Deterministic two-pass sum of squares in double: fixed grid, then one block.
__global__ void sumsq_partial_kernel(const float* x, int64_t n, double* part) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const double v = x[i];
    acc += v * v;
  }
  acc = block_sum_d(acc, red);
  if (threadIdx.x == 0) part[blockIdx.x] = acc;
}
__global__ void sumsq_finish_kernel(const double* part, int nparts, double* out) {
  __shared__ double red[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < nparts; i += blockDim.x) acc += part[i];
  acc = block_sum_d(acc, red);
  if (threadIdx.x == 0) *out = acc;
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) x[i] *= s;
}
__global__ void axpy_kernel(float* y, const float* x, int64_t n, float a) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] += a * x[i];
}
__global__ void nonfinite_kernel(const float* x, int64_t n, int* flag) {
  bool bad = false;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    bad |= !isfinite(x[i]);
  if (__syncthreads_or(bad) && threadIdx.x == 0) *flag = 1;
}

// ---- preference losses (double inside; P is small)
__device__ __forceinline__ double log_sigmoid(double z) {  // log σ(z), stable
  return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}
__device__ __forceinline__ double sigmoid_d(double z) {
  return z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
}
// log(p / (1 - p)) with log p = m (m < 0): m - log(1 - e^m)
__device__ __forceinline__ double log_odds(double m) { return m - log(-expm1(m)); }

__global__ void preference_kernel(int kind, int64_t P, float beta, float gamma, float ls, float lambda,
                                  const float* c, const float* r, const float* cl, const float* rl, const float* rc,
                                  const float* rr, float* loss, float* dc, float* dr, float* crw, float* rrw,
                                  int* err) {
  const int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= P) return;
  const double C = c[i], R = r[i], B = beta;
  double L = 0, gC = 0, gR = 0, rwc = 0, rwr = 0;
  if (kind == 0 || kind == 1) {  // DPO, IPO
    const double pc = C - rc[i], pr = R - rr[i];
    rwc = B * pc;
    rwr = B * pr;
    if (kind == 0) {
      const double z = B * (pc - pr);
      L = -(1.0 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z);
      const double dz = -(1.0 - ls) * sigmoid_d(-z) + ls * sigmoid_d(z);
      gC = B * dz;
      gR = -B * dz;
    } else {
      const double h = pc - pr, t = h - 1.0 / (2.0 * B);
      L = t * t;
      gC = 2.0 * t;
      gR = -2.0 * t;
    }
  } else if (kind == 2) {  // SimPO
    const double lc = cl[i], lr = rl[i];
    rwc = B * C / lc;
    rwr = B * R / lr;
    const double z = rwc - rwr - gamma;
    L = -log_sigmoid(z);
    const double dz = -sigmoid_d(-z);
    gC = dz * B / lc;
    gR = -dz * B / lr;
  } else {  // ORPO
    const double lc = cl[i], lr = rl[i];
    // log-odds are infinite at probability 1: averages clamped to at most -1e-6, no
    // gradient through the clamp (as the CPU engine, ops.h)
    const double mc = fmin(C / lc, -1e-6), mr = fmin(R / lr, -1e-6);
    const double oc = log_odds(mc), orr = log_odds(mr);
    rwc = oc;
    rwr = orr;
    const double x = oc - orr;
    L = -mc - lambda * log_sigmoid(x);
    const double dx = -lambda * sigmoid_d(-x);
    // d log_odds / dm = 1 / (1 - e^m)
    gC = C / lc < -1e-6 ? (-1.0 + dx / (-expm1(mc))) / lc : 0.0;
    gR = R / lr < -1e-6 ? (-dx / (-expm1(mr))) / lr : 0.0;
  }
  if ((kind == 2 || kind == 3) && !(cl[i] > 0.f && rl[i] > 0.f)) {
    set_error(err, kErrLength);
    L = gC = gR = rwc = rwr = NAN;
  }
  if (loss) loss[i] = (float)L;
  if (dc) dc[i] = (float)gC;
  if (dr) dr[i] = (float)gR;
  if (crw) crw[i] = (float)rwc;
  if (rrw) rrw[i] = (float)rwr;
}

// ---- sampling: one block per row.
// Candidate set after temperature / top-k / top-p is {j : x_j >= thr} with x = logit / T;
// thresholds are found by bisection on the value (ties are kept together). The token is
// drawn by inverse CDF over the candidates in index order with the host's uniform u.
struct SampleOut { int32_t token; float logp_sampled; float logp_model; };

template <int THREADS>
__global__ void __launch_bounds__(THREADS) sample_kernel(const float* logits, int64_t V, float temperature,
                                                         int64_t top_k, float top_p, const double* u, SampleOut* out) {
  __shared__ float redf[32];
  __shared__ double redd[32];
  __shared__ double seg[THREADS];
  const int64_t b = blockIdx.x;
  const float* x = logits + b * V;
  // raw max and log-sum-exp
  float mx = -INFINITY;
  int64_t arg = V;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) {
    const float v = x[j];
    if (v > mx || (v == mx && j < arg)) { mx = v; arg = j; }
  }
  // argmax with lowest index on ties: reduce (value, index)
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, mx, o);
    const int64_t oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ov > mx || (ov == mx && oa < arg)) { mx = ov; arg = oa; }
  }
  __shared__ float wv[32];
  __shared__ int64_t wa[32];
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  if (lane == 0) { wv[wid] = mx; wa[wid] = arg; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < THREADS / 32; ++w)
      if (wv[w] > wv[0] || (wv[w] == wv[0] && wa[w] < wa[0])) { wv[0] = wv[w]; wa[0] = wa[w]; }
  }
  __syncthreads();
  const float gmax = wv[0];
  const int64_t gargmax = wa[0];
  float se = 0.f;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) se += __expf(x[j] - gmax);
  const float lse = gmax + logf(block_sum(se, redf));

  if (!(temperature > 0.f)) {
    if (threadIdx.x == 0) out[b] = SampleOut{(int32_t)gargmax, 0.f, x[gargmax] - lse};
    return;
  }
  const float inv_t = 1.f / temperature;
  const float smax = gmax * inv_t;
  // lowest value of the row (for bisection bounds)
  float mn = INFINITY;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) mn = fminf(mn, x[j]);
  mn = -block_max(-mn, redf);
  float thr = -INFINITY;
  if (top_k > 0 && top_k < V) {
    // largest t with count(x >= t) >= k
    float lo = mn, hi = gmax;  // count(x >= lo) = V >= k; count(x >= hi) >= 1
    for (int it = 0; it < 48; ++it) {
      const float mid = lo + 0.5f * (hi - lo);
      if (mid <= lo || mid >= hi) break;
      float cnt = 0.f;
      for (int64_t j = threadIdx.x; j < V; j += THREADS) cnt += x[j] >= mid ? 1.f : 0.f;
      cnt = block_sum(cnt, redf);
      if (cnt >= (float)top_k) lo = mid; else hi = mid;
    }
    // hi may hold exactly k when reachable; lo always holds >= k
    float cnt_hi = 0.f;
    for (int64_t j = threadIdx.x; j < V; j += THREADS) cnt_hi += x[j] >= hi ? 1.f : 0.f;
    cnt_hi = block_sum(cnt_hi, redf);
    thr = cnt_hi >= (float)top_k ? hi : lo;
  }
  // mass of the candidates at temperature
  auto mass_above = [&](float t) {
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < V; j += THREADS) {
      const float v = x[j];
      if (v >= t) s += (double)__expf(v * inv_t - smax);
    }
    return block_sum_d(s, redd);
  };
  const double zk = mass_above(thr);
  if (top_p < 1.f && top_p > 0.f) {
    // largest t >= thr with mass(x >= t) >= top_p * zk
    const double target = (double)top_p * zk;
    float lo = thr == -INFINITY ? mn : thr, hi = gmax;
    if (mass_above(hi) < target) {
      for (int it = 0; it < 48; ++it) {
        const float mid = lo + 0.5f * (hi - lo);
        if (mid <= lo || mid >= hi) break;
        if (mass_above(mid) >= target) lo = mid; else hi = mid;
      }
      thr = lo;
    } else {
      thr = hi;
    }
  }
  const double z = mass_above(thr);
  const double goal = u[b] * z;
  const float lz = smax + (float)log(z);
  if (thr != -INFINITY) {
    // top-k / top-p: candidates in descending order of logit (the CPU engine's order); the
    // token is the candidate of largest value v with mass(x >= v) > goal, found by bisection
    // on the value (mass is a step function of v that changes only at logit values).
    float lo = thr, hi = gmax;
    float tv;
    if (mass_above(hi) > goal) {
      tv = hi;
    } else {
      for (int it = 0; it < 64; ++it) {
        const float mid = lo + 0.5f * (hi - lo);
        if (mid <= lo || mid >= hi) break;
        if (mass_above(mid) > goal) lo = mid; else hi = mid;
      }
      // the step lies in [lo, hi): take the logit there (lo itself once the bisection
      // reached adjacent floats; the largest one in the interval otherwise)
      float cand = -INFINITY;
      for (int64_t j = threadIdx.x; j < V; j += THREADS)
        if (x[j] >= lo && x[j] < hi) cand = fmaxf(cand, x[j]);
      cand = block_max(cand, redf);
      tv = cand == -INFINITY ? lo : cand;
    }
    // lowest index holding that value (ties go to the lower index, as on the CPU)
    int64_t best = V;
    for (int64_t j = threadIdx.x; j < V; j += THREADS)
      if (x[j] == tv && j < best) best = j;
    for (int o = 16; o > 0; o >>= 1) best = min(best, (int64_t)__shfl_xor_sync(0xffffffffu, best, o));
    __syncthreads();
    if (lane == 0) wa[wid] = best;
    __syncthreads();
    if (threadIdx.x == 0) {
      int64_t tok = wa[0];
      for (int w = 1; w < THREADS / 32; ++w) tok = min(tok, wa[w]);
      if (tok >= V) tok = gargmax;
      out[b] = SampleOut{(int32_t)tok, x[tok] * inv_t - lz, x[tok] - lse};
    }
    return;
  }
  // all tokens: inverse CDF in index order (as on the CPU): contiguous segment per thread,
  // block prefix over the segments
  const int64_t per = (V + THREADS - 1) / THREADS;
  const int64_t j0 = threadIdx.x * per, j1 = min(V, j0 + per);
  double mine = 0.0;
  for (int64_t j = j0; j < j1; ++j) mine += (double)__expf(x[j] * inv_t - smax);
  seg[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    double run = 0.0;
    int64_t tok = -1;
    bool done = false;
    for (int t = 0; t < THREADS && !done; ++t) {
      const int64_t a0 = t * per, a1 = min(V, a0 + per);
      if (a0 >= V) break;
      const bool last = t + 1 >= THREADS || (t + 1) * per >= V;
      if (!last && run + seg[t] <= goal) { run += seg[t]; continue; }
      for (int64_t j = a0; j < a1; ++j) {
        run += (double)__expf(x[j] * inv_t - smax);
        tok = j;
        if (run > goal) { done = true; break; }
      }
    }
    if (tok < 0) tok = V - 1;
    out[b] = SampleOut{(int32_t)tok, x[tok] * inv_t - lz, x[tok] - lse};
  }
}

}  // namespace cuda
}  // namespace itool
