// Loads the native addon. Order: ITOOL_ADDON (a path to an itool.node, used by the
// ASan run and by parallel builds), then node-gyp-build (prebuilds/<platform>-<arch>/,
// where `npm run build:native` copies the binary). When nothing is found the error
// says which command builds it.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** Root of the installed package (holds package.json, prebuilds/, build/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'CMakeLists.txt'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('itool: cannot find the package root (package.json beside CMakeLists.txt)');
}

// The raw addon surface is typed loosely here; src/engine wraps it with real types.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, any>;

let cached: NativeAddon | undefined;
let loadError: Error | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  if (loadError) throw loadError;
  const root = packageRoot();
  const override = process.env.ITOOL_ADDON;
  try {
    if (override) {
      const p = resolve(override);
      if (!existsSync(p)) throw new Error(`ITOOL_ADDON points to ${p}, which does not exist`);
      cached = require(p) as NativeAddon;
    } else {
      const load = require('node-gyp-build') as (dir: string) => NativeAddon;
      cached = load(root);
    }
    return cached;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    loadError = new Error(
      `itool: the native engine could not be loaded (${msg.split('\n')[0]}).\n` +
        `Build it with:  npm run build:native   (in ${root}; needs cmake and a C++17 compiler)`,
    );
    throw loadError;
  }
}
