#!/usr/bin/env bash
# The GPU benches, a second device call after bench/gpu/run.sh (same carry; it unpacks again
# when the machine is fresh). Budget ITOOL_GPU_BUDGET_S, default 540 s (the device tool's
# limit per command is 600 s); every step under `timeout` and the whole under that deadline.
#   - itool bench loss / attention --device cuda --compare torch (the PyTorch peer: python3
#     with torch, bench/gpu/loss.py and attention.py)
#   - bench/gpu/e2e.mjs --quick --compare torch: SFT and SimPO steps, 64-branch generation
#     on a Qwen2.5-0.5B-shaped model vs transformers + PyTorch (e2e.py)
#   - bench/gpu/hf_check.mjs + .py: an itool checkpoint and LoRA adapter in transformers / PEFT
# GEMM: the carried addon's built-in wmma kernels. With ITOOL_GPU_CUBLAS=1 (when time allows)
# an addon with cuBLASLt is built there first, from Python's CUDA 13 wheels (nvidia/cu13 or
# nvidia/cublas: include/cublasLt.h, lib/libcublasLt.so.*), and the benches use it; the log
# and the JSON say which GEMM each bench ran.
# Writes three files under $OUT: gpu-bench.log, gpu-bench.json (every bench's JSON, the
# steps), gpu-summary.md (the tables).
#
# Usage (device tool): carry [".device"], command "bash bench/gpu/bench.sh", timeout_s 600.
set -uo pipefail
cd "$(dirname "$0")/../.."
NAME=gpu-bench
BUDGET=${ITOOL_GPU_BUDGET_S:-540}
WORK=${ITOOL_GPU_WORK:-/tmp/itool-gpu}/bench
rm -rf "$WORK"
WANT_DIST=1
. bench/gpu/lib.sh

unpack || exit 2
[ -f dist/engine/index.js ] || log "dist/ missing (bench/gpu/pack.sh packs it): the benches cannot run"
PY=${ITOOL_PYTHON:-python3}
log "python: $(timeout 60 $PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, "cuda", torch.cuda.is_available())' 2>&1 | tail -1)"

# ---- optional: an addon with cuBLASLt, built here from the Python wheels' cuBLAS
if [ "${ITOOL_GPU_CUBLAS:-0}" = 1 ]; then
  CUBLAS_ROOT=$(timeout 60 $PY - <<'EOF' 2>/dev/null
import os, importlib.util
spec = importlib.util.find_spec("nvidia")
roots = list(spec.submodule_search_locations) if spec else []
for r in roots:
    for sub in ("cu13", "cublas"):
        d = os.path.join(r, sub)
        if os.path.isfile(os.path.join(d, "include", "cublasLt.h")) and os.path.isdir(os.path.join(d, "lib")):
            print(d); raise SystemExit
EOF
)
  if [ -z "$CUBLAS_ROOT" ]; then
    log "ITOOL_GPU_CUBLAS=1 but no cuBLASLt under python's nvidia/cu13 or nvidia/cublas: benches use the built-in GEMM"
  else
    log "building an addon with cuBLASLt from $CUBLAS_ROOT (sm_$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .))"
    if step cublas-build 240 env ITOOL_CUBLAS_ROOT="$CUBLAS_ROOT" \
      ITOOL_CUDA_ARCHITECTURES="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)-real" \
      "$NODE" scripts/build-native.mjs --cuda=ON --out build/gpu-cublas --no-prebuild \
      && grep -q "cuBLAS ON" "$WORK/cublas-build.out"; then
      export ITOOL_ADDON=$ROOT/build/gpu-cublas/Release/itool.node
      echo "{\"root\":\"$CUBLAS_ROOT\",\"built\":true}" > "$WORK/cublas-build.json"
    else
      log "the cuBLASLt build failed or did not find it (see the log): benches use the built-in GEMM"
      echo "{\"root\":\"$CUBLAS_ROOT\",\"built\":false}" > "$WORK/cublas-build.json"
    fi
  fi
fi
addon_info "$WORK/info.json" || exit 1

# ---- benches (each its own process: the loss bench measures the pool's growth)
Q=""; [ "${ITOOL_GPU_FULL:-0}" = 1 ] || Q="--quick"
for b in loss attention; do
  step "bench-$b" 150 "$NODE" bin/itool.js bench "$b" --device cuda --compare torch --json $Q
  # the JSON is the last line that parses
  "$NODE" -e 'const l = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n"); for (let i = l.length - 1; i >= 0; i--) { try { JSON.parse(l.slice(i).join("\n")); console.log(l.slice(i).join("\n")); break; } catch {} }' \
    "$WORK/bench-$b.out" > "$WORK/$b.json" 2>/dev/null
done
step bench-e2e 240 "$NODE" bench/gpu/e2e.mjs --device cuda:0 --compare torch $Q
sed -n '/^{/,$p' "$WORK/bench-e2e.out" > "$WORK/e2e.json"
rm -rf "$WORK/hf"
if step hf-model 60 "$NODE" bench/gpu/hf_check.mjs "$WORK/hf" cuda:0; then
  step hf-check 90 "$PY" bench/gpu/hf_check.py "$WORK/hf"
  tail -1 "$WORK/hf-check.out" > "$WORK/hf_check.json"
fi

timeout 20 "$NODE" bench/gpu/summary.mjs bench "$WORK" "$OUT/gpu-bench.json" "$OUT/gpu-summary.md" > "$WORK/summary.txt" 2>&1
cat "$WORK/summary.txt" | tee -a "$LOG"
log "done in $(( $(date +%s) - START ))s (budget ${BUDGET}s)"
