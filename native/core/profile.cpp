// See profile.h. One Profiled wrapper per inner backend, created on first use; the
// counters are shared by all of them and guarded by one mutex (an op call costs
// microseconds to seconds; the lock is noise beside it).
#include "profile.h"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace itool {

namespace {

struct Stat {
  int64_t calls = 0;
  double seconds = 0;
  double flops = 0;  // GEMM rows only
};

struct Registry {
  std::mutex mu;
  std::map<std::string, Stat> ops;    // "<device> <op>"
  std::map<std::string, Stat> gemms;  // "<device> MxNxK tA tB batch"
  std::string target;                 // "" = stderr
};

Registry& registry() {
  static Registry* r = new Registry();  // never destroyed: the report runs from atexit
  return *r;
}

std::string fmt(const char* f, double a) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, a);
  return buf;
}
double gflops(const Stat& s) { return s.flops / std::max(1e-12, s.seconds) / 1e9; }

void report() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.ops.empty()) return;
  double total = 0;
  for (auto& [k, s] : r.ops) total += s.seconds;
  std::vector<std::pair<std::string, Stat>> ops(r.ops.begin(), r.ops.end());
  std::vector<std::pair<std::string, Stat>> gemms(r.gemms.begin(), r.gemms.end());
  auto by_time = [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; };
  std::sort(ops.begin(), ops.end(), by_time);
  std::sort(gemms.begin(), gemms.end(), by_time);
  const bool json = r.target.size() > 5 && r.target.compare(r.target.size() - 5, 5, ".json") == 0;
  std::string out;
  if (json) {
    out = "{\"totalSeconds\": " + fmt("%.6f", total) + ", \"ops\": [";
    for (size_t i = 0; i < ops.size(); ++i)
      out += std::string(i ? ", " : "") + "{\"op\": \"" + ops[i].first + "\", \"calls\": " +
             std::to_string(ops[i].second.calls) + ", \"seconds\": " + fmt("%.6f", ops[i].second.seconds) + "}";
    out += "], \"gemm\": [";
    for (size_t i = 0; i < gemms.size(); ++i)
      out += std::string(i ? ", " : "") + "{\"shape\": \"" + gemms[i].first + "\", \"calls\": " +
             std::to_string(gemms[i].second.calls) + ", \"seconds\": " + fmt("%.6f", gemms[i].second.seconds) +
             ", \"gflops\": " + fmt("%.3f", gflops(gemms[i].second)) +
             "}";
    out += "]}\n";
  } else {
    out = "itool profile (ITOOL_PROFILE): time inside backend ops, " + fmt("%.1f", total * 1e3) + " ms in all\n";
    char line[512];
    std::snprintf(line, sizeof line, "%-30s %8s %11s %7s\n", "op", "calls", "ms", "share");
    out += line;
    for (auto& [k, s] : ops) {
      std::snprintf(line, sizeof line, "%-30s %8lld %11.2f %6.1f%%\n", k.c_str(), static_cast<long long>(s.calls),
                    s.seconds * 1e3, total > 0 ? 100.0 * s.seconds / total : 0.0);
      out += line;
    }
    if (!gemms.empty()) {
      std::snprintf(line, sizeof line, "\n%-44s %8s %11s %7s %9s\n", "gemm shape (M x N x K tA tB batch)", "calls", "ms",
                    "share", "GFLOP/s");
      out += line;
      for (auto& [k, s] : gemms) {
        std::snprintf(line, sizeof line, "%-44s %8lld %11.2f %6.1f%% %9.1f\n", k.c_str(),
                      static_cast<long long>(s.calls), s.seconds * 1e3, total > 0 ? 100.0 * s.seconds / total : 0.0,
                      gflops(s));
        out += line;
      }
    }
  }
  if (r.target.empty()) {
    std::fputs(out.c_str(), stderr);
    return;
  }
  // the table is a by-product: write it whole or not at all (temp file + rename)
  const std::string tmp = r.target + ".tmp";
  if (FILE* f = std::fopen(tmp.c_str(), "wb")) {
    const bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
    if (std::fclose(f) == 0 && ok && std::rename(tmp.c_str(), r.target.c_str()) == 0) return;
    std::remove(tmp.c_str());
  }
  std::fprintf(stderr, "itool: ITOOL_PROFILE: could not write %s; the table follows\n%s", r.target.c_str(), out.c_str());
}

class Profiled final : public Backend {
 public:
  explicit Profiled(Backend* inner) : in_(inner), dev_(inner->name()) {}

  Device device() const override { return in_->device(); }
  std::string name() const override { return in_->name(); }
  DType act_dtype() const override { return in_->act_dtype(); }
  void* alloc(size_t bytes) override { return in_->alloc(bytes); }
  void dealloc(void* p) override { in_->dealloc(p); }
  void memset_zero(void* p, size_t bytes) override { timed("memset_zero", [&] { in_->memset_zero(p, bytes); }); }
  void copy_from_host(void* d, const void* s, size_t n) override { timed("copy_from_host", [&] { in_->copy_from_host(d, s, n); }); }
  void copy_to_host(void* d, const void* s, size_t n) override { timed("copy_to_host", [&] { in_->copy_to_host(d, s, n); }); }
  void copy(void* d, const void* s, size_t n) override { timed("copy", [&] { in_->copy(d, s, n); }); }
  void synchronize() override { in_->synchronize(); }
  void convert(const void* s, DType st, void* d, DType dt, int64_t n) override {
    timed("convert", [&] { in_->convert(s, st, d, dt, n); });
  }

  void gemm(const GemmParams& p) override {
    const double t = timed("gemm", [&] { in_->gemm(p); });
    char key[160];
    std::snprintf(key, sizeof key, "%s %lldx%lldx%lld %c%c b%lld", dev_.c_str(), static_cast<long long>(p.M),
                  static_cast<long long>(p.N), static_cast<long long>(p.K), p.transA ? 'T' : 'N',
                  p.transB ? 'T' : 'N', static_cast<long long>(p.batch));
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    Stat& s = r.gemms[key];
    s.calls++;
    s.seconds += t;
    s.flops += 2.0 * double(p.M) * double(p.N) * double(p.K) * double(p.batch);
  }
  void embedding_forward(const EmbeddingParams& p) override { timed("embedding_forward", [&] { in_->embedding_forward(p); }); }
  void embedding_backward(const EmbeddingParams& p) override { timed("embedding_backward", [&] { in_->embedding_backward(p); }); }
  void rmsnorm_forward(const RmsNormParams& p) override { timed("rmsnorm_forward", [&] { in_->rmsnorm_forward(p); }); }
  void rmsnorm_backward(const RmsNormParams& p) override { timed("rmsnorm_backward", [&] { in_->rmsnorm_backward(p); }); }
  void rope(const RopeParams& p) override { timed("rope", [&] { in_->rope(p); }); }
  void swiglu_forward(const SwigluParams& p) override { timed("swiglu_forward", [&] { in_->swiglu_forward(p); }); }
  void swiglu_backward(const SwigluParams& p) override { timed("swiglu_backward", [&] { in_->swiglu_backward(p); }); }
  void add(const AddParams& p) override { timed("add", [&] { in_->add(p); }); }
  void bias_forward(const BiasParams& p) override { timed("bias_forward", [&] { in_->bias_forward(p); }); }
  void bias_backward(const BiasParams& p) override { timed("bias_backward", [&] { in_->bias_backward(p); }); }
  void attention_forward(const AttentionParams& p) override { timed("attention_forward", [&] { in_->attention_forward(p); }); }
  void attention_backward(const AttentionParams& p) override { timed("attention_backward", [&] { in_->attention_backward(p); }); }
  void kv_write(const KvWriteParams& p) override { timed("kv_write", [&] { in_->kv_write(p); }); }
  void attention_decode(const DecodeAttentionParams& p) override { timed("attention_decode", [&] { in_->attention_decode(p); }); }
  void logprob(const LogprobParams& p) override {
    timed(p.dlogp != nullptr ? "logprob_backward" : "logprob_forward", [&] { in_->logprob(p); });
  }
  void preference_loss(const PreferenceParams& p) override { timed("preference_loss", [&] { in_->preference_loss(p); }); }
  void adamw(const AdamWParams& p) override { timed("adamw", [&] { in_->adamw(p); }); }
  double sum_squares(const float* x, int64_t n) override {
    double v = 0;
    timed("sum_squares", [&] { v = in_->sum_squares(x, n); });
    return v;
  }
  void scale(float* x, int64_t n, float s) override { timed("scale", [&] { in_->scale(x, n, s); }); }
  void axpy(float* y, const float* x, int64_t n, float a) override { timed("axpy", [&] { in_->axpy(y, x, n, a); }); }
  bool has_nonfinite(const float* x, int64_t n) override {
    bool v = false;
    timed("has_nonfinite", [&] { v = in_->has_nonfinite(x, n); });
    return v;
  }
  void sample(const SampleParams& p) override { timed("sample", [&] { in_->sample(p); }); }

 private:
  template <class F>
  double timed(const char* op, F&& f) {
    using clock = std::chrono::steady_clock;
    in_->synchronize();
    const auto t0 = clock::now();
    f();
    in_->synchronize();
    const double t = std::chrono::duration<double>(clock::now() - t0).count();
    Registry& r = registry();
    std::lock_guard<std::mutex> lock(r.mu);
    Stat& s = r.ops[dev_ + " " + op];
    s.calls++;
    s.seconds += t;
    return t;
  }

  Backend* in_;
  std::string dev_;
};

const char* profile_env() {
  const char* e = std::getenv("ITOOL_PROFILE");
  if (e == nullptr || *e == '\0' || std::string(e) == "0") return nullptr;
  return e;
}

}  // namespace

Backend* maybe_profiled(Backend* inner) {
  static const char* env = profile_env();
  if (env == nullptr) return inner;
  static std::mutex mu;
  static std::map<Backend*, std::unique_ptr<Profiled>>* wrappers = new std::map<Backend*, std::unique_ptr<Profiled>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = wrappers->find(inner);
  if (it != wrappers->end()) return it->second.get();
  if (wrappers->empty()) {
    const std::string v = env;
    if (v != "1" && v != "true" && v != "stderr") registry().target = v;
    std::atexit(report);
  }
  return wrappers->emplace(inner, std::make_unique<Profiled>(inner)).first->second.get();
}

}  // namespace itool
