#!/usr/bin/env node
// npm run test:gpu:emu: runs the GPU suite (test/gpu) on the CUDA emulator: the addon of
// `node scripts/build-native.mjs --emulate` (build/emu: native/cuda compiled as C++
// against native/cuda/emu, with ASan + UBSan), the sanitizer runtime preloaded into node.
// The CUDA engine then has one device, "itool CUDA emulator (sm_90)"; test/gpu sees
// ITOOL_CUDA_EMULATED=1 and sizes its cases for the CPU. Fails on a failing test or on
// any sanitizer report. Extra arguments go to vitest (e.g. a test file or -t NAME).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = resolve(root, process.env.ITOOL_EMU_ADDON || join('build', 'emu', 'Release', 'itool.node'));
if (!existsSync(addon)) {
  console.error(`[itool] ${addon} is missing: run \`node scripts/build-native.mjs --emulate\` first`);
  process.exit(1);
}
const lib = (name) => spawnSync('g++', [`-print-file-name=${name}`], { encoding: 'utf8' }).stdout.trim();
const preload = [lib('libasan.so'), lib('libubsan.so')].filter((p) => p.startsWith('/') && existsSync(p));
const sanitized = !addon.includes('emu-fast');
if (sanitized && preload.length < 2) {
  console.error('[itool] cannot find libasan.so / libubsan.so through g++ -print-file-name');
  process.exit(1);
}
const env = {
  ...process.env,
  ITOOL_ADDON: addon,
  ITOOL_CUDA_EMULATED: '1',
  ...(sanitized
    ? {
        ITOOL_ASAN: '1',
        LD_PRELOAD: preload.join(' '),
        ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1',
        UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=87',
      }
    : {}),
};
const extra = process.argv.slice(2);
const t0 = Date.now();
// streamed (CI shows progress) and kept (the sanitizer scan below)
const child = spawn(
  process.execPath,
  [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--config', 'test/gpu/vitest.config.ts', ...extra],
  { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
);
let all = '';
child.stdout.on('data', (d) => { all += d; process.stdout.write(d); });
child.stderr.on('data', (d) => { all += d; process.stderr.write(d); });
const status = await new Promise((res) => child.on('close', (code) => res(code)));
const r = { status };
const out = all;
const reports = out.match(/(ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|UndefinedBehaviorSanitizer)/g);
const secs = ((Date.now() - t0) / 1000).toFixed(0);
if (reports) {
  console.error(`[itool] sanitizer reports: ${reports.length} (${secs} s)`);
  process.exit(1);
}
if (r.status !== 0) {
  console.error(`[itool] emulated GPU test run failed (exit ${r.status}, ${secs} s)`);
  process.exit(r.status ?? 1);
}
console.log(`[itool] emulated GPU tests passed, sanitizers clean (${secs} s)`);
