// Shared between the emulator's runtime API (emu_api.cpp) and its scheduler (emu_sched.cpp).
#pragma once
#include <cstddef>
#include <string>
#include "cuda_emu.h"

namespace itool_emu {

constexpr size_t kDefaultDynSmem = 48 * 1024;  // dynamic shared memory without the attribute
constexpr size_t kOptinSmem = 227 * 1024;      // the most a block may have (sm_90)

// Records an error: cudaGetLastError returns it; with `fault` (a kernel fault) the next
// synchronising call returns it too, once. The message is what cudaGetErrorString gives.
cudaError_t set_error(cudaError_t e, const std::string& msg, bool fault);
// A kernel fault not yet reported (nothing more runs until it is).
bool fault_pending();
bool valid_stream(cudaStream_t s);
// cudaFuncAttributeMaxDynamicSharedMemorySize of a kernel (kDefaultDynSmem when unset).
size_t max_dynamic_smem(const void* fn);

}  // namespace itool_emu
