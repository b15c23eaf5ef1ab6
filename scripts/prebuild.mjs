#!/usr/bin/env node
// npm run prebuild: copies the built addon into prebuilds/<platform>-<arch>/node.napi.node
// (prebuildify's layout; prebuildify itself has no cmake-js backend).
// npm also runs this as the pre-hook of `npm run build`; on a fresh clone nothing is
// built yet, so a missing binary is a note, not an error (build:native copies it too).
import { copyFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'build', 'release', 'Release', 'itool.node');
if (!existsSync(built)) {
  console.log(`[itool] prebuild: nothing to copy yet (${built} does not exist; \`npm run build:native\` builds and copies it)`);
  process.exit(0);
}
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
const dest = join(dir, 'node.napi.node');
copyFileSync(built, dest + '.tmp');
renameSync(dest + '.tmp', dest);
console.log(`[itool] ${dest}`);
