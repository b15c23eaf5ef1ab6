// Device helpers shared by the CUDA kernels: dtype loads/stores, reductions,
// the device-side error word. Header-only; included by the launch_*.cu files.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <cstdint>

namespace itool {
namespace cuda {

using bf16 = __nv_bfloat16;

// Matches itool::DType (F32 = 0, BF16 = 1, F16 = 2, I32 = 3).
enum : int { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };

// Error codes a kernel may leave in the backend's device error word; the host
// turns them into itool::Error at the next synchronising call.
enum : int {
  kErrNone = 0,
  kErrTokenId = 1,      // embedding: id outside [0, vocab)
  kErrTarget = 2,       // logprob: target >= V
  kErrKvSlot = 3,       // kv_write / decode: position outside the block table, or a bad block id
  kErrSeqlens = 4,      // attention: cu_seqlens not non-decreasing within [0, T]
  // 5: unused (rope rotates negative positions, as the CPU engine)
  kErrLength = 6,       // preference_loss: a sequence length <= 0
};

__device__ __forceinline__ void set_error(int* err, int code) {
  if (err) atomicCAS(err, 0, code);
}

__device__ __forceinline__ float load_as_float(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kBF16: return __bfloat162float(static_cast<const bf16*>(p)[i]);
    case kF16: return __half2float(static_cast<const __half*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}
__device__ __forceinline__ void store_from_float(void* p, int dt, int64_t i, float v) {
  switch (dt) {
    case kBF16: static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v); break;
    case kF16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    default: static_cast<float*>(p)[i] = v; break;
  }
}
__device__ __forceinline__ bf16 load_as_bf16(const void* p, int dt, int64_t i) {
  switch (dt) {
    case kBF16: return static_cast<const bf16*>(p)[i];
    case kF16: return __float2bfloat16_rn(__half2float(static_cast<const __half*>(p)[i]));
    default: return __float2bfloat16_rn(static_cast<const float*>(p)[i]);
  }
}

__device__ __forceinline__ float b2f(bf16 x) { return __bfloat162float(x); }
__device__ __forceinline__ bf16 f2b(float x) { return __float2bfloat16_rn(x); }

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, at most 1024). `red` is
// shared scratch of at least 32 entries. Every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) red[wid] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : 0.f;
  r = warp_sum(r);
  return r;
}
__device__ __forceinline__ float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[wid] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : -INFINITY;
  r = warp_max(r);
  return r;
}
__device__ __forceinline__ double block_sum_d(double v, double* red) {
  const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum_d(v);
  __syncthreads();
  if (lane == 0) red[wid] = v;
  __syncthreads();
  double r = lane < nw ? red[lane] : 0.0;
  r = warp_sum_d(r);
  return r;
}

inline unsigned grid_for(int64_t n, int threads, int64_t cap = 65535LL * 32) {
  int64_t g = (n + threads - 1) / threads;
  if (g < 1) g = 1;
  if (g > cap) g = cap;
  return static_cast<unsigned>(g);
}

}  // namespace cuda
}  // namespace itool
