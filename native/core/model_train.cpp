// Training: the packed forward, the fused LM-head log-probability, backward, the optimizer step.
#include "model_internal.h"

namespace itool {
using namespace model_detail;

// ------------------------------------------------------------------ training
void Model::forward(const std::vector<int32_t>& tokens, const std::vector<int32_t>& targets, const std::vector<int32_t>& cu,
                    const std::vector<int32_t>& pos, bool train, float* logprobs, float* logits,
                    const float* dlogp_ahead) {
  if (dlogp_ahead && !train) throw_error("forward: dlogprobs ahead of backward need a training forward (train: true)");
  if (train) check_base_trainable("forward (train: true)");
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
  ep.ids = d_tok.i(); ep.n = T; ep.vocab = c.vocab; ep.dim = H; ep.table = W(embed_); ep.table_type = wdt_; ep.out = x.p();
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
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = x.p(); rn.w = W(final_norm_); rn.w_type = wdt_; rn.y = xf.p(); rn.rstd = rstdf.f();
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
    gemm(T, c.vocab, H, false, true, xf.p(), H, head_w(), H, lg.p(), c.vocab, 1.f, 0.f, act_, wdt_, DType::F32);
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
  lpp.N = T; lpp.H = H; lpp.V = c.vocab; lpp.hidden = xf; lpp.weight = head_w(); lpp.weight_type = wdt_; lpp.targets = targets;
  lpp.logprob = lp; lpp.lse = lse;
  lpp.chunk = logprob_chunk_;  // 0: the backend's choice
  if (dlogp) {
    ensure_grads(lora_active() ? lora_ : base_);
    lpp.dlogp = dlogp; lpp.dhidden = dhidden;
    lpp.dweight = head_g();  // null for a frozen head (LoRA): its gradient is not made
  }
  be_->logprob(lpp);
}

void Model::backward(const float* dlogp) {
  if (!saved_.valid) throw_error("backward: no training forward to differentiate (call forward(batch, {train: true}) first)");
  check_base_trainable("backward");
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
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = saved_.x_last.p(); rn.w = W(final_norm_); rn.w_type = wdt_; rn.rstd = saved_.rstdf.f();
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

void Model::reset_optimizer() {
  for (ParamGroup* g : {&base_, &lora_}) {
    g->m = DevBuf();
    g->v = DevBuf();
    g->step = 0;
  }
}

StepInfo Model::step(const OptimOptions& o) {
  check_base_trainable("step");
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

}  // namespace itool
