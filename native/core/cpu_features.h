// CPU feature detection and the kernel level chosen at load.
// ITOOL_CPU=scalar|avx2|avx512|neon forces a lower level (for tests and benches);
// asking for a level the CPU lacks falls back to the best available.
#pragma once
#include <string>
#include <vector>

namespace itool {

enum class CpuLevel { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3 };

struct CpuFeatures {
  bool avx2 = false, fma = false, avx512f = false, avx512bw = false, avx512vl = false,
       avx512dq = false, neon = false;
  std::vector<std::string> names() const;
};

const CpuFeatures& cpu_features();
CpuLevel cpu_level();  // level in use (after ITOOL_CPU)
void set_cpu_level(CpuLevel level);  // clamps to what the CPU supports
const char* cpu_level_name(CpuLevel level);
bool cpu_level_supported(CpuLevel level);

}  // namespace itool
