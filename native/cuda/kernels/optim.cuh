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

// ---- sampling: one block per row, the CPU engine's semantics (native/cpu/ops_sample.cpp):
// all tokens in index order when neither top-k nor top-p is on; otherwise the tokens in
// descending order of logit with ties in index order, cut to the first k, then to the
// shortest prefix whose mass reaches top_p of theirs, and the token is the first of that
// list whose cumulative weight exceeds u * mass.
// Such a list is {x > thr} followed by the first m tokens (in index order) with x == thr, so
// it is found without sorting: thresholds by bisection on an order-preserving integer key of
// the logit (exact, 32 steps, no NaN midpoint when a logit is -inf), then the count of ties.
// The drawn token likewise: the value v where the cumulative mass steps over u * mass, then
// which of the tokens tied at v. Weights exp((x - max) / T) are f32 exponentials summed in
// double; log-probabilities are (x - max) - log(sum), never x - (max + log(sum)) (that loses
// half an ulp of the max: ~5e-4 at logits of 1e4). NaN logits have no defined result.
struct SampleOut { int32_t token; float logp_sampled; float logp_model; };

// Order-preserving key of a float (-0 maps to +0's key): a < b <=> key(a) < key(b).
__device__ __forceinline__ uint32_t sample_key(float v) {
  const uint32_t u = __float_as_uint(v == 0.f ? 0.f : v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float sample_value(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

template <int THREADS>
__global__ void __launch_bounds__(THREADS) sample_kernel(const float* logits, int64_t V, float temperature,
                                                         int64_t top_k, float top_p, const double* u, SampleOut* out) {
  __shared__ float redf[32];
  __shared__ double redd[32];
  __shared__ double seg[THREADS];
  __shared__ float wv[32];
  __shared__ int64_t wa[32];
  const int64_t b = blockIdx.x;
  const float* x = logits + b * V;
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
  // max with the lowest index holding it, and the min
  float mx = -INFINITY, mn = INFINITY;
  int64_t arg = V;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) {
    const float v = x[j];
    if (v > mx || (v == mx && j < arg)) { mx = v; arg = j; }
    mn = fminf(mn, v);
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, mx, o);
    const int64_t oa = __shfl_xor_sync(0xffffffffu, arg, o);
    if (ov > mx || (ov == mx && oa < arg)) { mx = ov; arg = oa; }
  }
  if (lane == 0) { wv[wid] = mx; wa[wid] = arg; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < THREADS / 32; ++w)
      if (wv[w] > wv[0] || (wv[w] == wv[0] && wa[w] < wa[0])) { wv[0] = wv[w]; wa[0] = wa[w]; }
  }
  __syncthreads();
  const float gmax = wv[0];
  const int64_t gargmax = wa[0] < V ? wa[0] : 0;
  mn = -block_max(-mn, redf);
  double se = 0.0;
  for (int64_t j = threadIdx.x; j < V; j += THREADS) se += (double)__expf(x[j] - gmax);
  const double lsum = log(block_sum_d(se, redd));  // log-softmax = (x - gmax) - lsum
  if (!(temperature > 0.f)) {
    if (threadIdx.x == 0) out[b] = SampleOut{(int32_t)gargmax, 0.f, (float)(((double)x[gargmax] - gmax) - lsum)};
    return;
  }
  const float inv_t = 1.f / temperature;
  auto weight = [&](float v) { return (double)__expf((v - gmax) * inv_t); };
  auto finish = [&](int64_t tok, double z) {  // thread 0
    out[b] = SampleOut{(int32_t)tok, (float)(((double)x[tok] - gmax) / (double)temperature - log(z)),
                       (float)(((double)x[tok] - gmax) - lsum)};
  };
  const double goal_u = u[b];

  if (!(top_k > 0 && top_k < V) && !(top_p < 1.f)) {
    // all tokens: inverse CDF in index order (as on the CPU): contiguous segment per
    // thread, block prefix over the segments
    const int64_t per = (V + THREADS - 1) / THREADS;
    const int64_t j0 = threadIdx.x * per, j1 = min(V, j0 + per);
    double mine = 0.0;
    for (int64_t j = j0; j < j1; ++j) mine += weight(x[j]);
    seg[threadIdx.x] = mine;
    __syncthreads();
    if (threadIdx.x == 0) {
      double z = 0.0;
      for (int t = 0; t < THREADS; ++t) z += seg[t];
      const double goal = goal_u * z;
      double run = 0.0;
      int64_t tok = -1;
      bool done = false;
      for (int t = 0; t < THREADS && !done; ++t) {
        const int64_t a0 = t * per, a1 = min(V, a0 + per);
        if (a0 >= V) break;
        const bool last = t + 1 >= THREADS || (t + 1) * per >= V;
        if (!last && run + seg[t] <= goal) { run += seg[t]; continue; }
        for (int64_t j = a0; j < a1; ++j) {
          run += weight(x[j]);
          tok = j;
          if (run > goal) { done = true; break; }
        }
      }
      if (tok < 0) tok = V - 1;
      finish(tok, z);
    }
    return;
  }

  // block-wide counts and masses over {key(x) >= k} (every thread gets the same result)
  auto count_ge = [&](uint32_t k) {
    double c = 0.0;
    for (int64_t j = threadIdx.x; j < V; j += THREADS) c += sample_key(x[j]) >= k ? 1.0 : 0.0;
    return block_sum_d(c, redd);
  };
  auto mass_ge = [&](uint32_t k) {
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < V; j += THREADS) {
      const float v = x[j];
      if (sample_key(v) >= k) s += weight(v);
    }
    return block_sum_d(s, redd);
  };
  // the largest key k in [lo, hi] for which pred(k) holds, given that pred(lo) holds
  // (pred is monotone: true up to some key, false above)
  auto largest = [&](uint32_t lo, uint32_t hi, auto pred) {
    while (lo < hi) {
      const uint32_t mid = lo + (hi - lo + 1) / 2;
      if (pred(mid)) lo = mid; else hi = mid - 1;
    }
    return lo;
  };
  const uint32_t kmax = sample_key(gmax);
  // candidates: {key > thr} and the first m_thr tokens with key == thr; z their mass
  uint32_t thr = sample_key(mn);
  double m_thr = V - (thr < kmax ? count_ge(thr + 1) : 0.0);
  if (top_k > 0 && top_k < V) {
    // the k-th largest value: the largest key with at least k tokens at or above it
    thr = largest(thr, kmax, [&](uint32_t k) { return count_ge(k) >= (double)top_k; });
    m_thr = (double)top_k - (thr < kmax ? count_ge(thr + 1) : 0.0);
  }
  double above = thr < kmax ? mass_ge(thr + 1) : 0.0;
  double z = above + m_thr * weight(sample_value(thr));
  if (top_p < 1.f) {
    // the shortest prefix whose mass reaches top_p * z: its last value t is the largest key
    // whose mass at or above it reaches the target (above thr that mass is mass_ge)
    const double target = (double)top_p * z;
    const uint32_t t = largest(thr, kmax, [&](uint32_t k) { return mass_ge(k) >= target; });
    if (t != thr) {
      above = t < kmax ? mass_ge(t + 1) : 0.0;
      m_thr = count_ge(t) - (t < kmax ? count_ge(t + 1) : 0.0);
      thr = t;
    }
    // how many of the tokens tied at thr the prefix needs
    const double w = weight(sample_value(thr));
    const double need = w > 0.0 ? ceil((target - above) / w) : 1.0;
    m_thr = fmax(1.0, fmin(m_thr, need));
    z = above + m_thr * w;
  }
  // the drawn value: the largest key whose candidate mass at or above it exceeds u * z
  const double goal = goal_u * z;
  const uint32_t v = z > goal ? largest(thr, kmax, [&](uint32_t k) { return mass_ge(k) > goal; }) : thr;
  const double above_v = v < kmax ? mass_ge(v + 1) : 0.0;
  const double ties_v = v == thr ? m_thr : count_ge(v) - (v < kmax ? count_ge(v + 1) : 0.0);
  const double wv_ = weight(sample_value(v));
  // which of the tokens tied at v, in index order: the first whose cumulative weight exceeds the goal
  const double nth = fmin(ties_v - 1.0, fmax(0.0, wv_ > 0.0 ? floor((goal - above_v) / wv_) : 0.0));
  // its index: tie counts over contiguous segments, then a walk of the one segment
  const int64_t per = (V + THREADS - 1) / THREADS;
  const int64_t j0 = threadIdx.x * per, j1 = min(V, j0 + per);
  double mine = 0.0;
  for (int64_t j = j0; j < j1; ++j) mine += sample_key(x[j]) == v ? 1.0 : 0.0;
  seg[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    double before = 0.0;
    int64_t tok = gargmax;
    for (int t = 0; t < THREADS; ++t) {
      if (before + seg[t] <= nth) { before += seg[t]; continue; }
      const int64_t a0 = t * per, a1 = min(V, a0 + per);
      for (int64_t j = a0; j < a1; ++j)
        if (sample_key(x[j]) == v) {
          if (before == nth) { tok = j; break; }
          before += 1.0;
        }
      break;
    }
    finish(tok, z);
  }
}

}  // namespace cuda
}  // namespace itool
