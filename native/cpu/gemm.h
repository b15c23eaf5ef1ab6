// f32 GEMM on the CPU (see GemmParams in core/ops.h). Entry used by CpuBackend::gemm
// and by other CPU ops (attention, fused log-prob) that need a matrix product.
#pragma once
#include "../core/ops.h"

namespace itool {
namespace cpu {

// C = alpha * op(A) · op(B) + beta * C for each batch entry; f32 only.
// Threaded over the engine's pool (when called from inside a pool job the pool runs
// the parts serially). beta == 0 never reads C. Deterministic: for a given kernel
// level (cpu_level()) the result is bitwise the same whatever the thread count.
// Throws itool::Error on bad parameters (dtype, negative sizes, leading dimensions).
void sgemm(const GemmParams& p);

// As sgemm, using at most `nthreads` threads of the pool (benchmarks, tests).
void sgemm_threads(const GemmParams& p, int nthreads);

// Name of the kernel sgemm uses now, e.g. "avx512 14x32" (or "blas" with ITOOL_GEMM=blas
// in a build with a system BLAS).
const char* gemm_kernel_name();

}  // namespace cpu
}  // namespace itool
