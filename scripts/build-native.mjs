#!/usr/bin/env node
// Builds the native addon with cmake-js and copies it into prebuilds/<platform>-<arch>/
// as prebuildify would, so that node-gyp-build finds it.
//
//   node scripts/build-native.mjs [--asan] [--emulate [--no-asan]] [--cuda=AUTO|ON|OFF] [--blas=AUTO|OFF] [--out DIR] [--no-prebuild]
//
// --emulate builds the CUDA backend against the CPU emulator (native/cuda/emu) in
// build/emu, with ASan + UBSan unless --no-asan (then build/emu-fast); it is never copied
// to prebuilds/. npm run test:gpu:emu runs test/gpu on it.
//
// Environment: ITOOL_CUDA, ITOOL_BLAS, ITOOL_CUDA_ARCHITECTURES override the defaults.
// The build directory (build/release, build/asan) is reused; options that changed since
// the last configure trigger a fresh configure (cmake-js compile ignores new -D flags).
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(`--${name}`);
const opt = (name, def) => {
  const a = args.find((x) => x.startsWith(`--${name}=`));
  if (a) return a.slice(name.length + 3);
  const i = args.indexOf(`--${name}`);
  if (i >= 0 && args[i + 1] && !args[i + 1].startsWith('--')) return args[i + 1];
  return def;
};

const emulate = flag('emulate');
const asan = flag('asan') || (emulate && !flag('no-asan'));
const cuda = emulate ? 'OFF' : (opt('cuda', process.env.ITOOL_CUDA || (asan ? 'OFF' : 'AUTO')) || 'AUTO').toUpperCase();
const blas = (opt('blas', process.env.ITOOL_BLAS || 'AUTO') || 'AUTO').toUpperCase();
if (!['AUTO', 'ON', 'OFF'].includes(cuda)) fail(`--cuda must be AUTO, ON or OFF, got '${cuda}'`);
if (!['AUTO', 'OFF'].includes(blas)) fail(`--blas must be AUTO or OFF, got '${blas}'`);
const out = resolve(root, opt('out', emulate ? (asan ? 'build/emu' : 'build/emu-fast') : asan ? 'build/asan' : 'build/release'));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

const defines = {
  ITOOL_CUDA: cuda,
  ITOOL_BLAS: blas,
  ITOOL_SANITIZE: asan ? 'ON' : 'OFF',
  ITOOL_PACKAGE_VERSION: pkg.version,
};
// only when set, so that the stamps of existing build dirs stay valid
if (emulate) defines.ITOOL_CUDA_EMULATE = 'ON';
if (process.env.ITOOL_CUDA_ARCHITECTURES) defines.ITOOL_CUDA_ARCHITECTURES = process.env.ITOOL_CUDA_ARCHITECTURES;

const stampFile = join(out, 'itool-options.json');
const stamp = JSON.stringify(defines);
const configured = existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp;
const cmakeJs = join(root, 'node_modules', 'cmake-js', 'bin', 'cmake-js');
if (!existsSync(cmakeJs)) fail('cmake-js is not installed: run `npm ci` first');

const cmdArgs = [
  cmakeJs,
  configured ? 'compile' : 'rebuild',
  '--out', out,
  '--parallel', String(Math.max(1, availableParallelism())),
  ...Object.entries(defines).map(([k, v]) => `--CD${k}=${v}`),
];
console.log(`[itool] building the native addon (${configured ? 'incremental' : 'configure + build'}; CUDA=${emulate ? 'emulated' : cuda}, BLAS=${blas}${asan ? ', ASan+UBSan' : ''}) in ${out}`);
const t0 = Date.now();
const r = spawnSync(process.execPath, cmdArgs, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) fail(`native build failed (exit ${r.status}). A C++17 compiler and cmake >= 3.18 are required.`);
mkdirSync(out, { recursive: true });
writeFileSync(stampFile, stamp);
const built = join(out, 'Release', 'itool.node');
if (!existsSync(built)) fail(`the build finished but ${built} is missing`);
console.log(`[itool] native build done in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${built}`);

if (!asan && !emulate && !flag('no-prebuild') && !opt('out')) {
  const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
  mkdirSync(dir, { recursive: true });
  const dest = join(dir, 'node.napi.node');
  copyFileSync(built, dest + '.tmp');
  renameSync(dest + '.tmp', dest);
  console.log(`[itool] copied to ${dest}`);
}

function fail(msg) {
  console.error(`[itool] ${msg}`);
  process.exit(1);
}
