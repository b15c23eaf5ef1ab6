import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { availableMemory, DEFAULT_BUDGET_FRACTION, formatBytes, memoryBudget, parseSize } from '../../src/train/size.js';

describe('--max-memory sizes', () => {
  it('reads SI (powers of 1000), binary (powers of 1024) and plain byte counts', () => {
    expect(parseSize('8GB')).toBe(8_000_000_000);
    expect(parseSize('8gb')).toBe(8_000_000_000);
    expect(parseSize('8G')).toBe(8 * 2 ** 30);
    expect(parseSize('8GiB')).toBe(8 * 2 ** 30);
    expect(parseSize('512MiB')).toBe(512 * 2 ** 20);
    expect(parseSize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseSize('1.5 GB')).toBe(1_500_000_000);
    expect(parseSize('123456789')).toBe(123456789);
    expect(parseSize('64k')).toBe(65536);
    expect(parseSize('2kB')).toBe(2000);
    expect(parseSize('100B')).toBe(100);
  });

  it('refuses anything else with an error naming the flag and the value', () => {
    for (const bad of ['', 'eight GB', '8 XB', '-1GB', '0', '0GB', '8GB extra', '1e9', 'GB', '8..5G', '9007199254740993'])
      expect(() => parseSize(bad), bad).toThrow(new RegExp(`--max-memory: '${bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`));
    expect(() => parseSize('lots', '--budget')).toThrow(/^--budget: 'lots' is not a size/);
  });

  it('default budget: the documented fraction of MemAvailable, os.freemem() without /proc/meminfo', () => {
    const d = mkdtempSync(join(tmpdir(), 'itool-meminfo-'));
    try {
      const f = join(d, 'meminfo');
      writeFileSync(f, 'MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   10000000 kB\n');
      expect(availableMemory(f)).toEqual({ bytes: 10_000_000 * 1024, source: 'MemAvailable (/proc/meminfo)' });
      expect(availableMemory(join(d, 'absent')).source).toBe('os.freemem()');
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
    const b = memoryBudget(undefined);
    expect(b.bytes).toBeLessThanOrEqual(availableMemory().bytes * DEFAULT_BUDGET_FRACTION + 2 ** 30); // memory moves between the two reads
    expect(b.source).toMatch(/^80% of /);
    expect(memoryBudget('3GB')).toEqual({ bytes: 3e9, source: '--max-memory' });
  });

  it('formats bytes in binary units', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(3 * 2 ** 30)).toBe('3.00 GiB');
  });
});
