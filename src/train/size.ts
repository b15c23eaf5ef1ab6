// Memory sizes on the command line (--max-memory) and the default memory budget.
//
// Units: B; kB/KB, MB, GB, TB are powers of 1000 (SI: "8GB" = 8e9 bytes); KiB, MiB, GiB, TiB are
// powers of 1024 ("1.5GiB" = 1.5 x 2^30). The one-letter forms K, M, G, T (as in "8G") are the
// binary ones, as free(1), ulimit and Docker read them. Case-insensitive; a space between number
// and unit is allowed; a plain number is bytes. Anything else is an error naming the flag.
import { freemem } from 'node:os';
import { readFileSync } from 'node:fs';

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
  kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40,
  k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40,
};

/** Bytes of a size such as "8GB", "8G", "512MiB", "1.5GiB" or "123456789"; `flag` names the option in errors. */
export function parseSize(text: unknown, flag = '--max-memory'): number {
  const s = typeof text === 'number' ? String(text) : typeof text === 'string' ? text.trim() : '';
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-zA-Z]*)$/.exec(s);
  const unit = m ? UNITS[m[2]!.toLowerCase() || 'b'] : undefined;
  if (!m || unit === undefined)
    throw new RangeError(
      `${flag}: '${String(text)}' is not a size (examples: 8GB = 8e9 bytes, 8G or 8GiB = 8 x 2^30, 512MiB, 1.5GiB, or a plain byte count)`,
    );
  const v = Math.round(Number(m[1]) * unit);
  if (!(v > 0) || !Number.isSafeInteger(v)) throw new RangeError(`${flag}: '${String(text)}' must be a positive size below 2^53 bytes`);
  return v;
}

/** "1.50 GiB" style (binary units), for tables; exact bytes are printed beside it. */
export function formatBytes(n: number): string {
  const a = Math.abs(n);
  if (a < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(Math.abs(v) >= 100 ? 0 : Math.abs(v) >= 10 ? 1 : 2)} ${units[i]}`;
}

/** The fraction of the available memory the default budget takes. */
export const DEFAULT_BUDGET_FRACTION = 0.8;

/**
 * Memory the machine can give this process now: MemAvailable of /proc/meminfo (free memory
 * plus the page cache the kernel can drop), else os.freemem() (free memory alone).
 */
export function availableMemory(meminfo = '/proc/meminfo'): { bytes: number; source: string } {
  try {
    const m = /^MemAvailable:\s+(\d+)\s*kB/m.exec(readFileSync(meminfo, 'utf8'));
    if (m) return { bytes: Number(m[1]) * 1024, source: 'MemAvailable (/proc/meminfo)' };
  } catch {
    // not Linux, or /proc not mounted
  }
  return { bytes: freemem(), source: 'os.freemem()' };
}

/** --max-memory when given, else DEFAULT_BUDGET_FRACTION of the available memory. */
export function memoryBudget(maxMemory: unknown, flag = '--max-memory'): { bytes: number; source: string } {
  if (maxMemory !== undefined && maxMemory !== null && maxMemory !== '') return { bytes: parseSize(maxMemory, flag), source: flag };
  const a = availableMemory();
  return { bytes: Math.floor(a.bytes * DEFAULT_BUDGET_FRACTION), source: `${DEFAULT_BUDGET_FRACTION * 100}% of ${a.source}` };
}
