// Tensor handles: creation from TypedArrays, copy back, dispose + finalizer.
#include <cstring>
#include "util.h"

namespace itool {
namespace addon {

Napi::FunctionReference* TensorWrap::constructor = nullptr;

Napi::Function TensorWrap::Init(Napi::Env env) {
  Napi::Function f = DefineClass(env, "Tensor",
                                 {InstanceMethod("dispose", &TensorWrap::Dispose),
                                  InstanceMethod("toArray", &TensorWrap::ToArray),
                                  InstanceAccessor("dtype", &TensorWrap::GetDtype, nullptr),
                                  InstanceAccessor("shape", &TensorWrap::GetShape, nullptr),
                                  InstanceAccessor("device", &TensorWrap::GetDevice, nullptr),
                                  InstanceAccessor("disposed", &TensorWrap::GetDisposed, nullptr),
                                  InstanceAccessor("nbytes", &TensorWrap::GetNbytes, nullptr)});
  constructor = new Napi::FunctionReference(Napi::Persistent(f));
  return f;
}

// Constructed only from native code (New passes a private token); `new Tensor()` from
// JavaScript is a TypeError that says how to make one.
static int kConstructToken = 0;
TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &kConstructToken)
    throw Napi::TypeError::New(info.Env(), "Tensor: cannot be constructed directly; use tensorFromArray or tensorZeros");
}

Napi::Object TensorWrap::New(Napi::Env env, Tensor t) {
  Napi::Object o = constructor->New({Napi::External<int>::New(env, &kConstructToken)});
  TensorWrap::Unwrap(o)->tensor_ = std::move(t);
  return o;
}

bool TensorWrap::Is(const Napi::Value& v) {
  if (!v.IsObject() || constructor == nullptr) return false;
  return v.As<Napi::Object>().InstanceOf(constructor->Value());
}

const Tensor& TensorWrap::get(const char* fn, const char* arg) const {
  if (!tensor_) throw_type(std::string(fn) + ": argument '" + arg + "' is a disposed Tensor");
  return *tensor_;
}

Napi::Value TensorWrap::Dispose(const Napi::CallbackInfo& info) {
  tensor_.reset();  // work in flight keeps its own reference to the storage
  return info.Env().Undefined();
}

Napi::Value TensorWrap::ToArray(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const Tensor& t = get("Tensor.toArray", "this");
    size_t bytes = t.nbytes();
    Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
    if (bytes) t.storage->backend->copy_to_host(buf.Data(), t.data(), bytes);
    size_t n = static_cast<size_t>(t.numel());
    switch (t.dtype) {
      case DType::F32: return Napi::Float32Array::New(env, n, buf, 0);
      case DType::I32: return Napi::Int32Array::New(env, n, buf, 0);
      case DType::BF16:
      case DType::F16: return Napi::Uint16Array::New(env, n, buf, 0);
    }
    return env.Undefined();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw to_js_error(env, e);
  }
}

Napi::Value TensorWrap::GetDtype(const Napi::CallbackInfo& info) {
  if (!tensor_) return info.Env().Null();
  return Napi::String::New(info.Env(), dtype_name(tensor_->dtype));
}
Napi::Value TensorWrap::GetShape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!tensor_) return env.Null();
  Napi::Array a = Napi::Array::New(env, tensor_->shape.size());
  for (size_t i = 0; i < tensor_->shape.size(); ++i) a.Set(i, Napi::Number::New(env, double(tensor_->shape[i])));
  return a;
}
Napi::Value TensorWrap::GetDevice(const Napi::CallbackInfo& info) {
  if (!tensor_) return info.Env().Null();
  return Napi::String::New(info.Env(), tensor_->device().str());
}
Napi::Value TensorWrap::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !tensor_.has_value());
}
Napi::Value TensorWrap::GetNbytes(const Napi::CallbackInfo& info) {
  if (!tensor_) return Napi::Number::New(info.Env(), 0);
  return Napi::Number::New(info.Env(), double(tensor_->nbytes()));
}

// tensorFromArray({data, dtype, shape, device}): data is a Float32Array (f32; or
// f32 values converted to bf16/f16), Int32Array (i32) or Uint16Array (raw bf16/f16 bits).
static Napi::Value TensorFromArray(const Napi::CallbackInfo& info) {
  const char* fn = "tensorFromArray";
  Napi::Object o = object_arg(info, 0, fn);
  DType dtype = dtype_value(o.Get("dtype"), fn, "dtype");
  std::vector<int64_t> shape = shape_value(o.Get("shape"), fn, "shape");
  Device dev = has(o, "device") ? device_value(o.Get("device"), fn, "device") : Device{};
  Napi::Value dv = o.Get("data");
  if (!dv.IsTypedArray()) throw_type(std::string(fn) + ": argument 'data' must be a TypedArray");
  Napi::TypedArray ta = dv.As<Napi::TypedArray>();
  napi_typedarray_type tt = ta.TypedArrayType();
  int64_t numel = 1;
  for (auto s : shape) numel *= s;
  if (static_cast<int64_t>(ta.ElementLength()) != numel)
    throw_range(std::string(fn) + ": argument 'data' has " + std::to_string(ta.ElementLength()) +
                " elements but shape holds " + std::to_string(numel));
  const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  Backend* b = backend_for(dev);
  Tensor t = make_tensor(b, dtype, shape);
  bool ok = (dtype == DType::F32 && tt == napi_float32_array) || (dtype == DType::I32 && tt == napi_int32_array) ||
            ((dtype == DType::BF16 || dtype == DType::F16) && (tt == napi_uint16_array || tt == napi_float32_array));
  if (!ok)
    throw_type(std::string(fn) + ": argument 'data' must be a " +
               (dtype == DType::F32   ? "Float32Array"
                : dtype == DType::I32 ? "Int32Array"
                                      : "Uint16Array (raw bits) or Float32Array") +
               " for dtype " + dtype_name(dtype));
  if (tt == napi_float32_array && dtype != DType::F32) {
    std::vector<uint16_t> bits(static_cast<size_t>(numel));
    const float* f = reinterpret_cast<const float*>(src);
    for (int64_t i = 0; i < numel; ++i) {
      float x;
      std::memcpy(&x, f + i, 4);
      bits[i] = dtype == DType::BF16 ? f32_to_bf16(x) : f32_to_f16(x);
    }
    b->copy_from_host(t.data(), bits.data(), t.nbytes());
  } else {
    b->copy_from_host(t.data(), src, t.nbytes());
  }
  return TensorWrap::New(info.Env(), std::move(t));
}

// tensorZeros({dtype, shape, device})
static Napi::Value TensorZeros(const Napi::CallbackInfo& info) {
  const char* fn = "tensorZeros";
  Napi::Object o = object_arg(info, 0, fn);
  DType dtype = dtype_value(o.Get("dtype"), fn, "dtype");
  std::vector<int64_t> shape = shape_value(o.Get("shape"), fn, "shape");
  Device dev = has(o, "device") ? device_value(o.Get("device"), fn, "device") : Device{};
  return TensorWrap::New(info.Env(), make_tensor(backend_for(dev), dtype, shape, true));
}

// tensorConvert({x, dtype}) -> Promise<Tensor> on the same device
static Napi::Value TensorConvert(const Napi::CallbackInfo& info) {
  const char* fn = "tensorConvert";
  Napi::Object o = object_arg(info, 0, fn);
  Tensor x = get_tensor(o, "x", fn);
  DType dtype = dtype_value(o.Get("dtype"), fn, "dtype");
  if (dtype == DType::I32 && x.dtype != DType::I32) throw_type(std::string(fn) + ": cannot convert to i32");
  if (x.dtype == DType::I32 && dtype != DType::I32) throw_type(std::string(fn) + ": cannot convert from i32");
  Backend* b = x.storage->backend;
  auto out = std::make_shared<Tensor>(make_tensor(b, dtype, x.shape));
  return run_async(
      info.Env(), fn, [x, out, b]() { b->convert(x.data(), x.dtype, out->data(), out->dtype, x.numel()); },
      [out](Napi::Env env) -> Napi::Value { return TensorWrap::New(env, *out); });
}

static void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("Tensor", TensorWrap::Init(env));
  exports.Set("tensorFromArray", js_fn(env, "tensorFromArray", TensorFromArray));
  exports.Set("tensorZeros", js_fn(env, "tensorZeros", TensorZeros));
  exports.Set("tensorConvert", js_fn(env, "tensorConvert", TensorConvert));
}
ITOOL_REGISTER(tensor, Register);

}  // namespace addon
}  // namespace itool
