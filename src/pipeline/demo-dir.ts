// The demo's output directories: which demo version and settings wrote them (demo.json), so
// that a directory from an older version or with other settings is refused, never mixed into a
// new table; and the --seeds list.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic } from './state.js';

/** results.json's layout version: a directory written by another version is refused, never mixed */
export const DEMO_VERSION = 2;

/** '1,2,3' → [1, 2, 3]; an empty list, a non-integer or a duplicate is an error that names it. */
export function parseSeeds(text: string): number[] {
  const parts = String(text)
    .split(',')
    .map((p) => p.trim());
  if (parts.length === 0 || parts.every((p) => p === '')) throw new Error(`--seeds needs a comma-separated list of seeds (e.g. 1,2,3), got '${text}'`);
  const seeds: number[] = [];
  for (const p of parts) {
    if (!/^\d+$/.test(p)) throw new Error(`--seeds: '${p}' is not a non-negative integer (in '${text}')`);
    const n = Number(p);
    if (!Number.isSafeInteger(n)) throw new Error(`--seeds: '${p}' is too large`);
    if (seeds.includes(n)) throw new Error(`--seeds: seed ${n} is given twice (in '${text}')`);
    seeds.push(n);
  }
  return seeds;
}

/** What a demo directory was written by and for: stored as demo.json when the run starts. */
export interface DemoManifest {
  version: number;
  kind: 'run' | 'seeds' | 'ablate';
  quick: boolean;
  seeds: number[];
  /** a hash of the run's sizes and settings (a change of defaults between builds is refused too) */
  settings?: string;
}

/**
 * Refuses a directory that holds something other than a demo of this version with the same
 * settings (an older demo, another seed, another command's output); writes the manifest
 * into an empty or new one. A directory with the same manifest is resumed.
 */
export function claimDemoDir(dir: string, m: DemoManifest): void {
  const file = join(dir, 'demo.json');
  if (existsSync(file)) {
    let old: DemoManifest;
    try {
      old = JSON.parse(readFileSync(file, 'utf8')) as DemoManifest;
    } catch (e) {
      throw new Error(`${file} is not readable (${(e as Error).message}); remove ${dir} or use another --out`);
    }
    if (old.version !== m.version)
      throw new Error(`${dir} holds a demo written by demo version ${old.version} (this is version ${m.version}); its results are not comparable: remove it or use another --out`);
    if (old.kind === m.kind && old.quick === m.quick && JSON.stringify(old.seeds) === JSON.stringify(m.seeds) && old.settings !== m.settings)
      throw new Error(`${dir} holds a demo run with other sizes or settings (settings ${old.settings ?? 'unrecorded'}, now ${m.settings ?? 'unrecorded'}); its results are not comparable: remove it or use another --out`);
    if (old.kind !== m.kind || old.quick !== m.quick || JSON.stringify(old.seeds) !== JSON.stringify(m.seeds))
      throw new Error(
        `${dir} holds a demo ${old.kind === 'seeds' ? `over seeds ${old.seeds.join(',')}` : `of seed ${old.seeds.join(',')}`}${old.quick ? ' (--quick)' : ''}, not ${m.kind === 'seeds' ? `over seeds ${m.seeds.join(',')}` : `of seed ${m.seeds.join(',')}`}${m.quick ? ' (--quick)' : ''}: use another --out`,
      );
    return;
  }
  if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new Error(`${dir} is not empty and holds no demo.json (an older demo version or other files): remove it or use another --out`);
  mkdirSync(dir, { recursive: true });
  writeAtomic(file, JSON.stringify(m, null, 2) + '\n');
}
