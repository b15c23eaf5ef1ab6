// The model's weights in and out: random initialisation, Hugging Face checkpoints, training state.
#include <sys/mman.h>
#include "model_internal.h"

namespace itool {
using namespace model_detail;

void Model::init_random(uint64_t seed, float std) {
  Rng r{seed ^ 0x1F2E3D4C5B6A7988ull};
  // a chunk at a time, in layout order (the same draws as one pass over the whole group): the
  // host holds at most 1M values, and a bf16 base never exists in f32
  const int64_t kChunk = int64_t(1) << 20;
  std::vector<float> h;
  std::vector<uint16_t> h16;
  for (auto& p : base_.params) {
    const bool is_norm = p.name.find("norm.weight") != std::string::npos;
    for (int64_t c0 = 0; c0 < p.numel; c0 += kChunk) {
      const int64_t n = std::min(kChunk, p.numel - c0);
      h.resize(size_t(n));
      for (int64_t i = 0; i < n; ++i) h[size_t(i)] = is_norm ? 1.f : float(r.normal() * std);
      if (base_bf16_) {
        h16.resize(h.size());
        for (size_t i = 0; i < h.size(); ++i) h16[i] = f32_to_bf16(h[i]);
        be_->copy_from_host(static_cast<uint16_t*>(base_.compute.p()) + p.offset + c0, h16.data(), h16.size() * 2);
      } else {
        be_->copy_from_host(base_.master.f() + p.offset + c0, h.data(), h.size() * 4);
      }
    }
  }
  sync_compute(base_);
}

namespace {
// A checkpoint's files opened (each SafetensorsFile checks its header and that every tensor lies
// inside the file: a truncated file is refused here) with an index of where each tensor is.
struct OpenCheckpoint {
  std::vector<std::unique_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<const SafetensorsFile*, const SafetensorsEntry*>> where;
  std::string what;  // the first file, and "and other shards"

  explicit OpenCheckpoint(const std::vector<std::string>& paths) {
    if (paths.empty()) throw_error("load: no safetensors files given");
    for (auto& f : paths) {
      files.push_back(std::make_unique<SafetensorsFile>(f));
      for (auto& e : files.back()->entries()) where[e.name] = {files.back().get(), &e};
    }
    what = paths[0] + (paths.size() > 1 ? " and other shards" : "");
  }
  void present(const std::string& name) const {
    if (!where.count(name)) throw_error("load: tensor '" + name + "' (needed by config.json) is missing from the checkpoint (" + what + ")");
  }
  // the tensor named, with the shape the configuration implies
  std::pair<const SafetensorsFile*, const SafetensorsEntry*> need(const std::string& name, const std::vector<int64_t>& shape) const {
    auto it = where.find(name);
    if (it == where.end()) throw_error("load: tensor '" + name + "' (needed by config.json) is missing from the checkpoint (" + what + ")");
    const SafetensorsEntry* e = it->second.second;
    if (e->shape != shape)
      throw_error("load: " + it->second.first->path() + ": tensor '" + name + "' has shape " + shape_str(e->shape) +
                  " but config.json implies " + shape_str(shape));
    return it->second;
  }
};
}  // namespace

void Model::check_checkpoint(const ModelConfig& cfg, const std::vector<std::string>& files) {
  cfg.validate();
  std::vector<LayerP> lp;
  int embed = -1, final_norm = -1, lm_head = -1;
  std::vector<Spec> specs;
  base_specs(cfg, lp, embed, final_norm, lm_head, specs);
  OpenCheckpoint ck(files);
  for (auto& s : specs) ck.present(s.name);
  for (auto& s : specs) ck.need(s.name, s.shape);
}

void Model::load_checkpoint(const std::vector<std::string>& files) {
  OpenCheckpoint ck(files);
  // every tensor checked before any weight is written
  std::vector<std::pair<const SafetensorsFile*, const SafetensorsEntry*>> src;
  for (auto& p : base_.params) ck.present(p.name);
  for (auto& p : base_.params) src.push_back(ck.need(p.name, p.shape));
  // the weights in layout order; the padding after each tensor (to 64-byte starts) is zeroed
  const bool host = be_->device().kind == DeviceKind::CPU;
  if (host) {
    // the weights are written once, front to back: transparent huge pages where the kernel offers
    // them on request (a 0.5B model faults in 1,000 pages instead of 500,000)
    void* base = base_bf16_ ? base_.compute.p() : base_.master.p();
    const uintptr_t huge = uintptr_t(1) << 21;
    uintptr_t b = (uintptr_t(base) + huge - 1) / huge * huge;
    uintptr_t e = (uintptr_t(base) + size_t(base_.numel) * wsz_) / huge * huge;
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
  }
  std::vector<float> stage;
  for (size_t i = 0; i < base_.params.size(); ++i) {
    const ParamInfo& p = base_.params[i];
    int64_t end = i + 1 < base_.params.size() ? base_.params[i + 1].offset : base_.numel;
    const SafetensorsFile& f = *src[i].first;
    const SafetensorsEntry& e = *src[i].second;
    if (base_bf16_) {
      // bf16 weights (CPU): a bf16 tensor is copied as it is; f32/f16 ones are rounded to nearest
      // even, one tensor at a time (the model never exists in f32)
      uint16_t* dst = static_cast<uint16_t*>(base_.compute.p()) + p.offset;
      if (e.dtype == DType::BF16) {
        std::memcpy(dst, f.data(e), size_t(p.numel) * 2);
      } else {  // straight from the mapped file, element by element: no f32 staging
        const uint8_t* raw = f.data(e);
        for (int64_t k = 0; k < p.numel; ++k) {
          float v;
          if (e.dtype == DType::F32) {
            std::memcpy(&v, raw + size_t(k) * 4, 4);
          } else {
            uint16_t h;
            std::memcpy(&h, raw + size_t(k) * 2, 2);
            v = f16_to_f32(h);
          }
          dst[k] = f32_to_bf16(v);
        }
      }
      std::memset(dst + p.numel, 0, size_t(end - p.offset - p.numel) * 2);
    } else if (host) {
      float* dst = base_.master.f() + p.offset;
      f.read_f32(e, dst);
      std::memset(dst + p.numel, 0, size_t(end - p.offset - p.numel) * 4);
    } else {
      stage.assign(size_t(end - p.offset), 0.f);
      f.read_f32(e, stage.data());
      be_->copy_from_host(base_.master.f() + p.offset, stage.data(), stage.size() * 4);
    }
    f.release(e);
  }
  sync_compute(base_);
}

void Model::save_checkpoint(const std::string& path, DType dtype) const {
  // streamed tensor by tensor into the temp file: on the CPU straight from the weights (a
  // conversion goes through one tensor's buffer), elsewhere one tensor at a time through the host
  const bool host = be_->device().kind == DeviceKind::CPU;
  std::vector<SafetensorsWriteItem> items;
  std::vector<const ParamInfo*> order;
  for (auto& p : base_.params) order.push_back(&p);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  for (auto* p : order) {
    SafetensorsWriteItem it;
    it.name = p->name;
    it.dtype = dtype;
    it.shape = p->shape;
    const int64_t off = p->offset, n = p->numel;
    if (base_bf16_) {
      const uint16_t* w16 = static_cast<const uint16_t*>(base_.compute.p()) + off;
      if (host) it.bf16 = w16;  // as it is, or widened/converted a chunk at a time
      else
        it.fill = [this, w16, n](float* out) {
          std::vector<uint16_t> h(static_cast<size_t>(n));
          be_->copy_to_host(h.data(), w16, size_t(n) * 2);
          for (int64_t k = 0; k < n; ++k) out[k] = bf16_to_f32(h[size_t(k)]);
        };
    } else if (host) {
      it.data = base_.master.f() + off;
    } else {
      const float* w = base_.master.f() + off;
      it.fill = [this, w, n](float* out) { be_->copy_to_host(out, w, size_t(n) * 4); };
    }
    items.push_back(std::move(it));
  }
  write_safetensors(path, items, {{"format", "pt"}});
}

void Model::save_training_state(const std::string& path) const {
  check_base_trainable("saveTrainingState");
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
  check_base_trainable("loadTrainingState");
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

}  // namespace itool
