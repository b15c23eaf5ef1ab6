// Placeholder bodies until the CPU ops land (issue 4). Each throws a clear error.
#include "cpu_backend.h"

namespace itool {
#define ITOOL_NOT_YET(fn, P) \
  void CpuBackend::fn(const P&) { throw_error("cpu: op '" #fn "' is not implemented yet"); }
ITOOL_NOT_YET(sample, SampleParams)
}  // namespace itool
