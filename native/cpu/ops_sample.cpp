// Sampling from logits [B, V]: temperature, top-k, top-p, with a counter-based RNG.
//
// Row b draws u = uniform(seed, counters[b]) (splitmix64-style hash, 53 bits), so the
// same (seed, counter) always gives the same token, on any thread count.
// Candidates: all tokens in index order when neither top-k nor top-p is active;
// otherwise the tokens sorted by logit (descending, ties toward the lower index),
// cut to the top k, then to the shortest prefix whose probability mass (renormalised
// over the top-k survivors) reaches top_p. The token is the first candidate whose
// cumulative weight exceeds u * total. Probabilities are computed in double: the
// exponentials over the vocabulary by the vectorised kernel (kn.exp_sum_f64, about 1e-16
// relative), the normaliser and the plain temperature weights in one pass when T is 1.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>
#include "ops_common.h"

namespace itool {

namespace cpu {
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double uniform01(uint64_t seed, uint64_t counter) {
  uint64_t a = mix64(seed + 0x9e3779b97f4a7c15ULL * (counter + 1));
  uint64_t b = mix64(a ^ counter);
  return static_cast<double>(b >> 11) * (1.0 / 9007199254740992.0);
}
// The first index whose cumulative weight (summed in order) exceeds target; the last
// when rounding leaves the total at or below it.
int64_t pick_cumulative(const double* w, int64_t n, double target) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) {
    acc += w[i];
    if (acc > target) return i;
  }
  return n - 1;
}
}  // namespace cpu

void CpuBackend::sample(const SampleParams& p) {
  const int64_t V = p.V;
  if (V < 1) throw_range("cpu sample: V must be >= 1");
  if (!(p.top_p > 0.0f) || p.top_p > 1.0f) throw_range("cpu sample: top_p must be in (0, 1]");
  if (p.top_k < 0) throw_range("cpu sample: top_k must be >= 0");
  const float* logits = p.logits;
  const auto& kn = cpu::kernels();
  cpu::for_items(p.B, [&](int64_t b) {
    const float* x = logits + b * V;
    thread_local std::vector<double> e1;  // exp(x - m): the normaliser's terms
    e1.resize(static_cast<size_t>(V));
    // raw log-softmax normaliser (double)
    // argmax, the first of equal maxima: the vectorised max, then the first index holding
    // it (a NaN maximum falls back to the plain scan, which skips NaNs after x[0])
    int64_t arg = -1;
    const float mx = kn.max(x, V);
    for (int64_t j = 0; j < V; ++j)
      if (x[j] == mx) {
        arg = j;
        break;
      }
    if (arg < 0) {
      arg = 0;
      for (int64_t j = 1; j < V; ++j)
        if (x[j] > x[arg]) arg = j;
    }
    const double m = x[arg];
    const double z = kn.exp_sum_f64(e1.data(), x, x[arg], 1.0, V);
    const double logz = m + std::log(z);
    if (!(p.temperature > 0.0f)) {
      p.tokens[b] = static_cast<int32_t>(arg);
      p.logp_sampled[b] = 0.0f;
      p.logp_model[b] = static_cast<float>(x[arg] - logz);
      return;
    }
    const double T = p.temperature;
    auto weight = [&](int64_t j) { return std::exp((static_cast<double>(x[j]) - m) / T); };
    auto before = [&](int32_t a, int32_t c) { return x[a] > x[c] || (x[a] == x[c] && a < c); };
    const bool use_k = p.top_k > 0 && p.top_k < V;
    const bool use_p = p.top_p < 1.0f;
    std::vector<int32_t> cand;
    std::vector<double> w, wt;
    // exp((x - m) / T) over the vocabulary and their sum: the normaliser's own terms at T = 1
    auto vocab_weights = [&](double& total) -> const double* {
      if (T == 1.0) {
        total = z;
        return e1.data();
      }
      wt.resize(static_cast<size_t>(V));
      total = kn.exp_sum_f64(wt.data(), x, x[arg], T, V);
      return wt.data();
    };
    double zall = 0;
    const double* all = nullptr;
    if (!use_k && !use_p) {
      // all tokens, index order
      double total = 0;
      const double* wv = vocab_weights(total);
      const int64_t tok = cpu::pick_cumulative(wv, V, cpu::uniform01(p.seed, p.counters[b]) * total);
      p.tokens[b] = static_cast<int32_t>(tok);
      p.logp_sampled[b] = static_cast<float>((x[tok] - m) / T - std::log(total));
      p.logp_model[b] = static_cast<float>(x[tok] - logz);
      return;
    }
    if (use_k) {
      // the k first tokens in `before` order, by one pass with a heap of k whose top is
      // the weakest kept token: a token enters only when it comes before that one (after
      // the first few thousand tokens almost never), so the pass is one comparison each
      const size_t k = static_cast<size_t>(p.top_k);
      cand.resize(k);
      std::iota(cand.begin(), cand.end(), 0);
      std::make_heap(cand.begin(), cand.end(), before);  // top: the last in `before` order
      for (int64_t j = static_cast<int64_t>(k); j < V; ++j) {
        if (!(x[j] >= x[cand.front()])) continue;  // fast reject (the exact test rejects these too, NaN included)
        if (!before(static_cast<int32_t>(j), cand.front())) continue;
        std::pop_heap(cand.begin(), cand.end(), before);
        cand.back() = static_cast<int32_t>(j);
        std::push_heap(cand.begin(), cand.end(), before);
      }
      std::sort(cand.begin(), cand.end(), before);
    } else {
      // top-p alone: the nucleus is a prefix of the sorted order. A histogram of the
      // scaled logits (bins 1/4 nat wide below the maximum) finds the smallest set of top
      // bins whose mass reaches top_p (with a margin for rounding); only the tokens in
      // those bins are sorted. The normaliser is the sum over all tokens in index order.
      constexpr int NB = 512;
      std::vector<int16_t> bin(static_cast<size_t>(V));
      double hist[NB] = {0};
      all = vocab_weights(zall);
      for (int64_t j = 0; j < V; ++j) {
        const double sj = (static_cast<double>(x[j]) - m) / T;  // <= 0
        const double wj = all[j];
        const double f = -sj * 4.0;
        const int bj = f < NB - 1 ? static_cast<int>(f) : NB - 1;
        bin[j] = static_cast<int16_t>(bj);
        hist[bj] += wj;
      }
      int last = NB - 1;
      double mass = 0;
      for (int bb = 0; bb < NB; ++bb) {
        mass += hist[bb];
        if (mass >= static_cast<double>(p.top_p) * zall * (1 + 1e-9)) {
          last = bb;
          break;
        }
      }
      for (int64_t j = 0; j < V; ++j)
        if (bin[j] <= last) cand.push_back(static_cast<int32_t>(j));
      std::sort(cand.begin(), cand.end(), before);
    }
    double zz = 0;
    w.resize(cand.size());
    for (size_t i = 0; i < cand.size(); ++i) w[i] = use_k ? weight(cand[i]) : all[cand[i]];
    if (use_k) {
      for (double wi : w) zz += wi;  // over the top-k survivors, in sorted order
    } else {
      zz = zall;
    }
    size_t n = cand.size();
    if (use_p) {
      double cum = 0;
      size_t i = 0;
      while (i < cand.size()) {
        cum += w[i] / zz;
        ++i;
        if (cum >= p.top_p) break;
      }
      n = i;
      zz = 0;
      for (size_t k = 0; k < n; ++k) zz += w[k];
    }
    const int64_t tok = cand[size_t(cpu::pick_cumulative(w.data(), int64_t(n), cpu::uniform01(p.seed, p.counters[b]) * zz))];
    p.tokens[b] = static_cast<int32_t>(tok);
    p.logp_sampled[b] = static_cast<float>((x[tok] - m) / T - std::log(zz));
    p.logp_model[b] = static_cast<float>(x[tok] - logz);
  });
}

}  // namespace itool
