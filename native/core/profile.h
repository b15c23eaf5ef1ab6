// Op-level profiler: ITOOL_PROFILE=1 wraps every backend in a decorator that times
// each op call (after synchronize(), so GPU times are real) and prints a table to
// stderr when the process exits: per op the calls, total ms and share of the timed
// total, and per GEMM shape (M x N x K, transposes, batch) the achieved GFLOP/s.
// ITOOL_PROFILE=<path> writes the same table to that file instead (JSON when the
// path ends in .json). Without the variable nothing is wrapped and nothing is timed.
#pragma once
#include "ops.h"

namespace itool {

// The backend to hand out for `inner`: `inner` itself, or its profiling wrapper.
Backend* maybe_profiled(Backend* inner);

}  // namespace itool
