#!/usr/bin/env node
// npm run prebuild: copies the built addon into prebuilds/<platform>-<arch>/node.napi.node
// (prebuildify's layout; prebuildify itself has no cmake-js backend).
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build', 'release', 'Release', 'itool.node');
if (!existsSync(built)) {
  console.error(`[itool] ${built} does not exist: run \`npm run build:native\` first`);
  process.exit(1);
}
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
const dest = join(dir, 'node.napi.node');
copyFileSync(built, dest + '.tmp');
renameSync(dest + '.tmp', dest);
console.log(`[itool] ${dest}`);
