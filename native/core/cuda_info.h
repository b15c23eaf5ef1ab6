// What the CUDA side of the engine can see: compiled in or not, devices, or why none.
#pragma once
#include <string>
#include <vector>

namespace itool {

struct CudaDeviceInfo {
  int index = 0;
  std::string name;
  size_t total_memory = 0;
  size_t free_memory = 0;
  int major = 0, minor = 0;
  int multiprocessors = 0;
};

struct CudaInfo {
  bool compiled = false;
  bool cublas = false;           // built with cuBLAS/cuBLASLt (else the built-in GEMM kernel)
  std::string runtime_version;   // e.g. "13.0"
  std::string driver_version;    // empty when there is no driver
  std::vector<CudaDeviceInfo> devices;
  std::string reason;            // why there are no devices, when there are none
};

CudaInfo cuda_info();

}  // namespace itool
