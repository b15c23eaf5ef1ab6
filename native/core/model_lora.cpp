// LoRA adapters (PEFT layout): add, load, save, merge.
#include "model_internal.h"

namespace itool {
using namespace model_detail;

// ------------------------------------------------------------------ LoRA
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

// A bf16 (frozen) base: the merged weights are rounded to bf16, so the merged model's outputs
// differ from base + adapter by that rounding.
void Model::merge_lora() {
  if (!lora_active()) throw_error("mergeAdapter: the model has no LoRA adapter");
  float s = lora_cfg_.scaling();
  for (int64_t l = 0; l < cfg_.layers; ++l)
    for (int p = 0; p < P_COUNT; ++p) {
      int a = lora_a_[size_t(l * P_COUNT + p)], b = lora_b_[size_t(l * P_COUNT + p)];
      if (a < 0) continue;
      int64_t in, out;
      proj_dims(cfg_, p, in, out);
      const int64_t woff = base_.params[size_t(lp_[size_t(l)].w[p])].offset;
      const float* Am = lora_.master.f() + lora_.params[size_t(a)].offset;
      const float* Bm = lora_.master.f() + lora_.params[size_t(b)].offset;
      if (base_bf16_) {
        // bf16 base (CPU): W + s*B·A in f32 for this matrix, rounded back to bf16 (nearest even)
        uint16_t* W16 = static_cast<uint16_t*>(base_.compute.p()) + woff;
        const size_t n = size_t(out * in);
        DevBuf tmp = alloc_f32(int64_t(n));
        be_->convert(W16, DType::BF16, tmp.p(), DType::F32, int64_t(n));
        gemm(out, in, lora_cfg_.rank, false, false, Bm, lora_cfg_.rank, Am, in, tmp.p(), in, s, 1.f, DType::F32, DType::F32, DType::F32);
        be_->convert(tmp.p(), DType::F32, W16, DType::BF16, int64_t(n));
        continue;
      }
      float* Wm = base_.master.f() + woff;
      gemm(out, in, lora_cfg_.rank, false, false, Bm, lora_cfg_.rank, Am, in, Wm, in, s, 1.f, DType::F32, DType::F32, DType::F32);
    }
  sync_compute(base_);
  lora_ = ParamGroup{};
  lora_cfg_ = LoraConfig{};
  lora_a_.clear();
  lora_b_.clear();
  saved_ = Saved{};
}

}  // namespace itool
