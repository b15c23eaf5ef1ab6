#!/usr/bin/env bash
# One hash of the sources the addon is built from (native/, CMakeLists.txt), the same on this
# machine and on the GPU machine: pack.sh records it, run.sh compares, so that a carried addon
# older than the sources it is tested with is named in the log.
set -euo pipefail
cd "$(dirname "$0")/../.."
# (native/cuda/emu is the CPU emulator: not part of a CUDA build)
find native CMakeLists.txt -path native/cuda/emu -prune -o -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.inc' -o -name 'CMakeLists.txt' \) -print0 \
  | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
