// Building blocks: GEMM, projections with their LoRA paths, one layer forward and backward.
#include "model_internal.h"

namespace itool {
using namespace model_detail;

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
  gemm(T, out, in, false, true, x, in, W(L.w[p]), in, y, out, 1.f, 0.f, act_, wdt_, act_);
  int bias = p == P_Q ? L.qb : p == P_K ? L.kb : p == P_V ? L.vb : -1;
  if (bias >= 0) {
    BiasParams b;
    b.n = T; b.d = out; b.x = y; b.bias = W(bias); b.bias_type = wdt_;
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
  gemm(T, in, out, false, false, dy, out, W(L.w[p]), in, dx, in, 1.f, acc ? 1.f : 0.f, act_, wdt_, act_);
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
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = a.x_in.p(); rn.w = W(L.in_norm); rn.w_type = wdt_; rn.y = a.xn1.p(); rn.rstd = a.rstd1.f();
  be_->rmsnorm_forward(rn);
  void* qo = c.qk_norm ? a.q_pre.p() : a.q.p();
  void* ko = c.qk_norm ? a.k_pre.p() : a.k.p();
  linear_fwd(l, P_Q, a.xn1.p(), T, qo, &a.lt[P_Q]);
  linear_fwd(l, P_K, a.xn1.p(), T, ko, &a.lt[P_K]);
  linear_fwd(l, P_V, a.xn1.p(), T, a.v.p(), &a.lt[P_V]);
  if (c.qk_norm) {
    RmsNormParams q;
    q.n = T * c.heads; q.d = D; q.eps = c.eps; q.x = a.q_pre.p(); q.w = W(L.qn); q.w_type = wdt_; q.y = a.q.p(); q.rstd = a.rstd_q.f();
    be_->rmsnorm_forward(q);
    RmsNormParams k;
    k.n = T * c.kv_heads; k.d = D; k.eps = c.eps; k.x = a.k_pre.p(); k.w = W(L.kn); k.w_type = wdt_; k.y = a.k.p(); k.rstd = a.rstd_k.f();
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
  r2.n = T; r2.d = H; r2.eps = c.eps; r2.x = a.x_mid.p(); r2.w = W(L.post_norm); r2.w_type = wdt_; r2.y = a.xn2.p(); r2.rstd = a.rstd2.f();
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
  r2.n = T; r2.d = H; r2.eps = c.eps; r2.x = a.x_mid.p(); r2.w = W(L.post_norm); r2.w_type = wdt_; r2.rstd = a.rstd2.f();
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
      q.n = T * c.heads; q.d = D; q.eps = c.eps; q.x = a.q_pre.p(); q.w = W(L.qn); q.w_type = wdt_; q.rstd = a.rstd_q.f();
      q.dy = dq.p(); q.dx = dqp.p(); q.dw = dw(L.qn, D);
      be_->rmsnorm_backward(q);
      RmsNormParams k;
      k.n = T * c.kv_heads; k.d = D; k.eps = c.eps; k.x = a.k_pre.p(); k.w = W(L.kn); k.w_type = wdt_; k.rstd = a.rstd_k.f();
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
  r1.n = T; r1.d = H; r1.eps = c.eps; r1.x = a.x_in.p(); r1.w = W(L.in_norm); r1.w_type = wdt_; r1.rstd = a.rstd1.f();
  r1.dy = dxn.p(); r1.dx = tmp.p(); r1.dw = dw(L.in_norm, H);
  be_->rmsnorm_backward(r1);
  be_->add(ad);
}

}  // namespace itool
