// CPU ops: GEMM entry, embedding, RMSNorm, RoPE, SwiGLU, add, bias and the f32
// vector helpers (sum_squares, scale, axpy, has_nonfinite).
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>
#include "gemm.h"
#include "ops_common.h"

namespace itool {

using cpu::F;
using cpu::kernels;
using cpu::pool;

// sgemm checks the dtypes, sizes and leading dimensions itself (gemm.cpp validate)
void CpuBackend::gemm(const GemmParams& p) { cpu::sgemm(p); }

// ------------------------------------------------------------------ embedding
void CpuBackend::embedding_forward(const EmbeddingParams& p) {
  const bool b16 = p.table_type == DType::BF16;
  if (!b16 && p.table_type != DType::F32)
    throw_type(std::string("cpu embedding_forward: a table of dtype ") + dtype_name(p.table_type) + " is not supported (f32, bf16)");
  float* out = F(p.out);
  for (int64_t i = 0; i < p.n; ++i)
    if (p.ids[i] < 0 || p.ids[i] >= p.vocab)
      throw_range("cpu embedding_forward: id " + std::to_string(p.ids[i]) + " at " + std::to_string(i) +
                  " is outside [0, " + std::to_string(p.vocab) + ")");
  size_t row = static_cast<size_t>(p.dim) * sizeof(float);
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          if (b16) {  // widened exactly: the 16 bits are the high half of the f32
            const uint16_t* src = static_cast<const uint16_t*>(p.table) + int64_t(p.ids[i]) * p.dim;
            float* dst = out + i * p.dim;
            for (int64_t j = 0; j < p.dim; ++j) dst[j] = bf16_to_f32(src[j]);
          } else {
            std::memcpy(out + i * p.dim, F(p.table) + int64_t(p.ids[i]) * p.dim, row);
          }
        }
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, p.dim)));
}

// dtable[ids[i]] += dout[i]: each thread owns a contiguous range of table rows and
// adds the rows that fall in it in increasing i, so the result does not depend on
// the thread count.
void CpuBackend::embedding_backward(const EmbeddingParams& p) {
  for (int64_t i = 0; i < p.n; ++i)
    if (p.ids[i] < 0 || p.ids[i] >= p.vocab)
      throw_range("cpu embedding_backward: id " + std::to_string(p.ids[i]) + " at " + std::to_string(i) +
                  " is outside [0, " + std::to_string(p.vocab) + ")");
  const float* dout = F(p.dout);
  const auto& k = kernels();
  int64_t parts = (p.n * p.dim < 65536) ? 1 : pool().size();
  pool().parallel_for(parts, [&](int64_t b, int64_t e) {
    for (int64_t part = b; part < e; ++part) {
      int64_t v0 = p.vocab * part / parts, v1 = p.vocab * (part + 1) / parts;
      for (int64_t i = 0; i < p.n; ++i) {
        int64_t id = p.ids[i];
        if (id >= v0 && id < v1) k.axpy(p.dtable + id * p.dim, dout + i * p.dim, 1.0f, p.dim);
      }
    }
  });
}

// ------------------------------------------------------------------ RMSNorm
void CpuBackend::rmsnorm_forward(const RmsNormParams& p) {
  const float* x = F(p.x);
  std::vector<float> wtmp;
  const float* w = cpu::weights_f32(p.w, p.w_type, p.d, wtmp, "rmsnorm_forward");
  float* y = F(p.y);
  const auto& k = kernels();
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float* xr = x + i * p.d;
          float ms = k.sumsq(xr, p.d) / static_cast<float>(p.d);
          float r = 1.0f / std::sqrt(ms + p.eps);
          if (p.rstd) p.rstd[i] = r;
          k.mul_scale(y + i * p.d, xr, w, r, p.d);
        }
      },
      std::max<int64_t>(1, 8192 / std::max<int64_t>(1, p.d)));
}

// dx = r*(w*dy) - x * r^3/d * sum_j(w_j dy_j x_j);   dw_j += sum_i dy_ij x_ij r_i
void CpuBackend::rmsnorm_backward(const RmsNormParams& p) {
  const float* x = F(p.x);
  std::vector<float> wtmp;
  const float* w = cpu::weights_f32(p.w, p.w_type, p.d, wtmp, "rmsnorm_backward");
  const float* dy = F(p.dy);
  float* dx = F(p.dx);
  const auto& k = kernels();
  std::vector<float> rs(static_cast<size_t>(p.n));
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          const float* xr = x + i * p.d;
          float r;
          if (p.rstd) {
            r = p.rstd[i];
          } else {
            float ms = k.sumsq(xr, p.d) / static_cast<float>(p.d);
            r = 1.0f / std::sqrt(ms + p.eps);
          }
          rs[i] = r;
          if (dx) {
            float s = k.dot3(w, dy + i * p.d, xr, p.d);
            float c = r * r * r * s / static_cast<float>(p.d);
            k.rms_bwd_row(dx + i * p.d, xr, w, dy + i * p.d, r, c, p.d);
          }
        }
      },
      std::max<int64_t>(1, 8192 / std::max<int64_t>(1, p.d)));
  if (!p.dw) return;
  // columns split across threads; rows added in order (independent of threads)
  int64_t cb = 64;
  int64_t nblk = (p.d + cb - 1) / cb;
  pool().parallel_for(nblk, [&](int64_t b, int64_t e) {
    int64_t j0 = b * cb, j1 = std::min(p.d, e * cb);
    std::vector<float> tmp(static_cast<size_t>(j1 - j0));
    for (int64_t i = 0; i < p.n; ++i) {
      const float* xr = x + i * p.d;
      const float* dr = dy + i * p.d;
      float r = rs[i];
      for (int64_t j = j0; j < j1; ++j) tmp[j - j0] = dr[j] * xr[j];
      k.axpy(p.dw + j0, tmp.data(), r, j1 - j0);
    }
  });
}

// ------------------------------------------------------------------ RoPE
// cos/sin of pos * inv_freq[i] for positions [0, npos), cached across calls for the
// same inv_freq (the model calls rope 4 times per layer with one inv_freq; the last 4
// inv_freq vectors are kept). Entries are
// computed exactly as the direct path would: f32 angle, cos/sin in double, rounded.
namespace {
struct RopeTable {
  std::vector<float> invf;
  int64_t npos = 0;
  std::vector<float> cs, sn;  // [npos, half]
};
std::mutex rope_mu;
std::vector<std::shared_ptr<const RopeTable>> rope_cache;  // most recent first, at most 4 (models with other inv_freq)

inline void rope_angles(float pos, const float* invf, int64_t half, float* cs, float* sn) {
  for (int64_t i = 0; i < half; ++i) {
    float ang = pos * invf[i];  // f32 product, as Hugging Face computes it
    cs[i] = static_cast<float>(std::cos(static_cast<double>(ang)));
    sn[i] = static_cast<float>(std::sin(static_cast<double>(ang)));
  }
}

std::shared_ptr<const RopeTable> rope_table(const float* invf, int64_t half, int64_t maxpos) {
  std::lock_guard<std::mutex> lk(rope_mu);
  std::shared_ptr<const RopeTable> c;
  size_t at = 0;
  for (; at < rope_cache.size(); ++at) {
    const auto& e = rope_cache[at];
    if (int64_t(e->invf.size()) == half && std::memcmp(e->invf.data(), invf, half * sizeof(float)) == 0) {
      c = e;
      break;
    }
  }
  if (c) rope_cache.erase(rope_cache.begin() + at);
  if (!c || c->npos <= maxpos) {
    auto t = std::make_shared<RopeTable>();
    t->invf.assign(invf, invf + half);
    t->npos = std::max<int64_t>(maxpos + 1, c ? c->npos : 0);
    t->npos = (t->npos + 255) / 256 * 256;
    t->cs.resize(static_cast<size_t>(t->npos * half));
    t->sn.resize(static_cast<size_t>(t->npos * half));
    int64_t from = 0;
    if (c) {  // keep the rows already computed
      std::copy(c->cs.begin(), c->cs.end(), t->cs.begin());
      std::copy(c->sn.begin(), c->sn.end(), t->sn.begin());
      from = c->npos;
    }
    for (int64_t p = from; p < t->npos; ++p)
      rope_angles(static_cast<float>(p), invf, half, t->cs.data() + p * half, t->sn.data() + p * half);
    c = t;
  }
  rope_cache.insert(rope_cache.begin(), c);
  if (rope_cache.size() > 4) rope_cache.pop_back();
  return c;
}
}  // namespace

void CpuBackend::rope(const RopeParams& p) {
  if (p.D % 2 != 0) throw_range("cpu rope: head dim D must be even, got " + std::to_string(p.D));
  float* x = F(p.x);
  const int64_t half = p.D / 2;
  if (p.T == 0 || half == 0) return;
  int64_t minpos = p.pos[0], maxpos = p.pos[0];
  for (int64_t t = 1; t < p.T; ++t) {
    minpos = std::min<int64_t>(minpos, p.pos[t]);
    maxpos = std::max<int64_t>(maxpos, p.pos[t]);
  }
  std::shared_ptr<const RopeTable> table;
  if (minpos >= 0 && maxpos < (int64_t(1) << 20) && (maxpos + 1) * half <= (int64_t(1) << 24))
    table = rope_table(p.inv_freq, half, maxpos);
  const float sgn = p.inverse ? -1.0f : 1.0f;
  pool().parallel_for(
      p.T,
      [&](int64_t b, int64_t e) {
        std::vector<float> cbuf(static_cast<size_t>(half)), sbuf(static_cast<size_t>(half));
        for (int64_t t = b; t < e; ++t) {
          const float* cs;
          const float* sn;
          if (table) {
            cs = table->cs.data() + int64_t(p.pos[t]) * half;
            sn = table->sn.data() + int64_t(p.pos[t]) * half;
          } else {
            rope_angles(static_cast<float>(p.pos[t]), p.inv_freq, half, cbuf.data(), sbuf.data());
            cs = cbuf.data();
            sn = sbuf.data();
          }
          for (int64_t h = 0; h < p.H; ++h) {
            float* r = x + (t * p.H + h) * p.D;
            float* r2 = r + half;
            for (int64_t i = 0; i < half; ++i) {
              const float a = r[i], bb = r2[i], s = sgn * sn[i];
              r[i] = a * cs[i] - bb * s;
              r2[i] = bb * cs[i] + a * s;
            }
          }
        }
      },
      std::max<int64_t>(1, 4096 / std::max<int64_t>(1, p.H * p.D)));
}

// ------------------------------------------------------------------ SwiGLU, add, bias
static constexpr int64_t kGrain = 16384;

void CpuBackend::swiglu_forward(const SwigluParams& p) {
  const auto& k = kernels();
  pool().parallel_for(
      p.n, [&](int64_t b, int64_t e) { k.swiglu_fwd(F(p.out) + b, F(p.gate) + b, F(p.up) + b, e - b); }, kGrain);
}
void CpuBackend::swiglu_backward(const SwigluParams& p) {
  const auto& k = kernels();
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        k.swiglu_bwd(F(p.dgate) + b, F(p.dup) + b, F(p.gate) + b, F(p.up) + b, F(p.dout) + b, e - b);
      },
      kGrain);
}
void CpuBackend::add(const AddParams& p) {
  const auto& k = kernels();
  pool().parallel_for(
      p.n, [&](int64_t b, int64_t e) { k.add(F(p.out) + b, F(p.a) + b, F(p.b) + b, e - b); }, kGrain);
}
void CpuBackend::bias_forward(const BiasParams& p) {
  const auto& k = kernels();
  std::vector<float> btmp;
  const float* bias = cpu::weights_f32(p.bias, p.bias_type, p.d, btmp, "bias_forward");
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) k.add(F(p.x) + i * p.d, F(p.x) + i * p.d, bias, p.d);
      },
      std::max<int64_t>(1, kGrain / std::max<int64_t>(1, p.d)));
}
void CpuBackend::bias_backward(const BiasParams& p) {
  const auto& k = kernels();
  int64_t cb = 64;
  int64_t nblk = (p.d + cb - 1) / cb;
  pool().parallel_for(nblk, [&](int64_t b, int64_t e) {
    int64_t j0 = b * cb, j1 = std::min(p.d, e * cb);
    for (int64_t i = 0; i < p.n; ++i) k.axpy(p.dbias + j0, F(p.dy) + i * p.d + j0, 1.0f, j1 - j0);
  });
}

// ------------------------------------------------------------------ f32 vector helpers
// sum of squares in double over fixed blocks (independent of the thread count)
double CpuBackend::sum_squares(const float* x, int64_t n) {
  if (n <= 0) return 0.0;
  const int64_t blk = 4096;
  int64_t nb = (n + blk - 1) / blk;
  std::vector<double> part(static_cast<size_t>(nb));
  const auto& k = kernels();
  pool().parallel_for(
      nb,
      [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
          int64_t s = i * blk, t = std::min(n, s + blk);
          part[i] = static_cast<double>(k.sumsq(x + s, t - s));
        }
      },
      16);
  double acc = 0.0;
  for (double v : part) acc += v;
  return acc;
}
void CpuBackend::scale(float* x, int64_t n, float s) {
  const auto& k = kernels();
  pool().parallel_for(n, [&](int64_t b, int64_t e) { k.scal(x + b, s, e - b); }, kGrain * 4);
}
void CpuBackend::axpy(float* y, const float* x, int64_t n, float a) {
  const auto& k = kernels();
  pool().parallel_for(n, [&](int64_t b, int64_t e) { k.axpy(y + b, x + b, a, e - b); }, kGrain * 4);
}
bool CpuBackend::has_nonfinite(const float* x, int64_t n) {
  if (n <= 0) return false;
  const int64_t blk = 65536;
  int64_t nb = (n + blk - 1) / blk;
  std::vector<char> bad(static_cast<size_t>(nb), 0);
  const auto& k = kernels();
  pool().parallel_for(nb, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      int64_t s = i * blk, t = std::min(n, s + blk);
      bad[i] = k.any_nonfinite(x + s, t - s);
    }
  });
  for (char c : bad)
    if (c) return true;
  return false;
}

// ------------------------------------------------------------------ AdamW
void CpuBackend::adamw(const AdamWParams& p) {
  if (p.step < 1) throw_range("cpu adamw: step must be >= 1, got " + std::to_string(p.step));
  double bc1 = 1.0 / (1.0 - std::pow(static_cast<double>(p.beta1), static_cast<double>(p.step)));
  double bc2 = 1.0 / (1.0 - std::pow(static_cast<double>(p.beta2), static_cast<double>(p.step)));
  const auto& k = kernels();
  pool().parallel_for(
      p.n,
      [&](int64_t b, int64_t e) {
        k.adamw(p.param + b, p.grad + b, p.m + b, p.v + b, e - b, p.lr, p.beta1, p.beta2, p.eps, p.weight_decay,
                static_cast<float>(bc1), static_cast<float>(bc2), p.grad_scale);
      },
      kGrain);
}

}  // namespace itool
