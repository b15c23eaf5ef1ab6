// AVX-512 build of the op inner loops (compiled with -mavx512f/bw/vl/dq by CMake).
#define ITOOL_KNAME kernels_avx512
#define ITOOL_KNAME_STR "avx512"
#include "ops_kernels.inc"
