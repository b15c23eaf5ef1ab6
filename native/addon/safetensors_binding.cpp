// N-API binding of safetensors read/write (native/core/safetensors.h) and atomic file writes.
#include <cstring>
#include <map>
#include "../core/safetensors.h"
#include "util.h"

namespace itool {
namespace addon {

namespace {

// ---- safetensors
Napi::Value SafetensorsRead(const Napi::CallbackInfo& info) {
  const char* fn = "safetensorsRead";
  std::string path = path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path");
  bool header_only = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  SafetensorsFile f(path);
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  Napi::Array ts = Napi::Array::New(env, f.entries().size());
  uint32_t i = 0;
  for (auto& e : f.entries()) {
    Napi::Object t = Napi::Object::New(env);
    t.Set("name", e.name);
    t.Set("dtype", e.dtype == DType::F32 ? "f32" : e.dtype == DType::BF16 ? "bf16" : "f16");
    Napi::Array sh = Napi::Array::New(env, e.shape.size());
    for (size_t k = 0; k < e.shape.size(); ++k) sh.Set(uint32_t(k), Napi::Number::New(env, double(e.shape[k])));
    t.Set("shape", sh);
    if (!header_only) {
      std::vector<float> v(size_t(e.numel()));
      f.read_f32(e, v.data());
      t.Set("data", to_f32(env, v));
    }
    ts.Set(i++, t);
  }
  r.Set("tensors", ts);
  Napi::Object md = Napi::Object::New(env);
  for (auto& kv : f.metadata()) md.Set(kv.first, kv.second);
  r.Set("metadata", md);
  return r;
}

// safetensorsWrite(path, [{name, dtype, shape, data: Float32Array}], metadata?)
Napi::Value SafetensorsWrite(const Napi::CallbackInfo& info) {
  const char* fn = "safetensorsWrite";
  std::string path = path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path");
  if (info.Length() < 2 || !info[1].IsArray()) throw_type(std::string(fn) + ": argument 'tensors' must be an array");
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<std::vector<float>> store(a.Length());
  std::vector<SafetensorsWriteItem> items;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value tv = a.Get(i);
    if (!tv.IsObject()) throw_type(std::string(fn) + ": tensors[" + std::to_string(i) + "] must be an object");
    Napi::Object t = tv.As<Napi::Object>();
    SafetensorsWriteItem it;
    it.name = get_string(t, "name", fn);
    DType d = dtype_value(t.Get("dtype"), fn, "dtype");
    if (d == DType::I32) throw_type(std::string(fn) + ": dtype i32 cannot be written (f32, bf16, f16 can)");
    it.dtype = d;
    it.shape = shape_value(t.Get("shape"), fn, "shape");
    store[i] = float32_array_value(t.Get("data"), fn, "data");
    int64_t n = 1;
    for (auto s : it.shape) n *= s;
    if (n != int64_t(store[i].size())) throw_range(std::string(fn) + ": tensor '" + it.name + "' shape holds " + std::to_string(n) + " values, data " + std::to_string(store[i].size()));
    it.data = store[i].data();
    items.push_back(it);
  }
  std::map<std::string, std::string> md;
  if (info.Length() > 2 && info[2].IsObject()) {
    Napi::Object o = info[2].As<Napi::Object>();
    Napi::Array keys = o.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).ToString().Utf8Value();
      md[k] = string_value(o.Get(k), fn, "metadata");
    }
  }
  write_safetensors(path, items, md);
  return info.Env().Undefined();
}

// writeFileAtomic(path, text)
Napi::Value WriteFileAtomic(const Napi::CallbackInfo& info) {
  const char* fn = "writeFileAtomic";
  std::string path = path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path");
  std::string text = string_value(info.Length() > 1 ? info[1] : info.Env().Undefined(), fn, "text");
  write_file_atomic(path, text);
  return info.Env().Undefined();
}

Napi::Value CheckpointShards(const Napi::CallbackInfo& info) {
  std::string dir = path_value(info.Length() ? info[0] : info.Env().Undefined(), "checkpointShards", "dir");
  auto files = checkpoint_shards(dir);
  Napi::Array a = Napi::Array::New(info.Env(), files.size());
  for (size_t i = 0; i < files.size(); ++i) a.Set(uint32_t(i), files[i]);
  return a;
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("safetensorsRead", js_fn(env, "safetensorsRead", SafetensorsRead));
  exports.Set("safetensorsWrite", js_fn(env, "safetensorsWrite", SafetensorsWrite));
  exports.Set("writeFileAtomic", js_fn(env, "writeFileAtomic", WriteFileAtomic));
  exports.Set("checkpointShards", js_fn(env, "checkpointShards", CheckpointShards));
}

}  // namespace

ITOOL_REGISTER(safetensors, Register);

}  // namespace addon
}  // namespace itool
