// The engine's own thread pool: persistent workers, static contiguous partitioning
// so that results are bitwise identical for a given thread count.
// Size: ITOOL_THREADS if set, else the number of online cores.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace itool {

class ThreadPool {
 public:
  explicit ThreadPool(int nthreads);
  ~ThreadPool();
  int size() const { return nthreads_; }
  // Runs fn(tid, nthreads) on every thread (the caller is thread 0) and waits.
  void run(const std::function<void(int, int)>& fn);
  // Splits [0, n) into size() contiguous chunks (fewer when n is small or grain
  // large) and runs fn(begin, end) on each.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);
  static ThreadPool& global();
  static int default_threads();

 private:
  void worker(int tid);
  int nthreads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;
  uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
  std::mutex run_mu_;  // one job at a time
  // Mirrors of generation_ and pending_ that workers and the caller spin on for a few
  // microseconds before sleeping on the condition variables: a futex wake costs 15-30 us,
  // as much as a whole short GEMM. The mutex-protected fields stay authoritative.
  std::atomic<uint64_t> published_{0};
  std::atomic<int> remaining_{0};
};

}  // namespace itool
