#!/usr/bin/env python3
"""numpy SGEMM peer for `itool bench gemm --compare numpy`.

Usage: numpy_gemm.py --serve   (what the bench uses: one JSON request per stdin line,
       {"m","n","k","transA","transB","threads","runs","minSeconds"}, one JSON row per
       stdout line; the first line printed describes numpy and its OpenBLAS), or
       numpy_gemm.py '<json>' where json is
  {"shapes": [{"m":..,"n":..,"k":..,"transA":bool,"transB":bool}, ...],
   "threads": [1, 2], "runs": 5, "minSeconds": 0.03}
Prints one JSON object: {"numpy", "openblas", "corename", "rows": [...]}, each row
{m, n, k, transA, transB, threads, ms, gflops}: the median of `runs` timed runs after a
warm-up, each run repeating the product until it lasts at least minSeconds.

Run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the bench does), else
OpenBLAS is pinned to its AVX2 kernels on this machine. Transposed operands are
numpy transposed views (a.T of a C-contiguous array), which numpy hands to BLAS
with the transpose flag, without a copy.
"""
import ctypes
import glob
import json
import os
import statistics
import sys
import time

import numpy as np


def openblas_lib():
    """The OpenBLAS numpy links (wheel: numpy.libs/libscipy_openblas64_*.so), or None."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs")
    for path in sorted(glob.glob(os.path.join(libs, "libscipy_openblas*.so*"))):
        try:
            return ctypes.CDLL(path)
        except OSError:
            pass
    return None


def call_str(lib, names):
    for name in names:
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            fn.restype = ctypes.c_char_p
            v = fn()
            return v.decode() if v else None
    return None


def set_threads(lib, n):
    for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads"):
        fn = getattr(lib, name, None) if lib is not None else None
        if fn is not None:
            fn.argtypes = [ctypes.c_int]
            fn(int(n))
            return True
    return False


def operands(shape, rng):
    m, n, k = shape["m"], shape["n"], shape["k"]
    a = rng.random((k, m) if shape.get("transA") else (m, k), dtype=np.float32)
    b = rng.random((n, k) if shape.get("transB") else (k, n), dtype=np.float32)
    a = a.T if shape.get("transA") else a
    b = b.T if shape.get("transB") else b
    c = np.empty((m, n), dtype=np.float32)
    return a, b, c


def time_shape(shape, runs, min_seconds, rng):
    a, b, c = operands(shape, rng)
    np.matmul(a, b, out=c)  # warm-up
    t0 = time.perf_counter()
    np.matmul(a, b, out=c)
    one = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, int(min_seconds / one + 0.999))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        times.append((time.perf_counter() - t0) / reps)
    return statistics.median(times)


def describe(lib):
    return {
        "numpy": np.__version__,
        "openblas": call_str(lib, ["scipy_openblas_get_config64_", "openblas_get_config64_", "openblas_get_config"]),
        "corename": call_str(lib, ["scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"]),
    }


def serve():
    lib = openblas_lib()
    rng = np.random.default_rng(0)
    print(json.dumps(describe(lib)), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if not set_threads(lib, req["threads"]):
            raise SystemExit("numpy_gemm.py: cannot set the OpenBLAS thread count (no openblas_set_num_threads)")
        sec = time_shape(req, int(req.get("runs", 5)), float(req.get("minSeconds", 0.03)), rng)
        flop = 2.0 * req["m"] * req["n"] * req["k"]
        print(json.dumps(dict(req, ms=sec * 1e3, gflops=flop / sec / 1e9)), flush=True)


def main():
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    req = json.loads(sys.argv[1])
    lib = openblas_lib()
    rng = np.random.default_rng(0)
    rows = []
    for threads in req.get("threads", [1]):
        if not set_threads(lib, threads):
            raise SystemExit("numpy_gemm.py: cannot set the OpenBLAS thread count (no openblas_set_num_threads)")
        for shape in req["shapes"]:
            sec = time_shape(shape, int(req.get("runs", 5)), float(req.get("minSeconds", 0.03)), rng)
            flop = 2.0 * shape["m"] * shape["n"] * shape["k"]
            rows.append(dict(shape, threads=threads, ms=sec * 1e3, gflops=flop / sec / 1e9))
    print(json.dumps(dict(describe(lib), rows=rows)))


if __name__ == "__main__":
    main()
