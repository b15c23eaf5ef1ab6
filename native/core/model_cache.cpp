// The forkable block KV cache and decoding: prefill, batched decode, sampling.
#include <unordered_map>
#include "model_internal.h"

namespace itool {
using namespace model_detail;

// ------------------------------------------------------------------ KV cache
void Model::set_memory_limits(int64_t kv_pool_blocks, int64_t logprob_chunk) {
  if (kv_pool_blocks < 0) throw_range("setMemoryLimits: kvCacheBlocks must be >= 0 (0: no cap), got " + std::to_string(kv_pool_blocks));
  if (logprob_chunk < 0) throw_range("setMemoryLimits: logprobChunkRows must be >= 0 (0: the backend's choice), got " + std::to_string(logprob_chunk));
  kv_pool_limit_ = kv_pool_blocks;
  logprob_chunk_ = logprob_chunk;
}

void Model::check_pool_room(const std::vector<CacheState*>& cs, int64_t n_new) {
  if (kv_pool_limit_ <= 0) return;
  // the blocks cache_prepare_write will take, replayed on the refcounts: a shared partial block
  // is copied on write by each cache but the last one holding it
  std::unordered_map<int32_t, int32_t> gone;
  int64_t need = 0;
  for (const CacheState* c : cs) {
    if (c->kv_len % block_size_ != 0) {
      int32_t old = c->blocks[size_t(c->kv_len / block_size_)];
      if (refcount_[size_t(old)] - gone[old] > 1) {
        ++need;
        ++gone[old];
      }
    }
    int64_t want = (c->kv_len + n_new + block_size_ - 1) / block_size_;
    need += std::max<int64_t>(0, want - int64_t(c->blocks.size()));
  }
  const int64_t in_use = pool_blocks_ - int64_t(free_.size());
  if (in_use + need <= kv_pool_limit_) return;
  const size_t per_block = size_t(2 * cfg_.layers * block_size_ * cfg_.kv_heads * cfg_.head_dim) * asz_;
  throw Error(ErrorKind::OutOfMemory,
              "KV cache: this call needs " + std::to_string(need) + " more blocks of " + std::to_string(block_size_) + " tokens (" +
                  std::to_string(size_t(need) * per_block) + " bytes) with " + std::to_string(in_use) + " of the pool's cap of " +
                  std::to_string(kv_pool_limit_) + " blocks (" + std::to_string(size_t(kv_pool_limit_) * per_block) +
                  " bytes) in use; the cap comes from the memory plan (--max-memory) or setMemoryLimits({kvCacheBlocks}): "
                  "dispose caches, run fewer sequences at once, or raise the cap");
}

void Model::pool_reserve(int64_t n) {
  if (n <= pool_blocks_) return;
  if (kv_pool_limit_ > 0 && n > kv_pool_limit_)
    throw Error(ErrorKind::OutOfMemory, "KV cache: " + std::to_string(n) + " blocks needed, more than the pool's cap of " +
                                            std::to_string(kv_pool_limit_) + " blocks (setMemoryLimits({kvCacheBlocks}))");
  int64_t cap = std::max<int64_t>({n, pool_blocks_ * 2, 16});
  if (kv_pool_limit_ > 0) cap = std::min(cap, kv_pool_limit_);
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
  for (auto* s : cs)
    if (s->kv_len + n_new > int64_t(s->tokens.size())) throw_error("decode: internal: not enough pending tokens");
  check_pool_room(cs, n_new);
  for (auto* s : cs) cache_prepare_write(*s, s->kv_len + n_new);
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
  ep.ids = d_tok.i(); ep.n = T; ep.vocab = c.vocab; ep.dim = H; ep.table = W(embed_); ep.table_type = wdt_; ep.out = x.p();
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
  rn.n = T; rn.d = H; rn.eps = c.eps; rn.x = x.p(); rn.w = W(final_norm_); rn.w_type = wdt_; rn.y = xf.p(); rn.rstd = rstdf.f();
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
  const size_t before = c.tokens.size();
  c.tokens.insert(c.tokens.end(), tokens.begin(), tokens.end());
  std::vector<CacheState*> one{&c};
  try {
    ensure_ready(one);
  } catch (...) {
    // nothing was written for the new tokens (e.g. the KV pool's cap refused them): the cache
    // is left as it was
    if (c.kv_len <= int64_t(before)) c.tokens.resize(before);
    throw;
  }
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
  gemm(B, V, H, false, true, hid.p(), H, head_w(), H, logits.p(), V, 1.f, 0.f, act_, wdt_, DType::F32);
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
                        int32_t* tokens, float* logp_model, float* logp_sampled, float repetition_penalty) {
  if (!(repetition_penalty > 0.f) || !std::isfinite(repetition_penalty)) throw_range("sampleNext: repetitionPenalty must be a finite number > 0, got " + std::to_string(repetition_penalty));
  drain_deferred();
  auto cs = unique_caches(this, caches_, ids, "sampleNext");
  if (cs.empty()) return;
  ensure_ready(cs);
  DevBuf logits;
  logits_for(cs, logits);
  int64_t B = int64_t(cs.size());
  if (repetition_penalty != 1.f) {
    // on the host, through the backend's copies (the same on the CPU and on CUDA)
    int64_t V = cfg_.vocab;
    std::vector<float> h(static_cast<size_t>(B * V));
    be_->copy_to_host(h.data(), logits.p(), h.size() * 4);
    std::vector<uint8_t> seen(static_cast<size_t>(V));
    for (int64_t b = 0; b < B; ++b) {
      std::fill(seen.begin(), seen.end(), 0);
      float* r = h.data() + b * V;
      for (int32_t t : cs[size_t(b)]->tokens) {
        if (t < 0 || t >= V || seen[size_t(t)]) continue;
        seen[size_t(t)] = 1;
        r[t] = r[t] > 0.f ? r[t] / repetition_penalty : r[t] * repetition_penalty;
      }
    }
    be_->copy_from_host(logits.p(), h.data(), h.size() * 4);
  }
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
