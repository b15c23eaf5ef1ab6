// The CPU allocator's block cache makes room when it is full: a freed block of a new size class
// evicts the classes used longest ago instead of being unmapped, so that a phase that follows
// another (training after a tree search) reuses its own blocks instead of mapping fresh pages
// at every step. Byte counts by hand: 1 MiB and 768 KiB are size classes of their own (the
// class rule of native/cpu/cpu_backend.cpp: a multiple of a quarter of the power of two below).
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { info } from '../../src/engine/index.js';
import { repoRoot } from '../helpers/native.js';

// sanitizer builds never cache (ASan sees every use after free)
const caching = !info().build.sanitize;

describe('CPU block cache eviction', () => {
  it.skipIf(!caching)('a full cache evicts the oldest size class for a block of a new one (skipped on sanitizer builds: they never cache)', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'test', 'native', 'alloc-evict-child.mjs')], {
      cwd: repoRoot,
      env: { ...process.env, ITOOL_CPU_CACHE_MB: '4' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const c = JSON.parse(r.stdout.trim()) as { start: number; afterFill: number; afterOther: number; afterReuse: number };
    const MiB = 1 << 20;
    expect(c.start).toBe(0);
    expect(c.afterFill).toBe(4 * MiB);
    // the four 1 MiB blocks are given back to make room; the 768 KiB block is kept ...
    expect(c.afterOther).toBe(768 * 1024);
    // ... and handed out again (without eviction it was unmapped: 4 MiB stayed cached, 0 reused)
    expect(c.afterReuse).toBe(0);
  });
});
