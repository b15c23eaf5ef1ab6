// itool CUDA emulator: the block scheduler. A launch runs its blocks one after another;
// a block's threads are fibers (run in index order, each until it waits at a barrier or
// a warp collective or exits), and a barrier or collective is resolved by the last
// participant to arrive. See cuda_emu.h.
#define ITOOL_EMU_RUNTIME 1
#include "emu_internal.h"

#include <dlfcn.h>
#include <sys/mman.h>
#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

// ITOOL_EMU_ASAN (set by CMake in sanitizer builds): this file itself is compiled without
// instrumentation (it is the scheduler, on every switch), but tells ASan about the fiber
// stacks and names the kernel in sanitizer reports.
#if defined(__SANITIZE_ADDRESS__) && !defined(ITOOL_EMU_ASAN)
#define ITOOL_EMU_ASAN 1
#endif
#ifdef ITOOL_EMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
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

const Coords* g_coords = nullptr;

namespace {

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
  int pos = 0;  // place in the block's run order
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
  unsigned done = 0;     // lanes that have exited
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
  std::vector<Fiber*> order;  // run order: thread index order, or reversed (ITOOL_CUDA_EMU_ORDER)
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
  bool progress = false;  // some fiber ran in this pass
#ifdef ITOOL_EMU_ASAN
  bool from_sched = false;  // the switch under way started on the scheduler's stack
  const void* sched_bottom = nullptr;
  size_t sched_size = 0;
#endif
};
Sched g_s;  // one launch at a time (g_launch_mu)

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

#ifdef ITOOL_EMU_ASAN
// On a fiber, after a switch: learn the scheduler's stack when the switch came from it.
void finish_switch(void* fake) {
  const void* bottom = nullptr;
  size_t size = 0;
  __sanitizer_finish_switch_fiber(fake, &bottom, &size);
  if (g_s.from_sched) {
    g_s.sched_bottom = bottom;
    g_s.sched_size = size;
  }
}
#endif

// scheduler -> fiber (the fiber may hand on to later fibers of the pass directly)
void run_fiber(Fiber* f) {
  g_s.cur = f;
  g_coords = &f->coords;
#ifdef ITOOL_EMU_ASAN
  g_s.from_sched = true;
  __sanitizer_start_switch_fiber(nullptr, f->mem + kGuardBytes, kStackBytes);
#endif
  itool_emu_switch(&g_s.sp, f->sp);
#ifdef ITOOL_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  g_s.cur = nullptr;
  g_coords = nullptr;
}

// The running fiber stops (waits, or has `finished`): switch straight to the next
// runnable fiber of this pass, or back to the scheduler when there is none. Returns
// when this fiber is run again.
void yield_to_scheduler(bool finished) {
  Fiber* f = g_s.cur;
  Block* b = g_s.blk;
  Fiber* next = nullptr;
  if (!b->aborted)
    for (int j = f->pos + 1; j < b->n; ++j)
      if (b->order[j]->st == kRunnable) {
        next = b->order[j];
        break;
      }
  void* to;
  if (next) {
    g_s.progress = true;
    g_s.cur = next;
    g_coords = &next->coords;
    to = next->sp;
#ifdef ITOOL_EMU_ASAN
    g_s.from_sched = false;
    __sanitizer_start_switch_fiber(finished ? nullptr : &f->fake, next->mem + kGuardBytes, kStackBytes);
#endif
  } else {
    to = g_s.sp;
#ifdef ITOOL_EMU_ASAN
    __sanitizer_start_switch_fiber(finished ? nullptr : &f->fake, g_s.sched_bottom, g_s.sched_size);
#endif
  }
  itool_emu_switch(&f->sp, to);
#ifdef ITOOL_EMU_ASAN
  finish_switch(f->fake);
#endif
  (void)finished;
}

void fiber_main(void* p) {
  Fiber* f = static_cast<Fiber*>(p);
#ifdef ITOOL_EMU_ASAN
  finish_switch(nullptr);
#endif
  g_s.entry(g_s.ctx);
  f->st = kDone;
  g_s.blk->done++;
  g_s.blk->warps[f->warp].done |= 1u << f->lane;
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
  Block* b = g_s.blk;
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
  Block* b = g_s.blk;
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
  Fiber* f = g_s.cur;
  Block* b = g_s.blk;
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
  if (mask & w.done) {
    snprintf(buf, sizeof buf, "%s at %s:%d: the mask 0x%08x names lane %d, which has exited", what, short_file(file),
             line, mask, __builtin_ctz(mask & w.done));
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
  Fiber* f = g_s.cur;
  Block* b = g_s.blk;
  if (!f || !b) {
    fprintf(stderr, "itool CUDA emulator: __syncthreads called outside a kernel\n");
    std::abort();
  }
  if (b->at_bar == 0) {
    b->bar_file = file;
    b->bar_line = line;
    b->bar_kind = kind;
    b->bar_acc = kind == 1 ? 1 : 0;
  } else if (b->bar_line != line || (b->bar_file != file && std::strcmp(b->bar_file, file) != 0) || b->bar_kind != kind) {
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
const char* g_kernel = nullptr;

#ifdef ITOOL_EMU_ASAN
// A sanitizer report (out-of-bounds access, misaligned vector access) ends the process:
// say which kernel and thread made it.
void on_death() {
  if (g_kernel && g_s.cur)
    fprintf(stderr, "itool CUDA emulator: the report above comes from kernel %s, %s\n", g_kernel, where(g_s.cur).c_str());
  else if (g_kernel)
    fprintf(stderr, "itool CUDA emulator: the report above comes from kernel %s\n", g_kernel);
}
struct DeathHook {
  DeathHook() {
    __sanitizer_set_death_callback(&on_death);
    // UBSan reports (a misaligned uint4, an index past a static shared array) die through
    // libubsan's own copy of the callback registry
    if (void* h = dlopen("libubsan.so.1", RTLD_LAZY | RTLD_NOLOAD)) {
      using SetCb = void (*)(void (*)());
      if (auto f = reinterpret_cast<SetCb>(dlsym(h, "__sanitizer_set_death_callback"))) f(&on_death);
    }
  }
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
  block_error(code, buf, g_s.cur);
  if (g_s.cur) {
    for (;;) yield_to_scheduler(false);  // an aborted block is never resumed
  }
  fprintf(stderr, "itool CUDA emulator: %s (outside a kernel)\n", buf);
  std::abort();
}

void syncthreads(const char* file, int line) { arrive_barrier(3, 0, file, line); }
int syncthreads_pred(int kind, int pred, const char* file, int line) { return arrive_barrier(kind, pred, file, line); }

uint64_t warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file, int line) {
  Fiber* f = g_s.cur;
  if (f) {
    f->value = value;
    f->arg = arg;
    f->width = width;
    f->req = nullptr;
  }
  arrive_warp(kind, kind_name(kind), mask, nullptr, file, line);
  return g_s.cur->result;
}

void warp_uniform(int kind, const char* what, void* req, WarpExec exec, const char* file, int line) {
  Fiber* f = g_s.cur;
  if (f) f->req = req;
  arrive_warp(kind, what, 0xffffffffu, exec, file, line);
}

void* dynamic_smem() { return g_s.blk ? g_s.blk->smem : nullptr; }

unsigned active_mask() {
  Fiber* f = g_s.cur;
  Block* b = g_s.blk;
  if (!f || !b) return 0;
  unsigned m = 0;
  for (int l = 0; l < 32; ++l)
    if ((b->warps[f->warp].exists >> l & 1u) && b->threads[f->warp * 32 + l]->st != kDone) m |= 1u << l;
  return m;
}

void launch(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s, ThreadEntry entry,
            void* ctx) {
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
  const size_t allowed = max_dynamic_smem(fn);
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
  if (fault_pending()) return;  // the context already faulted: nothing more runs

  std::lock_guard<std::mutex> lk(g_launch_mu);
  const char* prev_kernel = g_kernel;
  g_kernel = name;
  Sched& S = g_s;
  const int n = static_cast<int>(nthreads);
  while (static_cast<int>(S.pool.size()) < n) S.pool.push_back(new Fiber());
  Block b;
  b.kernel = name;
  b.n = n;
  b.threads.assign(S.pool.begin(), S.pool.begin() + n);
  // ITOOL_CUDA_EMU_ORDER=reverse runs the threads of a block (and the lanes of a warp) last
  // first: a kernel whose result depends on the order of threads between two barriers or
  // warp collectives (a shared-memory race, warp-synchronous code without __syncwarp) then
  // gives a different result than in index order
  static const bool reverse = [] {
    const char* e = std::getenv("ITOOL_CUDA_EMU_ORDER");
    return e && std::strcmp(e, "reverse") == 0;
  }();
  b.order.assign(b.threads.begin(), b.threads.end());
  if (reverse) std::reverse(b.order.begin(), b.order.end());
  for (int i = 0; i < n; ++i) b.order[i]->pos = i;
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
        for (auto& w : b.warps) { w.arrived = 0; w.done = 0; w.mask = 0; w.kind = -1; w.exec = nullptr; }
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
          // one pass: the first runnable fiber runs, and each hands on to the next
          S.progress = false;
          for (int i = 0; i < n; ++i)
            if (b.order[i]->st == kRunnable) {
              S.progress = true;
              run_fiber(b.order[i]);
              break;
            }
          if (b.aborted || b.done == n) break;
          if (!S.progress) {
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
  g_kernel = prev_kernel;
}

}  // namespace itool_emu

