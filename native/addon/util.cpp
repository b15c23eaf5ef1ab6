#include "util.h"
#include <cstring>

namespace itool {
namespace addon {

std::vector<std::pair<const char*, RegisterFn>>& registry() {
  static std::vector<std::pair<const char*, RegisterFn>> r;
  return r;
}
Registrar::Registrar(const char* name, RegisterFn fn) { registry().emplace_back(name, fn); }

// ----------------------------------------------------------------- errors
Napi::Error to_js_error(Napi::Env env, const std::exception& e) {
  if (auto* ie = dynamic_cast<const Error*>(&e)) {
    switch (ie->kind()) {
      case ErrorKind::Type: return Napi::TypeError::New(env, ie->what());
      case ErrorKind::Range: return Napi::RangeError::New(env, ie->what());
      case ErrorKind::OutOfMemory: {
        Napi::Error err = Napi::Error::New(env, ie->what());
        err.Set("code", Napi::String::New(env, "ITOOL_OOM"));
        return err;
      }
      case ErrorKind::Generic: break;
    }
    return Napi::Error::New(env, ie->what());
  }
  if (dynamic_cast<const std::bad_alloc*>(&e)) {
    Napi::Error err = Napi::Error::New(env, std::string("out of host memory: ") + e.what());
    err.Set("code", Napi::String::New(env, "ITOOL_OOM"));
    return err;
  }
  return Napi::Error::New(env, std::string("native error: ") + e.what());
}

Napi::Function js_fn(Napi::Env env, const char* name, RawFn fn) {
  auto holder = std::make_shared<RawFn>(std::move(fn));
  return Napi::Function::New(
      env,
      [holder](const Napi::CallbackInfo& info) -> Napi::Value {
        try {
          return (*holder)(info);
        } catch (const Napi::Error&) {
          throw;
        } catch (const std::exception& e) {
          throw to_js_error(info.Env(), e);
        } catch (...) {
          throw Napi::Error::New(info.Env(), "native error: unknown exception");
        }
      },
      name);
}

// ----------------------------------------------------------------- argument access
static std::string where(const char* fn, const char* arg) {
  return std::string(fn) + ": argument '" + arg + "'";
}
static const char* js_type(const Napi::Value& v) {
  switch (v.Type()) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "boolean";
    case napi_number: return "number";
    case napi_string: return "string";
    case napi_symbol: return "symbol";
    case napi_object: return v.IsArray() ? "array" : "object";
    case napi_function: return "function";
    case napi_external: return "external";
    case napi_bigint: return "bigint";
  }
  return "?";
}

bool has(const Napi::Object& o, const char* key) {
  if (!o.Has(key)) return false;
  Napi::Value v = o.Get(key);
  return !v.IsUndefined();
}

Napi::Object object_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* arg) {
  if (info.Length() <= i || !info[i].IsObject() || info[i].IsArray())
    throw_type(where(fn, arg) + " must be an object, got " + (info.Length() <= i ? "nothing" : js_type(info[i])));
  return info[i].As<Napi::Object>();
}

Tensor tensor_value(const Napi::Value& v, const char* fn, const char* arg) {
  if (!TensorWrap::Is(v)) throw_type(where(fn, arg) + " must be a Tensor, got " + js_type(v));
  return TensorWrap::Unwrap(v.As<Napi::Object>())->get(fn, arg);
}
Tensor get_tensor(const Napi::Object& o, const char* key, const char* fn) {
  return tensor_value(o.Get(key), fn, key);
}
std::optional<Tensor> get_tensor_opt(const Napi::Object& o, const char* key, const char* fn) {
  if (!has(o, key) || o.Get(key).IsNull()) return std::nullopt;
  return tensor_value(o.Get(key), fn, key);
}

double number_value(const Napi::Value& v, const char* fn, const char* arg, double lo, double hi) {
  if (!v.IsNumber()) throw_type(where(fn, arg) + " must be a number, got " + js_type(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) throw_range(where(fn, arg) + " must be a number, got NaN");
  if (d < lo || d > hi)
    throw_range(where(fn, arg) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                std::to_string(d));
  return d;
}
int64_t int_value(const Napi::Value& v, const char* fn, const char* arg, int64_t lo, int64_t hi) {
  if (!v.IsNumber()) throw_type(where(fn, arg) + " must be an integer, got " + js_type(v));
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::isnan(d)) throw_range(where(fn, arg) + " must be an integer, got NaN");
  if (std::floor(d) != d || std::fabs(d) > 9007199254740991.0)
    throw_range(where(fn, arg) + " must be an integer, got " + std::to_string(d));
  int64_t i = static_cast<int64_t>(d);
  if (i < lo || i > hi)
    throw_range(where(fn, arg) + " must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                std::to_string(i));
  return i;
}
int64_t get_int(const Napi::Object& o, const char* key, const char* fn, int64_t lo, int64_t hi,
                std::optional<int64_t> def) {
  if (!has(o, key)) {
    if (def) return *def;
    throw_type(where(fn, key) + " is required (an integer)");
  }
  return int_value(o.Get(key), fn, key, lo, hi);
}
double get_number(const Napi::Object& o, const char* key, const char* fn, double lo, double hi,
                  std::optional<double> def) {
  if (!has(o, key)) {
    if (def) return *def;
    throw_type(where(fn, key) + " is required (a number)");
  }
  return number_value(o.Get(key), fn, key, lo, hi);
}
bool get_bool(const Napi::Object& o, const char* key, const char* fn, std::optional<bool> def) {
  if (!has(o, key)) {
    if (def) return *def;
    throw_type(where(fn, key) + " is required (a boolean)");
  }
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throw_type(where(fn, key) + " must be a boolean, got " + js_type(v));
  return v.As<Napi::Boolean>().Value();
}
std::string string_value(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsString()) throw_type(where(fn, arg) + " must be a string, got " + js_type(v));
  return v.As<Napi::String>().Utf8Value();
}
std::string get_string(const Napi::Object& o, const char* key, const char* fn, std::optional<std::string> def) {
  if (!has(o, key)) {
    if (def) return *def;
    throw_type(where(fn, key) + " is required (a string)");
  }
  return string_value(o.Get(key), fn, key);
}

std::vector<int64_t> shape_value(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsArray()) throw_type(where(fn, arg) + " must be an array of dimensions, got " + js_type(v));
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 8) throw_range(where(fn, arg) + " has " + std::to_string(a.Length()) + " dimensions; at most 8");
  std::vector<int64_t> shape;
  int64_t n = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    int64_t d = int_value(a.Get(i), fn, arg, 0, int64_t(1) << 40);
    if (d != 0 && n > (int64_t(1) << 40) / d) throw_range(where(fn, arg) + " describes a tensor too large");
    n *= d;
    shape.push_back(d);
  }
  return shape;
}

std::vector<float> float32_array_value(const Napi::Value& v, const char* fn, const char* arg) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw_type(std::string(fn) + ": argument '" + arg + "' must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}
std::string path_value(const Napi::Value& v, const char* fn, const char* arg) {
  std::string s = string_value(v, fn, arg);
  if (s.empty()) throw_type(std::string(fn) + ": argument '" + arg + "' must be a non-empty path");
  if (s.find('\0') != std::string::npos) throw_type(std::string(fn) + ": argument '" + arg + "' contains a NUL byte");
  if (s[0] != '/') throw_type(std::string(fn) + ": argument '" + arg + "' must be an absolute path, got '" + s.substr(0, 80) + "'");
  return s;
}
Napi::Float32Array to_f32(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}
std::vector<int32_t> int32_array_value(const Napi::Value& v, const char* fn, const char* arg) {
  std::vector<int32_t> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
    return out;
  }
  if (!v.IsArray()) throw_type(where(fn, arg) + " must be an Int32Array or an array of integers, got " + js_type(v));
  Napi::Array a = v.As<Napi::Array>();
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(static_cast<int32_t>(int_value(a.Get(i), fn, arg, INT32_MIN, INT32_MAX)));
  return out;
}

Device device_value(const Napi::Value& v, const char* fn, const char* arg) {
  std::string s = string_value(v, fn, arg);
  if (s == "cpu") return Device{DeviceKind::CPU, 0};
  if (s == "cuda") return Device{DeviceKind::CUDA, 0};
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5 && s.size() <= 8) {
    int idx = 0;
    for (size_t i = 5; i < s.size(); ++i) {
      if (s[i] < '0' || s[i] > '9') throw_type(where(fn, arg) + " must be 'cpu' or 'cuda:N', got '" + s + "'");
      idx = idx * 10 + (s[i] - '0');
    }
    return Device{DeviceKind::CUDA, idx};
  }
  throw_type(where(fn, arg) + " must be 'cpu' or 'cuda:N', got '" + s.substr(0, 64) + "'");
}

DType dtype_value(const Napi::Value& v, const char* fn, const char* arg) {
  std::string s = string_value(v, fn, arg);
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "f16") return DType::F16;
  if (s == "i32") return DType::I32;
  throw_type(where(fn, arg) + " must be one of 'f32', 'bf16', 'f16', 'i32', got '" + s.substr(0, 64) + "'");
}

// ----------------------------------------------------------------- async work
namespace {
class LambdaWorker : public Napi::AsyncWorker {
 public:
  LambdaWorker(Napi::Env env, const char* name, std::function<void()> work,
               std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), done_(std::move(done)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override {
    try {
      work_();
    } catch (const Error& e) {
      kind_ = e.kind();
      SetError(e.what());
    } catch (const std::bad_alloc& e) {
      kind_ = ErrorKind::OutOfMemory;
      SetError(std::string("out of host memory: ") + e.what());
    } catch (const std::exception& e) {
      SetError(std::string("native error: ") + e.what());
    } catch (...) {
      SetError("native error: unknown exception");
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    try {
      deferred_.Resolve(done_(env));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      deferred_.Reject(to_js_error(env, e).Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    Error err(kind_, e.Message());
    deferred_.Reject(to_js_error(Env(), err).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::function<void()> work_;
  std::function<Napi::Value(Napi::Env)> done_;
  ErrorKind kind_ = ErrorKind::Generic;
};
}  // namespace

Napi::Value run_async(Napi::Env env, const char* name, std::function<void()> work,
                      std::function<Napi::Value(Napi::Env)> done) {
  auto* w = new LambdaWorker(env, name, std::move(work), std::move(done));
  Napi::Promise p = w->promise();
  w->Queue();
  return p;
}

}  // namespace addon
}  // namespace itool
