#!/usr/bin/env bash
# The whole GPU check in one call on the GPU machine (no Node, no network there):
# unpack node + node_modules carried in .device/ (see bench/gpu/pack.sh), build the addon
# with CUDA (cuBLASLt from Python's nvidia packages when present, else the built-in GEMM),
# run the GPU tests and the GPU benches against PyTorch, and write under $OUT:
#   build.log, tests.log, tests.json (vitest), attention.json, loss.json, e2e.json (SFT,
#   SimPO, generation vs transformers), hf_check.json, info.json, summary.md (the tables).
# Usage, from this machine:  bash bench/gpu/pack.sh, then the device tool with
#   carry [".device", "dist"], command "bash bench/gpu/run.sh"
# Environment: ITOOL_GPU_ARCH (default: the device's own, e.g. 90), ITOOL_GPU_SKIP_TESTS=1,
# ITOOL_GPU_QUICK=1 (short benches).
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/build/gpu-out}
mkdir -p "$OUT"
log() { echo "[gpu-run $(date +%H:%M:%S)] $*" | tee -a "$OUT/run.log"; }

# ---- node
if ! command -v node >/dev/null 2>&1; then
  if [ -f .device/node.xz ]; then
    mkdir -p .device/bin
    xz -dc .device/node.xz > .device/bin/node && chmod +x .device/bin/node
    export PATH="$ROOT/.device/bin:$PATH"
  else
    log "no node and no .device/node.xz: run bench/gpu/pack.sh here first and carry .device"; exit 2
  fi
fi
if [ ! -d node_modules ] && [ -f .device/node_modules.tar.xz ]; then tar -xJf .device/node_modules.tar.xz; fi
[ -d node_modules ] || { log "node_modules missing (carry .device)"; exit 2; }
log "node $(node --version), nvcc $(nvcc --version 2>/dev/null | tail -1), $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null)"

# ---- build
ARCH=${ITOOL_GPU_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')}
export ITOOL_CUDA_ARCHITECTURES=${ARCH:-90}
CUBLAS_ROOT=$(python3 -c "import nvidia.cublas, os; print(os.path.dirname(nvidia.cublas.__file__))" 2>/dev/null || true)
BUILD=build/gpu
t0=$(date +%s)
if [ -n "$CUBLAS_ROOT" ] && ITOOL_CUBLAS_ROOT="$CUBLAS_ROOT" node scripts/build-native.mjs --cuda=ON --out build/gpu-cublas > "$OUT/build.log" 2>&1 \
   && grep -q "cuBLAS ON" "$OUT/build.log"; then
  BUILD=build/gpu-cublas
  log "built with cuBLASLt from $CUBLAS_ROOT in $(( $(date +%s) - t0 )) s"
else
  [ -n "$CUBLAS_ROOT" ] && log "build with cuBLASLt failed or did not find it (see build.log); building with the built-in GEMM"
  if ! node scripts/build-native.mjs --cuda=ON --out build/gpu >> "$OUT/build.log" 2>&1; then
    log "CUDA build failed: tail of build.log:"; tail -30 "$OUT/build.log" | tee -a "$OUT/run.log"; exit 1
  fi
  log "built with the built-in GEMM in $(( $(date +%s) - t0 )) s"
fi
export ITOOL_ADDON=$ROOT/$BUILD/Release/itool.node
node -e "const a=require(process.env.ITOOL_ADDON); console.log(JSON.stringify(a.info(), null, 2))" > "$OUT/info.json" 2>&1
grep -q '"devices": \[\]' "$OUT/info.json" && log "WARNING: the build sees no CUDA device (info.json)"

# ---- tests
if [ "${ITOOL_GPU_SKIP_TESTS:-0}" != 1 ]; then
  log "GPU tests"
  timeout 420 npx vitest run --config test/gpu/vitest.config.ts --reporter=default --reporter=json --outputFile="$OUT/tests.json" > "$OUT/tests.log" 2>&1
  log "GPU tests exit $? ($(grep -E 'Tests ' "$OUT/tests.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g'))"
  if [ "$BUILD" = build/gpu-cublas ]; then
    # the op tests again with cuBLASLt kept out, so that the built-in GEMM kernels are checked too
    ITOOL_CUDA_GEMM=builtin timeout 240 npx vitest run --config test/gpu/vitest.config.ts test/gpu/ops.test.ts > "$OUT/tests-builtin-gemm.log" 2>&1
    log "GPU op tests with the built-in GEMM exit $? ($(grep -E 'Tests ' "$OUT/tests-builtin-gemm.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g'))"
  fi
fi

# ---- benches (each its own process: the loss bench measures the pool's growth)
Q=""; [ "${ITOOL_GPU_QUICK:-0}" = 1 ] && Q="--quick"
[ -f dist/cli/index.js ] || log "dist/ missing: carry dist (bench/gpu/pack.sh builds it)"
for b in loss attention; do
  if [ -f "dist/bench/$b.js" ]; then
    log "bench $b"
    timeout 300 node bin/itool.js bench "$b" --device cuda --compare torch --json $Q > "$OUT/$b.json" 2> "$OUT/$b.log" \
      || log "bench $b failed (exit $?): $(tail -2 "$OUT/$b.log")"
  fi
done
# training steps and generation on a Qwen2.5-0.5B-shaped model vs transformers + PyTorch
# (itool bench train|generate measure the CPU; this is their GPU counterpart)
if [ -f dist/engine/index.js ]; then
  log "bench e2e (SFT, SimPO, generation)"
  timeout 400 node bench/gpu/e2e.mjs --device cuda:0 --compare torch $Q > "$OUT/e2e.json" 2> "$OUT/e2e.log" \
    || log "bench e2e failed (exit $?): $(tail -2 "$OUT/e2e.log")"
fi
# ---- a model and a LoRA adapter saved by itool, loaded by transformers / PEFT
if [ -f dist/engine/index.js ]; then
  log "transformers / PEFT interop"
  rm -rf build/hf-check
  if node bench/gpu/hf_check.mjs build/hf-check cuda:0 > "$OUT/hf_check.log" 2>&1; then
    python3 bench/gpu/hf_check.py build/hf-check > "$OUT/hf_check.json" 2>> "$OUT/hf_check.log" \
      || log "interop check failed: $(tail -1 "$OUT/hf_check.json" 2>/dev/null) $(tail -2 "$OUT/hf_check.log")"
  else
    log "hf_check.mjs failed: $(tail -3 "$OUT/hf_check.log")"
  fi
fi
node bench/gpu/summary.mjs "$OUT" > "$OUT/summary.md" 2>> "$OUT/run.log" || true
cat "$OUT/summary.md"
log "done"
