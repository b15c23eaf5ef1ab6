// Run by alloc-evict.test.ts with ITOOL_CPU_CACHE_MB=4 (the cap is read once, at the first
// allocation, hence a child process): fills the CPU allocator's block cache with 1 MiB blocks,
// then frees and reallocates a block of another size class; prints the cached bytes after each.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const native = process.env.ITOOL_ADDON ? require(process.env.ITOOL_ADDON) : require('node-gyp-build')(root);
const make = (floats) => native.tensorFromArray({ data: new Float32Array(floats), dtype: 'f32', shape: [floats], device: 'cpu' });
const cached = () => native.allocatorStats().cached;
const out = { start: cached() };
// four blocks of 1 MiB (a size class of its own) fill the 4 MiB cap once freed
const a = [0, 1, 2, 3].map(() => make(262144));
for (const t of a) t.dispose();
out.afterFill = cached();
// a 768 KiB block (another size class), freed into the full cache, then asked for again
const b = make(196608);
b.dispose();
out.afterOther = cached();
const b2 = make(196608);
out.afterReuse = cached();
b2.dispose();
process.stdout.write(JSON.stringify(out) + '\n');
