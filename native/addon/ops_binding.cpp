// native.ops.<name>(options) -> Promise: every Backend op of native/core/ops.h,
// for tests, benchmarks and the TypeScript trainers.
//
// Conventions (documented for users in src/engine/ops.ts):
// - Tensors come from tensorFromArray / tensorZeros; all tensors of one call must be
//   on the same device; the op runs on backend_for(that device).
// - Activation tensors have the backend's activation dtype (f32 on the CPU, bf16 on
//   CUDA); statistics, gradients of weights, optimizer state and losses are f32.
// - "write" outputs are created by the binding and returned in the resolved object;
//   "accumulate" outputs (dtable, dw, dbias, dweight) are added into when passed and
//   created as zeros when not; in-place ops (rope, biasForward, adamw, scale, axpy,
//   kvWrite) modify the tensors passed.
// - Every argument is checked before any work is queued; errors name op and argument.
#include <cstring>
#include "../core/ops.h"
#include "util.h"

namespace itool {
namespace addon {
namespace {

using TensorP = std::shared_ptr<Tensor>;

// Argument reader bound to one call: remembers the device of the first tensor.
struct Args {
  const char* fn;
  Napi::Object o;
  bool have_dev = false;
  Device dev;
  const char* dev_arg = nullptr;

  Args(const Napi::CallbackInfo& info, const char* name) : fn(name), o(object_arg(info, 0, name)) {}

  void check_dev(const Tensor& t, const char* key) {
    if (!have_dev) {
      have_dev = true;
      dev = t.device();
      dev_arg = key;
    } else if (t.device() != dev) {
      throw_type(std::string(fn) + ": argument '" + key + "' is on " + t.device().str() + " but '" + dev_arg +
                 "' is on " + dev.str() + " (all tensors of one call must be on one device)");
    }
  }
  Backend* backend() {
    if (!have_dev) throw_type(std::string(fn) + ": no tensor argument given");
    return backend_for(dev);
  }
  DType act() { return backend()->act_dtype(); }
  // A required tensor on the call's device with dtype `dt` (the backend's activation
  // dtype when absent, read after the device is known) and, when given, rank `rank`.
  Tensor fetch(const char* key, std::optional<size_t> rank, std::optional<DType> dt) {
    if (!has(o, key)) throw_type(std::string(fn) + ": argument '" + key + "' is required (a Tensor)");
    Tensor t = get_tensor(o, key, fn);
    check_dev(t, key);
    expect_dtype(t, dt ? *dt : act(), fn, key);
    if (rank) expect_rank(t, *rank, fn, key);
    return t;
  }
  Tensor tensor(const char* key, size_t rank, DType dt) { return fetch(key, rank, dt); }
  // a tensor of the backend's activation dtype
  Tensor atensor(const char* key, size_t rank) { return fetch(key, rank, std::nullopt); }
  // an activation tensor of any rank (the call's leading tensor)
  Tensor lead(const char* key) { return fetch(key, std::nullopt, std::nullopt); }
  // an activation tensor with exactly ref's shape
  Tensor like(const char* key, const Tensor& ref) {
    Tensor t = fetch(key, ref.shape.size(), std::nullopt);
    shape(t, ref.shape, key);
    return t;
  }
  std::optional<Tensor> tensor_opt(const char* key, size_t rank, DType dt) {
    auto t = get_tensor_opt(o, key, fn);
    if (!t) return t;
    check_dev(*t, key);
    expect_dtype(*t, dt, fn, key);
    expect_rank(*t, rank, fn, key);
    return t;
  }
  void shape(const Tensor& t, const std::vector<int64_t>& s, const char* key) { expect_shape(t, s, fn, key); }
  [[noreturn]] void range(const std::string& m) { throw_range(std::string(fn) + ": " + m); }
  [[noreturn]] void type(const std::string& m) { throw_type(std::string(fn) + ": " + m); }
  double num(const char* key, double lo, double hi, std::optional<double> def = std::nullopt) {
    return get_number(o, key, fn, lo, hi, def);
  }
  int64_t integer(const char* key, int64_t lo, int64_t hi, std::optional<int64_t> def = std::nullopt) {
    return get_int(o, key, fn, lo, hi, def);
  }
  bool flag(const char* key, bool def) { return get_bool(o, key, fn, def); }
};

std::vector<int32_t> host_i32(const Tensor& t) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) t.storage->backend->copy_to_host(v.data(), t.data(), v.size() * 4);
  return v;
}

TensorP new_tensor(Backend* b, DType dt, std::vector<int64_t> shape, bool zero = false) {
  return std::make_shared<TensorP::element_type>(make_tensor(b, dt, std::move(shape), zero));
}
TensorP keep(const Tensor& t) { return std::make_shared<Tensor>(t); }

using Outs = std::vector<std::pair<std::string, TensorP>>;
Napi::Value resolve_outs(Napi::Env env, const Outs& outs) {
  Napi::Object r = Napi::Object::New(env);
  for (auto& kv : outs)
    if (kv.second) r.Set(kv.first, TensorWrap::New(env, *kv.second));
  return r;
}
// Runs work and resolves with the named output tensors.
Napi::Value finish(Napi::Env env, const char* fn, std::function<void()> work, Outs outs) {
  return run_async(env, fn, std::move(work), [outs](Napi::Env e) { return resolve_outs(e, outs); });
}

// ------------------------------------------------------------------ gemm
// gemm({a, b, c?, transA?, transB?, alpha?, beta?}): a, b, c rank 2 (or rank 3 with a
// leading batch dimension on all three). c is written (beta = 0) or updated in place.
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Args a(info, "ops.gemm");
  Tensor A = get_tensor(a.o, "a", a.fn);
  a.check_dev(A, "a");
  size_t rank = A.shape.size();
  if (rank != 2 && rank != 3) a.range("argument 'a' must have rank 2 or 3, got shape " + A.shape_str());
  DType act = a.act();
  A = a.tensor("a", rank, act);
  // b may also be bf16 on the CPU (f32 compute; the weights' bytes halved)
  const bool b16 = act == DType::F32 && has(a.o, "b") && a.o.Get("b").IsObject() &&
                   get_tensor(a.o, "b", a.fn).dtype == DType::BF16;
  Tensor B = a.tensor("b", rank, b16 ? DType::BF16 : act);
  bool ta = a.flag("transA", false), tb = a.flag("transB", false);
  int64_t batch = rank == 3 ? A.shape[0] : 1;
  size_t o = rank == 3 ? 1 : 0;
  if (rank == 3 && B.shape[0] != batch) a.range("arguments 'a' and 'b' differ in batch size");
  int64_t M = ta ? A.shape[o + 1] : A.shape[o], K = ta ? A.shape[o] : A.shape[o + 1];
  int64_t KB = tb ? B.shape[o + 1] : B.shape[o], N = tb ? B.shape[o] : B.shape[o + 1];
  if (K != KB)
    a.range("inner dimensions differ: op(a) is [" + std::to_string(M) + ", " + std::to_string(K) + "], op(b) is [" +
            std::to_string(KB) + ", " + std::to_string(N) + "]");
  double alpha = a.num("alpha", -1e30, 1e30, 1.0), beta = a.num("beta", -1e30, 1e30, 0.0);
  std::vector<int64_t> cs = rank == 3 ? std::vector<int64_t>{batch, M, N} : std::vector<int64_t>{M, N};
  auto Cin = a.tensor_opt("c", rank, act);
  TensorP C;
  if (Cin) {
    a.shape(*Cin, cs, "c");
    C = keep(*Cin);
  } else {
    if (beta != 0.0) a.range("argument 'beta' must be 0 when 'c' is not given");
    C = new_tensor(a.backend(), act, cs);
  }
  GemmParams p;
  p.M = M; p.N = N; p.K = K; p.transA = ta; p.transB = tb;
  p.lda = A.shape[o + 1]; p.ldb = B.shape[o + 1]; p.ldc = N;
  p.strideA = A.shape[o] * A.shape[o + 1]; p.strideB = B.shape[o] * B.shape[o + 1]; p.strideC = M * N;
  p.batch = batch; p.alpha = float(alpha); p.beta = float(beta);
  p.a_type = p.c_type = act;
  p.b_type = b16 ? DType::BF16 : act;
  Backend* be = a.backend();
  TensorP Ap = keep(A), Bp = keep(B);
  return finish(info.Env(), a.fn, [=]() mutable {
    p.A = Ap->data(); p.B = Bp->data(); p.C = C->data();
    if (K == 0) {  // C = beta*C
      if (p.beta == 0.f) be->memset_zero(C->data(), C->nbytes());
      else if (p.c_type == DType::F32) be->scale(static_cast<float*>(C->data()), C->numel(), p.beta);
      else throw_type("ops.gemm: K = 0 with beta != 0 needs f32");
      return;
    }
    be->gemm(p);
  }, {{"c", C}});
}

// ------------------------------------------------------------------ embedding
Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embeddingForward");
  Tensor ids = a.tensor("ids", 1, DType::I32);
  Tensor table = a.atensor("table", 2);
  int64_t V = table.shape[0], D = table.shape[1], n = ids.shape[0];
  auto hid = host_i32(ids);
  for (int64_t i = 0; i < n; ++i)
    if (hid[i] < 0 || hid[i] >= V)
      a.range("argument 'ids'[" + std::to_string(i) + "] = " + std::to_string(hid[i]) + " is outside [0, " +
              std::to_string(V) + ")");
  Backend* b = a.backend();
  TensorP out = new_tensor(b, a.act(), {n, D});
  TensorP I = keep(ids), W = keep(table);
  return finish(info.Env(), a.fn, [=]() {
    EmbeddingParams p;
    p.ids = I->ptr<int32_t>(); p.n = n; p.vocab = V; p.dim = D; p.table = W->data(); p.out = out->data();
    b->embedding_forward(p);
  }, {{"out", out}});
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.embeddingBackward");
  Tensor ids = a.tensor("ids", 1, DType::I32);
  Tensor dout = a.atensor("dout", 2);
  int64_t n = ids.shape[0], D = dout.shape[1];
  a.shape(dout, {n, D}, "dout");
  auto dt = a.tensor_opt("dtable", 2, DType::F32);
  int64_t V;
  if (dt) {
    V = dt->shape[0];
    a.shape(*dt, {V, D}, "dtable");
  } else {
    V = a.integer("vocab", 1, int64_t(1) << 31);
  }
  auto hid = host_i32(ids);
  for (int64_t i = 0; i < n; ++i)
    if (hid[i] < 0 || hid[i] >= V)
      a.range("argument 'ids'[" + std::to_string(i) + "] = " + std::to_string(hid[i]) + " is outside [0, " +
              std::to_string(V) + ")");
  Backend* b = a.backend();
  TensorP dtable = dt ? keep(*dt) : new_tensor(b, DType::F32, {V, D}, true);
  TensorP I = keep(ids), G = keep(dout);
  return finish(info.Env(), a.fn, [=]() {
    EmbeddingParams p;
    p.ids = I->ptr<int32_t>(); p.n = n; p.vocab = V; p.dim = D; p.dout = G->data(); p.dtable = dtable->ptr<float>();
    b->embedding_backward(p);
  }, {{"dtable", dtable}});
}

// ------------------------------------------------------------------ RMSNorm
Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rmsnormForward");
  Tensor x = a.atensor("x", 2);
  Tensor w = a.atensor("w", 1);
  int64_t n = x.shape[0], d = x.shape[1];
  a.shape(w, {d}, "w");
  double eps = a.num("eps", 0.0, 1.0, 1e-6);
  Backend* b = a.backend();
  TensorP y = new_tensor(b, a.act(), {n, d}), rstd = new_tensor(b, DType::F32, {n});
  TensorP X = keep(x), W = keep(w);
  return finish(info.Env(), a.fn, [=]() {
    RmsNormParams p;
    p.n = n; p.d = d; p.eps = float(eps); p.x = X->data(); p.w = W->data(); p.y = y->data(); p.rstd = rstd->ptr<float>();
    b->rmsnorm_forward(p);
  }, {{"y", y}, {"rstd", rstd}});
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rmsnormBackward");
  Tensor x = a.atensor("x", 2);
  Tensor w = a.atensor("w", 1);
  Tensor dy = a.atensor("dy", 2);
  int64_t n = x.shape[0], d = x.shape[1];
  a.shape(w, {d}, "w");
  a.shape(dy, {n, d}, "dy");
  auto rs = a.tensor_opt("rstd", 1, DType::F32);
  if (rs) a.shape(*rs, {n}, "rstd");
  auto dwin = a.tensor_opt("dw", 1, DType::F32);
  if (dwin) a.shape(*dwin, {d}, "dw");
  double eps = a.num("eps", 0.0, 1.0, 1e-6);
  Backend* b = a.backend();
  TensorP dx = new_tensor(b, a.act(), {n, d});
  TensorP dw = dwin ? keep(*dwin) : new_tensor(b, DType::F32, {d}, true);
  TensorP X = keep(x), W = keep(w), DY = keep(dy), R = rs ? keep(*rs) : nullptr;
  return finish(info.Env(), a.fn, [=]() {
    RmsNormParams p;
    p.n = n; p.d = d; p.eps = float(eps); p.x = X->data(); p.w = W->data(); p.dy = DY->data();
    p.rstd = R ? R->ptr<float>() : nullptr; p.dx = dx->data(); p.dw = dw->ptr<float>();
    b->rmsnorm_backward(p);
  }, {{"dx", dx}, {"dw", dw}});
}

// ------------------------------------------------------------------ RoPE (in place)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  Args a(info, "ops.rope");
  Tensor x = a.atensor("x", 3);
  Tensor pos = a.tensor("pos", 1, DType::I32);
  Tensor invf = a.tensor("invFreq", 1, DType::F32);
  int64_t T = x.shape[0], H = x.shape[1], D = x.shape[2];
  if (D % 2 != 0) a.range("argument 'x' must have an even head dim, got shape " + x.shape_str());
  a.shape(pos, {T}, "pos");
  a.shape(invf, {D / 2}, "invFreq");
  bool inverse = a.flag("inverse", false);
  Backend* b = a.backend();
  TensorP X = keep(x), P = keep(pos), IF = keep(invf);
  return finish(info.Env(), a.fn, [=]() {
    RopeParams p;
    p.x = X->data(); p.pos = P->ptr<int32_t>(); p.inv_freq = IF->ptr<float>(); p.T = T; p.H = H; p.D = D;
    p.inverse = inverse;
    b->rope(p);
  }, {{"x", X}});
}

// ------------------------------------------------------------------ SwiGLU, add, bias
Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swigluForward");
  Tensor g = a.lead("gate");
  Tensor u = a.like("up", g);
  Backend* b = a.backend();
  TensorP out = new_tensor(b, a.act(), g.shape);
  TensorP G = keep(g), U = keep(u);
  int64_t n = g.numel();
  return finish(info.Env(), a.fn, [=]() {
    SwigluParams p;
    p.n = n; p.gate = G->data(); p.up = U->data(); p.out = out->data();
    b->swiglu_forward(p);
  }, {{"out", out}});
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.swigluBackward");
  Tensor g = a.lead("gate");
  Tensor u = a.like("up", g);
  Tensor d = a.like("dout", g);
  Backend* b = a.backend();
  TensorP dg = new_tensor(b, a.act(), g.shape), du = new_tensor(b, a.act(), g.shape);
  TensorP G = keep(g), U = keep(u), DO = keep(d);
  int64_t n = g.numel();
  return finish(info.Env(), a.fn, [=]() {
    SwigluParams p;
    p.n = n; p.gate = G->data(); p.up = U->data(); p.dout = DO->data(); p.dgate = dg->data(); p.dup = du->data();
    b->swiglu_backward(p);
  }, {{"dgate", dg}, {"dup", du}});
}

Napi::Value Add(const Napi::CallbackInfo& info) {
  Args a(info, "ops.add");
  Tensor x = a.lead("a");
  Tensor y = a.like("b", x);
  Backend* b = a.backend();
  TensorP out = new_tensor(b, a.act(), x.shape);
  TensorP X = keep(x), Y = keep(y);
  int64_t n = x.numel();
  return finish(info.Env(), a.fn, [=]() {
    AddParams p;
    p.n = n; p.a = X->data(); p.b = Y->data(); p.out = out->data();
    b->add(p);
  }, {{"out", out}});
}

Napi::Value BiasForward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.biasForward");
  Tensor x = a.atensor("x", 2);
  Tensor bias = a.atensor("bias", 1);
  int64_t n = x.shape[0], d = x.shape[1];
  a.shape(bias, {d}, "bias");
  Backend* b = a.backend();
  TensorP X = keep(x), B = keep(bias);
  return finish(info.Env(), a.fn, [=]() {
    BiasParams p;
    p.n = n; p.d = d; p.x = X->data(); p.bias = B->data();
    b->bias_forward(p);
  }, {{"x", X}});
}

Napi::Value BiasBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.biasBackward");
  Tensor dy = a.atensor("dy", 2);
  int64_t n = dy.shape[0], d = dy.shape[1];
  auto dbin = a.tensor_opt("dbias", 1, DType::F32);
  if (dbin) a.shape(*dbin, {d}, "dbias");
  Backend* b = a.backend();
  TensorP db = dbin ? keep(*dbin) : new_tensor(b, DType::F32, {d}, true);
  TensorP DY = keep(dy);
  return finish(info.Env(), a.fn, [=]() {
    BiasParams p;
    p.n = n; p.d = d; p.dy = DY->data(); p.dbias = db->ptr<float>();
    b->bias_backward(p);
  }, {{"dbias", db}});
}

// ------------------------------------------------------------------ attention
std::vector<int32_t> check_cu(Args& a, const Tensor& cu, int64_t T) {
  auto h = host_i32(cu);
  if (h.empty()) a.range("argument 'cuSeqlens' must hold at least one entry");
  if (h[0] != 0) a.range("argument 'cuSeqlens'[0] must be 0, got " + std::to_string(h[0]));
  for (size_t i = 1; i < h.size(); ++i)
    if (h[i] < h[i - 1])
      a.range("argument 'cuSeqlens' must be non-decreasing, but [" + std::to_string(i) + "] = " +
              std::to_string(h[i]) + " < " + std::to_string(h[i - 1]));
  if (h.back() != T)
    a.range("argument 'cuSeqlens' must end at T = " + std::to_string(T) + ", got " + std::to_string(h.back()));
  return h;
}

struct AttnArgs {
  Tensor q, k, v, cu;
  int64_t T, Hq, Hkv, D, nseq;
  float scale;
};
AttnArgs attn_args(Args& a) {
  AttnArgs r;
  r.q = a.atensor("q", 3);
  r.k = a.atensor("k", 3);
  r.v = a.atensor("v", 3);
  r.cu = a.tensor("cuSeqlens", 1, DType::I32);
  r.T = r.q.shape[0]; r.Hq = r.q.shape[1]; r.D = r.q.shape[2]; r.Hkv = r.k.shape[1];
  if (r.D < 1) a.range("argument 'q' must have a head dim >= 1, got shape " + r.q.shape_str());
  if (r.Hkv < 1 || r.Hq % r.Hkv != 0)
    a.range("query heads (" + std::to_string(r.Hq) + ", from 'q') must be a multiple of kv heads (" +
            std::to_string(r.Hkv) + ", from 'k')");
  a.shape(r.k, {r.T, r.Hkv, r.D}, "k");
  a.shape(r.v, {r.T, r.Hkv, r.D}, "v");
  check_cu(a, r.cu, r.T);
  r.nseq = r.cu.shape[0] - 1;
  r.scale = float(a.num("scale", 0.0, 1e6, 1.0 / std::sqrt(double(r.D))));
  return r;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.attentionForward");
  AttnArgs r = attn_args(a);
  Backend* b = a.backend();
  TensorP out = new_tensor(b, a.act(), {r.T, r.Hq, r.D}), lse = new_tensor(b, DType::F32, {r.T, r.Hq});
  TensorP Q = keep(r.q), K = keep(r.k), V = keep(r.v), CU = keep(r.cu);
  return finish(info.Env(), a.fn, [=]() {
    AttentionParams p;
    p.T = r.T; p.Hq = r.Hq; p.Hkv = r.Hkv; p.D = r.D; p.nseq = r.nseq; p.cu_seqlens = CU->ptr<int32_t>();
    p.scale = r.scale; p.q = Q->data(); p.k = K->data(); p.v = V->data(); p.out = out->data(); p.lse = lse->ptr<float>();
    b->attention_forward(p);
  }, {{"out", out}, {"lse", lse}});
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  Args a(info, "ops.attentionBackward");
  AttnArgs r = attn_args(a);
  Tensor o = a.atensor("out", 3);
  Tensor lse = a.tensor("lse", 2, DType::F32);
  Tensor dout = a.atensor("dout", 3);
  a.shape(o, {r.T, r.Hq, r.D}, "out");
  a.shape(dout, {r.T, r.Hq, r.D}, "dout");
  a.shape(lse, {r.T, r.Hq}, "lse");
  Backend* b = a.backend();
  TensorP dq = new_tensor(b, a.act(), {r.T, r.Hq, r.D}), dk = new_tensor(b, a.act(), {r.T, r.Hkv, r.D}),
          dv = new_tensor(b, a.act(), {r.T, r.Hkv, r.D});
  TensorP Q = keep(r.q), K = keep(r.k), V = keep(r.v), CU = keep(r.cu), O = keep(o), L = keep(lse), DO = keep(dout);
  return finish(info.Env(), a.fn, [=]() {
    AttentionParams p;
    p.T = r.T; p.Hq = r.Hq; p.Hkv = r.Hkv; p.D = r.D; p.nseq = r.nseq; p.cu_seqlens = CU->ptr<int32_t>();
    p.scale = r.scale; p.q = Q->data(); p.k = K->data(); p.v = V->data(); p.out = O->data(); p.lse = L->ptr<float>();
    p.dout = DO->data(); p.dq = dq->data(); p.dk = dk->data(); p.dv = dv->data();
    b->attention_backward(p);
  }, {{"dq", dq}, {"dk", dk}, {"dv", dv}});
}

// KV cache arguments shared by kvWrite and attentionDecode.
struct CacheArgs {
  Tensor kc, vc, bt, cl;
  int64_t nblocks, bs, Hkv, D, B, maxb;
};
CacheArgs cache_args(Args& a, int64_t B, int64_t n_new) {
  CacheArgs c;
  c.kc = a.atensor("kCache", 4);
  c.vc = a.atensor("vCache", 4);
  c.nblocks = c.kc.shape[0]; c.bs = c.kc.shape[1]; c.Hkv = c.kc.shape[2]; c.D = c.kc.shape[3];
  if (c.bs < 1) a.range("argument 'kCache' must have a block size >= 1, got shape " + c.kc.shape_str());
  a.shape(c.vc, c.kc.shape, "vCache");
  c.bt = a.tensor("blockTable", 2, DType::I32);
  c.cl = a.tensor("ctxLens", 1, DType::I32);
  c.B = B;
  c.maxb = c.bt.shape[1];
  a.shape(c.bt, {B, c.maxb}, "blockTable");
  a.shape(c.cl, {B}, "ctxLens");
  auto bt = host_i32(c.bt), cl = host_i32(c.cl);
  for (int64_t b = 0; b < B; ++b) {
    int64_t len = cl[b];
    if (len < n_new || len > c.maxb * c.bs)
      a.range("argument 'ctxLens'[" + std::to_string(b) + "] = " + std::to_string(len) + " must be in [" +
              std::to_string(n_new) + ", " + std::to_string(c.maxb * c.bs) + "] (n_new .. maxBlocks*blockSize)");
    for (int64_t j = 0; j < (len + c.bs - 1) / c.bs; ++j) {
      int32_t blk = bt[b * c.maxb + j];
      if (blk < 0 || blk >= c.nblocks)
        a.range("argument 'blockTable'[" + std::to_string(b) + ", " + std::to_string(j) + "] = " + std::to_string(blk) +
                " is outside [0, " + std::to_string(c.nblocks) + ")");
    }
  }
  return c;
}

Napi::Value KvWrite(const Napi::CallbackInfo& info) {
  Args a(info, "ops.kvWrite");
  Tensor kn = a.atensor("kNew", 4);
  Tensor vn = a.atensor("vNew", 4);
  int64_t B = kn.shape[0], n_new = kn.shape[1];
  CacheArgs c = cache_args(a, B, n_new);
  a.shape(kn, {B, n_new, c.Hkv, c.D}, "kNew");
  a.shape(vn, {B, n_new, c.Hkv, c.D}, "vNew");
  Backend* b = a.backend();
  TensorP KN = keep(kn), VN = keep(vn), KC = keep(c.kc), VC = keep(c.vc), BT = keep(c.bt), CL = keep(c.cl);
  return finish(info.Env(), a.fn, [=]() {
    KvWriteParams p;
    p.B = B; p.n_new = n_new; p.Hkv = c.Hkv; p.D = c.D; p.block_size = c.bs; p.max_blocks = c.maxb;
    p.block_table = BT->ptr<int32_t>(); p.ctx_lens = CL->ptr<int32_t>(); p.k_new = KN->data(); p.v_new = VN->data();
    p.k_cache = KC->data(); p.v_cache = VC->data();
    b->kv_write(p);
  }, {});
}

Napi::Value AttentionDecode(const Napi::CallbackInfo& info) {
  Args a(info, "ops.attentionDecode");
  Tensor q = a.atensor("q", 4);
  int64_t B = q.shape[0], n_new = q.shape[1], Hq = q.shape[2];
  CacheArgs c = cache_args(a, B, n_new);
  if (c.Hkv < 1 || Hq % c.Hkv != 0)
    a.range("query heads (" + std::to_string(Hq) + ", from 'q') must be a multiple of kv heads (" +
            std::to_string(c.Hkv) + ", from 'kCache')");
  a.shape(q, {B, n_new, Hq, c.D}, "q");
  float scale = float(a.num("scale", 0.0, 1e6, 1.0 / std::sqrt(double(std::max<int64_t>(1, c.D)))));
  Backend* b = a.backend();
  TensorP out = new_tensor(b, a.act(), {B, n_new, Hq, c.D});
  TensorP Q = keep(q), KC = keep(c.kc), VC = keep(c.vc), BT = keep(c.bt), CL = keep(c.cl);
  return finish(info.Env(), a.fn, [=]() {
    DecodeAttentionParams p;
    p.B = B; p.n_new = n_new; p.Hq = Hq; p.Hkv = c.Hkv; p.D = c.D; p.block_size = c.bs; p.max_blocks = c.maxb;
    p.block_table = BT->ptr<int32_t>(); p.ctx_lens = CL->ptr<int32_t>(); p.scale = scale; p.q = Q->data();
    p.k_cache = KC->data(); p.v_cache = VC->data(); p.out = out->data();
    b->attention_decode(p);
  }, {{"out", out}});
}

// ------------------------------------------------------------------ fused log-prob
Napi::Value Logprob(const Napi::CallbackInfo& info) {
  Args a(info, "ops.logprob");
  Tensor h = a.atensor("hidden", 2);
  Tensor w = a.atensor("weight", 2);
  Tensor t = a.tensor("targets", 1, DType::I32);
  int64_t N = h.shape[0], H = h.shape[1], V = w.shape[0];
  if (V < 1) a.range("argument 'weight' must have at least one row (vocabulary), got shape " + w.shape_str());
  a.shape(w, {V, H}, "weight");
  a.shape(t, {N}, "targets");
  auto ht = host_i32(t);
  for (int64_t i = 0; i < N; ++i)
    if (ht[i] < -1 || ht[i] >= V)
      a.range("argument 'targets'[" + std::to_string(i) + "] = " + std::to_string(ht[i]) + " is outside [-1, " +
              std::to_string(V) + ") (-1 = ignore)");
  int64_t chunk = a.integer("chunk", 0, int64_t(1) << 30, 0);
  auto dl = a.tensor_opt("dlogp", 1, DType::F32);
  if (dl) a.shape(*dl, {N}, "dlogp");
  auto dwin = a.tensor_opt("dweight", 2, DType::F32);
  if (dwin) {
    if (!dl) a.type("argument 'dweight' is given without 'dlogp'");
    a.shape(*dwin, {V, H}, "dweight");
  }
  Backend* b = a.backend();
  TensorP lp = new_tensor(b, DType::F32, {N}), lse = new_tensor(b, DType::F32, {N});
  TensorP dh, dw, DL;
  if (dl) {
    DL = keep(*dl);
    dh = new_tensor(b, a.act(), {N, H});
    dw = dwin ? keep(*dwin) : new_tensor(b, DType::F32, {V, H}, true);
  }
  TensorP Hd = keep(h), W = keep(w), T = keep(t);
  return finish(info.Env(), a.fn, [=]() {
    LogprobParams p;
    p.N = N; p.H = H; p.V = V; p.chunk = chunk; p.hidden = Hd->data(); p.weight = W->data();
    p.targets = T->ptr<int32_t>(); p.logprob = lp->ptr<float>(); p.lse = lse->ptr<float>();
    if (DL) { p.dlogp = DL->ptr<float>(); p.dhidden = dh->data(); p.dweight = dw->ptr<float>(); }
    b->logprob(p);
  }, {{"logprob", lp}, {"lse", lse}, {"dhidden", dh}, {"dweight", dw}});
}

// ------------------------------------------------------------------ preference losses
Napi::Value PreferenceLoss(const Napi::CallbackInfo& info) {
  Args a(info, "ops.preferenceLoss");
  std::string kind = get_string(a.o, "kind", a.fn);
  PrefLoss k;
  if (kind == "dpo") k = PrefLoss::DPO;
  else if (kind == "ipo") k = PrefLoss::IPO;
  else if (kind == "simpo") k = PrefLoss::SIMPO;
  else if (kind == "orpo") k = PrefLoss::ORPO;
  else a.type("argument 'kind' must be 'dpo', 'ipo', 'simpo' or 'orpo', got '" + kind.substr(0, 32) + "'");
  Tensor c = a.tensor("chosen", 1, DType::F32);
  int64_t P = c.shape[0];
  Tensor r = a.tensor("rejected", 1, DType::F32);
  a.shape(r, {P}, "rejected");
  std::optional<Tensor> cl, rl, rc, rr;
  if (k == PrefLoss::SIMPO || k == PrefLoss::ORPO) {
    cl = a.tensor("chosenLen", 1, DType::F32);
    rl = a.tensor("rejectedLen", 1, DType::F32);
    a.shape(*cl, {P}, "chosenLen");
    a.shape(*rl, {P}, "rejectedLen");
    for (auto* pr : {&*cl, &*rl}) {
      std::vector<float> hv(static_cast<size_t>(P));
      if (P) pr->storage->backend->copy_to_host(hv.data(), pr->data(), P * 4);
      for (int64_t i = 0; i < P; ++i)
        if (!(hv[i] > 0.f))
          a.range(std::string("argument '") + (pr == &*cl ? "chosenLen" : "rejectedLen") + "'[" + std::to_string(i) +
                  "] must be > 0, got " + std::to_string(hv[i]));
    }
    if (k == PrefLoss::ORPO) {
      for (const char* key : {"chosen", "rejected"}) {
        const Tensor& tt = key[0] == 'c' ? c : r;
        std::vector<float> hv(static_cast<size_t>(P));
        if (P) tt.storage->backend->copy_to_host(hv.data(), tt.data(), P * 4);
        for (int64_t i = 0; i < P; ++i)
          if (!(hv[i] <= 0.f))
            a.range(std::string("argument '") + key + "'[" + std::to_string(i) +
                    "] must be a log-probability sum (<= 0) for ORPO, got " + std::to_string(hv[i]));
      }
    }
  } else {
    rc = a.tensor("refChosen", 1, DType::F32);
    rr = a.tensor("refRejected", 1, DType::F32);
    a.shape(*rc, {P}, "refChosen");
    a.shape(*rr, {P}, "refRejected");
  }
  double beta = a.num("beta", 1e-12, 1e12, k == PrefLoss::SIMPO ? 2.5 : 0.1);
  double gamma = a.num("gamma", -1e6, 1e6, 0.5);
  double ls = a.num("labelSmoothing", 0.0, 0.5, 0.0);
  double lambda = a.num("lambda", 0.0, 1e6, 0.1);
  Backend* b = a.backend();
  TensorP loss = new_tensor(b, DType::F32, {P}), dc = new_tensor(b, DType::F32, {P}),
          dr = new_tensor(b, DType::F32, {P}), crw = new_tensor(b, DType::F32, {P}),
          rrw = new_tensor(b, DType::F32, {P});
  TensorP C = keep(c), R = keep(r), CL = cl ? keep(*cl) : nullptr, RL = rl ? keep(*rl) : nullptr,
          RC = rc ? keep(*rc) : nullptr, RR = rr ? keep(*rr) : nullptr;
  return finish(info.Env(), a.fn, [=]() {
    PreferenceParams p;
    p.kind = k; p.P = P; p.beta = float(beta); p.gamma = float(gamma); p.label_smoothing = float(ls);
    p.lambda = float(lambda); p.chosen = C->ptr<float>(); p.rejected = R->ptr<float>();
    if (CL) { p.chosen_len = CL->ptr<float>(); p.rejected_len = RL->ptr<float>(); }
    if (RC) { p.ref_chosen = RC->ptr<float>(); p.ref_rejected = RR->ptr<float>(); }
    p.loss = loss->ptr<float>(); p.d_chosen = dc->ptr<float>(); p.d_rejected = dr->ptr<float>();
    p.chosen_reward = crw->ptr<float>(); p.rejected_reward = rrw->ptr<float>();
    b->preference_loss(p);
  }, {{"loss", loss}, {"dChosen", dc}, {"dRejected", dr}, {"chosenReward", crw}, {"rejectedReward", rrw}});
}

// ------------------------------------------------------------------ optimizer and vector helpers
Napi::Value Adamw(const Napi::CallbackInfo& info) {
  Args a(info, "ops.adamw");
  Tensor p0 = get_tensor(a.o, "param", a.fn);
  a.check_dev(p0, "param");
  size_t rank = p0.shape.size();
  Tensor pr = a.tensor("param", rank, DType::F32), g = a.tensor("grad", rank, DType::F32),
         m = a.tensor("m", rank, DType::F32), v = a.tensor("v", rank, DType::F32);
  a.shape(g, pr.shape, "grad");
  a.shape(m, pr.shape, "m");
  a.shape(v, pr.shape, "v");
  if (pr.data() == m.data() || pr.data() == v.data() || m.data() == v.data() || g.data() == pr.data() ||
      g.data() == m.data() || g.data() == v.data())
    a.type("arguments 'param', 'grad', 'm' and 'v' must be four different tensors");
  AdamWParams p;
  p.n = pr.numel();
  p.lr = float(a.num("lr", 0.0, 1e6));
  p.beta1 = float(a.num("beta1", 0.0, 0.999999, 0.9));
  p.beta2 = float(a.num("beta2", 0.0, 0.99999999, 0.999));
  p.eps = float(a.num("eps", 0.0, 1.0, 1e-8));
  p.weight_decay = float(a.num("weightDecay", 0.0, 1e6, 0.0));
  p.step = a.integer("step", 1, int64_t(1) << 40);
  p.grad_scale = float(a.num("gradScale", -1e30, 1e30, 1.0));
  Backend* b = a.backend();
  TensorP P = keep(pr), G = keep(g), M = keep(m), Vv = keep(v);
  return finish(info.Env(), a.fn, [=]() mutable {
    p.param = P->ptr<float>(); p.grad = G->ptr<float>(); p.m = M->ptr<float>(); p.v = Vv->ptr<float>();
    b->adamw(p);
  }, {});
}

Tensor any_f32(Args& a, const char* key) {
  Tensor t = get_tensor(a.o, key, a.fn);
  a.check_dev(t, key);
  expect_dtype(t, DType::F32, a.fn, key);
  return t;
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  Args a(info, "ops.sumSquares");
  Tensor x = any_f32(a, "x");
  Backend* b = a.backend();
  auto res = std::make_shared<double>(0.0);
  TensorP X = keep(x);
  return run_async(info.Env(), a.fn, [=]() { *res = b->sum_squares(X->ptr<float>(), X->numel()); },
                   [res](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *res); });
}

Napi::Value HasNonfinite(const Napi::CallbackInfo& info) {
  Args a(info, "ops.hasNonfinite");
  Tensor x = any_f32(a, "x");
  Backend* b = a.backend();
  auto res = std::make_shared<bool>(false);
  TensorP X = keep(x);
  return run_async(info.Env(), a.fn, [=]() { *res = b->has_nonfinite(X->ptr<float>(), X->numel()); },
                   [res](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, *res); });
}

Napi::Value Scale(const Napi::CallbackInfo& info) {
  Args a(info, "ops.scale");
  Tensor x = any_f32(a, "x");
  float s = float(a.num("s", -3.4e38, 3.4e38));
  Backend* b = a.backend();
  TensorP X = keep(x);
  return finish(info.Env(), a.fn, [=]() { b->scale(X->ptr<float>(), X->numel(), s); }, {{"x", X}});
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  Args a(info, "ops.axpy");
  Tensor y = any_f32(a, "y");
  Tensor x = any_f32(a, "x");
  a.shape(x, y.shape, "x");
  float s = float(a.num("a", -3.4e38, 3.4e38));
  Backend* b = a.backend();
  TensorP X = keep(x), Y = keep(y);
  return finish(info.Env(), a.fn, [=]() { b->axpy(Y->ptr<float>(), X->ptr<float>(), Y->numel(), s); }, {{"y", Y}});
}

// ------------------------------------------------------------------ sampling
uint64_t u64_value(const Napi::Value& v, const char* fn, const char* arg) {
  if (v.IsBigInt()) {
    bool lossless = true;
    uint64_t u = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw_range(std::string(fn) + ": argument '" + arg + "' must fit in 64 unsigned bits");
    return u;
  }
  return static_cast<uint64_t>(int_value(v, fn, arg, 0, 9007199254740991LL));
}

Napi::Value Sample(const Napi::CallbackInfo& info) {
  Args a(info, "ops.sample");
  Tensor lg = a.tensor("logits", 2, DType::F32);
  int64_t B = lg.shape[0], V = lg.shape[1];
  if (V < 1) a.range("argument 'logits' must have at least one column, got shape " + lg.shape_str());
  double temp = a.num("temperature", -1e6, 1e6, 1.0);
  int64_t top_k = a.integer("topK", 0, int64_t(1) << 40, 0);
  double top_p = a.num("topP", 0.0, 1.0, 1.0);
  if (top_p <= 0.0) a.range("argument 'topP' must be in (0, 1], got 0");
  uint64_t seed = has(a.o, "seed") ? u64_value(a.o.Get("seed"), a.fn, "seed") : 0;
  auto counters = std::make_shared<std::vector<uint64_t>>(static_cast<size_t>(B));
  if (!has(a.o, "counters")) a.type("argument 'counters' is required (a BigUint64Array or an array of integers, one per row)");
  Napi::Value cv = a.o.Get("counters");
  if (cv.IsTypedArray() && cv.As<Napi::TypedArray>().TypedArrayType() == napi_biguint64_array) {
    auto ta = cv.As<Napi::TypedArray>();
    if (int64_t(ta.ElementLength()) != B)
      a.range("argument 'counters' has " + std::to_string(ta.ElementLength()) + " entries, expected " + std::to_string(B));
    std::memcpy(counters->data(), static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset(), B * 8);
  } else if (cv.IsArray()) {
    auto arr = cv.As<Napi::Array>();
    if (int64_t(arr.Length()) != B)
      a.range("argument 'counters' has " + std::to_string(arr.Length()) + " entries, expected " + std::to_string(B));
    for (int64_t i = 0; i < B; ++i) (*counters)[i] = u64_value(arr.Get(uint32_t(i)), a.fn, "counters");
  } else {
    a.type("argument 'counters' must be a BigUint64Array or an array of integers");
  }
  Backend* b = a.backend();
  auto tokens = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(B));
  auto ls = std::make_shared<std::vector<float>>(static_cast<size_t>(B));
  auto lm = std::make_shared<std::vector<float>>(static_cast<size_t>(B));
  TensorP L = keep(lg);
  return run_async(
      info.Env(), a.fn,
      [=]() {
        SampleParams p;
        p.B = B; p.V = V; p.logits = L->ptr<float>(); p.temperature = float(temp); p.top_k = top_k;
        p.top_p = float(top_p); p.seed = seed; p.counters = counters->data(); p.tokens = tokens->data();
        p.logp_sampled = ls->data(); p.logp_model = lm->data();
        b->sample(p);
      },
      [=](Napi::Env env) -> Napi::Value {
        Napi::Object r = Napi::Object::New(env);
        auto t = Napi::Int32Array::New(env, B);
        auto s = Napi::Float32Array::New(env, B);
        auto m = Napi::Float32Array::New(env, B);
        if (B) {
          std::memcpy(t.Data(), tokens->data(), B * 4);
          std::memcpy(s.Data(), ls->data(), B * 4);
          std::memcpy(m.Data(), lm->data(), B * 4);
        }
        r.Set("tokens", t);
        r.Set("logpSampled", s);
        r.Set("logpModel", m);
        return r;
      });
}

void Register(Napi::Env env, Napi::Object exports) {
  Napi::Object ops = Napi::Object::New(env);
  auto def = [&](const char* name, RawFn f) { ops.Set(name, js_fn(env, name, std::move(f))); };
  def("gemm", Gemm);
  def("embeddingForward", EmbeddingForward);
  def("embeddingBackward", EmbeddingBackward);
  def("rmsnormForward", RmsnormForward);
  def("rmsnormBackward", RmsnormBackward);
  def("rope", Rope);
  def("swigluForward", SwigluForward);
  def("swigluBackward", SwigluBackward);
  def("add", Add);
  def("biasForward", BiasForward);
  def("biasBackward", BiasBackward);
  def("attentionForward", AttentionForward);
  def("attentionBackward", AttentionBackward);
  def("kvWrite", KvWrite);
  def("attentionDecode", AttentionDecode);
  def("logprob", Logprob);
  def("preferenceLoss", PreferenceLoss);
  def("adamw", Adamw);
  def("sumSquares", SumSquares);
  def("hasNonfinite", HasNonfinite);
  def("scale", Scale);
  def("axpy", Axpy);
  def("sample", Sample);
  exports.Set("ops", ops);
}

}  // namespace
ITOOL_REGISTER(ops, Register);

}  // namespace addon
}  // namespace itool
