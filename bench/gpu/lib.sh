# Shared by bench/gpu/run.sh and bench/gpu/bench.sh (sourced, from the repository root):
# the deadline, the log, steps under `timeout`, and unpacking what pack.sh put in .device/.
# The caller sets NAME (log prefix and file stem), BUDGET (seconds) and WORK before sourcing.
ROOT=$PWD
START=$(date +%s)
DEADLINE=$((START + BUDGET))
OUT=${OUT:-$ROOT/build/gpu-out}
mkdir -p "$OUT" "$WORK" "$WORK/bin"
LOG=$OUT/$NAME.log
: > "$LOG"
: > "$WORK/steps.jsonl"
log() { echo "[$NAME +$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - $(date +%s))); }

# step NAME CAP CMD...: CMD under timeout min(CAP, time left - RESERVE); its output goes to
# $WORK/NAME.out and the log, one line of JSON to $WORK/steps.jsonl. Returns CMD's exit.
RESERVE=${RESERVE:-20}
step() {
  local name=$1 cap=$2; shift 2
  local t=$(( $(left) - RESERVE )); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 5 ]; then
    log "step $name: skipped, out of time"
    echo "{\"name\":\"$name\",\"notRun\":\"out of time\"}" >> "$WORK/steps.jsonl"
    return 99
  fi
  local t0 rc dt timed=false
  t0=$(date +%s)
  timeout -k 5 "$t" "$@" > "$WORK/$name.out" 2>&1
  rc=$?
  dt=$(( $(date +%s) - t0 ))
  { [ $rc = 124 ] || [ $rc = 137 ]; } && timed=true
  { echo "----- $name (exit $rc, ${dt}s, limit ${t}s)"; sed 's/\x1b\[[0-9;]*m//g' "$WORK/$name.out" | tail -c 400000; } >> "$LOG"
  echo "{\"name\":\"$name\",\"rc\":$rc,\"seconds\":$dt,\"limit\":$t,\"timedOut\":$timed}" >> "$WORK/steps.jsonl"
  log "step $name: exit $rc in ${dt}s$($timed && echo " (TIMED OUT at ${t}s)")"
  return $rc
}

# unpack: node (NODE), node_modules, the addon (ITOOL_ADDON), dist/ when WANT_DIST=1
unpack() {
  NODE=$(command -v node || true)
  if [ -f .device/node.xz ]; then
    if [ ! -x "$WORK/bin/node" ]; then xz -dc .device/node.xz > "$WORK/bin/node.tmp" && chmod +x "$WORK/bin/node.tmp" && mv "$WORK/bin/node.tmp" "$WORK/bin/node"; fi
    NODE=$WORK/bin/node
  fi
  [ -n "$NODE" ] || { log "no node and no .device/node.xz: run bench/gpu/pack.sh on the dev machine and carry .device"; return 2; }
  if ! "$NODE" --version > /dev/null 2> "$WORK/node.err"; then
    log "the carried node does not run here: $(head -c 400 "$WORK/node.err"); ldd: $(ldd "$NODE" 2>&1 | grep -i 'not found' | head -3)"
    return 2
  fi
  export PATH="$(dirname "$NODE"):$PATH"
  if [ ! -d node_modules ]; then
    [ -f .device/node_modules.tar.xz ] || { log "no node_modules and no .device/node_modules.tar.xz"; return 2; }
    tar -xJf .device/node_modules.tar.xz || { log "unpacking node_modules failed"; return 2; }
  fi
  if [ "${WANT_DIST:-0}" = 1 ] && [ ! -f dist/engine/index.js ] && [ -f .device/dist.tar.xz ]; then tar -xJf .device/dist.tar.xz; fi
  if [ -z "${ITOOL_ADDON:-}" ] && [ -f .device/itool.node.xz ]; then
    mkdir -p "$WORK/addon"
    [ -f "$WORK/addon/itool.node" ] || xz -dc .device/itool.node.xz > "$WORK/addon/itool.node"
    export ITOOL_ADDON=$WORK/addon/itool.node
  fi
  log "unpacked: node $("$NODE" --version 2>&1), addon ${ITOOL_ADDON:-(node-gyp-build default)}"
  local packed now
  packed=$(grep -o '"nativeHash": "[0-9a-f]*"' .device/manifest.json 2>/dev/null | cut -d'"' -f4)
  now=$(bash bench/gpu/native-hash.sh 2>/dev/null)
  if [ -n "$packed" ] && [ "$packed" != "$now" ]; then
    log "WARNING: native/ differs from the sources the carried addon was built from (packed $packed, here $now): run bench/gpu/pack.sh again"
  fi
}

# addon_info FILE: the addon's info() as JSON in FILE; logs the device and which GEMM runs
addon_info() {
  timeout 60 "$NODE" -e 'const a = require(process.env.ITOOL_ADDON || require("node-gyp-build")(process.cwd())); console.log(JSON.stringify(a.info()))' \
    > "$1" 2> "$1.err"
  if [ ! -s "$1" ]; then
    log "the addon did not load: $(head -c 600 "$1.err")"
    return 1
  fi
  log "$("$NODE" -e '
    const i = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); const c = i.cuda, d = c.devices[0];
    const gemm = !c.cublas ? "built-in wmma kernels (this addon has no cuBLAS)"
      : process.env.ITOOL_CUDA_GEMM === "builtin" ? "built-in wmma kernels (ITOOL_CUDA_GEMM=builtin)" : "cuBLASLt";
    console.log(`device: ${d ? `${d.name} (sm ${d.computeCapability})` : `none (${c.reason})`}; CUDA runtime ${c.runtime}; GEMM: ${gemm}`)' "$1")"
}
