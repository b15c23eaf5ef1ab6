// itool CUDA emulator: the fake runtime (memory, streams, events, errors, device
// properties) and the block scheduler (threads as fibers). See cuda_emu.h.
#define ITOOL_EMU_RUNTIME 1
#include "cuda_emu.h"

#include <sys/mman.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define ITOOL_EMU_ASAN 1
#endif

#if !defined(__x86_64__)
#error "the itool CUDA emulator's fibers are written for x86-64"
#endif

// ---------------------------------------------------------------- context switch
// itool_emu_switch(save, to): saves the callee-saved registers, MXCSR and the x87
// control word on the current stack, stores the stack pointer in *save and resumes the
// context whose stack pointer is `to`.
extern "C" void itool_emu_switch(void** save, void* to);
extern "C" void itool_emu_trampoline();
asm(R"(
  .text
  .globl itool_emu_switch
  .hidden itool_emu_switch
  .type itool_emu_switch,@function
itool_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size itool_emu_switch, .-itool_emu_switch
  .globl itool_emu_trampoline
  .hidden itool_emu_trampoline
  .type itool_emu_trampoline,@function
itool_emu_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size itool_emu_trampoline, .-itool_emu_trampoline
)");

namespace itool_emu {

thread_local const Coords* t_coords = nullptr;

namespace {

// ---------------------------------------------------------------- errors
std::mutex g_err_mu;
cudaError_t g_last = cudaSuccess;     // what cudaGetLastError returns (and clears)
cudaError_t g_pending = cudaSuccess;  // a kernel fault, returned once by the next synchronising call
std::map<int, std::string> g_detail;  // the latest message per error code

const char* base_string(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorIllegalInstruction: return "an illegal instruction was encountered";
    case cudaErrorMisalignedAddress: return "misaligned address";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t set_error(cudaError_t e, const std::string& msg, bool fault) {
  std::lock_guard<std::mutex> lk(g_err_mu);
  g_detail[e] = std::string(base_string(e)) + " [itool CUDA emulator: " + msg + "]";
  g_last = e;
  if (fault) g_pending = e;
  return e;
}
cudaError_t take_pending() {
  std::lock_guard<std::mutex> lk(g_err_mu);
  cudaError_t e = g_pending;
  g_pending = cudaSuccess;
  if (e != cudaSuccess && g_last == e) g_last = cudaSuccess;  // reported once, by this call
  return e;
}

// ---------------------------------------------------------------- device memory
// Every cudaMalloc is its own heap block (ASan sees overruns of each buffer).
std::mutex g_mem_mu;
std::map<uintptr_t, size_t> g_allocs;
size_t g_in_use = 0;
size_t device_bytes() {
  static const size_t b = [] {
    const char* e = std::getenv("ITOOL_CUDA_EMU_MEMORY_MB");
    const long mb = e ? std::atol(e) : 0;
    return static_cast<size_t>(mb > 0 ? mb : 8192) << 20;
  }();
  return b;
}
// Whether [p, p + n) lies inside one allocation.
bool in_device(const void* p, size_t n) {
  std::lock_guard<std::mutex> lk(g_mem_mu);
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = g_allocs.upper_bound(a);
  if (it == g_allocs.begin()) return false;
  --it;
  return a >= it->first && a + n <= it->first + it->second;
}
cudaError_t check_range(const char* what, const char* which, const void* p, size_t n) {
  if (in_device(p, n)) return cudaSuccess;
  char buf[256];
  snprintf(buf, sizeof buf, "%s: %s range [%p, +%zu bytes) is not inside one device allocation", what, which, p, n);
  return set_error(cudaErrorInvalidValue, buf, false);
}

struct Stream {
  unsigned flags;
};
std::mutex g_stream_mu;
std::vector<Stream*> g_streams;
bool valid_stream(cudaStream_t s) {
  if (!s) return true;
  std::lock_guard<std::mutex> lk(g_stream_mu);
  for (Stream* x : g_streams)
    if (reinterpret_cast<cudaStream_t>(x) == s) return true;
  return false;
}

std::mutex g_attr_mu;
std::unordered_map<const void*, int> g_max_dyn_smem;
constexpr size_t kDefaultDynSmem = 48 * 1024;
constexpr size_t kOptinSmem = 227 * 1024;
int g_device = 0;

// ---------------------------------------------------------------- fibers
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;

enum State : int { kRunnable, kAtBarrier, kAtWarp, kDone };

struct Fiber {
  char* mem = nullptr;  // guard page + stack
  void* sp = nullptr;
  bool started = false;
  State st = kRunnable;
  Coords coords{};
  int lane = 0, warp = 0, index = 0;
  const char* file = nullptr;  // where it waits
  int line = 0;
  // warp collective request / result
  uint64_t value = 0, result = 0;
  int arg = 0, width = 32;
  void* req = nullptr;
#ifdef ITOOL_EMU_ASAN
  void* fake = nullptr;
#endif
};

struct WarpState {
  unsigned exists = 0;   // lanes that exist in this block
  unsigned arrived = 0;  // lanes waiting at the pending collective
  unsigned mask = 0;
  int kind = -1;
  const char* what = nullptr;
  WarpExec exec = nullptr;
  const char* file = nullptr;
  int line = 0;
};

struct Block {
  const char* kernel = nullptr;
  std::vector<Fiber*> threads;
  std::vector<WarpState> warps;
  int n = 0, done = 0, at_bar = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  int bar_kind = -1, bar_acc = 0;
  bool aborted = false;
  void* smem = nullptr;
  size_t smem_bytes = 0;
};

struct Sched {
  void* sp = nullptr;  // the scheduler's saved stack pointer
  Fiber* cur = nullptr;
  Block* blk = nullptr;
  ThreadEntry entry = nullptr;
  void* ctx = nullptr;
  std::vector<Fiber*> pool;
#ifdef ITOOL_EMU_ASAN
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
#endif
};
thread_local Sched t_s;

// Runs on the fiber's own stack.
void fiber_main(void*);

void prepare(Fiber* f) {
  if (!f->mem) {
    void* m = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
      fprintf(stderr, "itool CUDA emulator: cannot map a fiber stack\n");
      std::abort();
    }
    mprotect(m, kGuardBytes, PROT_NONE);  // overflow faults instead of corrupting
    f->mem = static_cast<char*>(m);
  }
  uintptr_t top = reinterpret_cast<uintptr_t>(f->mem + kGuardBytes + kStackBytes) & ~uintptr_t(15);
  uint64_t* sp = reinterpret_cast<uint64_t*>(top - 80);
  uint32_t mx;
  uint16_t cw;
  asm volatile("stmxcsr %0" : "=m"(mx));
  asm volatile("fnstcw %0" : "=m"(cw));
  sp[0] = mx | (static_cast<uint64_t>(cw) << 32);
  sp[1] = 0;                                             // r15
  sp[2] = 0;                                             // r14
  sp[3] = reinterpret_cast<uint64_t>(&fiber_main);       // r13
  sp[4] = reinterpret_cast<uint64_t>(f);                 // r12
  sp[5] = 0;                                             // rbx
  sp[6] = 0;                                             // rbp
  sp[7] = reinterpret_cast<uint64_t>(&itool_emu_trampoline);
  f->sp = sp;
  f->started = false;
}

// scheduler -> fiber
void run_fiber(Fiber* f) {
  t_s.cur = f;
  t_coords = &f->coords;
#ifdef ITOOL_EMU_ASAN
  __sanitizer_start_switch_fiber(nullptr, f->mem + kGuardBytes, kStackBytes);
#endif
  itool_emu_switch(&t_s.sp, f->sp);
#ifdef ITOOL_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  t_s.cur = nullptr;
  t_coords = nullptr;
}
// fiber -> scheduler; returns when the scheduler runs this fiber again
void yield_to_scheduler(bool finished) {
  Fiber* f = t_s.cur;
#ifdef ITOOL_EMU_ASAN
  __sanitizer_start_switch_fiber(finished ? nullptr : &f->fake, t_s.sched_bottom, t_s.sched_size);
#endif
  itool_emu_switch(&f->sp, t_s.sp);
#ifdef ITOOL_EMU_ASAN
  __sanitizer_finish_switch_fiber(f->fake, nullptr, nullptr);
#endif
  (void)finished;
}

void fiber_main(void* p) {
  Fiber* f = static_cast<Fiber*>(p);
#ifdef ITOOL_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &t_s.sched_bottom, &t_s.sched_size);
#endif
  t_s.entry(t_s.ctx);
  f->st = kDone;
  t_s.blk->done++;
  yield_to_scheduler(true);
  std::abort();  // never resumed
}

std::string where(const Fiber* f) {
  char buf[160];
  if (!f) return "";
  const Coords& c = f->coords;
  snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u)", c.blockIdx.x, c.blockIdx.y, c.blockIdx.z,
           c.threadIdx.x, c.threadIdx.y, c.threadIdx.z);
  return buf;
}

const char* kind_name(int k) {
  switch (k) {
    case kSyncwarp: return "__syncwarp";
    case kShflIdx: return "__shfl_sync";
    case kShflXor: return "__shfl_xor_sync";
    case kShflUp: return "__shfl_up_sync";
    case kShflDown: return "__shfl_down_sync";
    case kBallot: return "__ballot_sync";
    case kAny: return "__any_sync";
    case kAll: return "__all_sync";
    case kWmmaLoad: return "wmma::load_matrix_sync";
    case kWmmaStore: return "wmma::store_matrix_sync";
    case kWmmaMma: return "wmma::mma_sync";
  }
  return "warp collective";
}

// Records a kernel fault for the current block and stops it.
void block_error(cudaError_t code, const std::string& msg, const Fiber* who) {
  Block* b = t_s.blk;
  if (b && !b->aborted) {
    b->aborted = true;
    set_error(code, std::string(b->kernel) + ": " + (who ? where(who) + ": " : std::string()) + msg, true);
  }
}

const char* short_file(const char* f) {
  if (!f) return "?";
  const char* s = std::strstr(f, "native/cuda/");
  return s ? s + 12 : f;
}

// All lanes in the warp's mask have arrived: compute each lane's result.
void resolve_warp(WarpState& w, int wi) {
  Block* b = t_s.blk;
  Fiber* lanes[32] = {};
  for (int l = 0; l < 32; ++l)
    if (w.mask >> l & 1u) lanes[l] = b->threads[wi * 32 + l];
  if (w.exec) {
    void* reqs[32] = {};
    for (int l = 0; l < 32; ++l)
      if (lanes[l]) reqs[l] = lanes[l]->req;
    w.exec(reqs);
  } else {
    uint64_t ballot = 0;
    for (int l = 0; l < 32; ++l)
      if (lanes[l] && lanes[l]->value) ballot |= 1ull << l;
    for (int l = 0; l < 32; ++l) {
      Fiber* f = lanes[l];
      if (!f) continue;
      const int width = f->width;
      if (w.kind >= kShflIdx && w.kind <= kShflDown && (width <= 0 || width > 32 || (width & (width - 1)))) {
        block_error(cudaErrorIllegalInstruction, std::string(kind_name(w.kind)) + ": width must be a power of two <= 32", f);
        return;
      }
      const int base = l & ~(width - 1), pos = l & (width - 1);
      int src = l;
      switch (w.kind) {
        case kShflIdx: src = base + (f->arg & (width - 1)); break;
        case kShflXor: src = l ^ f->arg; if (src >= base + width || src < base) src = l; break;
        case kShflUp: src = pos >= f->arg ? l - f->arg : l; break;
        case kShflDown: src = pos + f->arg < width ? l + f->arg : l; break;
        default: break;
      }
      switch (w.kind) {
        case kSyncwarp: f->result = 0; break;
        case kBallot: f->result = ballot; break;
        case kAny: f->result = ballot != 0; break;
        case kAll: f->result = (ballot & w.mask) == w.mask; break;
        default:
          if (src < 0 || src > 31 || !lanes[src]) {
            char buf[200];
            snprintf(buf, sizeof buf, "%s at %s:%d: lane %d reads lane %d, which is not in the mask 0x%08x",
                     kind_name(w.kind), short_file(w.file), w.line, l, src, w.mask);
            block_error(cudaErrorIllegalInstruction, buf, f);
            return;
          }
          f->result = lanes[src]->value;
      }
    }
  }
  for (int l = 0; l < 32; ++l)
    if (lanes[l]) lanes[l]->st = kRunnable;
  w.arrived = 0;
  w.mask = 0;
  w.kind = -1;
  w.exec = nullptr;
}

// A lane arrives at a warp collective; returns when it is resolved.
void arrive_warp(int kind, const char* what, unsigned mask, WarpExec exec, const char* file, int line) {
  Fiber* f = t_s.cur;
  Block* b = t_s.blk;
  if (!f || !b) {
    fprintf(stderr, "itool CUDA emulator: %s called outside a kernel\n", what);
    std::abort();
  }
  WarpState& w = b->warps[f->warp];
  char buf[320];
  if (!(mask >> f->lane & 1u)) {
    snprintf(buf, sizeof buf, "%s at %s:%d: the mask 0x%08x does not include the calling lane %d", what, short_file(file),
             line, mask, f->lane);
    fail(cudaErrorIllegalInstruction, "%s", buf);
  }
  if (mask & ~w.exists) {
    snprintf(buf, sizeof buf,
             "%s at %s:%d: the mask 0x%08x names lanes that do not exist (warp %d of a %d-thread block has lanes 0x%08x)",
             what, short_file(file), line, mask, f->warp, b->n, w.exists);
    fail(cudaErrorIllegalInstruction, "%s", buf);
  }
  if (w.arrived) {
    if (w.mask != mask || w.kind != kind) {
      snprintf(buf, sizeof buf,
               "lanes of warp %d are at different warp collectives: %s at %s:%d with mask 0x%08x, and lane %d at %s at "
               "%s:%d with mask 0x%08x",
               f->warp, kind_name(w.kind), short_file(w.file), w.line, w.mask, f->lane, what, short_file(file), line, mask);
      fail(cudaErrorIllegalInstruction, "%s", buf);
    }
  } else {
    w.mask = mask;
    w.kind = kind;
    w.what = what;
    w.exec = exec;
    w.file = file;
    w.line = line;
  }
  for (int l = 0; l < 32; ++l)
    if ((mask >> l & 1u) && b->threads[f->warp * 32 + l]->st == kDone) {
      snprintf(buf, sizeof buf, "%s at %s:%d: the mask 0x%08x names lane %d, which has exited", what, short_file(file),
               line, mask, l);
      fail(cudaErrorIllegalInstruction, "%s", buf);
    }
  w.arrived |= 1u << f->lane;
  f->st = kAtWarp;
  f->file = file;
  f->line = line;
  if (w.arrived == mask) {
    resolve_warp(w, f->warp);
    if (b->aborted) yield_to_scheduler(false);
    return;
  }
  yield_to_scheduler(false);
}

void release_barrier(Block* b) {
  for (Fiber* t : b->threads)
    if (t->st == kAtBarrier) t->st = kRunnable;
  b->at_bar = 0;
  b->bar_file = nullptr;
}

int arrive_barrier(int kind, int pred, const char* file, int line) {
  Fiber* f = t_s.cur;
  Block* b = t_s.blk;
  if (!f || !b) {
    fprintf(stderr, "itool CUDA emulator: __syncthreads called outside a kernel\n");
    std::abort();
  }
  if (b->at_bar == 0) {
    b->bar_file = file;
    b->bar_line = line;
    b->bar_kind = kind;
    b->bar_acc = kind == 1 ? 1 : 0;
  } else if (b->bar_line != line || std::strcmp(b->bar_file, file) != 0 || b->bar_kind != kind) {
    fail(cudaErrorIllegalInstruction,
         "threads of the block wait at different barriers: this thread at %s:%d, others at %s:%d",
         short_file(file), line, short_file(b->bar_file), b->bar_line);
  }
  switch (kind) {
    case 0: b->bar_acc += pred != 0; break;
    case 1: b->bar_acc &= pred != 0; break;
    case 2: b->bar_acc |= pred != 0; break;
    default: break;
  }
  f->st = kAtBarrier;
  f->file = file;
  f->line = line;
  b->at_bar++;
  int result = 0;
  if (b->at_bar == b->n) {
    result = b->bar_acc;
    for (Fiber* t : b->threads) t->result = static_cast<uint64_t>(result);
    release_barrier(b);
    return result;
  }
  yield_to_scheduler(false);
  return static_cast<int>(f->result);
}

// Nothing can run and not every thread has exited: say why.
void deadlock(Block* b) {
  char buf[400];
  for (size_t wi = 0; wi < b->warps.size(); ++wi) {
    WarpState& w = b->warps[wi];
    if (!w.arrived) continue;
    for (int l = 0; l < 32; ++l) {
      if (!(w.mask >> l & 1u) || (w.arrived >> l & 1u)) continue;
      Fiber* t = b->threads[wi * 32 + l];
      Fiber* waiter = b->threads[wi * 32 + __builtin_ctz(w.arrived)];
      if (t->st == kDone)
        snprintf(buf, sizeof buf, "%s at %s:%d: the mask 0x%08x names lane %d, which has exited", kind_name(w.kind),
                 short_file(w.file), w.line, w.mask, l);
      else
        snprintf(buf, sizeof buf, "%s at %s:%d: the mask 0x%08x names lane %d, which waits at %s:%d instead",
                 kind_name(w.kind), short_file(w.file), w.line, w.mask, l, short_file(t->file), t->line);
      block_error(cudaErrorIllegalInstruction, buf, waiter);
      return;
    }
  }
  if (b->at_bar > 0) {
    Fiber* waiter = nullptr;
    Fiber* gone = nullptr;
    for (Fiber* t : b->threads) {
      if (!waiter && t->st == kAtBarrier) waiter = t;
      if (!gone && t->st != kAtBarrier) gone = t;
    }
    snprintf(buf, sizeof buf,
             "__syncthreads at %s:%d is not reached by all threads of the block: %d of %d wait there, thread (%u,%u,%u) %s",
             short_file(b->bar_file), b->bar_line, b->at_bar, b->n, gone ? gone->coords.threadIdx.x : 0,
             gone ? gone->coords.threadIdx.y : 0, gone ? gone->coords.threadIdx.z : 0,
             gone && gone->st == kDone ? "has exited" : "waits elsewhere");
    block_error(cudaErrorIllegalInstruction, buf, waiter);
    return;
  }
  block_error(cudaErrorIllegalInstruction, "threads cannot make progress", nullptr);
}

std::mutex g_launch_mu;  // one kernel at a time (static shared memory is per kernel)
thread_local const char* t_kernel = nullptr;

#ifdef ITOOL_EMU_ASAN
// A sanitizer report (out-of-bounds access, misaligned vector access) ends the process:
// say which kernel and thread made it.
void on_death() {
  if (t_kernel && t_s.cur)
    fprintf(stderr, "itool CUDA emulator: the report above comes from kernel %s, %s\n", t_kernel, where(t_s.cur).c_str());
  else if (t_kernel)
    fprintf(stderr, "itool CUDA emulator: the report above comes from kernel %s\n", t_kernel);
}
struct DeathHook {
  DeathHook() { __sanitizer_set_death_callback(&on_death); }
} g_death_hook;
#endif

std::string dim_str(dim3 d) {
  char buf[64];
  snprintf(buf, sizeof buf, "(%u,%u,%u)", d.x, d.y, d.z);
  return buf;
}

}  // namespace

void fail(cudaError_t code, const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  block_error(code, buf, t_s.cur);
  if (t_s.cur) {
    for (;;) yield_to_scheduler(false);  // an aborted block is never resumed
  }
  fprintf(stderr, "itool CUDA emulator: %s (outside a kernel)\n", buf);
  std::abort();
}

void syncthreads(const char* file, int line) { arrive_barrier(3, 0, file, line); }
int syncthreads_pred(int kind, int pred, const char* file, int line) { return arrive_barrier(kind, pred, file, line); }

uint64_t warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file, int line) {
  Fiber* f = t_s.cur;
  if (f) {
    f->value = value;
    f->arg = arg;
    f->width = width;
    f->req = nullptr;
  }
  arrive_warp(kind, kind_name(kind), mask, nullptr, file, line);
  return t_s.cur->result;
}

void warp_uniform(int kind, const char* what, void* req, WarpExec exec, const char* file, int line) {
  Fiber* f = t_s.cur;
  if (f) f->req = req;
  arrive_warp(kind, what, 0xffffffffu, exec, file, line);
}

void* dynamic_smem() { return t_s.blk ? t_s.blk->smem : nullptr; }

unsigned active_mask() {
  Fiber* f = t_s.cur;
  Block* b = t_s.blk;
  if (!f || !b) return 0;
  unsigned m = 0;
  for (int l = 0; l < 32; ++l)
    if ((b->warps[f->warp].exists >> l & 1u) && b->threads[f->warp * 32 + l]->st != kDone) m |= 1u << l;
  return m;
}

cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > kOptinSmem) {
      return set_error(cudaErrorInvalidValue,
                       "cudaFuncSetAttribute: MaxDynamicSharedMemorySize " + std::to_string(value) +
                           " is above the device's 232448 bytes (227 KB)",
                       false);
    }
    std::lock_guard<std::mutex> lk(g_attr_mu);
    g_max_dyn_smem[fn] = value;
  }
  return cudaSuccess;
}

void launch(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s, ThreadEntry entry,
            void* ctx) {
  const std::string k = std::string("kernel ") + name;
  const uint64_t nthreads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    set_error(cudaErrorInvalidConfiguration, name + std::string(": block ") + dim_str(block) +
                                                 " is outside the device's limits (at most 1024 threads, z <= 64)", false);
    return;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    set_error(cudaErrorInvalidConfiguration,
              name + std::string(": grid ") + dim_str(grid) + " is outside the device's limits (x < 2^31, y and z <= 65535)",
              false);
    return;
  }
  size_t allowed = kDefaultDynSmem;
  {
    std::lock_guard<std::mutex> lk(g_attr_mu);
    auto it = g_max_dyn_smem.find(fn);
    if (it != g_max_dyn_smem.end()) allowed = static_cast<size_t>(it->second);
  }
  if (smem > kOptinSmem || smem > allowed) {
    set_error(cudaErrorInvalidValue,
              name + std::string(": ") + std::to_string(smem) + " bytes of dynamic shared memory asked, " +
                  (smem > kOptinSmem ? std::string("the device has at most 232448 (227 KB) per block")
                                     : "the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize allows " +
                                           std::to_string(allowed)),
              false);
    return;
  }
  if (!valid_stream(s)) {
    set_error(cudaErrorInvalidResourceHandle, name + std::string(": launched on a stream that does not exist"), false);
    return;
  }
  {
    std::lock_guard<std::mutex> lk(g_err_mu);
    if (g_pending != cudaSuccess) return;  // the context already faulted: nothing more runs
  }

  std::lock_guard<std::mutex> lk(g_launch_mu);
  const char* prev_kernel = t_kernel;
  t_kernel = name;
  Sched& S = t_s;
  const int n = static_cast<int>(nthreads);
  while (static_cast<int>(S.pool.size()) < n) S.pool.push_back(new Fiber());
  Block b;
  b.kernel = name;
  b.n = n;
  b.threads.assign(S.pool.begin(), S.pool.begin() + n);
  b.warps.assign((n + 31) / 32, WarpState{});
  for (int i = 0; i < n; ++i) b.warps[i / 32].exists |= 1u << (i % 32);
  b.smem_bytes = smem;
  S.blk = &b;
  S.entry = entry;
  S.ctx = ctx;
  bool stop = false;
  for (unsigned bz = 0; bz < grid.z && !stop; ++bz)
    for (unsigned by = 0; by < grid.y && !stop; ++by)
      for (unsigned bx = 0; bx < grid.x && !stop; ++bx) {
        if (smem) {
          b.smem = std::malloc(smem);  // exactly sized: ASan sees accesses past its end
          std::memset(b.smem, 0xff, smem);  // uninitialised shared memory reads as NaN
        } else {
          b.smem = std::malloc(1);  // any access through the extern array is out of bounds
        }
        b.done = 0;
        b.at_bar = 0;
        b.aborted = false;
        for (auto& w : b.warps) { w.arrived = 0; w.mask = 0; w.kind = -1; w.exec = nullptr; }
        for (int i = 0; i < n; ++i) {
          Fiber* f = b.threads[i];
          prepare(f);
          f->st = kRunnable;
          f->index = i;
          f->lane = i % 32;
          f->warp = i / 32;
          f->coords.threadIdx = uint3{static_cast<unsigned>(i) % block.x, (static_cast<unsigned>(i) / block.x) % block.y,
                                      static_cast<unsigned>(i) / (block.x * block.y)};
          f->coords.blockIdx = uint3{bx, by, bz};
          f->coords.blockDim = block;
          f->coords.gridDim = grid;
        }
        for (;;) {
          bool progress = false;
          for (int i = 0; i < n && !b.aborted; ++i) {
            Fiber* f = b.threads[i];
            if (f->st != kRunnable) continue;
            run_fiber(f);
            progress = true;
          }
          if (b.aborted || b.done == n) break;
          if (!progress) {
            deadlock(&b);
            break;
          }
        }
        std::free(b.smem);
        b.smem = nullptr;
        if (b.aborted) {
#ifdef ITOOL_EMU_ASAN
          // abandoned fiber stacks keep their frames' poison: clear it before reuse
          for (Fiber* f : b.threads) __asan_unpoison_memory_region(f->mem + kGuardBytes, kStackBytes);
#endif
          stop = true;
        }
      }
  S.blk = nullptr;
  t_kernel = prev_kernel;
}

}  // namespace itool_emu

// ---------------------------------------------------------------- runtime API
using namespace itool_emu;

cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> lk(g_err_mu);
  cudaError_t e = g_last;
  g_last = cudaSuccess;
  if (e == g_pending) g_pending = cudaSuccess;  // a fault is reported once
  return e;
}
cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::mutex> lk(g_err_mu);
  return g_last;
}
const char* cudaGetErrorString(cudaError_t e) {
  std::lock_guard<std::mutex> lk(g_err_mu);
  auto it = g_detail.find(e);
  return it != g_detail.end() ? it->second.c_str() : base_string(e);
}
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorMisalignedAddress: return "cudaErrorMisalignedAddress";
    case cudaErrorIllegalInstruction: return "cudaErrorIllegalInstruction";
    default: return "cudaError";
  }
}
cudaError_t cudaRuntimeGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaDriverGetVersion(int* v) { *v = 13000; return cudaSuccess; }
cudaError_t cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
cudaError_t cudaSetDevice(int d) {
  if (d != 0) return set_error(cudaErrorInvalidDevice, "cudaSetDevice: the emulator has one device (0)", false);
  g_device = d;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* d) { *d = g_device; return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d) {
  if (d != 0) return set_error(cudaErrorInvalidDevice, "cudaGetDeviceProperties: the emulator has one device (0)", false);
  std::memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "itool CUDA emulator (sm_90)");
  p->totalGlobalMem = device_bytes();
  p->sharedMemPerBlock = kDefaultDynSmem;
  p->sharedMemPerBlockOptin = kOptinSmem;
  p->sharedMemPerMultiprocessor = 228 * 1024;
  p->regsPerBlock = 65536;
  p->warpSize = 32;
  p->maxThreadsPerBlock = 1024;
  p->maxThreadsDim[0] = 1024; p->maxThreadsDim[1] = 1024; p->maxThreadsDim[2] = 64;
  p->maxGridSize[0] = 2147483647; p->maxGridSize[1] = 65535; p->maxGridSize[2] = 65535;
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->maxThreadsPerMultiProcessor = 2048;
  p->l2CacheSize = 50 << 20;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d) {
  if (d != 0) return set_error(cudaErrorInvalidDevice, "cudaDeviceGetAttribute: the emulator has one device (0)", false);
  switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = static_cast<int>(kDefaultDynSmem); break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = 132; break;
    case cudaDevAttrComputeCapabilityMajor: *v = 9; break;
    case cudaDevAttrComputeCapabilityMinor: *v = 0; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = static_cast<int>(kOptinSmem); break;
    default: return set_error(cudaErrorInvalidValue, "cudaDeviceGetAttribute: attribute not emulated", false);
  }
  return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return take_pending(); }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  std::lock_guard<std::mutex> lk(g_mem_mu);
  *total_bytes = device_bytes();
  *free_bytes = device_bytes() - g_in_use;
  return cudaSuccess;
}
cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    if (bytes > device_bytes() - g_in_use)
      return set_error(cudaErrorMemoryAllocation,
                       "cudaMalloc of " + std::to_string(bytes) + " bytes: the emulated device has " +
                           std::to_string(device_bytes() - g_in_use) + " free (ITOOL_CUDA_EMU_MEMORY_MB)",
                       false);
  }
  void* m = std::malloc(bytes ? bytes : 1);
  if (!m) return set_error(cudaErrorMemoryAllocation, "cudaMalloc: host malloc failed", false);
  std::memset(m, 0xa5, bytes);  // device memory starts as garbage, not zeros
  std::lock_guard<std::mutex> lk(g_mem_mu);
  g_allocs[reinterpret_cast<uintptr_t>(m)] = bytes;
  g_in_use += bytes;
  *p = m;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lk(g_mem_mu);
    auto it = g_allocs.find(reinterpret_cast<uintptr_t>(p));
    if (it == g_allocs.end())
      return set_error(cudaErrorInvalidValue, "cudaFree: pointer was not returned by cudaMalloc", false);
    g_in_use -= it->second;
    g_allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
  if (cudaError_t e = take_pending()) return e;
  if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemcpyAsync: no such stream", false);
  if (!bytes) return cudaSuccess;
  if (kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice)
    if (cudaError_t e = check_range("cudaMemcpy", "source", src, bytes)) return e;
  if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice)
    if (cudaError_t e = check_range("cudaMemcpy", "destination", dst, bytes)) return e;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind, nullptr);
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t s) {
  if (cudaError_t e = take_pending()) return e;
  if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaMemsetAsync: no such stream", false);
  if (!bytes) return cudaSuccess;
  if (cudaError_t e = check_range("cudaMemset", "destination", p, bytes)) return e;
  std::memset(p, v, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemset(void* p, int v, size_t bytes) { return cudaMemsetAsync(p, v, bytes, nullptr); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags) {
  Stream* x = new Stream{flags};
  std::lock_guard<std::mutex> lk(g_stream_mu);
  g_streams.push_back(x);
  *s = reinterpret_cast<cudaStream_t>(x);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  std::lock_guard<std::mutex> lk(g_stream_mu);
  for (size_t i = 0; i < g_streams.size(); ++i)
    if (reinterpret_cast<cudaStream_t>(g_streams[i]) == s) {
      delete g_streams[i];
      g_streams.erase(g_streams.begin() + i);
      return cudaSuccess;
    }
  return set_error(cudaErrorInvalidResourceHandle, "cudaStreamDestroy: no such stream", false);
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  if (!valid_stream(s)) return set_error(cudaErrorInvalidResourceHandle, "cudaStreamSynchronize: no such stream", false);
  return take_pending();
}
struct itool_emu_event {
  double t = 0;
};
cudaError_t cudaEventCreate(cudaEvent_t* e) { *e = new itool_emu_event(); return cudaSuccess; }
cudaError_t cudaEventDestroy(cudaEvent_t e) { delete e; return cudaSuccess; }
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) { e->t = 0; return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return take_pending(); }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  *ms = static_cast<float>(b->t - a->t);  // the emulator measures no device time
  return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
