// engine.info(): build options, CPU features in use, threads, CUDA devices or why none.
#include "../core/cpu_features.h"
#include "../core/cuda_info.h"
#include "../core/threadpool.h"
#include "../cpu/cpu_backend.h"
#include "../cpu/ops_kernels.h"
#include "util.h"

#ifndef ITOOL_VERSION
#define ITOOL_VERSION "0.0.0"
#endif

namespace itool {
namespace addon {

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", ITOOL_VERSION);
  Napi::Object build = Napi::Object::New(env);
  build.Set("cuda", Napi::Boolean::New(env, ITOOL_BUILD_CUDA));
  build.Set("blas", Napi::Boolean::New(env, ITOOL_BUILD_BLAS));
  build.Set("sanitize", Napi::Boolean::New(env, ITOOL_BUILD_SANITIZE));
  build.Set("napi", Napi::Number::New(env, NAPI_VERSION));
#if defined(__clang__)
  build.Set("compiler", "clang " __clang_version__);
#elif defined(__GNUC__)
  build.Set("compiler", "gcc " __VERSION__);
#endif
  o.Set("build", build);

  Napi::Object cpu = Napi::Object::New(env);
  Napi::Array feats = Napi::Array::New(env);
  auto names = cpu_features().names();
  for (size_t i = 0; i < names.size(); ++i) feats.Set(i, names[i]);
  cpu.Set("features", feats);
  cpu.Set("kernels", cpu_level_name(cpu_level()));
  Napi::Array avail = Napi::Array::New(env);
  uint32_t k = 0;
  for (CpuLevel l : {CpuLevel::Scalar, CpuLevel::Avx2, CpuLevel::Avx512, CpuLevel::Neon})
    if (cpu_level_supported(l)) avail.Set(k++, cpu_level_name(l));
  cpu.Set("available", avail);
  cpu.Set("threads", ThreadPool::global().size());
#if defined(__x86_64__)
  cpu.Set("arch", "x64");
#elif defined(__aarch64__)
  cpu.Set("arch", "arm64");
#else
  cpu.Set("arch", "other");
#endif
  o.Set("cpu", cpu);

  CudaInfo ci = cuda_info();
  Napi::Object cuda = Napi::Object::New(env);
  cuda.Set("compiled", Napi::Boolean::New(env, ci.compiled));
  cuda.Set("cublas", Napi::Boolean::New(env, ci.cublas));
  if (!ci.runtime_version.empty()) cuda.Set("runtime", ci.runtime_version);
  if (!ci.driver_version.empty()) cuda.Set("driver", ci.driver_version);
  Napi::Array devs = Napi::Array::New(env, ci.devices.size());
  for (size_t i = 0; i < ci.devices.size(); ++i) {
    const auto& d = ci.devices[i];
    Napi::Object dv = Napi::Object::New(env);
    dv.Set("index", d.index);
    dv.Set("name", d.name);
    dv.Set("totalMemory", Napi::Number::New(env, double(d.total_memory)));
    dv.Set("freeMemory", Napi::Number::New(env, double(d.free_memory)));
    dv.Set("computeCapability", std::to_string(d.major) + "." + std::to_string(d.minor));
    dv.Set("multiprocessors", d.multiprocessors);
    devs.Set(i, dv);
  }
  cuda.Set("devices", devs);
  if (ci.devices.empty()) cuda.Set("reason", ci.reason);
  o.Set("cuda", cuda);
  return o;
}

// setCpuKernels(level): 'scalar' | 'avx2' | 'avx512' | 'neon'; returns the level in use
// (a level the CPU lacks falls back to the best available).
static Napi::Value SetCpuKernels(const Napi::CallbackInfo& info) {
  if (info.Length() < 1) throw_type("setCpuKernels: argument 'level' is required");
  std::string s = string_value(info[0], "setCpuKernels", "level");
  CpuLevel l;
  if (s == "scalar") l = CpuLevel::Scalar;
  else if (s == "avx2") l = CpuLevel::Avx2;
  else if (s == "avx512") l = CpuLevel::Avx512;
  else if (s == "neon") l = CpuLevel::Neon;
  else throw_type("setCpuKernels: argument 'level' must be 'scalar', 'avx2', 'avx512' or 'neon', got '" + s.substr(0, 32) + "'");
  set_cpu_level(l);
  return Napi::String::New(info.Env(), cpu_level_name(cpu_level()));
}

// cpuExpSumF64(x: Float32Array, m, t) -> { w: Float64Array, sum }: the sampler's double
// exponentials w[j] = exp((x[j] - m) / t) at the current kernel level (for tests against
// Math.exp).
static Napi::Value CpuExpSumF64(const Napi::CallbackInfo& info) {
  const char* fn = "cpuExpSumF64";
  if (info.Length() < 3) throw_type("cpuExpSumF64(x, m, t): three arguments are required");
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_type("cpuExpSumF64: argument 'x' must be a Float32Array");
  Napi::Float32Array x = info[0].As<Napi::Float32Array>();
  const double m = number_value(info[1], fn, "m", -3.4e38, 3.4e38);
  const double t = number_value(info[2], fn, "t", 1e-30, 1e30);
  const int64_t n = int64_t(x.ElementLength());
  Napi::Float64Array w = Napi::Float64Array::New(info.Env(), size_t(n));
  const double sum = itool::cpu::kernels().exp_sum_f64(w.Data(), x.Data(), float(m), t, n);
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("w", w);
  r.Set("sum", Napi::Number::New(info.Env(), sum));
  return r;
}

// allocatorStats() -> {current, peak, cached}: the CPU allocator's counters in bytes
// (cpu_backend.h); resetAllocatorPeak(): peak := current
static Napi::Value AllocatorStats(const Napi::CallbackInfo& info) {
  if (info.Length() > 0) throw_type("allocatorStats: takes no arguments, got " + std::to_string(info.Length()));
  const CpuAllocStats s = cpu_alloc_stats();
  Napi::Object r = Napi::Object::New(info.Env());
  r.Set("current", Napi::Number::New(info.Env(), double(s.current)));
  r.Set("peak", Napi::Number::New(info.Env(), double(s.peak)));
  r.Set("cached", Napi::Number::New(info.Env(), double(s.cached)));
  return r;
}
static Napi::Value ResetAllocatorPeak(const Napi::CallbackInfo& info) {
  if (info.Length() > 0) throw_type("resetAllocatorPeak: takes no arguments, got " + std::to_string(info.Length()));
  cpu_alloc_reset_peak();
  return info.Env().Undefined();
}

static void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("allocatorStats", js_fn(env, "allocatorStats", AllocatorStats));
  exports.Set("resetAllocatorPeak", js_fn(env, "resetAllocatorPeak", ResetAllocatorPeak));
  exports.Set("info", js_fn(env, "info", Info));
  exports.Set("setCpuKernels", js_fn(env, "setCpuKernels", SetCpuKernels));
  exports.Set("cpuExpSumF64", js_fn(env, "cpuExpSumF64", CpuExpSumF64));
}
ITOOL_REGISTER(info, Register);

}  // namespace addon
}  // namespace itool
