// itool CUDA emulator: the CUDA programming model on the CPU, for running the real
// native/cuda sources (kernels, launchers, CudaBackend) compiled as host C++ in CI.
// Test infrastructure, not an engine: each block's threads run as fibers on the calling
// OS thread, one block after another; warp collectives and barriers are resolved when
// every participant has arrived, and misuse (a barrier some threads never reach, a mask
// naming lanes that are not there, a bad wmma pointer or ldm, a launch the device would
// refuse) becomes a CUDA error naming the kernel, the block and the thread.
//
// This header stands in for cuda_runtime.h, cuda_bf16.h, cuda_fp16.h and mma.h (the files
// of the same names in this folder include it). The runtime lives in emu_runtime.cpp.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define ITOOL_CUDA_EMULATED 1

// ---------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict
// Static shared memory: one object per kernel, reused by each block in turn (blocks run
// one after another under the emulator's lock). ASan guards these like any global.
#define __shared__ static
// Dynamic shared memory (extern __shared__): an exactly sized heap block per block.
#define ITOOL_DYNAMIC_SMEM(type, name, align) type* name = static_cast<type*>(::itool_emu::dynamic_smem())
// Kernel launch: ITOOL_LAUNCH(kernel, grid, block, smem, stream)(args...)
#define ITOOL_LAUNCH(k, grid, block, smem, stream) \
  ::itool_emu::make_launch(&k, ::itool_emu::kernel_name<&k>(), grid, block, smem, stream)

// ---------------------------------------------------------------- vector types
struct uint3 { unsigned x, y, z; };
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1) : x(vx), y(vy), z(vz) {}
};
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
inline int2 make_int2(int x, int y) { return int2{x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return uint2{x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

// ---------------------------------------------------------------- bf16 / fp16
// Conversions round to nearest even, as cvt.rn does on the device; NaN becomes the
// canonical NaN (0x7fff) like the device's conversion.
struct __nv_bfloat16 {
  uint16_t __x;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f);  // round to nearest even
  operator float() const {
    uint32_t u = static_cast<uint32_t>(__x) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
};
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  __nv_bfloat16 r;
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    r.__x = 0x7fff;
    return r;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  r.__x = static_cast<uint16_t>(u >> 16);
  return r;
}
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline __nv_bfloat16::__nv_bfloat16(float f) : __x(__float2bfloat16_rn(f).__x) {}
inline float __bfloat162float(__nv_bfloat16 b) { return static_cast<float>(b); }
typedef __nv_bfloat16 nv_bfloat16;

struct __half {
  uint16_t __x;
  __half() = default;
  __half(float f) {
    _Float16 h = static_cast<_Float16>(f);  // round to nearest even
    std::memcpy(&__x, &h, 2);
  }
  operator float() const {
    _Float16 h;
    std::memcpy(&h, &__x, 2);
    return static_cast<float>(h);
  }
};
inline __half __float2half_rn(float f) { return __half(f); }
inline __half __float2half(float f) { return __half(f); }
inline float __half2float(__half h) { return static_cast<float>(h); }
typedef __half half;

// ---------------------------------------------------------------- math
// The device's fast intrinsics are computed with the exact library functions here: the
// emulator cannot show their approximation error.
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __log2f(float x) { return log2f(x); }
inline float __exp2f(float x) { return exp2f(x); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.f / x; }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
using std::isfinite;
using std::isinf;
using std::isnan;
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline constexpr std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B, class = std::enable_if_t<std::is_arithmetic<A>::value && std::is_arithmetic<B>::value>>
inline constexpr std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}
inline unsigned __float_as_uint(float x) { unsigned u; std::memcpy(&u, &x, 4); return u; }
inline float __uint_as_float(unsigned u) { float x; std::memcpy(&x, &u, 4); return x; }
inline int __float_as_int(float x) { int u; std::memcpy(&u, &x, 4); return u; }
inline float __int_as_float(int u) { float x; std::memcpy(&x, &u, 4); return x; }
inline long long __double_as_longlong(double x) { long long u; std::memcpy(&u, &x, 8); return u; }
inline double __longlong_as_double(long long u) { double x; std::memcpy(&x, &u, 8); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }

// ---------------------------------------------------------------- runtime API
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
  cudaErrorInvalidResourceHandle = 400,
  cudaErrorIllegalAddress = 700,
  cudaErrorLaunchOutOfResources = 701,
  cudaErrorIllegalInstruction = 715,
  cudaErrorMisalignedAddress = 716,
  cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;
typedef struct itool_emu_stream* cudaStream_t;
typedef struct itool_emu_event* cudaEvent_t;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8, cudaFuncAttributePreferredSharedMemoryCarveout = 9 };
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrWarpSize = 10,
  cudaDevAttrMultiProcessorCount = 16,
  cudaDevAttrComputeCapabilityMajor = 75,
  cudaDevAttrComputeCapabilityMinor = 76,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
#define cudaStreamDefault 0x0
#define cudaStreamNonBlocking 0x1
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  size_t sharedMemPerBlockOptin;
  size_t sharedMemPerMultiprocessor;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int major, minor;
  int multiProcessorCount;
  int maxThreadsPerMultiProcessor;
  int l2CacheSize;
};
// The cuBLAS data-type enum names exist in the real header set; the emulated build has no cuBLAS.
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t e);
const char* cudaGetErrorName(cudaError_t e);
cudaError_t cudaRuntimeGetVersion(int* v);
cudaError_t cudaDriverGetVersion(int* v);
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int* d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int d);
cudaError_t cudaDeviceGetAttribute(int* v, cudaDeviceAttr a, int d);
cudaError_t cudaDeviceSynchronize();
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
inline cudaError_t cudaMalloc(T** p, size_t bytes) { return cudaMalloc(reinterpret_cast<void**>(p), bytes); }
cudaError_t cudaFree(void* p);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* p, int v, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int v, size_t bytes, cudaStream_t s = nullptr);
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaEventCreate(cudaEvent_t* e);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);

namespace itool_emu {
cudaError_t func_set_attribute(const void* fn, cudaFuncAttribute attr, int value);
}
template <class F>
inline cudaError_t cudaFuncSetAttribute(F* fn, cudaFuncAttribute attr, int value) {
  return itool_emu::func_set_attribute(reinterpret_cast<const void*>(fn), attr, value);
}

// ---------------------------------------------------------------- execution model
namespace itool_emu {

struct Coords {
  uint3 threadIdx, blockIdx;
  dim3 blockDim, gridDim;
};
// The running thread's coordinates (one kernel runs at a time, under the emulator's lock).
extern const Coords* g_coords;

// Source location of a call (default arguments evaluate at the caller).
#define ITOOL_EMU_SITE const char *file = __builtin_FILE(), int line = __builtin_LINE()

void syncthreads(const char* file, int line);
int syncthreads_pred(int kind, int pred, const char* file, int line);  // kind 0 count, 1 and, 2 or
enum WarpKind : int { kSyncwarp, kShflIdx, kShflXor, kShflUp, kShflDown, kBallot, kAny, kAll, kWmmaLoad, kWmmaStore, kWmmaMma };
uint64_t warp_op(int kind, unsigned mask, uint64_t value, int arg, int width, const char* file, int line);
// A warp-uniform operation (wmma): `req` is this lane's request; the last lane to arrive
// runs `exec` once with every lane's request (lanes[i] null for lanes not taking part).
typedef void (*WarpExec)(void* const* lanes);
void warp_uniform(int kind, const char* what, void* req, WarpExec exec, const char* file, int line);
[[noreturn]] void fail(cudaError_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void* dynamic_smem();
unsigned active_mask();

// ---- launch
typedef void (*ThreadEntry)(void* ctx);
void launch(const char* name, const void* fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s, ThreadEntry entry,
            void* ctx);

template <auto F>
const char* kernel_name() {
  // "const char* itool_emu::kernel_name() [with auto F = itool::cuda::attn_fwd_kernel<64>]":
  // keep what follows "F = "
  static char buf[256];
  static const char* name = nullptr;
  if (!name) {
    const char* p = __PRETTY_FUNCTION__;
    const char* s = std::strstr(p, "F = ");
    if (!s) {
      name = p;
    } else {
      s += 4;
      if (*s == '&') ++s;
      size_t n = std::strlen(s);
      if (n && s[n - 1] == ']') --n;
      if (n >= sizeof buf) n = sizeof buf - 1;
      std::memcpy(buf, s, n);
      buf[n] = 0;
      name = buf;
    }
  }
  return name;
}

inline dim3 to_dim3(dim3 d) { return d; }
inline dim3 to_dim3(unsigned x) { return dim3(x); }
inline dim3 to_dim3(int x) { return dim3(static_cast<unsigned>(x)); }
inline dim3 to_dim3(long x) { return dim3(static_cast<unsigned>(x)); }
inline dim3 to_dim3(long long x) { return dim3(static_cast<unsigned>(x)); }
inline dim3 to_dim3(unsigned long x) { return dim3(static_cast<unsigned>(x)); }

template <class... P>
struct Launch {
  void (*fn)(P...);
  const char* name;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  struct Ctx {
    void (*fn)(P...);
    std::tuple<std::decay_t<P>...> args;
  };
  static void entry(void* c) {
    Ctx* x = static_cast<Ctx*>(c);
    std::tuple<std::decay_t<P>...> mine = x->args;  // each thread owns its parameters
    std::apply(x->fn, mine);
  }
  template <class... A>
  void operator()(A&&... a) const {
    static_assert(sizeof...(A) == sizeof...(P), "kernel launched with the wrong number of arguments");
    Ctx c{fn, std::tuple<std::decay_t<P>...>(std::forward<A>(a)...)};
    launch(name, reinterpret_cast<const void*>(fn), grid, block, smem, stream, &entry, &c);
  }
};
template <class... P, class G, class B>
Launch<P...> make_launch(void (*fn)(P...), const char* name, G grid, B block, size_t smem, cudaStream_t s) {
  return Launch<P...>{fn, name, to_dim3(grid), to_dim3(block), smem, s};
}

}  // namespace itool_emu

#ifndef ITOOL_EMU_RUNTIME
#define threadIdx (::itool_emu::g_coords->threadIdx)
#define blockIdx (::itool_emu::g_coords->blockIdx)
#define blockDim (::itool_emu::g_coords->blockDim)
#define gridDim (::itool_emu::g_coords->gridDim)
#endif
constexpr int warpSize = 32;

inline void __syncthreads(ITOOL_EMU_SITE) { itool_emu::syncthreads(file, line); }
inline int __syncthreads_count(int p, ITOOL_EMU_SITE) { return itool_emu::syncthreads_pred(0, p, file, line); }
inline int __syncthreads_and(int p, ITOOL_EMU_SITE) { return itool_emu::syncthreads_pred(1, p, file, line); }
inline int __syncthreads_or(int p, ITOOL_EMU_SITE) { return itool_emu::syncthreads_pred(2, p, file, line); }
inline void __syncwarp(unsigned mask = 0xffffffffu, ITOOL_EMU_SITE) {
  itool_emu::warp_op(itool_emu::kSyncwarp, mask, 0, 0, 32, file, line);
}
inline void __threadfence() {}
inline void __threadfence_block() {}
inline unsigned __activemask() { return itool_emu::active_mask(); }

namespace itool_emu {
template <class T>
inline T shfl(int kind, unsigned mask, T v, int arg, int width, const char* file, int line) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type wider than 8 bytes");
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = warp_op(kind, mask, bits, arg, width, file, line);
  T r;
  std::memcpy(&r, &bits, sizeof(T));
  return r;
}
}  // namespace itool_emu
template <class T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32, ITOOL_EMU_SITE) {
  return itool_emu::shfl(itool_emu::kShflIdx, mask, v, src, width, file, line);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32, ITOOL_EMU_SITE) {
  return itool_emu::shfl(itool_emu::kShflXor, mask, v, lane_mask, width, file, line);
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32, ITOOL_EMU_SITE) {
  return itool_emu::shfl(itool_emu::kShflUp, mask, v, static_cast<int>(delta), width, file, line);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32, ITOOL_EMU_SITE) {
  return itool_emu::shfl(itool_emu::kShflDown, mask, v, static_cast<int>(delta), width, file, line);
}
inline unsigned __ballot_sync(unsigned mask, int pred, ITOOL_EMU_SITE) {
  return static_cast<unsigned>(itool_emu::warp_op(itool_emu::kBallot, mask, pred != 0, 0, 32, file, line));
}
inline int __any_sync(unsigned mask, int pred, ITOOL_EMU_SITE) {
  return static_cast<int>(itool_emu::warp_op(itool_emu::kAny, mask, pred != 0, 0, 32, file, line));
}
inline int __all_sync(unsigned mask, int pred, ITOOL_EMU_SITE) {
  return static_cast<int>(itool_emu::warp_op(itool_emu::kAll, mask, pred != 0, 0, 32, file, line));
}

// Atomics: fibers switch only at barriers and warp collectives, and blocks run one at a
// time, so a plain read-modify-write is atomic here.
template <class T>
inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T>
inline T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <class T>
inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T>
inline T atomicMax(T* p, T v) { T o = *p; if (o < v) *p = v; return o; }
template <class T>
inline T atomicMin(T* p, T v) { T o = *p; if (v < o) *p = v; return o; }
template <class T>
inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <class T>
inline T atomicOr(T* p, T v) { T o = *p; *p = o | v; return o; }
template <class T>
inline T atomicAnd(T* p, T v) { T o = *p; *p = o & v; return o; }

#include "wmma_emu.h"
