// itool CUDA emulator: the fake runtime API (errors, device memory, streams, events,
// device properties of one sm_90-like device). Everything is synchronous: a launch has
// run to its end when ITOOL_LAUNCH returns (emu_sched.cpp).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>
#include "emu_internal.h"

namespace itool_emu {

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

}  // namespace

cudaError_t set_error(cudaError_t e, const std::string& msg, bool fault) {
  std::lock_guard<std::mutex> lk(g_err_mu);
  g_detail[e] = std::string(base_string(e)) + " [itool CUDA emulator: " + msg + "]";
  g_last = e;
  if (fault) g_pending = e;
  return e;
}
bool fault_pending() {
  std::lock_guard<std::mutex> lk(g_err_mu);
  return g_pending != cudaSuccess;
}

namespace {
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

}  // namespace

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

namespace {
std::mutex g_attr_mu;
std::unordered_map<const void*, int> g_max_dyn_smem;
int g_device = 0;
}  // namespace

size_t max_dynamic_smem(const void* fn) {
  std::lock_guard<std::mutex> lk(g_attr_mu);
  auto it = g_max_dyn_smem.find(fn);
  return it != g_max_dyn_smem.end() ? static_cast<size_t>(it->second) : kDefaultDynSmem;
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
