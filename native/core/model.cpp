// The decoder, written once against the Backend interface. See model.h. This file: the
// configuration check, construction, the parameter layout and access. The rest by concern:
// model_layers.cpp (building blocks, layer forward/backward), model_train.cpp (training
// forward/backward, optimizer step), model_checkpoint.cpp (weights in and out, training state),
// model_lora.cpp (adapters), model_cache.cpp (KV cache and decoding).
#include "model_internal.h"

namespace itool {

static const char* kProjNames[P_COUNT] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
const char* proj_name(int p) { return (p >= 0 && p < P_COUNT) ? kProjNames[p] : "?"; }

void ModelConfig::validate() const {
  auto pos = [](int64_t v, const char* n, int64_t hi) {
    if (v <= 0 || v > hi) throw_range(std::string("model config: ") + n + " must be in [1, " + std::to_string(hi) + "], got " + std::to_string(v));
  };
  pos(vocab, "vocab_size", int64_t(1) << 24);
  pos(hidden, "hidden_size", 1 << 16);
  pos(inter, "intermediate_size", 1 << 18);
  pos(layers, "num_hidden_layers", 1024);
  pos(heads, "num_attention_heads", 1024);
  pos(kv_heads, "num_key_value_heads", 1024);
  pos(head_dim, "head_dim", 1024);
  if (heads % kv_heads != 0)
    throw_range("model config: num_attention_heads (" + std::to_string(heads) + ") must be a multiple of num_key_value_heads (" + std::to_string(kv_heads) + ")");
  if (head_dim % 2 != 0) throw_range("model config: head_dim must be even for RoPE, got " + std::to_string(head_dim));
  if (!(eps > 0) || !std::isfinite(eps)) throw_range("model config: rms_norm_eps must be > 0");
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) throw_range("model config: rope_theta must be > 0");
  if (rope_llama3 && (!(rope_factor > 0) || !(low_freq_factor > 0) || !(high_freq_factor > low_freq_factor) || orig_max_pos <= 0))
    throw_range("model config: rope_scaling (llama3) needs factor > 0, high_freq_factor > low_freq_factor > 0, original_max_position_embeddings > 0");
  if (architecture != "LlamaForCausalLM" && architecture != "Qwen2ForCausalLM" && architecture != "Qwen3ForCausalLM" &&
      architecture != "MistralForCausalLM")
    throw_range("model config: architecture '" + architecture + "' is not supported (LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM are)");
}


namespace model_detail {
void layout_group(ParamGroup& g, std::vector<Spec>& specs) {
  std::stable_sort(specs.begin(), specs.end(), [](const Spec& a, const Spec& b) { return a.decay && !b.decay; });
  g.params.clear();
  g.index.clear();
  int64_t off = 0;
  bool in_decay = true;
  g.n_decay = 0;
  for (auto& s : specs) {
    if (in_decay && !s.decay) {
      in_decay = false;
      g.n_decay = off;
    }
    ParamInfo p;
    p.name = s.name;
    p.shape = s.shape;
    p.numel = 1;
    for (auto d : s.shape) p.numel *= d;
    p.offset = off;
    off += (p.numel + 15) / 16 * 16;  // 64-byte aligned starts
    if (s.slot) *s.slot = int(g.params.size());
    g.index[p.name] = g.params.size();
    g.params.push_back(std::move(p));
  }
  if (in_decay) g.n_decay = off;
  g.numel = off;
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

void proj_dims(const ModelConfig& c, int p, int64_t& in, int64_t& out) {
  int64_t H = c.hidden, Dq = c.heads * c.head_dim, Dkv = c.kv_heads * c.head_dim, I = c.inter;
  switch (p) {
    case P_Q: in = H; out = Dq; break;
    case P_K: case P_V: in = H; out = Dkv; break;
    case P_O: in = Dq; out = H; break;
    case P_GATE: case P_UP: in = H; out = I; break;
    default: in = I; out = H; break;
  }
}
}  // namespace model_detail
using namespace model_detail;

// ------------------------------------------------------------------ setup
Model::Model(const ModelConfig& cfg, Device dev, bool zero_weights, DType weights) : cfg_(cfg) {
  cfg_.validate();
  if (weights != DType::F32 && weights != DType::BF16)
    throw_type(std::string("model: weights of dtype '") + dtype_name(weights) + "' cannot be held by " + dev.str() + " (f32 or bf16)");
  be_ = backend_for(dev);
  act_ = be_->act_dtype();
  asz_ = dtype_size(act_);
  // bf16 storage of the base weights is the CPU's frozen-weight mode; CUDA keeps its f32 master
  // and bf16 compute copy whatever was asked
  base_bf16_ = weights == DType::BF16 && act_ == DType::F32;
  wdt_ = base_bf16_ ? DType::BF16 : act_;
  wsz_ = dtype_size(wdt_);
  build_layout(zero_weights);
  // inv_freq with the llama3 rule when configured
  int64_t half = cfg_.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(cfg_.rope_theta, double(2 * i) / double(cfg_.head_dim));
    if (cfg_.rope_llama3) {
      double low_wl = double(cfg_.orig_max_pos) / cfg_.low_freq_factor;
      double high_wl = double(cfg_.orig_max_pos) / cfg_.high_freq_factor;
      double wl = 2 * M_PI / f;
      if (wl < high_wl) {
      } else if (wl > low_wl) {
        f = f / cfg_.rope_factor;
      } else {
        double smooth = (double(cfg_.orig_max_pos) / wl - cfg_.low_freq_factor) / (cfg_.high_freq_factor - cfg_.low_freq_factor);
        f = (1 - smooth) * f / cfg_.rope_factor + smooth * f;
      }
    }
    inv[size_t(i)] = float(f);
  }
  inv_freq_ = alloc_f32(half);
  be_->copy_from_host(inv_freq_.p(), inv.data(), inv.size() * 4);
}

Model::~Model() = default;

DevBuf Model::alloc(size_t bytes) const {
  DevBuf b;
  b.s = std::make_shared<Storage>(be_, bytes);
  return b;
}

DevBuf Model::to_dev_i32(const std::vector<int32_t>& v) const {
  DevBuf b = alloc(std::max<size_t>(1, v.size()) * 4);
  be_->copy_from_host(b.p(), v.data(), v.size() * 4);
  return b;
}

void Model::base_specs(const ModelConfig& c, std::vector<LayerP>& lp, int& embed, int& final_norm, int& lm_head, std::vector<Spec>& specs) {
  int64_t H = c.hidden, Dq = c.heads * c.head_dim, Dkv = c.kv_heads * c.head_dim, I = c.inter;
  lp.assign(size_t(c.layers), LayerP{});
  specs.push_back({"model.embed_tokens.weight", {c.vocab, H}, true, &embed});
  for (int64_t l = 0; l < c.layers; ++l) {
    std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerP& L = lp[size_t(l)];
    specs.push_back({pre + "input_layernorm.weight", {H}, false, &L.in_norm});
    specs.push_back({pre + "self_attn.q_proj.weight", {Dq, H}, true, &L.w[P_Q]});
    specs.push_back({pre + "self_attn.k_proj.weight", {Dkv, H}, true, &L.w[P_K]});
    specs.push_back({pre + "self_attn.v_proj.weight", {Dkv, H}, true, &L.w[P_V]});
    if (c.attn_bias) {
      specs.push_back({pre + "self_attn.q_proj.bias", {Dq}, false, &L.qb});
      specs.push_back({pre + "self_attn.k_proj.bias", {Dkv}, false, &L.kb});
      specs.push_back({pre + "self_attn.v_proj.bias", {Dkv}, false, &L.vb});
    }
    specs.push_back({pre + "self_attn.o_proj.weight", {H, Dq}, true, &L.w[P_O]});
    if (c.qk_norm) {
      specs.push_back({pre + "self_attn.q_norm.weight", {c.head_dim}, false, &L.qn});
      specs.push_back({pre + "self_attn.k_norm.weight", {c.head_dim}, false, &L.kn});
    }
    specs.push_back({pre + "post_attention_layernorm.weight", {H}, false, &L.post_norm});
    specs.push_back({pre + "mlp.gate_proj.weight", {I, H}, true, &L.w[P_GATE]});
    specs.push_back({pre + "mlp.up_proj.weight", {I, H}, true, &L.w[P_UP]});
    specs.push_back({pre + "mlp.down_proj.weight", {H, I}, true, &L.w[P_DOWN]});
  }
  specs.push_back({"model.norm.weight", {H}, false, &final_norm});
  if (!c.tie) specs.push_back({"lm_head.weight", {c.vocab, H}, true, &lm_head});
}

void Model::build_layout(bool zero_weights) {
  std::vector<Spec> specs;
  base_specs(cfg_, lp_, embed_, final_norm_, lm_head_, specs);
  layout_group(base_, specs);
  finalize_group(base_, zero_weights);
}

// zero: the values start at 0 (else they are left unwritten, for a checkpoint to fill: no page
// of the weights is touched before the load writes it)
void Model::finalize_group(ParamGroup& g, bool zero) {
  g.grad = g.m = g.v = DevBuf{};
  g.step = 0;
  if (&g == &base_ && base_bf16_) {  // one bf16 copy, no f32 master
    g.master = DevBuf{};
    g.compute = alloc(size_t(std::max<int64_t>(g.numel, 1)) * 2);
    if (zero) be_->memset_zero(g.compute.p(), size_t(g.numel) * 2);
    return;
  }
  g.master = alloc_f32(std::max<int64_t>(g.numel, 1));
  if (zero) be_->memset_zero(g.master.p(), size_t(g.numel) * 4);
  g.compute = DevBuf{};
  if (act_ != DType::F32) g.compute = alloc_act(std::max<int64_t>(g.numel, 1));
  g.grad = g.m = g.v = DevBuf{};
  g.step = 0;
  if (zero) sync_compute(g);
}

void Model::sync_compute(ParamGroup& g) {
  if (!g.master) return;  // bf16 base: the bf16 copy is the weights
  if (act_ != DType::F32 && g.numel > 0) be_->convert(g.master.p(), DType::F32, g.compute.p(), act_, g.numel);
}

void Model::check_base_trainable(const char* what) const {
  if (base_bf16_ && !lora_active())
    throw_error(std::string(what) + ": the base weights are bf16 (frozen: the model was loaded with dtype 'bf16'), so they "
                "cannot be trained; load the model with dtype 'f32' for full fine-tuning, or add a LoRA adapter");
}

void Model::ensure_grads(ParamGroup& g) {
  if (&g == &base_) check_base_trainable("training");
  if (!g.grad) {
    g.grad = alloc_f32(std::max<int64_t>(g.numel, 1));
    be_->memset_zero(g.grad.p(), size_t(g.numel) * 4);
  }
}

const void* Model::W(int i) const {
  const ParamInfo& p = base_.params[size_t(i)];
  const uint8_t* b = static_cast<const uint8_t*>(base_.compute ? base_.compute.p() : base_.master.p());
  return b + size_t(p.offset) * wsz_;
}
float* Model::G(int i) const {
  if (!base_trainable() || !base_.grad) return nullptr;
  return base_.grad.f() + base_.params[size_t(i)].offset;
}
const void* Model::LW(int i) const {
  const ParamInfo& p = lora_.params[size_t(i)];
  const uint8_t* b = static_cast<const uint8_t*>(act_ == DType::F32 ? lora_.master.p() : lora_.compute.p());
  return b + size_t(p.offset) * asz_;
}
float* Model::LG(int i) const {
  if (!lora_.grad) return nullptr;
  return lora_.grad.f() + lora_.params[size_t(i)].offset;
}

static int64_t count_params(const ParamGroup& g) {
  int64_t n = 0;
  for (auto& p : g.params) n += p.numel;
  return n;
}
int64_t Model::num_parameters() const { return count_params(base_); }
int64_t Model::trainable_parameters() const { return lora_active() ? count_params(lora_) : count_params(base_); }

std::vector<std::string> Model::param_names() const {
  std::vector<std::string> o;
  for (auto& p : base_.params) o.push_back(p.name);
  for (auto& p : lora_.params) o.push_back(p.name);
  return o;
}

static const ParamInfo* find_param(const ParamGroup& g, const std::string& n) {
  auto it = g.index.find(n);
  return it == g.index.end() ? nullptr : &g.params[it->second];
}

std::vector<float> Model::get_param(const std::string& name) const {
  const ParamGroup* g = &base_;
  const ParamInfo* p = find_param(base_, name);
  if (!p) { g = &lora_; p = find_param(lora_, name); }
  if (!p) throw_range("model: no parameter named '" + name + "'");
  std::vector<float> v(size_t(p->numel));
  if (!g->master) {  // bf16 base: widened exactly
    std::vector<uint16_t> h(size_t(p->numel));
    be_->copy_to_host(h.data(), static_cast<const uint16_t*>(g->compute.p()) + p->offset, h.size() * 2);
    for (size_t i = 0; i < h.size(); ++i) v[i] = bf16_to_f32(h[i]);
    return v;
  }
  be_->copy_to_host(v.data(), g->master.f() + p->offset, v.size() * 4);
  return v;
}

void Model::set_param(const std::string& name, const std::vector<float>& v) {
  ParamGroup* g = &base_;
  const ParamInfo* p = find_param(base_, name);
  if (!p) { g = &lora_; p = find_param(lora_, name); }
  if (!p) throw_range("model: no parameter named '" + name + "'");
  if (int64_t(v.size()) != p->numel)
    throw_range("model: parameter '" + name + "' holds " + std::to_string(p->numel) + " values, got " + std::to_string(v.size()));
  if (!g->master) {  // bf16 base: rounded to nearest even
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < h.size(); ++i) h[i] = f32_to_bf16(v[i]);
    be_->copy_from_host(static_cast<uint16_t*>(g->compute.p()) + p->offset, h.data(), h.size() * 2);
    return;
  }
  be_->copy_from_host(g->master.f() + p->offset, v.data(), v.size() * 4);
  sync_compute(*g);
}

std::vector<float> Model::get_grad(const std::string& name) const {
  const ParamGroup* g = &base_;
  const ParamInfo* p = find_param(base_, name);
  if (!p) { g = &lora_; p = find_param(lora_, name); }
  if (!p) throw_range("model: no parameter named '" + name + "'");
  std::vector<float> v(size_t(p->numel), 0.f);
  if (g->grad && (g == &lora_ || base_trainable())) be_->copy_to_host(v.data(), g->grad.f() + p->offset, v.size() * 4);
  return v;
}

static int64_t buf_bytes(const DevBuf& b) { return b ? int64_t(b.s->bytes) : 0; }

MemoryUse Model::memory() const {
  MemoryUse u;
  u.weights = buf_bytes(base_.master) + buf_bytes(base_.compute);
  u.adapters = buf_bytes(lora_.master) + buf_bytes(lora_.compute);
  u.gradients = buf_bytes(base_.grad) + buf_bytes(lora_.grad);
  u.optimizer = buf_bytes(base_.m) + buf_bytes(base_.v) + buf_bytes(lora_.m) + buf_bytes(lora_.v);
  // a buffer may be referenced twice (each layer's x_in is the previous layer's output): once
  std::set<const Storage*> seen;
  auto once = [&](const DevBuf& b) -> int64_t { return b && seen.insert(b.s.get()).second ? int64_t(b.s->bytes) : 0; };
  if (saved_.valid) {
    for (const DevBuf* b : {&saved_.tokens, &saved_.targets, &saved_.cu, &saved_.pos, &saved_.xf, &saved_.rstdf, &saved_.x_last, &saved_.dxf})
      u.activations += once(*b);
    for (auto& a : saved_.acts) {
      for (const DevBuf* b : {&a.x_in, &a.xn1, &a.rstd1, &a.q_pre, &a.k_pre, &a.rstd_q, &a.rstd_k, &a.q, &a.k, &a.v, &a.attn,
                              &a.lse, &a.x_mid, &a.xn2, &a.rstd2, &a.gate, &a.up, &a.act})
        u.activations += once(*b);
      for (auto& b : a.lt) u.activations += once(b);
    }
  }
  for (auto& b : kpool_) u.kv_cache += buf_bytes(b);
  for (auto& b : vpool_) u.kv_cache += buf_bytes(b);
  u.scratch = buf_bytes(inv_freq_);
  for (auto& kv : caches_) u.scratch += once(kv.second.hidden);
  return u;
}

}  // namespace itool
