#include "threadpool.h"
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <string>

namespace itool {

namespace {
constexpr int kSpinIterations = 2048;  // roughly 20-100 us, by the pause instruction's cost

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A job that calls parallel_for from inside the pool runs the inner loop serially
// instead of deadlocking on run_mu_.
thread_local bool tl_inside_job = false;
struct InsideJob {
  bool prev;
  InsideJob() : prev(tl_inside_job) { tl_inside_job = true; }
  ~InsideJob() { tl_inside_job = prev; }
};
}  // namespace

int ThreadPool::default_threads() {
  if (const char* e = std::getenv("ITOOL_THREADS")) {
    char* end = nullptr;
    long v = std::strtol(e, &end, 10);
    if (end != e && *end == '\0' && v >= 1 && v <= 1024) return static_cast<int>(v);
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

ThreadPool& ThreadPool::global() {
  static ThreadPool pool(default_threads());
  return pool;
}

ThreadPool::ThreadPool(int nthreads) : nthreads_(std::max(1, nthreads)) {
  for (int t = 1; t < nthreads_; ++t) threads_.emplace_back([this, t] { worker(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& th : threads_) th.join();
}

void ThreadPool::worker(int tid) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int, int)>* job;
    for (int i = 0; i < kSpinIterations && published_.load(std::memory_order_acquire) == seen; ++i) cpu_relax();
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      job = job_;
    }
    {
      InsideJob guard;
      (*job)(tid, nthreads_);
    }
    {
      std::lock_guard<std::mutex> lk(mu_);
      remaining_.store(--pending_, std::memory_order_release);
      if (pending_ == 0) done_cv_.notify_one();
    }
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (nthreads_ == 1 || tl_inside_job) {
    InsideJob guard;
    for (int t = 0; t < nthreads_; ++t) fn(t, nthreads_);
    return;
  }
  std::lock_guard<std::mutex> run_lk(run_mu_);
  std::exception_ptr err;
  std::mutex err_mu;
  std::function<void(int, int)> wrapped = [&](int tid, int n) {
    try {
      fn(tid, n);
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_mu);
      if (!err) err = std::current_exception();
    }
  };
  {
    std::lock_guard<std::mutex> lk(mu_);
    job_ = &wrapped;
    pending_ = nthreads_ - 1;
    remaining_.store(pending_, std::memory_order_relaxed);
    ++generation_;
    published_.store(generation_, std::memory_order_release);
  }
  cv_.notify_all();
  {
    InsideJob guard;
    wrapped(0, nthreads_);
  }
  for (int i = 0; i < kSpinIterations && remaining_.load(std::memory_order_acquire) != 0; ++i) cpu_relax();
  {
    std::unique_lock<std::mutex> lk(mu_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = nullptr;
  }
  if (err) std::rethrow_exception(err);
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  int64_t chunks = std::min<int64_t>(nthreads_, (n + grain - 1) / grain);
  if (chunks <= 1) {
    fn(0, n);
    return;
  }
  run([&](int tid, int) {
    if (tid >= chunks) return;
    int64_t b = n * tid / chunks, e = n * (tid + 1) / chunks;
    if (b < e) fn(b, e);
  });
}

}  // namespace itool
