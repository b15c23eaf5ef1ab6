// Baseline build of the op inner loops and the run-time choice of the table.
#define ITOOL_KNAME kernels_base
#define ITOOL_KNAME_STR "scalar"
#define ITOOL_KRB 4  // rows per register block
#define ITOOL_KNV 2  // vectors of columns per register block
#define ITOOL_KVW 4  // floats per vector
#include "ops_kernels.inc"
#include "../core/cpu_features.h"

namespace itool {
namespace cpu {

const OpKernels& kernels() {
  switch (cpu_level()) {
#if defined(ITOOL_HAVE_AVX512)
    case CpuLevel::Avx512: return kernels_avx512;
#endif
#if defined(ITOOL_HAVE_AVX2)
    case CpuLevel::Avx2: return kernels_avx2;
#endif
    default: return kernels_base;
  }
}

}  // namespace cpu
}  // namespace itool
