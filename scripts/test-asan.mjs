#!/usr/bin/env node
// npm run test:asan: runs the native test files (test/native/) against the ASan+UBSan
// build (build/asan, made by `npm run build:native:asan`) with the sanitizer runtime
// preloaded into node. Fails on a failing test or on any sanitizer report.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'asan', 'Release', 'itool.node');
if (!existsSync(addon)) {
  console.error(`[itool] ${addon} is missing: run \`npm run build:native:asan\` first`);
  process.exit(1);
}
const lib = (name) => spawnSync('g++', [`-print-file-name=${name}`], { encoding: 'utf8' }).stdout.trim();
const preload = [lib('libasan.so'), lib('libubsan.so')].filter((p) => p.startsWith('/') && existsSync(p));
if (preload.length < 2) {
  console.error('[itool] cannot find libasan.so / libubsan.so through g++ -print-file-name');
  process.exit(1);
}
const env = {
  ...process.env,
  ITOOL_ADDON: addon,
  ITOOL_ASAN: '1',
  LD_PRELOAD: preload.join(' '),
  // node itself is not instrumented; leaks at exit belong to V8, not to us
  ASAN_OPTIONS: 'detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86:allocator_may_return_null=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1:exitcode=87',
};
const extra = process.argv.slice(2);
const r = spawnSync(process.execPath, [join(root, 'node_modules', 'vitest', 'vitest.mjs'), 'run', 'test/native', ...extra], {
  cwd: root,
  env,
  encoding: 'utf8',
  maxBuffer: 1 << 30,
});
process.stdout.write(r.stdout ?? '');
process.stderr.write(r.stderr ?? '');
const out = (r.stdout ?? '') + (r.stderr ?? '');
const reports = out.match(/(ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|UndefinedBehaviorSanitizer)/g);
if (reports) {
  console.error(`[itool] sanitizer reports: ${reports.length}`);
  process.exit(1);
}
if (r.status !== 0) {
  console.error(`[itool] ASan test run failed (exit ${r.status})`);
  process.exit(r.status ?? 1);
}
console.log('[itool] ASan+UBSan run clean');
