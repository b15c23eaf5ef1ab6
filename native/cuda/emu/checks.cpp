// itool_emu_checks: deliberately broken kernels, each a mistake the real GPU would fail
// on, run on the CUDA emulator to prove that it catches them (test/gpu/emu-checks.test.ts).
//   itool_emu_checks <case>
// prints "result: <cudaErrorName>: <cudaGetErrorString>" for errors the emulator turns
// into CUDA errors; cases the sanitizers catch (out-of-bounds, misaligned vectors) end
// in an ASan/UBSan report followed by the emulator's line naming the kernel and thread.
// A "good_*" case is the same kernel without the mistake and must print cudaSuccess.
#include <cuda_runtime.h>
#include <mma.h>
#include <cstdio>
#include <cstring>
#include <string>

#ifndef ITOOL_LAUNCH
#error "checks.cpp is built against the emulator only"
#endif

using namespace nvcuda;

// ---- out-of-bounds global write: one element past the buffer
__global__ void oob_global_kernel(float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i <= n) out[i] = 1.f;  // should be i < n
}
// ---- out-of-bounds static shared memory
__global__ void oob_static_smem_kernel(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);  // 128 threads, 64 entries
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x / 2];
}
// ---- out-of-bounds dynamic shared memory: reads one float past what was launched
__global__ void oob_dynamic_smem_kernel(float* out, int n) {
  ITOOL_DYNAMIC_SMEM(float, s, 16);
  s[threadIdx.x] = 1.f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x + 1];  // thread n-1 reads s[n]
}
// ---- a barrier inside a divergent branch
__global__ void divergent_barrier_kernel(float* out) {
  __shared__ float s[64];
  s[threadIdx.x] = 1.f;
  if (threadIdx.x < 32) __syncthreads();  // warp 1 never arrives
  out[threadIdx.x] = s[63 - threadIdx.x];
}
// ---- a barrier after some threads returned
__global__ void barrier_after_return_kernel(float* out, int n) {
  __shared__ float s[64];
  if (static_cast<int>(threadIdx.x) >= n) return;
  s[threadIdx.x] = 1.f;
  __syncthreads();
  out[threadIdx.x] = s[n - 1 - threadIdx.x];
}
// ---- a full-warp shuffle called by half the warp
__global__ void shuffle_bad_mask_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x % 32 < 16) v += __shfl_xor_sync(0xffffffffu, v, 1);  // lanes 16..31 are not there
  out[threadIdx.x] = v;
}
// ---- a vote whose mask leaves out the calling lane
__global__ void vote_mask_without_caller_kernel(unsigned* out) {
  out[threadIdx.x] = __ballot_sync(0x0000ffffu, threadIdx.x & 1);  // lanes 16..31 call it too
}
// ---- a shuffle in a 48-thread block naming lanes 48..63
__global__ void shuffle_missing_lanes_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  v += __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}
// ---- wmma: a pointer 16 bytes off a 32-byte boundary, and an ldm that is not a multiple of 8
__global__ void wmma_misaligned_kernel(float* out, int offset, int ldm) {
  __shared__ __align__(128) __nv_bfloat16 a[16 * 40 + 64];
  __shared__ __align__(128) __nv_bfloat16 b[16 * 40];
  for (int i = threadIdx.x; i < 16 * 40 + 64; i += 32) a[i] = __float2bfloat16_rn(1.f);
  for (int i = threadIdx.x; i < 16 * 40; i += 32) b[i] = __float2bfloat16_rn(1.f);
  __syncwarp();
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::fill_fragment(acc, 0.f);
  wmma::load_matrix_sync(fa, a + offset, ldm);
  wmma::load_matrix_sync(fb, b, 40);
  wmma::mma_sync(acc, fa, fb, acc);
  wmma::store_matrix_sync(out, acc, 16, wmma::mem_row_major);
}
// ---- a 16-byte vector load from an address that is only 4-byte aligned
__global__ void misaligned_vector_kernel(const float* in, float* out, int offset) {
  const uint4 v = *reinterpret_cast<const uint4*>(in + offset + 4 * threadIdx.x);
  out[threadIdx.x] = static_cast<float>(v.x + v.y + v.z + v.w);
}
// ---- a shared-memory race: reads a neighbour's entry without the barrier (sync = 0)
__global__ void missing_barrier_kernel(float* out, int sync) {
  __shared__ float s[64];
  s[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (sync) __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % 64];
}
// ---- a kernel that is fine (for the launch-configuration cases)
__global__ void plain_kernel(float* out, int n) {
  ITOOL_DYNAMIC_SMEM(float, s, 16);
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (n > 0 && threadIdx.x == 0) s[0] = 1.f;
  if (i < n) out[i] = 2.f;
}

static void report() {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  printf("result: %s: %s\n", cudaGetErrorName(e), cudaGetErrorString(e));
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: itool_emu_checks <case>\n");
    return 2;
  }
  const std::string c = argv[1];
  float* buf = nullptr;
  cudaMalloc(&buf, 1024 * sizeof(float));
  float* small = nullptr;
  cudaMalloc(&small, 64 * sizeof(float));
  if (c == "oob_global") {
    ITOOL_LAUNCH(oob_global_kernel, 1, 96, 0, nullptr)(small, 64);  // thread 64 writes small[64]
  } else if (c == "good_global") {
    ITOOL_LAUNCH(oob_global_kernel, 1, 96, 0, nullptr)(small, 63);
  } else if (c == "oob_static_smem") {
    ITOOL_LAUNCH(oob_static_smem_kernel, 1, 128, 0, nullptr)(buf);
  } else if (c == "good_static_smem") {
    ITOOL_LAUNCH(oob_static_smem_kernel, 1, 64, 0, nullptr)(buf);
  } else if (c == "oob_dynamic_smem") {
    ITOOL_LAUNCH(oob_dynamic_smem_kernel, 1, 32, 32 * sizeof(float), nullptr)(buf, 32);
  } else if (c == "good_dynamic_smem") {
    ITOOL_LAUNCH(oob_dynamic_smem_kernel, 1, 32, 33 * sizeof(float), nullptr)(buf, 32);
  } else if (c == "divergent_barrier") {
    ITOOL_LAUNCH(divergent_barrier_kernel, 1, 64, 0, nullptr)(buf);
  } else if (c == "barrier_after_return") {
    ITOOL_LAUNCH(barrier_after_return_kernel, 2, 64, 0, nullptr)(buf, 40);
  } else if (c == "good_barrier") {
    ITOOL_LAUNCH(barrier_after_return_kernel, 2, 64, 0, nullptr)(buf, 64);
  } else if (c == "shuffle_bad_mask") {
    ITOOL_LAUNCH(shuffle_bad_mask_kernel, 1, 64, 0, nullptr)(buf);
  } else if (c == "vote_mask_without_caller") {
    ITOOL_LAUNCH(vote_mask_without_caller_kernel, 1, 32, 0, nullptr)(reinterpret_cast<unsigned*>(buf));
  } else if (c == "shuffle_missing_lanes") {
    ITOOL_LAUNCH(shuffle_missing_lanes_kernel, 1, 48, 0, nullptr)(buf);
  } else if (c == "good_shuffle") {
    ITOOL_LAUNCH(shuffle_missing_lanes_kernel, 1, 64, 0, nullptr)(buf);
  } else if (c == "wmma_misaligned_pointer") {
    ITOOL_LAUNCH(wmma_misaligned_kernel, 1, 32, 0, nullptr)(buf, 8, 40);
  } else if (c == "wmma_bad_ldm") {
    ITOOL_LAUNCH(wmma_misaligned_kernel, 1, 32, 0, nullptr)(buf, 0, 36);
  } else if (c == "good_wmma") {
    ITOOL_LAUNCH(wmma_misaligned_kernel, 1, 32, 0, nullptr)(buf, 16, 40);
    report();
    float h[256];
    cudaMemcpy(h, buf, sizeof h, cudaMemcpyDeviceToHost);
    printf("wmma: c[0] = %g, c[255] = %g (want 16)\n", h[0], h[255]);
    return 0;
  } else if (c == "misaligned_vector") {
    ITOOL_LAUNCH(misaligned_vector_kernel, 1, 32, 0, nullptr)(buf, buf, 1);
  } else if (c == "good_vector") {
    ITOOL_LAUNCH(misaligned_vector_kernel, 1, 32, 0, nullptr)(buf, buf + 512, 0);
  } else if (c == "block_too_large") {
    ITOOL_LAUNCH(plain_kernel, 1, 1025, 0, nullptr)(buf, 1024);
  } else if (c == "grid_y_too_large") {
    ITOOL_LAUNCH(plain_kernel, dim3(1, 65536), 32, 0, nullptr)(buf, 0);
  } else if (c == "smem_above_attribute") {
    ITOOL_LAUNCH(plain_kernel, 1, 32, 64 * 1024, nullptr)(buf, 32);  // no cudaFuncSetAttribute: 48 KB allowed
  } else if (c == "smem_with_attribute") {
    cudaFuncSetAttribute(plain_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024);
    ITOOL_LAUNCH(plain_kernel, 1, 32, 100 * 1024, nullptr)(buf, 32);
  } else if (c == "smem_above_device") {
    cudaError_t e = cudaFuncSetAttribute(plain_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, 228 * 1024);
    printf("attribute: %s: %s\n", cudaGetErrorName(e), cudaGetErrorString(e));
    cudaGetLastError();
    ITOOL_LAUNCH(plain_kernel, 1, 32, 228 * 1024, nullptr)(buf, 32);
  } else if (c == "race_missing_barrier" || c == "good_race") {
    // the emulator runs threads in index order, or last first with ITOOL_CUDA_EMU_ORDER=reverse:
    // a race shows as a checksum that depends on the order
    cudaMemset(buf, 0, 64 * sizeof(float));
    ITOOL_LAUNCH(missing_barrier_kernel, 1, 64, 0, nullptr)(buf, c == "good_race" ? 1 : 0);
    report();
    float h[64];
    cudaMemcpy(h, buf, sizeof h, cudaMemcpyDeviceToHost);
    double sum = 0;
    for (int i = 0; i < 64; ++i) sum += h[i] * (i + 1);
    printf("checksum: %.1f\n", sum);
    return 0;
  } else {
    fprintf(stderr, "unknown case %s\n", c.c_str());
    return 2;
  }
  report();
  return 0;
}
