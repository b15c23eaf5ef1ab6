// Boundary fuzz, run in a child process by fuzz.test.ts: calls every exported native
// function (and every method of every exported class) with random bad arguments and
// prints a JSON summary. Every call must end in a JS error (thrown or rejected); the
// process must stay alive. Field names for bad option objects are read from the
// binding sources so that new bindings are fuzzed without editing this file.
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const native = process.env.ITOOL_ADDON ? require(process.env.ITOOL_ADDON) : require('node-gyp-build')(root);
const calls = Number(process.argv[2] ?? 10000);
let seed = Number(process.argv[3] ?? 12345) >>> 0;
const rand = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];

// functions that take no arguments and so cannot be called wrongly
const NO_ARGS = new Set(['info']);

const keys = new Set();
const addonDir = join(root, 'native', 'addon');
for (const f of readdirSync(addonDir)) {
  if (!/\.(cpp|h)$/.test(f)) continue;
  const src = readFileSync(join(addonDir, f), 'utf8');
  for (const m of src.matchAll(/(?:get_\w+|has)\(\s*\w+\s*,\s*"(\w+)"/g)) keys.add(m[1]);
  for (const m of src.matchAll(/\.Get\("(\w+)"\)/g)) keys.add(m[1]);
}
const keyList = [...keys];

const disposed = native.tensorZeros({ dtype: 'f32', shape: [2] });
disposed.dispose();
const badLeaf = () =>
  pick([
    null, NaN, Infinity, -Infinity, 2 ** 60, -(2 ** 60), 1e308, '', 'bogus', 'cuda:99', 'f64', [], [NaN], [-1],
    [2 ** 40, 2 ** 40], {}, true, Symbol('x'), () => 1, 10n, new Float32Array(3), new Uint8Array(2), disposed,
    { length: -1 }, [[[]]], 'x'.repeat(1000),
  ]);
function badObject() {
  const o = {};
  for (const k of keyList) o[k] = badLeaf();
  return o;
}
function badArg() {
  const r = rand();
  if (r < 0.45) return badObject();
  if (r < 0.55) return undefined;
  return badLeaf();
}

// targets: [name, fn, thisArg]
const targets = [];
function collect(obj, prefix) {
  for (const name of Object.getOwnPropertyNames(obj)) {
    const v = obj[name];
    const full = prefix + name;
    if (typeof v === 'function') {
      const proto = v.prototype;
      const methods = proto ? Object.getOwnPropertyNames(proto).filter((m) => m !== 'constructor') : [];
      if (methods.length > 0) {
        targets.push([`new ${full}`, (...a) => new v(...a), null]);
        for (const m of methods) {
          const d = Object.getOwnPropertyDescriptor(proto, m);
          if (typeof d.value === 'function') {
            targets.push([`${full}.prototype.${m} (foreign this)`, d.value, 'foreign']);
            if (full === 'Tensor') targets.push([`${full}.prototype.${m} (disposed this)`, d.value, disposed]);
          }
          if (d.get) targets.push([`${full}.prototype.${m} getter (foreign this)`, d.get, 'foreign']);
        }
      } else if (!NO_ARGS.has(name)) {
        targets.push([full, v, null]);
      }
    } else if (v && typeof v === 'object' && !Array.isArray(v)) {
      collect(v, full + '.');
    }
  }
}
collect(native, '');
// a disposed Tensor answers dispose() and getters quietly by design (idempotent dispose,
// null shape); those are not "bad calls"
const QUIET = /Tensor\.prototype\.(dispose|dtype|shape|device|disposed|nbytes)/;
const fuzzTargets = targets.filter(([n]) => !(QUIET.test(n) && n.includes('disposed this')));

const accepted = {};
const perTarget = {};
let rejected = 0;
const pending = [];
for (let i = 0; i < calls; i++) {
  const [name, fn, thisArg] = fuzzTargets[i % fuzzTargets.length];
  const nargs = Math.floor(rand() * 4);
  const args = [];
  for (let j = 0; j < nargs; j++) args.push(badArg());
  if (nargs === 0 && thisArg === null) args.push(badArg());
  perTarget[name] = (perTarget[name] ?? 0) + 1;
  const self = thisArg === 'foreign' ? { foreign: true } : thisArg;
  try {
    const r = fn.apply(self, args);
    if (r && typeof r.then === 'function') {
      pending.push(
        r.then(
          () => (accepted[name] = (accepted[name] ?? 0) + 1),
          (e) => (e instanceof Error ? rejected++ : (accepted[name + ' (non-Error rejection)'] = 1)),
        ),
      );
    } else if (thisArg === 'foreign' && name.includes('getter')) {
      // a getter on a foreign object must throw, not return
      accepted[name] = (accepted[name] ?? 0) + 1;
    } else {
      accepted[name] = (accepted[name] ?? 0) + 1;
    }
  } catch (e) {
    if (e instanceof Error) rejected++;
    else accepted[name + ' (non-Error throw)'] = 1;
  }
}
await Promise.all(pending);
console.log(JSON.stringify({ calls, rejected, targets: fuzzTargets.map((t) => t[0]), accepted, keys: keyList.length }));
