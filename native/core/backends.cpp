#include "ops.h"
#include "cuda_info.h"
#include "profile.h"

namespace itool {

Backend* backend_for(const Device& d) {
  if (d.kind == DeviceKind::CPU) return maybe_profiled(cpu_backend());
  return maybe_profiled(cuda_backend(d.index));
}

#ifndef ITOOL_WITH_CUDA
Backend* cuda_backend(int) {
  throw_error("cuda: this build of itool has no CUDA support (built without a CUDA compiler, or with ITOOL_CUDA=OFF); "
              "rebuild on a machine with nvcc: npm run build:native -- --cuda=ON");
}
CudaInfo cuda_info() {
  CudaInfo i;
  i.compiled = false;
  i.reason = "built without CUDA (no CUDA compiler found at build time, or ITOOL_CUDA=OFF)";
  return i;
}
#endif

}  // namespace itool
