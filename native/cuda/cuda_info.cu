// CUDA device discovery. Linked against the static runtime so that the addon loads
// where there is no driver; then cuda_info() reports zero devices and the reason.
#include <cuda_runtime.h>
#include <string>
#include "../core/cuda_info.h"

namespace itool {

CudaInfo cuda_info() {
  CudaInfo info;
  info.compiled = true;
#ifdef ITOOL_WITH_CUBLAS
  info.cublas = true;
#endif
  int rt = 0;
  if (cudaRuntimeGetVersion(&rt) == cudaSuccess)
    info.runtime_version = std::to_string(rt / 1000) + "." + std::to_string((rt % 1000) / 10);
  int drv = 0;
  cudaError_t e = cudaDriverGetVersion(&drv);
  if (e != cudaSuccess || drv == 0) {
    info.reason = "no NVIDIA driver found (cudaDriverGetVersion: " +
                  std::string(e == cudaSuccess ? "0" : cudaGetErrorString(e)) + ")";
    return info;
  }
  info.driver_version = std::to_string(drv / 1000) + "." + std::to_string((drv % 1000) / 10);
  int n = 0;
  e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    info.reason = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(e);
    cudaGetLastError();
    return info;
  }
  if (n == 0) {
    info.reason = "the driver reports no CUDA devices";
    return info;
  }
  for (int i = 0; i < n; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    CudaDeviceInfo d;
    d.index = i;
    d.name = p.name;
    d.total_memory = p.totalGlobalMem;
    d.major = p.major;
    d.minor = p.minor;
    d.multiprocessors = p.multiProcessorCount;
    size_t fr = 0, tot = 0;
    if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&fr, &tot) == cudaSuccess) d.free_memory = fr;
    info.devices.push_back(d);
  }
  return info;
}

}  // namespace itool
