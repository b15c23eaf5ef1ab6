// f32 GEMM on the CPU (see GemmParams in core/ops.h). Entry used by CpuBackend::gemm
// and by other CPU ops (attention, fused log-prob) that need a matrix product.
#pragma once
#include "../core/ops.h"

namespace itool {
namespace cpu {

// C = alpha * op(A) · op(B) + beta * C for each batch entry; f32 only.
// Threaded over the engine's pool unless called from inside a pool job.
void sgemm(const GemmParams& p);

}  // namespace cpu
}  // namespace itool
