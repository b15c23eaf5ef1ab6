// N-API binding of the model (native/core/model.h); safetensors read/write are in
// safetensors_binding.cpp.
// modelCreate(options) returns a plain object whose methods close over the model;
// long work (forward, backward, step, decoding, load/save) runs off the event loop.
#include <cmath>
#include <cstring>
#include <memory>
#include "../core/model.h"
#include "../core/safetensors.h"
#include "util.h"

namespace itool {
namespace addon {

namespace {

struct Holder {
  std::shared_ptr<Model> m;
  std::shared_ptr<Model> get(const char* fn) const {
    if (!m) throw_type(std::string(fn) + ": the model is disposed");
    return m;
  }
};

// upstream gradients on the log-probabilities: a Float32Array of finite values
std::vector<float> dlogprobs_array(const Napi::Value& v, const char* fn) {
  std::vector<float> d = float32_array_value(v, fn, "dlogprobs");
  for (float x : d)
    if (!std::isfinite(x)) throw_range(std::string(fn) + ": dlogprobs holds a NaN or Inf");
  return d;
}

Napi::Int32Array to_i32(Napi::Env env, const std::vector<int32_t>& v) {
  Napi::Int32Array a = Napi::Int32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
  return a;
}

ModelConfig config_value(const Napi::Value& v, const char* fn) {
  if (!v.IsObject() || v.IsArray()) throw_type(std::string(fn) + ": argument 'config' must be an object");
  Napi::Object o = v.As<Napi::Object>();
  ModelConfig c;
  c.architecture = get_string(o, "architecture", fn);
  c.vocab = get_int(o, "vocabSize", fn, 1, int64_t(1) << 24);
  c.hidden = get_int(o, "hiddenSize", fn, 1, 1 << 16);
  c.inter = get_int(o, "intermediateSize", fn, 1, 1 << 18);
  c.layers = get_int(o, "numLayers", fn, 1, 1024);
  c.heads = get_int(o, "numHeads", fn, 1, 1024);
  c.kv_heads = get_int(o, "numKvHeads", fn, 1, 1024);
  c.head_dim = get_int(o, "headDim", fn, 2, 1024);
  c.eps = float(get_number(o, "rmsNormEps", fn, 1e-12, 1.0));
  c.rope_theta = get_number(o, "ropeTheta", fn, 1e-6, 1e12);
  c.max_pos = get_int(o, "maxPositionEmbeddings", fn, 1, int64_t(1) << 24, 4096);
  c.tie = get_bool(o, "tieWordEmbeddings", fn, false);
  c.attn_bias = get_bool(o, "attentionBias", fn, false);
  c.qk_norm = get_bool(o, "qkNorm", fn, false);
  if (has(o, "ropeScaling") && !o.Get("ropeScaling").IsNull() && !o.Get("ropeScaling").IsUndefined()) {
    Napi::Value rv = o.Get("ropeScaling");
    if (!rv.IsObject() || rv.IsArray()) throw_type(std::string(fn) + ": argument 'ropeScaling' must be an object or null");
    Napi::Object r = rv.As<Napi::Object>();
    std::string t = get_string(r, "ropeType", fn);
    if (t != "llama3") throw_range(std::string(fn) + ": ropeScaling.ropeType '" + t + "' is not supported (llama3 is)");
    c.rope_llama3 = true;
    c.rope_factor = get_number(r, "factor", fn, 1e-6, 1e6);
    c.low_freq_factor = get_number(r, "lowFreqFactor", fn, 1e-6, 1e6);
    c.high_freq_factor = get_number(r, "highFreqFactor", fn, 1e-6, 1e6);
    c.orig_max_pos = get_int(r, "originalMaxPositionEmbeddings", fn, 1, int64_t(1) << 24);
  }
  c.validate();
  return c;
}

int64_t cache_id(const Napi::Value& v, const char* fn) { return int_value(v, fn, "cache", 1, int64_t(1) << 52); }

std::vector<int64_t> cache_ids(const Napi::Value& v, const char* fn) {
  if (!v.IsArray()) throw_type(std::string(fn) + ": argument 'caches' must be an array of cache ids");
  Napi::Array a = v.As<Napi::Array>();
  if (a.Length() > 65536) throw_range(std::string(fn) + ": at most 65536 caches per batch");
  std::vector<int64_t> ids;
  for (uint32_t i = 0; i < a.Length(); ++i) ids.push_back(cache_id(a.Get(i), fn));
  return ids;
}

using Method = std::function<Napi::Value(const Napi::CallbackInfo&, const std::shared_ptr<Model>&)>;

void method(Napi::Env env, Napi::Object obj, std::shared_ptr<Holder> h, const char* name, Method fn) {
  std::string full = std::string("model.") + name;
  obj.Set(name, js_fn(env, name, [h, fn, full](const Napi::CallbackInfo& info) -> Napi::Value {
            auto m = h->get(full.c_str());
            return fn(info, m);
          }));
}

Napi::Value make_model_object(Napi::Env env, std::shared_ptr<Model> model) {
  auto h = std::make_shared<Holder>();
  h->m = model;
  Napi::Object o = Napi::Object::New(env);

  method(env, o, h, "numParameters", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    return Napi::Number::New(info.Env(), double(m->num_parameters()));
  });
  method(env, o, h, "trainableParameters", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    return Napi::Number::New(info.Env(), double(m->trainable_parameters()));
  });
  method(env, o, h, "setRecompute", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsBoolean()) throw_type("model.setRecompute: argument 'on' must be a boolean");
    std::lock_guard<std::mutex> g(m->mutex());
    m->set_recompute(info[0].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  });

  // setMemoryLimits({kvCacheBlocks, logprobChunkRows}): a key left out keeps its value; 0: no cap /
  // the backend's choice. memoryLimits() -> {kvCacheBlocks, logprobChunkRows, kvPoolBlocks, kvBlockSize}
  method(env, o, h, "setMemoryLimits", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.setMemoryLimits";
    Napi::Object a = object_arg(info, 0, fn, "limits");
    std::lock_guard<std::mutex> g(m->mutex());
    int64_t kv = get_int(a, "kvCacheBlocks", fn, 0, int64_t(1) << 31, m->kv_pool_limit());
    int64_t rows = get_int(a, "logprobChunkRows", fn, 0, int64_t(1) << 31, m->logprob_chunk());
    m->set_memory_limits(kv, rows);
    return info.Env().Undefined();
  });
  method(env, o, h, "memoryLimits", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("kvCacheBlocks", Napi::Number::New(info.Env(), double(m->kv_pool_limit())));
    r.Set("logprobChunkRows", Napi::Number::New(info.Env(), double(m->logprob_chunk())));
    r.Set("kvPoolBlocks", Napi::Number::New(info.Env(), double(m->pool_blocks())));
    r.Set("kvBlockSize", Napi::Number::New(info.Env(), double(m->block_size())));
    return r;
  });

  method(env, o, h, "weightDtype", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    return Napi::String::New(info.Env(), dtype_name(m->weight_dtype()));
  });
  // memory() -> {weights, adapters, gradients, optimizer, activations, kvCache, scratch, total} (bytes)
  method(env, o, h, "memory", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    MemoryUse u;
    {
      std::lock_guard<std::mutex> g(m->mutex());
      u = m->memory();
    }
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("weights", Napi::Number::New(env, double(u.weights)));
    r.Set("adapters", Napi::Number::New(env, double(u.adapters)));
    r.Set("gradients", Napi::Number::New(env, double(u.gradients)));
    r.Set("optimizer", Napi::Number::New(env, double(u.optimizer)));
    r.Set("activations", Napi::Number::New(env, double(u.activations)));
    r.Set("kvCache", Napi::Number::New(env, double(u.kv_cache)));
    r.Set("scratch", Napi::Number::New(env, double(u.scratch)));
    r.Set("total", Napi::Number::New(env, double(u.total())));
    return r;
  });

  // forward({tokens, targets, cuSeqlens, positions?, train?, logits?}) -> Promise<{logprobs, logits?}>
  method(env, o, h, "forward", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.forward";
    Napi::Object a = object_arg(info, 0, fn, "batch");
    auto tokens = std::make_shared<std::vector<int32_t>>(int32_array_value(a.Get("tokens"), fn, "tokens"));
    auto targets = std::make_shared<std::vector<int32_t>>(int32_array_value(a.Get("targets"), fn, "targets"));
    auto cu = std::make_shared<std::vector<int32_t>>(int32_array_value(a.Get("cuSeqlens"), fn, "cuSeqlens"));
    int64_t T = int64_t(tokens->size());
    const ModelConfig& c = m->config();
    if (T < 1 || T > (int64_t(1) << 22)) throw_range(std::string(fn) + ": tokens must hold 1 to 2^22 entries, got " + std::to_string(T));
    if (int64_t(targets->size()) != T) throw_range(std::string(fn) + ": targets has " + std::to_string(targets->size()) + " entries, tokens " + std::to_string(T));
    for (int64_t i = 0; i < T; ++i) {
      if ((*tokens)[size_t(i)] < 0 || (*tokens)[size_t(i)] >= c.vocab)
        throw_range(std::string(fn) + ": tokens[" + std::to_string(i) + "] = " + std::to_string((*tokens)[size_t(i)]) + " is outside [0, " + std::to_string(c.vocab) + ")");
      if ((*targets)[size_t(i)] < -1 || (*targets)[size_t(i)] >= c.vocab)
        throw_range(std::string(fn) + ": targets[" + std::to_string(i) + "] = " + std::to_string((*targets)[size_t(i)]) + " is outside [-1, " + std::to_string(c.vocab) + ")");
    }
    if (cu->size() < 2 || (*cu)[0] != 0 || (*cu).back() != T)
      throw_range(std::string(fn) + ": cuSeqlens must start at 0 and end at tokens.length (" + std::to_string(T) + ")");
    for (size_t i = 1; i < cu->size(); ++i)
      if ((*cu)[i] <= (*cu)[i - 1]) throw_range(std::string(fn) + ": cuSeqlens must be strictly increasing (empty sequences are not allowed)");
    auto pos = std::make_shared<std::vector<int32_t>>();
    if (has(a, "positions") && !a.Get("positions").IsUndefined() && !a.Get("positions").IsNull()) {
      *pos = int32_array_value(a.Get("positions"), fn, "positions");
      if (int64_t(pos->size()) != T) throw_range(std::string(fn) + ": positions has " + std::to_string(pos->size()) + " entries, tokens " + std::to_string(T));
      for (auto p : *pos)
        if (p < 0 || p > (1 << 24)) throw_range(std::string(fn) + ": positions must be in [0, 2^24]");
    } else {
      pos->resize(size_t(T));
      for (size_t s = 0; s + 1 < cu->size(); ++s)
        for (int32_t i = (*cu)[s]; i < (*cu)[s + 1]; ++i) (*pos)[size_t(i)] = i - (*cu)[s];
    }
    bool train = get_bool(a, "train", fn, false);
    bool want_logits = get_bool(a, "logits", fn, false);
    // dlogprobs: the upstream gradients, known ahead (SFT): the LM head's gradient is made in this pass
    std::shared_ptr<std::vector<float>> dl;
    if (has(a, "dlogprobs") && !a.Get("dlogprobs").IsUndefined() && !a.Get("dlogprobs").IsNull()) {
      if (!train) throw_range(std::string(fn) + ": dlogprobs need train: true (they are the gradients for the backward that follows)");
      dl = std::make_shared<std::vector<float>>(dlogprobs_array(a.Get("dlogprobs"), fn));
      if (int64_t(dl->size()) != T) throw_range(std::string(fn) + ": dlogprobs has " + std::to_string(dl->size()) + " entries, tokens " + std::to_string(T));
    }
    if (want_logits && double(T) * double(c.vocab) > double(int64_t(1) << 31))
      throw_range(std::string(fn) + ": full logits would hold " + std::to_string(double(T) * double(c.vocab)) + " values (too many)");
    auto lp = std::make_shared<std::vector<float>>(size_t(T));
    auto lg = std::make_shared<std::vector<float>>(want_logits ? size_t(T * c.vocab) : 0);
    return run_async(
        info.Env(), fn,
        [m, tokens, targets, cu, pos, train, want_logits, lp, lg, dl]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->forward(*tokens, *targets, *cu, *pos, train, lp->data(), want_logits ? lg->data() : nullptr,
                     dl ? dl->data() : nullptr);
        },
        [lp, lg, want_logits](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("logprobs", to_f32(env, *lp));
          if (want_logits) r.Set("logits", to_f32(env, *lg));
          return r;
        });
  });

  method(env, o, h, "backward", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.backward";
    // no argument: the dlogprobs given to the training forward
    const bool given = info.Length() > 0 && !info[0].IsUndefined();
    auto d = std::make_shared<std::vector<float>>(given ? dlogprobs_array(info[0], fn) : std::vector<float>{});
    return run_async(
        info.Env(), fn,
        [m, d, given]() {
          std::lock_guard<std::mutex> g(m->mutex());
          // the length check needs the saved batch: done under the lock
          m->backward_checked(given ? d->data() : nullptr, int64_t(d->size()));
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });

  method(env, o, h, "zeroGrad", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    m->zero_grad();
    return info.Env().Undefined();
  });

  method(env, o, h, "resetOptimizer", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    m->reset_optimizer();
    return info.Env().Undefined();
  });

  method(env, o, h, "step", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.step";
    Napi::Object a = object_arg(info, 0, fn);
    OptimOptions op;
    op.lr = float(get_number(a, "lr", fn, 0, 1e3));
    op.beta1 = float(get_number(a, "beta1", fn, 0, 0.999999, 0.9));
    op.beta2 = float(get_number(a, "beta2", fn, 0, 0.9999999, 0.999));
    op.eps = float(get_number(a, "eps", fn, 0, 1, 1e-8));
    op.weight_decay = float(get_number(a, "weightDecay", fn, 0, 1e3, 0));
    op.max_grad_norm = float(get_number(a, "maxGradNorm", fn, 0, 1e30, 0));
    op.grad_scale = float(get_number(a, "gradScale", fn, 0, 1e30, 1));
    auto si = std::make_shared<StepInfo>();
    return run_async(
        info.Env(), fn,
        [m, op, si]() {
          std::lock_guard<std::mutex> g(m->mutex());
          *si = m->step(op);
        },
        [si](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("gradNorm", Napi::Number::New(env, si->grad_norm));
          r.Set("skipped", Napi::Boolean::New(env, si->skipped));
          return r;
        });
  });

  // ---- caches
  method(env, o, h, "cacheNew", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    return Napi::Number::New(info.Env(), double(m->cache_new()));
  });
  method(env, o, h, "cacheFree", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    int64_t id = cache_id(info.Length() ? info[0] : info.Env().Undefined(), "model.cacheFree");
    std::unique_lock<std::mutex> g(m->mutex(), std::try_to_lock);
    if (g.owns_lock()) m->cache_free(id);
    else m->defer_free(id);  // the model is busy on a worker thread: never block the event loop
    return info.Env().Undefined();
  });
  method(env, o, h, "cacheFork", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    int64_t id = cache_id(info.Length() ? info[0] : info.Env().Undefined(), "model.cacheFork");
    std::lock_guard<std::mutex> g(m->mutex());
    return Napi::Number::New(info.Env(), double(m->cache_fork(id)));
  });
  method(env, o, h, "cacheTruncate", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.cacheTruncate";
    int64_t id = cache_id(info.Length() ? info[0] : info.Env().Undefined(), fn);
    int64_t n = int_value(info.Length() > 1 ? info[1] : info.Env().Undefined(), fn, "n", 0, int64_t(1) << 40);
    std::lock_guard<std::mutex> g(m->mutex());
    m->cache_truncate(id, n);
    return info.Env().Undefined();
  });
  method(env, o, h, "cacheInfo", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    int64_t id = cache_id(info.Length() ? info[0] : info.Env().Undefined(), "model.cacheInfo");
    std::lock_guard<std::mutex> g(m->mutex());
    const CacheState& c = m->cache(id);
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("length", Napi::Number::New(info.Env(), double(c.tokens.size())));
    r.Set("blocks", Napi::Number::New(info.Env(), double(c.blocks.size())));
    r.Set("tokens", to_i32(info.Env(), c.tokens));
    return r;
  });
  method(env, o, h, "poolInfo", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    Napi::Object r = Napi::Object::New(info.Env());
    r.Set("blocksInUse", Napi::Number::New(info.Env(), double(m->blocks_in_use())));
    r.Set("blockSize", Napi::Number::New(info.Env(), double(m->block_size())));
    r.Set("caches", Napi::Number::New(info.Env(), double(m->num_caches())));
    return r;
  });
  method(env, o, h, "cacheExtend", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.cacheExtend";
    int64_t id = cache_id(info.Length() ? info[0] : info.Env().Undefined(), fn);
    auto toks = std::make_shared<std::vector<int32_t>>(int32_array_value(info.Length() > 1 ? info[1] : info.Env().Undefined(), fn, "tokens"));
    if (toks->size() > (size_t(1) << 22)) throw_range(std::string(fn) + ": at most 2^22 tokens at once");
    return run_async(
        info.Env(), fn,
        [m, id, toks]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->cache_extend(id, *toks);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "sampleNext", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.sampleNext";
    auto ids = std::make_shared<std::vector<int64_t>>(cache_ids(info.Length() ? info[0] : info.Env().Undefined(), fn));
    float temperature = 1.f, top_p = 1.f, penalty = 1.f;
    int64_t top_k = 0;
    uint64_t seed = 0;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      Napi::Object a = object_arg(info, 1, fn);
      temperature = float(get_number(a, "temperature", fn, -1e30, 1e30, 1.0));
      top_k = get_int(a, "topK", fn, 0, int64_t(1) << 24, 0);
      top_p = float(get_number(a, "topP", fn, 0, 1, 1.0));
      seed = uint64_t(get_int(a, "seed", fn, 0, (int64_t(1) << 53) - 1, 0));
      penalty = float(get_number(a, "repetitionPenalty", fn, 1e-6, 1e6, 1.0));
    }
    size_t B = ids->size();
    auto tok = std::make_shared<std::vector<int32_t>>(B);
    auto lpm = std::make_shared<std::vector<float>>(B);
    auto lps = std::make_shared<std::vector<float>>(B);
    return run_async(
        info.Env(), fn,
        [m, ids, temperature, top_k, top_p, seed, penalty, tok, lpm, lps]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->sample_next(*ids, temperature, top_k, top_p, seed, tok->data(), lpm->data(), lps->data(), penalty);
        },
        [tok, lpm, lps](Napi::Env env) -> Napi::Value {
          Napi::Object r = Napi::Object::New(env);
          r.Set("tokens", to_i32(env, *tok));
          r.Set("logprobs", to_f32(env, *lpm));
          r.Set("sampledLogprobs", to_f32(env, *lps));
          return r;
        });
  });
  // present when sampleNext takes repetitionPenalty (an older addon ignores the option)
  method(env, o, h, "repetitionPenaltySupported", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>&) -> Napi::Value { return Napi::Boolean::New(info.Env(), true); });
  method(env, o, h, "nextLogprobs", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.nextLogprobs";
    auto ids = std::make_shared<std::vector<int64_t>>(cache_ids(info.Length() ? info[0] : info.Env().Undefined(), fn));
    auto out = std::make_shared<std::vector<float>>(ids->size() * size_t(m->config().vocab));
    return run_async(
        info.Env(), fn,
        [m, ids, out]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->next_logprobs(*ids, out->data());
        },
        [out](Napi::Env env) -> Napi::Value { return to_f32(env, *out); });
  });

  // ---- weights
  method(env, o, h, "loadCheckpoint", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.loadCheckpoint";
    auto dir = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "dir"));
    return run_async(
        info.Env(), fn,
        [m, dir]() {
          auto files = checkpoint_shards(*dir);
          std::lock_guard<std::mutex> g(m->mutex());
          m->load_checkpoint(files);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "saveWeights", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.saveWeights";
    auto path = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path"));
    DType dt = DType::F32;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      std::string s = string_value(info[1], fn, "dtype");
      if (s == "bf16") dt = DType::BF16;
      else if (s != "f32") throw_type(std::string(fn) + ": argument 'dtype' must be 'f32' or 'bf16', got '" + s + "'");
    }
    return run_async(
        info.Env(), fn,
        [m, path, dt]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->save_checkpoint(*path, dt);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "addLora", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.addLora";
    Napi::Object a = object_arg(info, 0, fn);
    LoraConfig lc;
    lc.rank = get_int(a, "rank", fn, 1, 4096);
    lc.alpha = float(get_number(a, "alpha", fn, 1e-9, 1e9));
    Napi::Value tv = a.Get("targetModules");
    if (!tv.IsArray()) throw_type(std::string(fn) + ": argument 'targetModules' must be an array of module names");
    Napi::Array t = tv.As<Napi::Array>();
    for (uint32_t i = 0; i < t.Length(); ++i) {
      std::string s = string_value(t.Get(i), fn, "targetModules");
      int found = -1;
      for (int p = 0; p < P_COUNT; ++p)
        if (s == proj_name(p)) found = p;
      if (found < 0) throw_range(std::string(fn) + ": target module '" + s + "' is not one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj");
      lc.targets[found] = true;
    }
    uint64_t seed = uint64_t(get_int(a, "seed", fn, 0, (int64_t(1) << 53) - 1, 0));
    std::lock_guard<std::mutex> g(m->mutex());
    m->add_lora(lc, seed);
    return info.Env().Undefined();
  });
  method(env, o, h, "loadLora", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.loadLora";
    auto path = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path"));
    return run_async(
        info.Env(), fn,
        [m, path]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->load_lora(*path);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "saveLora", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.saveLora";
    auto path = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path"));
    return run_async(
        info.Env(), fn,
        [m, path]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->save_lora(*path);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "mergeLora", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    return run_async(
        info.Env(), "model.mergeLora",
        [m]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->merge_lora();
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "saveTrainingState", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.saveTrainingState";
    auto path = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path"));
    return run_async(
        info.Env(), fn,
        [m, path]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->save_training_state(*path);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "loadTrainingState", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    const char* fn = "model.loadTrainingState";
    auto path = std::make_shared<std::string>(path_value(info.Length() ? info[0] : info.Env().Undefined(), fn, "path"));
    return run_async(
        info.Env(), fn,
        [m, path]() {
          std::lock_guard<std::mutex> g(m->mutex());
          m->load_training_state(*path);
        },
        [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
  });
  method(env, o, h, "paramNames", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::lock_guard<std::mutex> g(m->mutex());
    auto names = m->param_names();
    Napi::Array a = Napi::Array::New(info.Env(), names.size());
    for (size_t i = 0; i < names.size(); ++i) a.Set(uint32_t(i), names[i]);
    return a;
  });
  method(env, o, h, "getParam", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::string n = string_value(info.Length() ? info[0] : info.Env().Undefined(), "model.getParam", "name");
    std::lock_guard<std::mutex> g(m->mutex());
    return to_f32(info.Env(), m->get_param(n));
  });
  method(env, o, h, "getGrad", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::string n = string_value(info.Length() ? info[0] : info.Env().Undefined(), "model.getGrad", "name");
    std::lock_guard<std::mutex> g(m->mutex());
    return to_f32(info.Env(), m->get_grad(n));
  });
  method(env, o, h, "setParam", [](const Napi::CallbackInfo& info, const std::shared_ptr<Model>& m) -> Napi::Value {
    std::string n = string_value(info.Length() ? info[0] : info.Env().Undefined(), "model.setParam", "name");
    auto v = float32_array_value(info.Length() > 1 ? info[1] : info.Env().Undefined(), "model.setParam", "values");
    std::lock_guard<std::mutex> g(m->mutex());
    m->set_param(n, v);
    return info.Env().Undefined();
  });

  Napi::Object dummy = o;
  o.Set("dispose", js_fn(env, "dispose", [h](const Napi::CallbackInfo& info) -> Napi::Value {
          h->m.reset();  // work in flight keeps its own reference
          return info.Env().Undefined();
        }));
  (void)dummy;
  return o;
}

static void check_size(const ModelConfig& c, const char* fn) {
  double params = double(c.vocab) * double(c.hidden) * (c.tie ? 1 : 2) +
                  double(c.layers) * (double(c.hidden) * double(c.heads + 2 * c.kv_heads) * double(c.head_dim) +
                                      double(c.heads * c.head_dim) * double(c.hidden) + 3.0 * double(c.hidden) * double(c.inter));
  if (params > 4e10) throw_range(std::string(fn) + ": the configuration holds " + std::to_string(params) + " parameters, too many");
}

// The storage dtype of the base weights: 'f32' (default) or 'bf16' (frozen bf16 weights on the
// CPU; CUDA keeps its f32 master and bf16 copy for either). Anything else names itself.
static DType weights_dtype(const Napi::Object& a, const char* fn, const Device& dev) {
  if (!has(a, "dtype") || a.Get("dtype").IsUndefined()) return DType::F32;
  Napi::Value v = a.Get("dtype");
  std::string s = v.IsString() ? v.As<Napi::String>().Utf8Value() : v.ToString().Utf8Value();
  if (v.IsString() && s == "f32") return DType::F32;
  if (v.IsString() && s == "bf16") return DType::BF16;
  throw_type(std::string(fn) + ": dtype '" + s.substr(0, 40) + "' cannot be held by " + dev.str() +
             " (the weights' dtype must be 'f32' or 'bf16')");
}

// modelCreate({config, device?, seed?, initStd?, dtype?}) -> model object (random weights)
Napi::Value ModelCreate(const Napi::CallbackInfo& info) {
  const char* fn = "modelCreate";
  Napi::Object a = object_arg(info, 0, fn);
  ModelConfig c = config_value(a.Get("config"), fn);
  Device dev = has(a, "device") && !a.Get("device").IsUndefined() ? device_value(a.Get("device"), fn, "device") : Device{};
  DType wd = weights_dtype(a, fn, dev);
  uint64_t seed = uint64_t(get_int(a, "seed", fn, 0, (int64_t(1) << 53) - 1, 0));
  float std = float(get_number(a, "initStd", fn, 0, 10, 0.02));
  check_size(c, fn);
  auto m = std::make_shared<Model>(c, dev, true, wd);
  m->init_random(seed, std);
  return make_model_object(info.Env(), m);
}

// modelLoad({config, device?, dir, dtype?}) -> Promise<model object> with the checkpoint's weights. The
// files are checked against the configuration (headers, extents, names, shapes) before the
// weights' memory is allocated, and the weights are never initialised before they are read.
Napi::Value ModelLoad(const Napi::CallbackInfo& info) {
  const char* fn = "modelLoad";
  Napi::Object a = object_arg(info, 0, fn);
  ModelConfig c = config_value(a.Get("config"), fn);
  Device dev = has(a, "device") && !a.Get("device").IsUndefined() ? device_value(a.Get("device"), fn, "device") : Device{};
  std::string dir = path_value(has(a, "dir") ? a.Get("dir") : info.Env().Undefined(), fn, "dir");
  DType wd = weights_dtype(a, fn, dev);
  check_size(c, fn);
  auto slot = std::make_shared<std::shared_ptr<Model>>();
  return run_async(
      info.Env(), fn,
      [c, dev, dir, slot, wd]() {
        auto files = checkpoint_shards(dir);
        Model::check_checkpoint(c, files);
        auto m = std::make_shared<Model>(c, dev, /*zero_weights=*/false, wd);
        m->load_checkpoint(files);
        *slot = std::move(m);
      },
      [slot](Napi::Env env) -> Napi::Value { return make_model_object(env, *slot); });
}

void Register(Napi::Env env, Napi::Object exports) {
  exports.Set("modelCreate", js_fn(env, "modelCreate", ModelCreate));
  exports.Set("modelLoad", js_fn(env, "modelLoad", ModelLoad));
}

}  // namespace

ITOOL_REGISTER(model, Register);

}  // namespace addon
}  // namespace itool
