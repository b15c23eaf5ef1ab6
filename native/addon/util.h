// native/addon helpers: argument validation, conversion and scheduling. The addon
// only validates, converts and schedules; all computing is in native/core|cpu|cuda.
//
// Every binding function is wrapped by js_fn(): an itool::Error becomes a JS
// TypeError/RangeError/Error with the same message, any other C++ exception an
// Error; nothing reaches std::terminate.
#pragma once
#include <napi.h>
#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include "../core/common.h"
#include "../core/ops.h"
#include "../core/tensor.h"

namespace itool {
namespace addon {

// ----------------------------------------------------------------- registration
using RegisterFn = void (*)(Napi::Env, Napi::Object);
struct Registrar {
  Registrar(const char* name, RegisterFn fn);
};
std::vector<std::pair<const char*, RegisterFn>>& registry();
#define ITOOL_REGISTER(name, fn) static ::itool::addon::Registrar itool_registrar_##name(#name, fn)

// ----------------------------------------------------------------- errors
Napi::Error to_js_error(Napi::Env env, const std::exception& e);
[[noreturn]] void rethrow_as_js(Napi::Env env);

using RawFn = std::function<Napi::Value(const Napi::CallbackInfo&)>;
Napi::Function js_fn(Napi::Env env, const char* name, RawFn fn);

// ----------------------------------------------------------------- tensors
class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Init(Napi::Env env);
  static Napi::FunctionReference* constructor;
  static Napi::Object New(Napi::Env env, Tensor t);
  static bool Is(const Napi::Value& v);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  // The tensor, or a TypeError naming fn/arg when disposed.
  const Tensor& get(const char* fn, const char* arg) const;
  bool disposed() const { return !tensor_.has_value(); }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value ToArray(const Napi::CallbackInfo& info);
  Napi::Value GetDtype(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetNbytes(const Napi::CallbackInfo& info);
  std::optional<Tensor> tensor_;
};

// ----------------------------------------------------------------- argument access
// Positional: info[i] must be an object of options (most functions take one).
Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg = "options");
// From an options object. `fn` and `key` name the problem in the error.
Tensor get_tensor(const Napi::Object& o, const char* key, const char* fn);
std::optional<Tensor> get_tensor_opt(const Napi::Object& o, const char* key, const char* fn);
Tensor tensor_value(const Napi::Value& v, const char* fn, const char* arg);
int64_t get_int(const Napi::Object& o, const char* key, const char* fn, int64_t lo, int64_t hi,
                std::optional<int64_t> def = std::nullopt);
int64_t int_value(const Napi::Value& v, const char* fn, const char* arg, int64_t lo, int64_t hi);
double get_number(const Napi::Object& o, const char* key, const char* fn, double lo, double hi,
                  std::optional<double> def = std::nullopt);
double number_value(const Napi::Value& v, const char* fn, const char* arg, double lo, double hi);
bool get_bool(const Napi::Object& o, const char* key, const char* fn, std::optional<bool> def = std::nullopt);
std::string get_string(const Napi::Object& o, const char* key, const char* fn,
                       std::optional<std::string> def = std::nullopt);
std::string string_value(const Napi::Value& v, const char* fn, const char* arg);
std::vector<int64_t> shape_value(const Napi::Value& v, const char* fn, const char* arg);
std::vector<int32_t> int32_array_value(const Napi::Value& v, const char* fn, const char* arg);
// a copy of a Float32Array (anything else: TypeError "fn: argument 'arg' must be a Float32Array")
std::vector<float> float32_array_value(const Napi::Value& v, const char* fn, const char* arg);
// a non-empty absolute path without NUL bytes (TypeError naming what is wrong otherwise)
std::string path_value(const Napi::Value& v, const char* fn, const char* arg);
Device device_value(const Napi::Value& v, const char* fn, const char* arg);
DType dtype_value(const Napi::Value& v, const char* fn, const char* arg);
bool has(const Napi::Object& o, const char* key);

// a new Float32Array holding v
Napi::Float32Array to_f32(Napi::Env env, const std::vector<float>& v);

// ----------------------------------------------------------------- async work
// Runs `work` on a libuv worker thread and resolves the returned Promise with
// done(env) on the main thread; an exception from work rejects it with the
// matching JS error class.
Napi::Value run_async(Napi::Env env, const char* name, std::function<void()> work,
                      std::function<Napi::Value(Napi::Env)> done);

}  // namespace addon
}  // namespace itool
