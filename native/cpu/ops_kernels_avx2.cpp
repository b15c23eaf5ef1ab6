// AVX2+FMA build of the op inner loops (compiled with -mavx2 -mfma by CMake).
#define ITOOL_KNAME kernels_avx2
#define ITOOL_KNAME_STR "avx2"
#define ITOOL_KRB 4  // rows per register block
#define ITOOL_KNV 2  // vectors of columns per register block
#define ITOOL_KVW 8  // floats per vector
#include "ops_kernels.inc"
