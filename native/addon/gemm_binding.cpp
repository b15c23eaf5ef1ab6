// gemm({a, b, c, m, n, k, ...}) -> Promise<number>: the CPU SGEMM on Float32Arrays,
// for tests and `itool bench gemm`. c is written in place; the promise resolves with
// the seconds the work took (all `repeat` runs together), measured on the worker.
//
//   a, b, c        Float32Array (c must not share memory with a or b)
//   m, n, k        sizes: op(a) [m, k], op(b) [k, n], c [m, n]
//   transA, transB booleans (default false): a stored [k, m], b stored [n, k]
//   alpha, beta    numbers (default 1, 0); beta 0 ignores what c holds
//   lda, ldb, ldc  leading dimensions (default: the packed row length)
//   batch          batch entries (default 1); strideA/B/C: elements between entries
//                  (default: one packed matrix); strideC must keep entries apart
//   threads        at most this many pool threads (default: all)
//   repeat         run the same product this many times (default 1; for benchmarks)
// gemmInfo() -> {kernel, threads}: the kernel sgemm uses now and the pool size
// (any argument is an error).
#include <chrono>
#include <memory>
#include "../core/threadpool.h"
#include "../cpu/gemm.h"
#include "util.h"

namespace itool {
namespace addon {

namespace {

struct F32Arg {
  float* data;
  int64_t len;
  Napi::ObjectReference ref;
};

F32Arg f32_array(const Napi::Object& o, const char* key) {
  if (!has(o, key)) throw_type(std::string("gemm: argument '") + key + "' is required (a Float32Array)");
  Napi::Value v = o.Get(key);
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_type(std::string("gemm: argument '") + key + "' must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  F32Arg r;
  r.len = static_cast<int64_t>(a.ElementLength());
  r.data = r.len > 0 ? a.Data() : nullptr;
  r.ref = Napi::Persistent(a.As<Napi::Object>());
  return r;
}

// Elements a [rows, cols] matrix with leading dimension ld spans (0 when empty).
int64_t extent(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols; }

void check_len(const char* key, int64_t have, int64_t batch, int64_t stride, int64_t one) {
  if (one == 0 || batch == 0) return;
  int64_t need = (batch - 1) * stride + one;
  if (have < need)
    throw_range(std::string("gemm: argument '") + key + "' holds " + std::to_string(have) +
                " elements; the sizes, leading dimension and stride need " + std::to_string(need));
}

bool overlaps(const F32Arg& x, const F32Arg& y) {
  if (x.len == 0 || y.len == 0) return false;
  const float* xe = x.data + x.len;
  const float* ye = y.data + y.len;
  return x.data < ye && y.data < xe;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Object o = object_arg(info, 0, "gemm");
  constexpr int64_t kMaxDim = (int64_t(1) << 31) - 1;
  constexpr int64_t kMaxLd = int64_t(1) << 40;
  GemmParams p;
  p.M = get_int(o, "m", "gemm", 0, kMaxDim);
  p.N = get_int(o, "n", "gemm", 0, kMaxDim);
  p.K = get_int(o, "k", "gemm", 0, kMaxDim);
  p.transA = get_bool(o, "transA", "gemm", false);
  p.transB = get_bool(o, "transB", "gemm", false);
  p.alpha = static_cast<float>(get_number(o, "alpha", "gemm", -3.4e38, 3.4e38, 1.0));
  p.beta = static_cast<float>(get_number(o, "beta", "gemm", -3.4e38, 3.4e38, 0.0));
  const int64_t a_rows = p.transA ? p.K : p.M, a_cols = p.transA ? p.M : p.K;
  const int64_t b_rows = p.transB ? p.N : p.K, b_cols = p.transB ? p.K : p.N;
  p.lda = get_int(o, "lda", "gemm", std::max<int64_t>(1, a_cols), kMaxLd, std::max<int64_t>(1, a_cols));
  p.ldb = get_int(o, "ldb", "gemm", std::max<int64_t>(1, b_cols), kMaxLd, std::max<int64_t>(1, b_cols));
  p.ldc = get_int(o, "ldc", "gemm", std::max<int64_t>(1, p.N), kMaxLd, std::max<int64_t>(1, p.N));
  p.batch = get_int(o, "batch", "gemm", 0, kMaxDim, 1);
  const int64_t one_a = extent(a_rows, a_cols, p.lda), one_b = extent(b_rows, b_cols, p.ldb),
                one_c = extent(p.M, p.N, p.ldc);
  p.strideA = get_int(o, "strideA", "gemm", 0, kMaxLd, one_a);
  p.strideB = get_int(o, "strideB", "gemm", 0, kMaxLd, one_b);
  p.strideC = get_int(o, "strideC", "gemm", p.batch > 1 ? one_c : 0, kMaxLd, one_c);
  const int threads = static_cast<int>(get_int(o, "threads", "gemm", 1, 1024, ThreadPool::global().size()));
  const int64_t repeat = get_int(o, "repeat", "gemm", 1, 1000000, 1);

  auto a = std::make_shared<F32Arg>(f32_array(o, "a"));
  auto b = std::make_shared<F32Arg>(f32_array(o, "b"));
  auto c = std::make_shared<F32Arg>(f32_array(o, "c"));
  const bool used_ab = p.M > 0 && p.N > 0 && p.K > 0;
  if (used_ab) {
    check_len("a", a->len, p.batch, p.strideA, one_a);
    check_len("b", b->len, p.batch, p.strideB, one_b);
  }
  check_len("c", c->len, p.batch, p.strideC, one_c);
  if (overlaps(*c, *a) || overlaps(*c, *b)) throw_range("gemm: argument 'c' must not share memory with 'a' or 'b'");
  p.A = a->data;
  p.B = b->data;
  p.C = c->data;
  if (!used_ab) {
    // validate() in sgemm wants non-null A/B when K > 0 only; keep them harmless here.
    if (p.A == nullptr) p.A = p.C;
    if (p.B == nullptr) p.B = p.C;
  }

  auto seconds = std::make_shared<double>(0.0);
  return run_async(
      info.Env(), "gemm",
      [p, threads, repeat, seconds] {
        auto t0 = std::chrono::steady_clock::now();
        for (int64_t r = 0; r < repeat; ++r) cpu::sgemm_threads(p, threads);
        *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      },
      // a, b, c are captured here so that the arrays stay alive until the work is done;
      // the references are released on the main thread.
      [a, b, c, seconds](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *seconds); });
}

Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() > 0) throw_type("gemmInfo: takes no arguments");
  Napi::Object o = Napi::Object::New(env);
  o.Set("kernel", cpu::gemm_kernel_name());
  o.Set("threads", ThreadPool::global().size());
  return o;
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("gemm", js_fn(env, "gemm", Gemm));
  exports.Set("gemmInfo", js_fn(env, "gemmInfo", GemmInfo));
}

}  // namespace

ITOOL_REGISTER(gemm, Register);

}  // namespace addon
}  // namespace itool
