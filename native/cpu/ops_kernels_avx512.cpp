// AVX-512 build of the op inner loops (compiled with -mavx512f/bw/vl/dq by CMake).
#define ITOOL_KNAME kernels_avx512
#define ITOOL_KNAME_STR "avx512"
#define ITOOL_KRB 8  // rows per register block
#define ITOOL_KNV 2  // vectors of columns per register block
#define ITOOL_KVW 16  // floats per vector
#include "ops_kernels.inc"
