#!/usr/bin/env bash
# The GPU check, in one device call that ends within 6 minutes (ITOOL_GPU_BUDGET_S, default
# 340 s, every step under `timeout` and the whole under that deadline). Nothing is built
# there: the addon with CUDA compiled on the dev machine, node and node_modules come packed
# in .device/ (bench/gpu/pack.sh).
#   1. unpack node, node_modules and the addon; log the device, the driver, which GEMM the
#      addon runs (built-in wmma kernels or cuBLASLt) and whether native/ changed since packing
#   2. the GPU tests (test/gpu), one op group per process with CUDA_LAUNCH_BLOCKING=1, so that
#      one illegal address fails its group and not the rest
#   3. compute-sanitizer memcheck over a small subset of the op table
#   4. bench/gpu/summary.mjs: one table on stdout and in the log
# Writes two files under $OUT: gpu-check.log (every step's output) and gpu-check.json
# (device, GEMM, per group: exit, seconds, counts, failures; memcheck). The benches are
# bench/gpu/bench.sh, a second call.
#
# Usage (device tool): carry [".device"], command "bash bench/gpu/run.sh", timeout_s 420.
# Here: bash bench/gpu/dry-run.sh (a copy of the tree without node_modules, a fake $OUT).
set -uo pipefail
cd "$(dirname "$0")/../.."
NAME=gpu-check
BUDGET=${ITOOL_GPU_BUDGET_S:-340}
WORK=${ITOOL_GPU_WORK:-/tmp/itool-gpu}/check
rm -rf "$WORK"
. bench/gpu/lib.sh
mkdir -p "$WORK/groups"

# ---- 1. unpack, environment, which GEMM
unpack || exit 2
{
  echo "----- environment"
  uname -a; ldd --version 2>&1 | head -1
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 | head -3
  nvcc --version 2>&1 | tail -1; compute-sanitizer --version 2>&1 | head -2
  [ -n "${ITOOL_ADDON:-}" ] && { echo "ldd of the addon:"; ldd "$ITOOL_ADDON" 2>&1; }
  cat .device/manifest.json 2>/dev/null
} >> "$LOG" 2>&1
addon_info "$WORK/info.json"

# ---- 2. the GPU tests, one op group per process
export CUDA_LAUNCH_BLOCKING=1
OPS='op table on CUDA \(bf16 activations\) '
# name | files | test-name pattern (vitest -t: "describe test")
GROUPS_TABLE="gemm|test/gpu/ops.test.ts|${OPS}gemm: |GEMM at model shapes
elementwise|test/gpu/ops.test.ts|${OPS}(embedding|rmsnorm|rope|swiglu|add|bias): |RoPE rotates
attention|test/gpu/ops.test.ts|${OPS}(attention|decode): |vs CPU engine on model shapes attention
logprob|test/gpu/ops.test.ts|${OPS}logprob: |fused log-prob
optim|test/gpu/ops.test.ts|${OPS}(preference|adamw|vector): 
sample|test/gpu/ops.test.ts test/gpu/sample.test.ts|${OPS}sample: |^sampling on CUDA
errors|test/gpu/ops.test.ts|^memory and errors on CUDA
model-llama|test/gpu/model.test.ts|^model LlamaForCausalLM
model-qwen2|test/gpu/model.test.ts|^model Qwen2ForCausalLM
model-qwen3|test/gpu/model.test.ts|^model Qwen3ForCausalLM
training|test/gpu/model.test.ts|^training on CUDA"
ALL=""
while IFS='|' read -r name files pat; do
  [ -n "$name" ] || continue
  ALL="${ALL:+$ALL|}$pat"
  # shellcheck disable=SC2086
  step "tests-$name" "${ITOOL_GPU_GROUP_S:-75}" "$NODE" node_modules/vitest/vitest.mjs run --config test/gpu/vitest.config.ts $files \
    -t "$pat" --reporter=verbose --reporter=json --outputFile.json="$WORK/groups/$name.json"
done <<< "$GROUPS_TABLE"
# whatever no group named (tests added later): one more process, so that nothing is left out
step "tests-rest" "${ITOOL_GPU_GROUP_S:-75}" "$NODE" node_modules/vitest/vitest.mjs run --config test/gpu/vitest.config.ts \
  -t "^(?!.*(?:$ALL))" --reporter=verbose --reporter=json --outputFile.json="$WORK/groups/rest.json"

# ---- 3. compute-sanitizer memcheck over a small op subset (device accesses out of bounds,
# misaligned, in freed memory; the tool makes kernels 10-100x slower)
MEMCHECK="${OPS}(gemm: M17 N13 K33 NT|attention: packed 1/7/1/37|decode: B3 nNew1|logprob: N37 H19 V101|rmsnorm: n29 d130|rope: T13 H4 D64|embedding: V37 dim19|swiglu: n517|sample: T0.8 top-k 40 top-p 0.5|adamw: n1001|preference: SimPO|vector: sumSquares/scale/axpy/hasNonfinite n4097)"
if command -v compute-sanitizer > /dev/null 2>&1; then
  step memcheck "${ITOOL_GPU_MEMCHECK_S:-100}" compute-sanitizer --tool memcheck --error-exitcode 86 --print-limit 40 --target-processes all \
    "$NODE" node_modules/vitest/vitest.mjs run --config test/gpu/vitest.config.ts test/gpu/ops.test.ts \
    -t "$MEMCHECK" --reporter=verbose --reporter=json --outputFile.json="$WORK/memcheck.json"
else
  log "compute-sanitizer not found: memcheck not run"
  echo '{"name":"memcheck","notRun":"compute-sanitizer not found"}' >> "$WORK/steps.jsonl"
fi

# ---- 4. summary: gpu-check.json and the table
timeout 20 "$NODE" bench/gpu/summary.mjs check "$WORK" "$OUT/gpu-check.json" > "$WORK/summary.txt" 2>&1
cat "$WORK/summary.txt" | tee -a "$LOG"
log "done in $(( $(date +%s) - START ))s (budget ${BUDGET}s)"
grep -q '"ok": true' "$OUT/gpu-check.json" 2>/dev/null
