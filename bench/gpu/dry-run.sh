#!/usr/bin/env bash
# Rehearses the GPU check here, where there is no GPU: copies what the device tool would send
# (tracked and untracked-not-ignored files, plus .device/ from pack.sh) into a scratch folder
# without node_modules or dist, puts a `node` that refuses to run first on PATH (the GPU
# machine has none), runs bench/gpu/run.sh there with a fake $OUT, and checks what came back:
# at most 8 files of at most 16 MiB, names the device tool accepts, gpu-check.json with every
# test group's report, the GEMM named in the log, the run inside its budget, and the bytes
# that travel under 64 MiB. Without a device every GPU test skips (with its reason).
#   bash bench/gpu/dry-run.sh [--bench] [--addon PATH] [--fake-sanitizer]
# --addon: test that addon instead of the carried one (e.g. an emulated-CUDA build, which
# reports a device, so the tests then run for real); --bench: also rehearse bench.sh;
# --fake-sanitizer: a `compute-sanitizer` that runs its command unchecked and prints a clean
# summary, so that the memcheck step's command line and test selection run here.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=${ITOOL_GPU_DRY:-/tmp/itool-gpu-dry}
ADDON=""
BENCH=0
FAKE_SAN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --addon) ADDON=$(readlink -f "$2"); shift 2 ;;
    --bench) BENCH=1; shift ;;
    --fake-sanitizer) FAKE_SAN=1; shift ;;
    *) echo "dry-run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -f .device/manifest.json ] || { echo "[dry-run] no .device/manifest.json: run bash bench/gpu/pack.sh first"; exit 2; }
rm -rf "$DRY"
mkdir -p "$DRY/tree" "$DRY/out" "$DRY/shim"
fail=0
bad() { echo "[dry-run] FAIL: $*"; fail=1; }

# what travels
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$DRY/tree"
cp -r .device "$DRY/tree/.device"
BYTES=$(du -sb --apparent-size "$DRY/tree" | cut -f1)
echo "[dry-run] the tree that travels: $((BYTES / 1024)) KiB of 65536 KiB ($(du -sb --apparent-size .device | cut -f1 | awk '{printf "%d", $1 / 1024}') KiB of it .device/)"
[ "$BYTES" -lt $((64 * 1024 * 1024)) ] || bad "over the 64 MiB that travels"
[ ! -e "$DRY/tree/node_modules" ] || bad "node_modules travelled"

printf '#!/bin/sh\necho "node: not on the GPU machine (dry run)" >&2\nexit 127\n' > "$DRY/shim/node"
chmod +x "$DRY/shim/node"
if [ "$FAKE_SAN" = 1 ]; then
  cat > "$DRY/shim/compute-sanitizer" <<'EOF'
#!/bin/bash
# dry run: no checking; the options (each with a value) are dropped, the command runs
[ "${1:-}" = --version ] && { echo "compute-sanitizer (fake, dry run)"; exit 0; }
while [ "${1#--}" != "$1" ]; do shift 2; done
"$@"; rc=$?
echo "========= ERROR SUMMARY: 0 errors (fake compute-sanitizer of bench/gpu/dry-run.sh: nothing was checked)"
exit $rc
EOF
  chmod +x "$DRY/shim/compute-sanitizer"
fi
t0=$(date +%s)
( cd "$DRY/tree" && env PATH="$DRY/shim:$PATH" OUT="$DRY/out" ITOOL_GPU_WORK="$DRY/work" ${ADDON:+ITOOL_ADDON="$ADDON"} \
    bash bench/gpu/run.sh ) > "$DRY/run.stdout" 2>&1
rc=$?
dt=$(( $(date +%s) - t0 ))
tail -25 "$DRY/run.stdout"
echo "[dry-run] run.sh exit $rc in ${dt}s"
if [ "$BENCH" = 1 ]; then
  t1=$(date +%s)
  ( cd "$DRY/tree" && env PATH="$DRY/shim:$PATH" OUT="$DRY/out" ITOOL_GPU_WORK="$DRY/work" ${ADDON:+ITOOL_ADDON="$ADDON"} \
      bash bench/gpu/bench.sh ) > "$DRY/bench.stdout" 2>&1
  echo "[dry-run] bench.sh exit $? in $(( $(date +%s) - t1 ))s; tail:"
  tail -12 "$DRY/bench.stdout"
fi

# what comes back
N=$(find "$DRY/out" -type f | wc -l)
echo "[dry-run] \$OUT holds $N files:"; ( cd "$DRY/out" && find . -type f -exec ls -l {} \; | awk '{print "  " $5 " " $9}' )
[ "$N" -le 8 ] || bad "more than 8 files under \$OUT"
find "$DRY/out" -mindepth 1 | sed "s|^$DRY/out/||" | while read -r p; do
  echo "$p" | grep -Eq '^([A-Za-z0-9._-]+/){0,2}[A-Za-z0-9._-]+$' || echo "[dry-run] FAIL: name or depth the device tool refuses: $p"
done | tee "$DRY/names.txt"
[ -s "$DRY/names.txt" ] && fail=1
find "$DRY/out" -type f -size +16M | grep -q . && bad "a file over 16 MiB"
J=$DRY/out/gpu-check.json
DRY_ADDON="$ADDON" node -e '
  const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const bad = [];
  if (j.groups.length < 12) bad.push(`only ${j.groups.length} groups`);
  for (const g of j.groups) {
    // a report is missing when a process timed out (an emulated device can be that slow)
    if (g.report && !(process.env.DRY_ADDON && g.timedOut)) bad.push(`group ${g.name}: report ${g.report}`);
    if (g.notRun) (process.env.DRY_ADDON ? console.log : (m) => bad.push(m))(`group ${g.name}: not run (${g.notRun})`);
    // without a device every test skips and every group must exit 0; on an emulated
    // device (--addon) a failing or timed-out group is a finding, not a broken script
    if (g.rc !== 0) (process.env.DRY_ADDON ? console.log : (m) => bad.push(m))(`group ${g.name}: exit ${g.rc}${g.timedOut ? " (timed out)" : ""}`);
  }
  const total = j.groups.reduce((s, g) => s + g.passed + g.failed + g.skipped, 0);
  console.log(`[dry-run] gpu-check.json: ${j.groups.length} groups, ${j.passed} passed, ${j.failed} failed, ${total} test results (skipped ones counted once per group), device ${j.device ? j.device.name : "none"}, GEMM ${j.gemm}, memcheck ${j.memcheck.notRun ?? j.memcheck.rc}`);
  if (bad.length) { console.log("[dry-run] FAIL: " + bad.join("; ")); process.exit(1); }' "$J" || fail=1
grep -q "GEMM: " "$DRY/out/gpu-check.log" || bad "the log does not say which GEMM ran"
BUDGET=${ITOOL_GPU_BUDGET_S:-340}
[ "$dt" -le "$BUDGET" ] || bad "run.sh took ${dt}s, over its ${BUDGET}s budget"
[ "$fail" = 0 ] && echo "[dry-run] OK" || echo "[dry-run] NOT OK"
exit $fail
