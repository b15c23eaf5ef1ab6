// NEON (AArch64) SGEMM micro-kernel: 8 x 12 register block (24 q-register
// accumulators, three q registers of B and two of A per k, FMA by lane). Compiled
// only on arm64 (CMake adds *_neon.cpp there); chosen when cpu_level() is Neon.
#include "gemm_kernels.h"

#if defined(__aarch64__) || defined(_M_ARM64)
#include <arm_neon.h>

namespace itool {
namespace cpu {
namespace {

constexpr int MR = 8;
constexpr int NR = 12;

void tile(int m, int n, int64_t kc, const float* pa, const float* pb, float* c, int64_t ldc, float alpha,
          float beta) {
  float32x4_t acc[MR][3];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 3; ++j) acc[i][j] = vdupq_n_f32(0.f);
  for (int64_t k = 0; k < kc; ++k) {
    const float32x4_t b0 = vld1q_f32(pb), b1 = vld1q_f32(pb + 4), b2 = vld1q_f32(pb + 8);
    const float32x4_t a0 = vld1q_f32(pa), a1 = vld1q_f32(pa + 4);
    acc[0][0] = vfmaq_laneq_f32(acc[0][0], b0, a0, 0);
    acc[0][1] = vfmaq_laneq_f32(acc[0][1], b1, a0, 0);
    acc[0][2] = vfmaq_laneq_f32(acc[0][2], b2, a0, 0);
    acc[1][0] = vfmaq_laneq_f32(acc[1][0], b0, a0, 1);
    acc[1][1] = vfmaq_laneq_f32(acc[1][1], b1, a0, 1);
    acc[1][2] = vfmaq_laneq_f32(acc[1][2], b2, a0, 1);
    acc[2][0] = vfmaq_laneq_f32(acc[2][0], b0, a0, 2);
    acc[2][1] = vfmaq_laneq_f32(acc[2][1], b1, a0, 2);
    acc[2][2] = vfmaq_laneq_f32(acc[2][2], b2, a0, 2);
    acc[3][0] = vfmaq_laneq_f32(acc[3][0], b0, a0, 3);
    acc[3][1] = vfmaq_laneq_f32(acc[3][1], b1, a0, 3);
    acc[3][2] = vfmaq_laneq_f32(acc[3][2], b2, a0, 3);
    acc[4][0] = vfmaq_laneq_f32(acc[4][0], b0, a1, 0);
    acc[4][1] = vfmaq_laneq_f32(acc[4][1], b1, a1, 0);
    acc[4][2] = vfmaq_laneq_f32(acc[4][2], b2, a1, 0);
    acc[5][0] = vfmaq_laneq_f32(acc[5][0], b0, a1, 1);
    acc[5][1] = vfmaq_laneq_f32(acc[5][1], b1, a1, 1);
    acc[5][2] = vfmaq_laneq_f32(acc[5][2], b2, a1, 1);
    acc[6][0] = vfmaq_laneq_f32(acc[6][0], b0, a1, 2);
    acc[6][1] = vfmaq_laneq_f32(acc[6][1], b1, a1, 2);
    acc[6][2] = vfmaq_laneq_f32(acc[6][2], b2, a1, 2);
    acc[7][0] = vfmaq_laneq_f32(acc[7][0], b0, a1, 3);
    acc[7][1] = vfmaq_laneq_f32(acc[7][1], b1, a1, 3);
    acc[7][2] = vfmaq_laneq_f32(acc[7][2], b2, a1, 3);
    pa += MR;
    pb += NR;
  }
  const float32x4_t va = vdupq_n_f32(alpha);
  if (n == NR) {
    const float32x4_t vb = vdupq_n_f32(beta);
    for (int i = 0; i < m; ++i) {
      float* r = c + i * ldc;
      for (int j = 0; j < 3; ++j) {
        float32x4_t v = vmulq_f32(va, acc[i][j]);
        if (beta != 0.f) v = vfmaq_f32(v, vb, vld1q_f32(r + 4 * j));
        vst1q_f32(r + 4 * j, v);
      }
    }
    return;
  }
  // Edge columns: spill and finish in scalar code.
  float t[NR];
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < 3; ++j) vst1q_f32(t + 4 * j, acc[i][j]);
    float* r = c + i * ldc;
    for (int j = 0; j < n; ++j) r[j] = beta == 0.f ? alpha * t[j] : alpha * t[j] + beta * r[j];
  }
}

const GemmKernel kKernel = {"neon 8x12", MR, NR, /*kc*/ 256, /*mc*/ 8 * 16, /*nc*/ 1020, tile, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};

}  // namespace

const GemmKernel* gemm_kernel_neon() { return &kKernel; }

}  // namespace cpu
}  // namespace itool

#endif
