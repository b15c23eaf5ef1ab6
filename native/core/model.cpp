// The decoder, written once against the Backend interface. See model.h.
#include "model.h"
#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include "safetensors.h"

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

// ------------------------------------------------------------------ rng
namespace {
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() {
    double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};
}  // namespace

// ------------------------------------------------------------------ setup
Model::Model(const ModelConfig& cfg, Device dev) : cfg_(cfg) {
  cfg_.validate();
  be_ = backend_for(dev);
  act_ = be_->act_dtype();
  asz_ = dtype_size(act_);
  build_layout();
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

namespace {
struct Spec {
  std::string name;
  std::vector<int64_t> shape;
  bool decay;
  int* slot;
};
}  // namespace

static void layout_group(ParamGroup& g, std::vector<Spec>& specs) {
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

void Model::build_layout() {
  const auto& c = cfg_;
  int64_t H = c.hidden, Dq = c.heads * c.head_dim, Dkv = c.kv_heads * c.head_dim, I = c.inter;
  lp_.assign(size_t(c.layers), LayerP{});
  std::vector<Spec> specs;
  specs.push_back({"model.embed_tokens.weight", {c.vocab, H}, true, &embed_});
  for (int64_t l = 0; l < c.layers; ++l) {
    std::string pre = "model.layers." + std::to_string(l) + ".";
    LayerP& L = lp_[size_t(l)];
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
  specs.push_back({"model.norm.weight", {H}, false, &final_norm_});
  if (!c.tie) specs.push_back({"lm_head.weight", {c.vocab, H}, true, &lm_head_});
  layout_group(base_, specs);
  finalize_group(base_);
}

void Model::finalize_group(ParamGroup& g) {
  g.master = alloc_f32(std::max<int64_t>(g.numel, 1));
  be_->memset_zero(g.master.p(), size_t(g.numel) * 4);
  g.compute = DevBuf{};
  if (act_ != DType::F32) g.compute = alloc_act(std::max<int64_t>(g.numel, 1));
  g.grad = g.m = g.v = DevBuf{};
  g.step = 0;
  sync_compute(g);
}

void Model::sync_compute(ParamGroup& g) {
  if (act_ != DType::F32 && g.numel > 0) be_->convert(g.master.p(), DType::F32, g.compute.p(), act_, g.numel);
}

void Model::ensure_grads(ParamGroup& g) {
  if (!g.grad) {
    g.grad = alloc_f32(std::max<int64_t>(g.numel, 1));
    be_->memset_zero(g.grad.p(), size_t(g.numel) * 4);
  }
}

const void* Model::W(int i) const {
  const ParamInfo& p = base_.params[size_t(i)];
  const uint8_t* b = static_cast<const uint8_t*>(act_ == DType::F32 ? base_.master.p() : base_.compute.p());
  return b + size_t(p.offset) * asz_;
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

void Model::init_random(uint64_t seed, float std) {
  Rng r{seed ^ 0x1F2E3D4C5B6A7988ull};
  std::vector<float> h(size_t(base_.numel), 0.f);
  for (auto& p : base_.params) {
    float* d = h.data() + p.offset;
    bool is_norm = p.name.find("norm.weight") != std::string::npos;
    bool is_bias = p.name.size() > 5 && p.name.compare(p.name.size() - 5, 5, ".bias") == 0;
    for (int64_t i = 0; i < p.numel; ++i) d[i] = is_norm ? 1.f : is_bias ? float(r.normal() * std) : float(r.normal() * std);
  }
  be_->copy_from_host(base_.master.p(), h.data(), h.size() * 4);
  sync_compute(base_);
}

static std::string shape_str(const std::vector<int64_t>& s) {
  std::string o = "[";
  for (size_t i = 0; i < s.size(); ++i) o += (i ? ", " : "") + std::to_string(s[i]);
  return o + "]";
}

void Model::load_checkpoint(const std::vector<std::string>& files) {
  if (files.empty()) throw_error("load: no safetensors files given");
  std::vector<std::unique_ptr<SafetensorsFile>> fs;
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsEntry*>> where;
  for (auto& f : files) {
    fs.push_back(std::make_unique<SafetensorsFile>(f));
    for (auto& e : fs.back()->entries()) where[e.name] = {fs.back().get(), &e};
  }
  std::vector<float> h(size_t(base_.numel), 0.f);
  for (auto& p : base_.params) {
    auto it = where.find(p.name);
    if (it == where.end())
      throw_error("load: tensor '" + p.name + "' (needed by config.json) is missing from the checkpoint (" + files[0] +
                  (files.size() > 1 ? " and other shards" : "") + ")");
    const SafetensorsEntry* e = it->second.second;
    if (e->shape != p.shape)
      throw_error("load: " + it->second.first->path() + ": tensor '" + p.name + "' has shape " + shape_str(e->shape) +
                  " but config.json implies " + shape_str(p.shape));
    it->second.first->read_f32(*e, h.data() + p.offset);
  }
  be_->copy_from_host(base_.master.p(), h.data(), h.size() * 4);
  sync_compute(base_);
}

void Model::save_checkpoint(const std::string& path, DType dtype) const {
  std::vector<float> h(size_t(base_.numel));
  be_->copy_to_host(h.data(), base_.master.p(), h.size() * 4);
  std::vector<SafetensorsWriteItem> items;
  std::vector<const ParamInfo*> order;
  for (auto& p : base_.params) order.push_back(&p);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (auto* p : order) {
    SafetensorsWriteItem it;
    it.name = p->name;
    it.dtype = dtype;
    it.shape = p->shape;
    it.data = h.data() + p->offset;
    items.push_back(it);
  }
  write_safetensors(path, items, {{"format", "pt"}});
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

// ------------------------------------------------------------------ LoRA
static void proj_dims(const ModelConfig& c, int p, int64_t& in, int64_t& out) {
  int64_t H = c.hidden, Dq = c.heads * c.head_dim, Dkv = c.kv_heads * c.head_dim, I = c.inter;
  switch (p) {
    case P_Q: in = H; out = Dq; break;
    case P_K: case P_V: in = H; out = Dkv; break;
    case P_O: in = Dq; out = H; break;
    case P_GATE: case P_UP: in = H; out = I; break;
    default: in = I; out = H; break;
  }
}

static std::string lora_name(int64_t l, int p, const char* ab) {
  return "base_model.model.model.layers." + std::to_string(l) + (p <= P_O ? ".self_attn." : ".mlp.") + proj_name(p) +
         ".lora_" + ab + ".weight";
}

void Model::add_lora(const LoraConfig& lc, uint64_t seed) {
  if (lora_active()) throw_error("lora: the model already has an adapter (merge it first)");
  if (lc.rank <= 0 || lc.rank > 4096) throw_range("lora: rank must be in [1, 4096], got " + std::to_string(lc.rank));
  if (!(lc.alpha > 0) || !std::isfinite(lc.alpha)) throw_range("lora: alpha must be > 0");
  bool any = false;
  for (int p = 0; p < P_COUNT; ++p) any |= lc.targets[p];
  if (!any) throw_range("lora: targetModules is empty");
  lora_cfg_ = lc;
  lora_a_.assign(size_t(cfg_.layers * P_COUNT), -1);
  lora_b_.assign(size_t(cfg_.layers * P_COUNT), -1);
  std::vector<Spec> specs;
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int p = 0; p < P_COUNT; ++p) {
      if (!lc.targets[p]) continue;
      int64_t in, out;
      proj_dims(cfg_, p, in, out);
      specs.push_back({lora_name(l, p, "A"), {lc.rank, in}, true, &lora_a_[size_t(l * P_COUNT + p)]});
      specs.push_back({lora_name(l, p, "B"), {out, lc.rank}, true, &lora_b_[size_t(l * P_COUNT + p)]});
    }
  layout_group(lora_, specs);
  finalize_group(lora_);
  // A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform(a=sqrt(5))), B = 0
  Rng r{seed ^ 0xA5A5A5A5DEADBEEFull};
  std::vector<float> h(size_t(lora_.numel), 0.f);
  for (auto& p : lora_.params) {
    if (p.name.find("lora_A") == std::string::npos) continue;
    double bound = 1.0 / std::sqrt(double(p.shape[1]));
    for (int64_t i = 0; i < p.numel; ++i) h[size_t(p.offset + i)] = float((2 * r.uniform() - 1) * bound);
  }
  be_->copy_from_host(lora_.master.p(), h.data(), h.size() * 4);
  sync_compute(lora_);
  base_.grad = base_.m = base_.v = DevBuf{};  // the base is frozen now
  saved_ = Saved{};
}

void Model::load_lora(const std::string& file) {
  if (!lora_active()) throw_error("lora: no adapter configured to load into");
  SafetensorsFile f(file);
  std::vector<float> h(size_t(lora_.numel), 0.f);
  for (auto& p : lora_.params) {
    const SafetensorsEntry* e = f.find(p.name);
    if (!e) throw_error("lora: " + file + ": tensor '" + p.name + "' (needed by adapter_config.json) is missing");
    if (e->shape != p.shape)
      throw_error("lora: " + file + ": tensor '" + p.name + "' has shape " + shape_str(e->shape) + " but the adapter config implies " + shape_str(p.shape));
    f.read_f32(*e, h.data() + p.offset);
  }
  be_->copy_from_host(lora_.master.p(), h.data(), h.size() * 4);
  sync_compute(lora_);
}

void Model::save_lora(const std::string& path) const {
  if (!lora_active()) throw_error("saveAdapter: the model has no LoRA adapter");
  std::vector<float> h(size_t(lora_.numel));
  be_->copy_to_host(h.data(), lora_.master.p(), h.size() * 4);
  std::vector<SafetensorsWriteItem> items;
  for (auto& p : lora_.params) {
    SafetensorsWriteItem it;
    it.name = p.name;
    it.shape = p.shape;
    it.data = h.data() + p.offset;
    items.push_back(it);
  }
  write_safetensors(path, items, {{"format", "pt"}});
}

void Model::merge_lora() {
  if (!lora_active()) throw_error("mergeAdapter: the model has no LoRA adapter");
  float s = lora_cfg_.scaling();
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int p = 0; p < P_COUNT; ++p) {
      int a = lora_a_[size_t(l * P_COUNT + p)], b = lora_b_[size_t(l * P_COUNT + p)];
      if (a < 0) continue;
      int64_t in, out;
      proj_dims(cfg_, p, in, out);
      float* Wm = base_.master.f() + base_.params[size_t(lp_[size_t(l)].w[p])].offset;
      const float* Am = lora_.master.f() + lora_.params[size_t(a)].offset;
      const float* Bm = lora_.master.f() + lora_.params[size_t(b)].offset;
      gemm(out, in, lora_cfg_.rank, false, false, Bm, lora_cfg_.rank, Am, in, Wm, in, s, 1.f, DType::F32, DType::F32, DType::F32);
    }
  sync_compute(base_);
  lora_ = ParamGroup{};
  lora_cfg_ = LoraConfig{};
  lora_a_.clear();
  lora_b_.clear();
  saved_ = Saved{};
}

// ------------------------------------------------------------------ building blocks
void Model::gemm(int64_t M, int64_t N, int64_t K, bool ta, bool tb, const void* A, int64_t lda, const void* B_, int64_t ldb,
                 void* C, int64_t ldc, float alpha, float beta, DType at, DType bt, DType ct) const {
  if (M == 0 || N == 0) return;
  GemmParams g;
  g.M = M; g.N = N; g.K = K; g.transA = ta; g.transB = tb;
  g.A = A; g.lda = lda; g.B = B_; g.ldb = ldb; g.C = C; g.ldc = ldc;
  g.alpha = alpha; g.beta = beta; g.a_type = at; g.b_type = bt; g.c_type = ct;
  be_->gemm(g);
}

void Model::linear_fwd(int l, int p, const void* x, int64_t T, void* y, DevBuf* lt) const {
  int64_t in, out;
  proj_dims(cfg_, p, in, out);
  const LayerP& L = lp_[size_t(l)];
  gemm(T, out, in, false, true, x, in, W(L.w[p]), in, y, out, 1.f, 0.f, act_, act_, act_);
  int bias = p == P_Q ? L.qb : p == P_K ? L.kb : p == P_V ? L.vb : -1;
  if (bias >= 0) {
    BiasParams b;
    b.n = T; b.d = out; b.x = y; b.bias = W(bias);
    be_->bias_forward(b);
  }
  if (lora_active() && lora_a_[size_t(l * P_COUNT + p)] >= 0) {
    int64_t r = lora_cfg_.rank;
    int a = lora_a_[size_t(l * P_COUNT + p)], bb = lora_b_[size_t(l * P_COUNT + p)];
    gemm(T, r, in, false, true, x, in, LW(a), in, lt->p(), r, 1.f, 0.f, act_, act_, act_);
    gemm(T, out, r, false, true, lt->p(), r, LW(bb), r, y, out, lora_cfg_.scaling(), 1.f, act_, act_, act_);
  }
}

void Model::linear_bwd(int l, int p, const void* x, const void* lt, const void* dy, int64_t T, void* dx, bool acc) const {
  int64_t in, out;
  proj_dims(cfg_, p, in, out);
  const LayerP& L = lp_[size_t(l)];
  if (base_trainable() && base_.grad) {
    gemm(out, in, T, true, false, dy, out, x, in, G(L.w[p]), in, 1.f, 1.f, act_, act_, DType::F32);
    int bias = p == P_Q ? L.qb : p == P_K ? L.kb : p == P_V ? L.vb : -1;
    if (bias >= 0) {
      BiasParams b;
      b.n = T; b.d = out; b.dy = dy; b.dbias = G(bias);
      be_->bias_backward(b);
    }
  }
  gemm(T, in, out, false, false, dy, out, W(L.w[p]), in, dx, in, 1.f, acc ? 1.f : 0.f, act_, act_, act_);
  if (lora_active() && lora_a_[size_t(l * P_COUNT + p)] >= 0) {
    int64_t r = lora_cfg_.rank;
    float s = lora_cfg_.scaling();
    int a = lora_a_[size_t(l * P_COUNT + p)], bb = lora_b_[size_t(l * P_COUNT + p)];
    DevBuf dt = alloc_act(T * r);
    gemm(T, r, out, false, false, dy, out, LW(bb), r, dt.p(), r, s, 0.f, act_, act_, act_);
    if (lora_.grad) {
      gemm(out, r, T, true, false, dy, out, lt, r, LG(bb), r, s, 1.f, act_, act_, DType::F32);
      gemm(r, in, T, true, false, dt.p(), r, x, in, LG(a), in, 1.f, 1.f, act_, act_, DType::F32);
    }
    gemm(T, in, r, false, false, dt.p(), r, LW(a), in, dx, in, 1.f, 1.f, act_, act_, act_);
  }
}

void Model::alloc_layer_acts(LayerActs& a, int64_t T, bool full) const {
  int64_t H = cfg_.hidden, Dq = cfg_.heads * cfg_.head_dim, Dkv = cfg_.kv_heads * cfg_.head_dim, I = cfg_.inter;
  if (!full) return;
  a.xn1 = alloc_act(T * H);
  a.rstd1 = alloc_f32(T);
  if (cfg_.qk_norm) {
    a.q_pre = alloc_act(T * Dq);
    a.k_pre = alloc_act(T * Dkv);
    a.rstd_q = alloc_f32(T * cfg_.heads);
    a.rstd_k = alloc_f32(T * cfg_.kv_heads);
  }
  a.q = alloc_act(T * Dq);
  a.k = alloc_act(T * Dkv);
  a.v = alloc_act(T * Dkv);
  a.attn = alloc_act(T * Dq);
  a.lse = alloc_f32(T * cfg_.heads);
  a.x_mid = alloc_act(T * H);
  a.xn2 = alloc_act(T * H);
  a.rstd2 = alloc_f32(T);
  a.gate = alloc_act(T * I);
  a.up = alloc_act(T * I);
  a.act = alloc_act(T * I);
  if (lora_active())
    for (int p = 0; p < P_COUNT; ++p)
      if (lora_cfg_.targets[p]) a.lt[p] = alloc_act(T * lora_cfg_.rank);
}

void Model::layer_forward(int l, LayerActs& a, int64_t T, const int32_t* pos, const AttnCtx& ctx, void* x_out) {
  const ModelConfig& c = cfg_;
  const LayerP& L = lp_[size_t(l)];
  int64_t H = c.hidden, I = c.inter, D = c.head_dim;
  RmsNormParams rn;
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = a.x_in.p(); rn.w = W(L.in_norm); rn.y = a.xn1.p(); rn.rstd = a.rstd1.f();
  be_->rmsnorm_forward(rn);
  void* qo = c.qk_norm ? a.q_pre.p() : a.q.p();
  void* ko = c.qk_norm ? a.k_pre.p() : a.k.p();
  linear_fwd(l, P_Q, a.xn1.p(), T, qo, &a.lt[P_Q]);
  linear_fwd(l, P_K, a.xn1.p(), T, ko, &a.lt[P_K]);
  linear_fwd(l, P_V, a.xn1.p(), T, a.v.p(), &a.lt[P_V]);
  if (c.qk_norm) {
    RmsNormParams q;
    q.n = T * c.heads; q.d = D; q.eps = c.eps; q.x = a.q_pre.p(); q.w = W(L.qn); q.y = a.q.p(); q.rstd = a.rstd_q.f();
    be_->rmsnorm_forward(q);
    RmsNormParams k;
    k.n = T * c.kv_heads; k.d = D; k.eps = c.eps; k.x = a.k_pre.p(); k.w = W(L.kn); k.y = a.k.p(); k.rstd = a.rstd_k.f();
    be_->rmsnorm_forward(k);
  }
  RopeParams rq;
  rq.x = a.q.p(); rq.pos = pos; rq.inv_freq = inv_freq_.f(); rq.T = T; rq.H = c.heads; rq.D = D;
  be_->rope(rq);
  RopeParams rk = rq;
  rk.x = a.k.p(); rk.H = c.kv_heads;
  be_->rope(rk);
  float scale = float(1.0 / std::sqrt(double(D)));
  if (ctx.mode == AttnMode::Packed) {
    AttentionParams at;
    at.T = T; at.Hq = c.heads; at.Hkv = c.kv_heads; at.D = D; at.nseq = ctx.nseq; at.cu_seqlens = ctx.cu; at.scale = scale;
    at.q = a.q.p(); at.k = a.k.p(); at.v = a.v.p(); at.out = a.attn.p(); at.lse = a.lse.f();
    be_->attention_forward(at);
  } else {
    KvWriteParams kw;
    kw.B = ctx.B; kw.n_new = ctx.n_new; kw.Hkv = c.kv_heads; kw.D = D; kw.block_size = block_size_; kw.max_blocks = ctx.max_blocks;
    kw.block_table = ctx.block_table; kw.ctx_lens = ctx.ctx_lens; kw.k_new = a.k.p(); kw.v_new = a.v.p();
    kw.k_cache = kpool_[size_t(l)].p(); kw.v_cache = vpool_[size_t(l)].p();
    be_->kv_write(kw);
    DecodeAttentionParams da;
    da.B = ctx.B; da.n_new = ctx.n_new; da.Hq = c.heads; da.Hkv = c.kv_heads; da.D = D; da.block_size = block_size_;
    da.max_blocks = ctx.max_blocks; da.block_table = ctx.block_table; da.ctx_lens = ctx.ctx_lens; da.scale = scale;
    da.q = a.q.p(); da.k_cache = kpool_[size_t(l)].p(); da.v_cache = vpool_[size_t(l)].p(); da.out = a.attn.p();
    be_->attention_decode(da);
  }
  linear_fwd(l, P_O, a.attn.p(), T, a.x_mid.p(), &a.lt[P_O]);
  AddParams ad;
  ad.n = T * H; ad.a = a.x_mid.p(); ad.b = a.x_in.p(); ad.out = a.x_mid.p();
  be_->add(ad);
  RmsNormParams r2;
  r2.n = T; r2.d = H; r2.eps = c.eps; r2.x = a.x_mid.p(); r2.w = W(L.post_norm); r2.y = a.xn2.p(); r2.rstd = a.rstd2.f();
  be_->rmsnorm_forward(r2);
  linear_fwd(l, P_GATE, a.xn2.p(), T, a.gate.p(), &a.lt[P_GATE]);
  linear_fwd(l, P_UP, a.xn2.p(), T, a.up.p(), &a.lt[P_UP]);
  SwigluParams sw;
  sw.n = T * I; sw.gate = a.gate.p(); sw.up = a.up.p(); sw.out = a.act.p();
  be_->swiglu_forward(sw);
  linear_fwd(l, P_DOWN, a.act.p(), T, x_out, &a.lt[P_DOWN]);
  AddParams ad2;
  ad2.n = T * H; ad2.a = x_out; ad2.b = a.x_mid.p(); ad2.out = x_out;
  be_->add(ad2);
}

void Model::layer_backward(int l, LayerActs& a, int64_t T, const int32_t* pos, const AttnCtx& ctx, void* dx) {
  const ModelConfig& c = cfg_;
  const LayerP& L = lp_[size_t(l)];
  int64_t H = c.hidden, I = c.inter, D = c.head_dim, Dq = c.heads * D, Dkv = c.kv_heads * D;
  DevBuf dscratch;
  auto dw = [&](int idx, int64_t n) -> float* {
    float* g = G(idx);
    if (g) return g;
    if (!dscratch) dscratch = alloc_f32(std::max(H, D));
    (void)n;
    return dscratch.f();
  };
  DevBuf tmp = alloc_act(T * H), dxn = alloc_act(T * H);
  {
    DevBuf d_act = alloc_act(T * I), dgate = alloc_act(T * I), dup = alloc_act(T * I);
    linear_bwd(l, P_DOWN, a.act.p(), a.lt[P_DOWN].p(), dx, T, d_act.p(), false);
    SwigluParams sw;
    sw.n = T * I; sw.gate = a.gate.p(); sw.up = a.up.p(); sw.dout = d_act.p(); sw.dgate = dgate.p(); sw.dup = dup.p();
    be_->swiglu_backward(sw);
    linear_bwd(l, P_GATE, a.xn2.p(), a.lt[P_GATE].p(), dgate.p(), T, dxn.p(), false);
    linear_bwd(l, P_UP, a.xn2.p(), a.lt[P_UP].p(), dup.p(), T, dxn.p(), true);
  }
  RmsNormParams r2;
  r2.n = T; r2.d = H; r2.eps = c.eps; r2.x = a.x_mid.p(); r2.w = W(L.post_norm); r2.rstd = a.rstd2.f();
  r2.dy = dxn.p(); r2.dx = tmp.p(); r2.dw = dw(L.post_norm, H);
  be_->rmsnorm_backward(r2);
  AddParams ad;
  ad.n = T * H; ad.a = dx; ad.b = tmp.p(); ad.out = dx;
  be_->add(ad);
  {
    DevBuf d_attn = alloc_act(T * Dq);
    linear_bwd(l, P_O, a.attn.p(), a.lt[P_O].p(), dx, T, d_attn.p(), false);
    DevBuf dq = alloc_act(T * Dq), dk = alloc_act(T * Dkv), dv = alloc_act(T * Dkv);
    AttentionParams at;
    at.T = T; at.Hq = c.heads; at.Hkv = c.kv_heads; at.D = D; at.nseq = ctx.nseq; at.cu_seqlens = ctx.cu;
    at.scale = float(1.0 / std::sqrt(double(D)));
    at.q = a.q.p(); at.k = a.k.p(); at.v = a.v.p(); at.out = a.attn.p(); at.lse = a.lse.f();
    at.dout = d_attn.p(); at.dq = dq.p(); at.dk = dk.p(); at.dv = dv.p();
    be_->attention_backward(at);
    RopeParams rq;
    rq.x = dq.p(); rq.pos = pos; rq.inv_freq = inv_freq_.f(); rq.T = T; rq.H = c.heads; rq.D = D; rq.inverse = true;
    be_->rope(rq);
    RopeParams rk = rq;
    rk.x = dk.p(); rk.H = c.kv_heads;
    be_->rope(rk);
    DevBuf dqp, dkp;
    void* dq_in = dq.p();
    void* dk_in = dk.p();
    if (c.qk_norm) {
      dqp = alloc_act(T * Dq);
      dkp = alloc_act(T * Dkv);
      RmsNormParams q;
      q.n = T * c.heads; q.d = D; q.eps = c.eps; q.x = a.q_pre.p(); q.w = W(L.qn); q.rstd = a.rstd_q.f();
      q.dy = dq.p(); q.dx = dqp.p(); q.dw = dw(L.qn, D);
      be_->rmsnorm_backward(q);
      RmsNormParams k;
      k.n = T * c.kv_heads; k.d = D; k.eps = c.eps; k.x = a.k_pre.p(); k.w = W(L.kn); k.rstd = a.rstd_k.f();
      k.dy = dk.p(); k.dx = dkp.p(); k.dw = dw(L.kn, D);
      be_->rmsnorm_backward(k);
      dq_in = dqp.p();
      dk_in = dkp.p();
    }
    linear_bwd(l, P_Q, a.xn1.p(), a.lt[P_Q].p(), dq_in, T, dxn.p(), false);
    linear_bwd(l, P_K, a.xn1.p(), a.lt[P_K].p(), dk_in, T, dxn.p(), true);
    linear_bwd(l, P_V, a.xn1.p(), a.lt[P_V].p(), dv.p(), T, dxn.p(), true);
  }
  RmsNormParams r1;
  r1.n = T; r1.d = H; r1.eps = c.eps; r1.x = a.x_in.p(); r1.w = W(L.in_norm); r1.rstd = a.rstd1.f();
  r1.dy = dxn.p(); r1.dx = tmp.p(); r1.dw = dw(L.in_norm, H);
  be_->rmsnorm_backward(r1);
  be_->add(ad);
}

// ------------------------------------------------------------------ training
void Model::forward(const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, const std::vector<int32_t>& cu,
                    const std::vector<int32_t>& pos, bool train, float* logprobs, float* logits,
                    const float* dlogp_ahead) {
  if (dlogp_ahead && !train) throw_error("forward: dlogprobs ahead of backward need a training forward (train: true)");
  const ModelConfig& c = cfg_;
  int64_t T = int64_t(tokens.size()), H = c.hidden;
  if (train) saved_ = Saved{};  // a gradient-free forward leaves a pending training forward alone
  if (T == 0) return;
  DevBuf d_tok = to_dev_i32(tokens), d_tgt = to_dev_i32(targets), d_cu = to_dev_i32(cu), d_pos = to_dev_i32(pos);
  AttnCtx ctx;
  ctx.mode = AttnMode::Packed;
  ctx.cu = d_cu.i();
  ctx.nseq = int64_t(cu.size()) - 1;
  DevBuf x = alloc_act(T * H);
  EmbeddingParams ep;
  ep.ids = d_tok.i(); ep.n = T; ep.vocab = c.vocab; ep.dim = H; ep.table = W(embed_); ep.out = x.p();
  be_->embedding_forward(ep);
  std::vector<LayerActs> acts;
  LayerActs scratch;
  bool keep_all = train && !recompute_;
  if (!keep_all) alloc_layer_acts(scratch, T, true);
  if (train) acts.resize(size_t(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    LayerActs* a = &scratch;
    if (keep_all) {
      a = &acts[size_t(l)];
      alloc_layer_acts(*a, T, true);
    }
    a->x_in = x;
    if (train) acts[size_t(l)].x_in = x;
    DevBuf xo = alloc_act(T * H);
    layer_forward(int(l), *a, T, d_pos.i(), ctx, xo.p());
    x = xo;
  }
  DevBuf xf = alloc_act(T * H), rstdf = alloc_f32(T);
  RmsNormParams rn;
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = x.p(); rn.w = W(final_norm_); rn.y = xf.p(); rn.rstd = rstdf.f();
  be_->rmsnorm_forward(rn);
  DevBuf lp = alloc_f32(T), lse = alloc_f32(T), d_dlogp, dxf;
  if (dlogp_ahead) {
    d_dlogp = alloc_f32(T);
    be_->copy_from_host(d_dlogp.p(), dlogp_ahead, size_t(T) * 4);
    dxf = alloc_act(T * H);
  }
  head_logprob(T, xf.p(), d_tgt.i(), lp.f(), lse.f(), d_dlogp.f(), dxf.p());
  be_->copy_to_host(logprobs, lp.p(), size_t(T) * 4);
  if (logits) {
    DevBuf lg = alloc_f32(T * c.vocab);
    gemm(T, c.vocab, H, false, true, xf.p(), H, head_w(), H, lg.p(), c.vocab, 1.f, 0.f, act_, act_, DType::F32);
    be_->copy_to_host(logits, lg.p(), size_t(T * c.vocab) * 4);
  }
  if (train) {
    saved_.valid = true;
    saved_.T = T;
    saved_.nseq = ctx.nseq;
    saved_.tokens = d_tok; saved_.targets = d_tgt; saved_.cu = d_cu; saved_.pos = d_pos;
    saved_.xf = xf; saved_.rstdf = rstdf; saved_.x_last = x;
    saved_.acts = std::move(acts);
    if (dlogp_ahead) {
      saved_.dxf = dxf;
      saved_.dlogp.assign(dlogp_ahead, dlogp_ahead + T);
    }
  }
}

void Model::head_logprob(int64_t T, const void* xf, const int32_t* targets, float* lp, float* lse, const float* dlogp,
                         void* dhidden) {
  const ModelConfig& c = cfg_;
  const int64_t H = c.hidden;
  LogprobParams lpp;
  lpp.N = T; lpp.H = H; lpp.V = c.vocab; lpp.hidden = xf; lpp.weight = head_w(); lpp.targets = targets;
  lpp.logprob = lp; lpp.lse = lse;
  if (dlogp) {
    ensure_grads(lora_active() ? lora_ : base_);
    lpp.dlogp = dlogp; lpp.dhidden = dhidden;
    lpp.dweight = head_g();  // null for a frozen head (LoRA): its gradient is not made
  }
  be_->logprob(lpp);
}

void Model::backward(const float* dlogp) {
  if (!saved_.valid) throw_error("backward: no training forward to differentiate (call forward(batch, {train: true}) first)");
  const ModelConfig& c = cfg_;
  int64_t T = saved_.T, H = c.hidden;
  ensure_grads(lora_active() ? lora_ : base_);
  DevBuf dxf = saved_.dxf;
  if (dxf) {
    // the forward made the head's gradients for saved_.dlogp already
    if (dlogp && std::memcmp(dlogp, saved_.dlogp.data(), size_t(T) * 4) != 0)
      throw_range("backward: dlogprobs differ from those given to the training forward (forward(batch, {train: true, "
                  "dlogprobs}) already applied them to the LM head; pass the same values, or none)");
  } else {
    if (!dlogp) throw_range("backward: dlogprobs are needed (the training forward was not given any)");
    DevBuf d_dlogp = alloc_f32(T), lp = alloc_f32(T), lse = alloc_f32(T);
    be_->copy_from_host(d_dlogp.p(), dlogp, size_t(T) * 4);
    dxf = alloc_act(T * H);
    head_logprob(T, saved_.xf.p(), saved_.targets.i(), lp.f(), lse.f(), d_dlogp.f(), dxf.p());
  }
  DevBuf dx = alloc_act(T * H), dscr;
  RmsNormParams rn;
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = saved_.x_last.p(); rn.w = W(final_norm_); rn.rstd = saved_.rstdf.f();
  rn.dy = dxf.p(); rn.dx = dx.p(); rn.dw = G(final_norm_);
  if (!rn.dw) { dscr = alloc_f32(H); rn.dw = dscr.f(); }
  be_->rmsnorm_backward(rn);
  AttnCtx ctx;
  ctx.mode = AttnMode::Packed;
  ctx.cu = saved_.cu.i();
  ctx.nseq = saved_.nseq;
  for (int64_t l = c.layers - 1; l >= 0; --l) {
    if (recompute_) {
      LayerActs a;
      alloc_layer_acts(a, T, true);
      a.x_in = saved_.acts[size_t(l)].x_in;
      DevBuf xo = alloc_act(T * H);
      layer_forward(int(l), a, T, saved_.pos.i(), ctx, xo.p());
      layer_backward(int(l), a, T, saved_.pos.i(), ctx, dx.p());
    } else {
      layer_backward(int(l), saved_.acts[size_t(l)], T, saved_.pos.i(), ctx, dx.p());
      saved_.acts[size_t(l)] = LayerActs{};  // free as we go
    }
  }
  if (G(embed_)) {
    EmbeddingParams ep;
    ep.ids = saved_.tokens.i(); ep.n = T; ep.vocab = c.vocab; ep.dim = H; ep.dout = dx.p(); ep.dtable = G(embed_);
    be_->embedding_backward(ep);
  }
  saved_ = Saved{};
}

void Model::backward_checked(const float* dlogp, int64_t n) {
  if (!saved_.valid) throw_error("backward: no training forward to differentiate (call forward(batch, {train: true}) first)");
  if (dlogp && n != saved_.T)
    throw_range("backward: dlogprobs has " + std::to_string(n) + " entries, the last training forward had " + std::to_string(saved_.T) + " tokens");
  backward(dlogp);
}

void Model::zero_grad() {
  ParamGroup& g = lora_active() ? lora_ : base_;
  if (g.grad) be_->memset_zero(g.grad.p(), size_t(g.numel) * 4);
}

StepInfo Model::step(const OptimOptions& o) {
  ParamGroup& g = lora_active() ? lora_ : base_;
  ensure_grads(g);
  StepInfo si;
  // one pass over the gradients: a NaN or Inf among them makes the sum of squares NaN or
  // Inf (squares and sums propagate both), so it also answers has_nonfinite
  double ss = be_->sum_squares(g.grad.f(), g.numel);
  si.grad_norm = std::sqrt(ss) * std::fabs(double(o.grad_scale));
  if (!std::isfinite(ss) || !std::isfinite(si.grad_norm)) {
    si.skipped = true;
    return si;
  }
  float gs = o.grad_scale;
  if (o.max_grad_norm > 0 && si.grad_norm > o.max_grad_norm) gs = float(double(gs) * double(o.max_grad_norm) / (si.grad_norm + 1e-6));
  if (!g.m) {
    g.m = alloc_f32(std::max<int64_t>(g.numel, 1));
    g.v = alloc_f32(std::max<int64_t>(g.numel, 1));
    be_->memset_zero(g.m.p(), size_t(g.numel) * 4);
    be_->memset_zero(g.v.p(), size_t(g.numel) * 4);
  }
  g.step += 1;
  for (int part = 0; part < 2; ++part) {
    int64_t b = part == 0 ? 0 : g.n_decay, e = part == 0 ? g.n_decay : g.numel;
    if (e <= b) continue;
    AdamWParams ap;
    ap.n = e - b; ap.param = g.master.f() + b; ap.grad = g.grad.f() + b; ap.m = g.m.f() + b; ap.v = g.v.f() + b;
    ap.lr = o.lr; ap.beta1 = o.beta1; ap.beta2 = o.beta2; ap.eps = o.eps; ap.weight_decay = part == 0 ? o.weight_decay : 0.f;
    ap.step = g.step; ap.grad_scale = gs;
    be_->adamw(ap);
  }
  sync_compute(g);
  return si;
}

void Model::save_training_state(const std::string& path) const {
  const ParamGroup& g = lora_active() ? lora_ : base_;
  int64_t n = g.numel;
  std::vector<float> p(static_cast<size_t>(n)), m(static_cast<size_t>(n), 0.f), v(static_cast<size_t>(n), 0.f);
  be_->copy_to_host(p.data(), g.master.p(), size_t(n) * 4);
  if (g.m) {
    be_->copy_to_host(m.data(), g.m.p(), size_t(n) * 4);
    be_->copy_to_host(v.data(), g.v.p(), size_t(n) * 4);
  }
  std::vector<SafetensorsWriteItem> items(3);
  const char* names[3] = {"param", "adam_m", "adam_v"};
  const float* data[3] = {p.data(), m.data(), v.data()};
  for (int i = 0; i < 3; ++i) {
    items[size_t(i)].name = names[i];
    items[size_t(i)].shape = {n};
    items[size_t(i)].data = data[i];
  }
  write_safetensors(path, items,
                    {{"format", "itool-training-state-1"}, {"step", std::to_string(g.step)}, {"kind", lora_active() ? "lora" : "full"},
                     {"has_moments", g.m ? "1" : "0"}});
}

void Model::load_training_state(const std::string& path) {
  ParamGroup& g = lora_active() ? lora_ : base_;
  SafetensorsFile f(path);
  auto md = f.metadata();
  if (md["format"] != "itool-training-state-1") throw_error(path + ": not an itool training state (format metadata missing)");
  std::string kind = lora_active() ? "lora" : "full";
  if (md["kind"] != kind) throw_error(path + ": training state is for " + md["kind"] + " training, the model does " + kind + " training");
  const char* names[3] = {"param", "adam_m", "adam_v"};
  std::vector<float> h[3];
  for (int i = 0; i < 3; ++i) {
    const SafetensorsEntry* e = f.find(names[i]);
    if (!e || e->dtype != DType::F32 || e->shape != std::vector<int64_t>{g.numel})
      throw_error(path + ": tensor '" + names[i] + "' is missing or does not hold " + std::to_string(g.numel) + " f32 values (different model?)");
    h[i].resize(size_t(g.numel));
    f.read_f32(*e, h[i].data());
  }
  char* endp = nullptr;
  long long st = std::strtoll(md["step"].c_str(), &endp, 10);
  if (md["step"].empty() || !endp || *endp || st < 0) throw_error(path + ": bad 'step' metadata");
  be_->copy_from_host(g.master.p(), h[0].data(), size_t(g.numel) * 4);
  if (md["has_moments"] == "1") {
    if (!g.m) {
      g.m = alloc_f32(std::max<int64_t>(g.numel, 1));
      g.v = alloc_f32(std::max<int64_t>(g.numel, 1));
    }
    be_->copy_from_host(g.m.p(), h[1].data(), size_t(g.numel) * 4);
    be_->copy_from_host(g.v.p(), h[2].data(), size_t(g.numel) * 4);
  } else {
    g.m = g.v = DevBuf{};
  }
  g.step = st;
  sync_compute(g);
}

// ------------------------------------------------------------------ KV cache
void Model::pool_reserve(int64_t n) {
  if (n <= pool_blocks_) return;
  int64_t cap = std::max<int64_t>({n, pool_blocks_ * 2, 16});
  size_t per_block = size_t(block_size_ * cfg_.kv_heads * cfg_.head_dim) * asz_;
  std::vector<DevBuf> nk(size_t(cfg_.layers)), nv(size_t(cfg_.layers));
  for (int64_t l = 0; l < cfg_.layers; ++l) {
    nk[size_t(l)] = alloc(per_block * size_t(cap));
    nv[size_t(l)] = alloc(per_block * size_t(cap));
    be_->memset_zero(nk[size_t(l)].p(), per_block * size_t(cap));
    be_->memset_zero(nv[size_t(l)].p(), per_block * size_t(cap));
    if (pool_blocks_ > 0) {
      be_->copy(nk[size_t(l)].p(), kpool_[size_t(l)].p(), per_block * size_t(pool_blocks_));
      be_->copy(nv[size_t(l)].p(), vpool_[size_t(l)].p(), per_block * size_t(pool_blocks_));
    }
  }
  kpool_ = std::move(nk);
  vpool_ = std::move(nv);
  refcount_.resize(size_t(cap), 0);
  for (int64_t b = cap - 1; b >= pool_blocks_; --b) free_.push_back(int32_t(b));
  pool_blocks_ = cap;
}

int32_t Model::block_alloc() {
  if (free_.empty()) pool_reserve(pool_blocks_ + 1);
  int32_t b = free_.back();
  free_.pop_back();
  refcount_[size_t(b)] = 1;
  return b;
}

void Model::block_release(int32_t b) {
  if (--refcount_[size_t(b)] == 0) free_.push_back(b);
}

int64_t Model::blocks_in_use() {
  drain_deferred();
  int64_t n = 0;
  for (auto r : refcount_) n += r > 0;
  return n;
}

CacheState& Model::cache_mut(int64_t id) {
  auto it = caches_.find(id);
  if (it == caches_.end()) throw_type("KvCache: cache " + std::to_string(id) + " is disposed or belongs to another model");
  return it->second;
}
const CacheState& Model::cache(int64_t id) const {
  auto it = caches_.find(id);
  if (it == caches_.end()) throw_type("KvCache: cache " + std::to_string(id) + " is disposed or belongs to another model");
  return it->second;
}

void Model::defer_free(int64_t id) {
  std::lock_guard<std::mutex> g(deferred_mu_);
  deferred_.push_back(id);
}

void Model::drain_deferred() {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> g(deferred_mu_);
    ids.swap(deferred_);
  }
  for (auto id : ids) cache_free(id);
}

int64_t Model::cache_new() {
  drain_deferred();
  int64_t id = next_cache_++;
  caches_[id] = CacheState{};
  return id;
}

void Model::cache_free(int64_t id) {
  auto it = caches_.find(id);
  if (it == caches_.end()) return;
  for (auto b : it->second.blocks) block_release(b);
  caches_.erase(it);
}

int64_t Model::cache_fork(int64_t id) {
  drain_deferred();
  const CacheState& p = cache(id);
  CacheState c;
  c.blocks = p.blocks;
  c.tokens = p.tokens;
  c.kv_len = p.kv_len;
  c.counter = p.counter;
  c.hidden_valid = p.hidden_valid;
  if (p.hidden_valid) {
    c.hidden = alloc_act(cfg_.hidden);
    be_->copy(c.hidden.p(), p.hidden.p(), size_t(cfg_.hidden) * asz_);
  }
  for (auto b : c.blocks) refcount_[size_t(b)]++;
  int64_t nid = next_cache_++;
  caches_[nid] = std::move(c);
  return nid;
}

void Model::cache_truncate(int64_t id, int64_t n) {
  CacheState& c = cache_mut(id);
  if (n < 0 || n > int64_t(c.tokens.size()))
    throw_range("KvCache.truncate: n must be in [0, " + std::to_string(c.tokens.size()) + "], got " + std::to_string(n));
  if (n == int64_t(c.tokens.size())) return;
  c.tokens.resize(size_t(n));
  if (c.kv_len > n) c.kv_len = n;
  size_t keep = size_t((c.kv_len + block_size_ - 1) / block_size_);
  while (c.blocks.size() > keep) {
    block_release(c.blocks.back());
    c.blocks.pop_back();
  }
  c.hidden_valid = false;
}

void Model::cache_prepare_write(CacheState& c, int64_t new_len) {
  if (c.kv_len % block_size_ != 0) {
    size_t bi = size_t(c.kv_len / block_size_);
    int32_t old = c.blocks[bi];
    if (refcount_[size_t(old)] > 1) {  // copy on write of a shared, partially filled block
      int32_t nb = block_alloc();
      size_t per_block = size_t(block_size_ * cfg_.kv_heads * cfg_.head_dim) * asz_;
      for (int64_t l = 0; l < cfg_.layers; ++l) {
        uint8_t* k = static_cast<uint8_t*>(kpool_[size_t(l)].p());
        uint8_t* v = static_cast<uint8_t*>(vpool_[size_t(l)].p());
        be_->copy(k + per_block * size_t(nb), k + per_block * size_t(old), per_block);
        be_->copy(v + per_block * size_t(nb), v + per_block * size_t(old), per_block);
      }
      block_release(old);
      c.blocks[bi] = nb;
    }
  }
  size_t need = size_t((new_len + block_size_ - 1) / block_size_);
  while (c.blocks.size() < need) c.blocks.push_back(block_alloc());
}

void Model::decode(const std::vector<CacheState*>& cs, int64_t n_new) {
  const ModelConfig& c = cfg_;
  int64_t B = int64_t(cs.size()), T = B * n_new, H = c.hidden;
  if (T == 0) return;
  for (auto* s : cs) {
    if (s->kv_len + n_new > int64_t(s->tokens.size())) throw_error("decode: internal: not enough pending tokens");
    cache_prepare_write(*s, s->kv_len + n_new);
  }
  int64_t maxb = 1;
  for (auto* s : cs) maxb = std::max<int64_t>(maxb, int64_t(s->blocks.size()));
  std::vector<int32_t> table(static_cast<size_t>(B * maxb), 0), lens(static_cast<size_t>(B)), toks(static_cast<size_t>(T)), pos(static_cast<size_t>(T));
  for (int64_t b = 0; b < B; ++b) {
    CacheState* s = cs[size_t(b)];
    for (size_t j = 0; j < s->blocks.size(); ++j) table[size_t(b * maxb) + j] = s->blocks[j];
    lens[size_t(b)] = int32_t(s->kv_len + n_new);
    for (int64_t j = 0; j < n_new; ++j) {
      toks[size_t(b * n_new + j)] = s->tokens[size_t(s->kv_len + j)];
      pos[size_t(b * n_new + j)] = int32_t(s->kv_len + j);
    }
  }
  DevBuf d_table = to_dev_i32(table), d_lens = to_dev_i32(lens), d_tok = to_dev_i32(toks), d_pos = to_dev_i32(pos);
  AttnCtx ctx;
  ctx.mode = AttnMode::Decode;
  ctx.B = B; ctx.n_new = n_new; ctx.max_blocks = maxb; ctx.block_table = d_table.i(); ctx.ctx_lens = d_lens.i();
  DevBuf x = alloc_act(T * H);
  EmbeddingParams ep;
  ep.ids = d_tok.i(); ep.n = T; ep.vocab = c.vocab; ep.dim = H; ep.table = W(embed_); ep.out = x.p();
  be_->embedding_forward(ep);
  LayerActs a;
  alloc_layer_acts(a, T, true);
  DevBuf y = alloc_act(T * H);
  for (int64_t l = 0; l < c.layers; ++l) {
    a.x_in = x;
    layer_forward(int(l), a, T, d_pos.i(), ctx, y.p());
    std::swap(x, y);
  }
  DevBuf xf = alloc_act(T * H), rstdf = alloc_f32(T);
  RmsNormParams rn;
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = x.p(); rn.w = W(final_norm_); rn.y = xf.p(); rn.rstd = rstdf.f();
  be_->rmsnorm_forward(rn);
  for (int64_t b = 0; b < B; ++b) {
    CacheState* s = cs[size_t(b)];
    if (!s->hidden) s->hidden = alloc_act(H);
    be_->copy(s->hidden.p(), static_cast<uint8_t*>(xf.p()) + size_t((b * n_new + n_new - 1) * H) * asz_, size_t(H) * asz_);
    s->kv_len += n_new;
    s->hidden_valid = true;
  }
}

void Model::cache_extend(int64_t id, const std::vector<int32_t>& tokens) {
  drain_deferred();
  CacheState& c = cache_mut(id);
  for (auto t : tokens)
    if (t < 0 || t >= cfg_.vocab) throw_range("KvCache.extend: token " + std::to_string(t) + " is outside [0, " + std::to_string(cfg_.vocab) + ")");
  if (int64_t(c.tokens.size() + tokens.size()) > int64_t(1) << 24) throw_range("KvCache.extend: cache would exceed 2^24 tokens");
  c.tokens.insert(c.tokens.end(), tokens.begin(), tokens.end());
  std::vector<CacheState*> one{&c};
  ensure_ready(one);
}

void Model::ensure_ready(const std::vector<CacheState*>& cs) {
  std::vector<CacheState*> ones;
  for (auto* s : cs) {
    int64_t len = int64_t(s->tokens.size());
    if (len == 0) throw_range("KvCache: the cache is empty (give cache() a prompt of at least one token)");
    if (s->kv_len == len && s->hidden_valid) continue;
    if (s->kv_len == len) {  // hidden state lost by truncate: recompute the last token
      s->kv_len -= 1;
      size_t keep = size_t((s->kv_len + block_size_ - 1) / block_size_);
      while (s->blocks.size() > keep) {
        block_release(s->blocks.back());
        s->blocks.pop_back();
      }
    }
    int64_t pending = len - s->kv_len;
    if (pending == 1) ones.push_back(s);
    else decode({s}, pending);
  }
  if (!ones.empty()) decode(ones, 1);
}

void Model::logits_for(const std::vector<CacheState*>& cs, DevBuf& logits) {
  int64_t B = int64_t(cs.size()), H = cfg_.hidden, V = cfg_.vocab;
  DevBuf hid = alloc_act(B * H);
  for (int64_t b = 0; b < B; ++b)
    be_->copy(static_cast<uint8_t*>(hid.p()) + size_t(b * H) * asz_, cs[size_t(b)]->hidden.p(), size_t(H) * asz_);
  logits = alloc_f32(B * V);
  gemm(B, V, H, false, true, hid.p(), H, head_w(), H, logits.p(), V, 1.f, 0.f, act_, act_, DType::F32);
}

static std::vector<CacheState*> unique_caches(Model* m, std::map<int64_t, CacheState>& caches, const std::vector<int64_t>& ids, const char* fn) {
  std::vector<CacheState*> cs;
  std::set<int64_t> seen;
  for (auto id : ids) {
    if (!seen.insert(id).second) throw_range(std::string(fn) + ": the same cache appears twice in one batch");
    auto it = caches.find(id);
    if (it == caches.end()) throw_type(std::string(fn) + ": cache " + std::to_string(id) + " is disposed or belongs to another model");
    cs.push_back(&it->second);
  }
  (void)m;
  return cs;
}

void Model::sample_next(const std::vector<int64_t>& ids, float temperature, int64_t top_k, float top_p, uint64_t seed,
                        int32_t* tokens, float* logp_model, float* logp_sampled) {
  drain_deferred();
  auto cs = unique_caches(this, caches_, ids, "sampleNext");
  if (cs.empty()) return;
  ensure_ready(cs);
  DevBuf logits;
  logits_for(cs, logits);
  int64_t B = int64_t(cs.size());
  std::vector<uint64_t> counters(static_cast<size_t>(B));
  for (int64_t b = 0; b < B; ++b) counters[size_t(b)] = cs[size_t(b)]->counter + (uint64_t(b) << 40);
  SampleParams sp;
  sp.B = B; sp.V = cfg_.vocab; sp.logits = logits.f(); sp.temperature = temperature; sp.top_k = top_k; sp.top_p = top_p;
  sp.seed = seed; sp.counters = counters.data(); sp.tokens = tokens; sp.logp_sampled = logp_sampled; sp.logp_model = logp_model;
  be_->sample(sp);
  for (int64_t b = 0; b < B; ++b) {
    int32_t t = tokens[b];
    if (t < 0 || t >= cfg_.vocab) throw_error("sampleNext: the sampler returned token " + std::to_string(t) + " outside the vocabulary");
    cs[size_t(b)]->tokens.push_back(t);
    cs[size_t(b)]->counter++;
  }
}

void Model::next_logprobs(const std::vector<int64_t>& ids, float* out) {
  auto cs = unique_caches(this, caches_, ids, "nextLogprobs");
  if (cs.empty()) return;
  ensure_ready(cs);
  DevBuf logits;
  logits_for(cs, logits);
  int64_t B = int64_t(cs.size()), V = cfg_.vocab;
  be_->copy_to_host(out, logits.p(), size_t(B * V) * 4);
  for (int64_t b = 0; b < B; ++b) {
    float* r = out + b * V;
    double mx = -INFINITY;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, double(r[j]));
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(double(r[j]) - mx);
    double lse = mx + std::log(s);
    for (int64_t j = 0; j < V; ++j) r[j] = float(double(r[j]) - lse);
  }
}

}  // namespace itool
