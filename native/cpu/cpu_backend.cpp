// CPU backend: memory and conversions. The ops live in their own files (ops_*.cpp).
#include "cpu_backend.h"
#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <sys/mman.h>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>
#include "../core/cpu_features.h"
#include "../core/threadpool.h"

namespace itool {

std::string CpuBackend::name() const {
  return std::string("cpu (") + cpu_level_name(cpu_level()) + ", " +
         std::to_string(ThreadPool::global().size()) + " threads)";
}

// A caching allocator for large blocks: the engine allocates its activations per call
// (tens of MB each); handing them back to the OS and faulting fresh zeroed pages in on
// the next call cost as much as the ops themselves. Blocks of 64 KiB and more are kept,
// by size class (at most 25% above the request), up to a cap of cached bytes:
// ITOOL_CPU_CACHE_MB (default 1024; 0 turns caching off). Sanitizer builds never cache
// so that ASan still sees every use after free.
//
// These blocks are mapped straight from the OS (mmap), not taken from malloc: a block the
// cache gives back is unmapped at once. Through malloc, glibc's dynamic mmap threshold rose
// with the first large free (up to 32 MiB), after which freed activation blocks stayed in the
// heap, resident, and a split step's micro-batches of other lengths added theirs on top
// (base shape, full fine-tuning, 1024-token micro-batches: 3.51 GiB resident against an
// engine peak of 2.09 GiB; with the blocks mapped here: see README "Memory").
namespace {
void* map_block(size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}
void unmap_block(void* p, size_t bytes) { ::munmap(p, bytes); }
struct Live {
  size_t bytes;    // what the block occupies (its size class, or the request rounded to 64 bytes)
  bool cacheable;  // a size-class block: goes back to the cache when freed
};
struct BlockCache {
  std::mutex mu;
  std::unordered_map<void*, Live> live;                // every block handed out
  std::map<size_t, std::vector<void*>> free_blocks;    // size class -> blocks
  size_t cached = 0;
  size_t cap = 0;
  std::map<size_t, uint64_t> used;  // size class -> when a block of it was last freed or reused
  uint64_t clock = 0;
  size_t current = 0, peak = 0;  // bytes of live blocks; the most since the last mark
  BlockCache() {
#ifndef ITOOL_SANITIZE
    cap = size_t(1024) << 20;
    if (const char* e = std::getenv("ITOOL_CPU_CACHE_MB")) {
      char* end = nullptr;
      long long v = std::strtoll(e, &end, 10);
      if (end != e && *end == '\0' && v >= 0) cap = size_t(v) << 20;
    }
#endif
  }
  void release_all() {  // with mu held
    for (auto& kv : free_blocks)
      for (void* p : kv.second) unmap_block(p, kv.first);
    free_blocks.clear();
    cached = 0;
  }
  // with mu held: gives back to the OS the cached blocks of the size class used longest ago
  void evict_oldest() {
    auto oldest = free_blocks.end();
    for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
      if (!it->second.empty() && (oldest == free_blocks.end() || used[it->first] < used[oldest->first])) oldest = it;
    if (oldest == free_blocks.end()) return;
    for (void* p : oldest->second) unmap_block(p, oldest->first);
    cached -= oldest->first * oldest->second.size();
    free_blocks.erase(oldest);
  }
  void track(void* p, size_t bytes, bool cacheable) {  // with mu held
    live[p] = Live{bytes, cacheable};
    current += bytes;
    if (current > peak) peak = current;
  }
};
BlockCache& block_cache() {
  static BlockCache* c = new BlockCache();  // never destroyed: tensors may outlive static destruction
  return *c;
}
constexpr size_t kCacheMin = size_t(64) << 10;
size_t size_class(size_t bytes) {
  // round up to a multiple of a quarter of the highest power of two below
  size_t hi = size_t(1) << (63 - __builtin_clzll(bytes));
  size_t step = std::max<size_t>(64, hi / 4);
  return (bytes + step - 1) / step * step;
}
}  // namespace

CpuAllocStats cpu_alloc_stats() {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lk(c.mu);
  return CpuAllocStats{c.current, c.peak, c.cached};
}
void cpu_alloc_reset_peak() {
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lk(c.mu);
  c.peak = c.current;
}

void* CpuBackend::alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  if (rounded == 0) rounded = 64;
  BlockCache& c = block_cache();
  if (c.cap > 0 && rounded >= kCacheMin) {
    const size_t cls = size_class(rounded);
    {
      std::lock_guard<std::mutex> lk(c.mu);
      auto it = c.free_blocks.find(cls);
      if (it != c.free_blocks.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.cached -= cls;
        c.used[cls] = ++c.clock;
        c.track(p, cls, true);
        return p;
      }
    }
    void* p = map_block(cls);  // page-aligned; size classes >= 64 KiB are whole pages
    if (!p) {
      std::lock_guard<std::mutex> lk(c.mu);
      c.release_all();
      p = map_block(cls);
    }
    if (!p) throw Error(ErrorKind::OutOfMemory, "cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
    std::lock_guard<std::mutex> lk(c.mu);
    c.track(p, cls, true);
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw Error(ErrorKind::OutOfMemory, "cpu: out of memory allocating " + std::to_string(bytes) + " bytes");
  std::lock_guard<std::mutex> lk(c.mu);
  c.track(p, rounded, false);
  return p;
}

void CpuBackend::dealloc(void* p) {
  if (!p) return;
  BlockCache& c = block_cache();
  {
    std::lock_guard<std::mutex> lk(c.mu);
    auto it = c.live.find(p);
    if (it != c.live.end()) {
      const Live l = it->second;
      c.live.erase(it);
      c.current -= l.bytes;
      if (l.cacheable) {
        if (c.cap > 0 && l.bytes <= c.cap) {
          // a full cache makes room by evicting the size classes used longest ago: it then
          // follows the phase at hand (a tree search fills it with its own sizes; without
          // eviction every later training step mapped and unmapped its blocks, ~6k page faults
          // a step and half the speed, in the demo's later seeds)
          while (c.cached + l.bytes > c.cap && c.cached > 0) c.evict_oldest();
          c.free_blocks[l.bytes].push_back(p);
          c.cached += l.bytes;
          c.used[l.bytes] = ++c.clock;
          return;
        }
        unmap_block(p, l.bytes);  // mapped by alloc (a size-class block)
        return;
      }
    }
  }
  std::free(p);
}
void CpuBackend::memset_zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }
void CpuBackend::copy_from_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::copy_to_host(void* dst, const void* src, size_t bytes) { if (bytes) std::memcpy(dst, src, bytes); }
void CpuBackend::copy(void* dst, const void* src, size_t bytes) { if (bytes) std::memmove(dst, src, bytes); }

void CpuBackend::convert(const void* src, DType st, void* dst, DType dt, int64_t n) {
  if (st == dt) {
    copy(dst, src, static_cast<size_t>(n) * dtype_size(st));
    return;
  }
  auto load = [&](int64_t i) -> float {
    switch (st) {
      case DType::F32: return static_cast<const float*>(src)[i];
      case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(src)[i]);
      case DType::I32: return static_cast<float>(static_cast<const int32_t*>(src)[i]);
    }
    return 0.f;
  };
  for (int64_t i = 0; i < n; ++i) {
    float f = load(i);
    switch (dt) {
      case DType::F32: static_cast<float*>(dst)[i] = f; break;
      case DType::BF16: static_cast<uint16_t*>(dst)[i] = f32_to_bf16(f); break;
      case DType::F16: static_cast<uint16_t*>(dst)[i] = f32_to_f16(f); break;
      case DType::I32: throw_type("convert: cannot convert " + std::string(dtype_name(st)) + " to i32");
    }
  }
}

Backend* cpu_backend() {
  static CpuBackend b;
  return &b;
}

}  // namespace itool
