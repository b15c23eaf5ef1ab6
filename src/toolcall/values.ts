// Values as Python sees them. Tool-call arguments are plain JSON-like JavaScript values,
// with one exception used only where int-versus-float matters (the BFCL checker and the
// formatter): a float whose value is a whole number (Python `2.0`) can be carried as a
// PyFloat so that it stays a float. Parsers create PyFloat only when asked
// (`floatMarks: true`); everything else sees plain numbers.

/** A Python float whose value is integral (e.g. `2.0`); non-integral floats stay plain numbers. */
export class PyFloat {
  constructor(readonly value: number) {}
  toJSON(): number {
    return this.value;
  }
  valueOf(): number {
    return this.value;
  }
}

export type PyType = 'str' | 'int' | 'float' | 'bool' | 'NoneType' | 'list' | 'tuple' | 'dict' | 'other';

/** Marks an array that was written as a Python tuple (only with `floatMarks`; not enumerable). */
export const TUPLE: unique symbol = Symbol('tuple');

export function markTuple<T extends unknown[]>(a: T): T {
  Object.defineProperty(a, TUPLE, { value: true, enumerable: false });
  return a;
}

export function isTuple(v: unknown): boolean {
  return Array.isArray(v) && (v as unknown as Record<symbol, unknown>)[TUPLE] === true;
}

/** The Python type name a parsed value would have. Whole JS numbers are ints unless wrapped in PyFloat. */
export function pyType(v: unknown): PyType {
  if (typeof v === 'string') return 'str';
  if (typeof v === 'boolean') return 'bool';
  if (v === null || v === undefined) return 'NoneType';
  if (v instanceof PyFloat) return 'float';
  if (typeof v === 'number') return Number.isInteger(v) && Number.isFinite(v) ? 'int' : 'float';
  if (Array.isArray(v)) return isTuple(v) ? 'tuple' : 'list';
  if (typeof v === 'object') return 'dict';
  return 'other';
}

/** Numeric value of int/float/bool (Python: True == 1); undefined for anything else. */
function num(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v instanceof PyFloat) return v.value;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return undefined;
}

/** Python `==` on parsed values (1 == 1.0 == True; lists element-wise; dicts key-wise). */
export function pyEquals(a: unknown, b: unknown): boolean {
  const na = num(a);
  const nb = num(b);
  if (na !== undefined || nb !== undefined) return na !== undefined && nb !== undefined && na === nb;
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  if (a === null || a === undefined || b === null || b === undefined) return (a ?? null) === (b ?? null);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    if (isTuple(a) !== isTuple(b)) return false; // Python: (1, 2) != [1, 2]
    for (let i = 0; i < a.length; i++) if (!pyEquals(a[i], b[i])) return false;
    return true;
  }
  if (typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a as object);
    const kb = Object.keys(b as object);
    if (ka.length !== kb.length) return false;
    for (const k of ka) {
      if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
      if (!pyEquals((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
    }
    return true;
  }
  return false;
}

/** Python `x in list`. */
export function pyIn(x: unknown, list: readonly unknown[]): boolean {
  for (const y of list) if (pyEquals(x, y)) return true;
  return false;
}

/** Strips PyFloat marks (deep), giving plain JSON-like values. */
export function plain(v: unknown): unknown {
  if (v instanceof PyFloat) return v.value;
  if (Array.isArray(v)) return v.map(plain);
  if (v !== null && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) setKey(out, k, plain(x));
    return out;
  }
  return v;
}

/** Sets a key on a plain object safely (a key named `__proto__` becomes an own property). */
export function setKey(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/** Formats a number as Python would read it back with the same type (float keeps a `.0`). */
export function formatNumber(v: number, asFloat: boolean): string {
  if (!Number.isFinite(v)) return v > 0 ? '1e999' : v < 0 ? '-1e999' : 'None';
  let s = String(v);
  if (asFloat && /^-?\d+$/.test(s)) s += '.0';
  return s;
}

/** A Python literal for a value: strings in double quotes (JSON escapes, which Python also reads). */
export function formatPyValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (v === null || v === undefined) return 'None';
  if (v instanceof PyFloat) return formatNumber(v.value, true);
  if (typeof v === 'number') return formatNumber(v, false);
  if (Array.isArray(v)) return '[' + v.map(formatPyValue).join(', ') + ']';
  if (typeof v === 'object') {
    return (
      '{' +
      Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => JSON.stringify(k) + ': ' + formatPyValue(x))
        .join(', ') +
      '}'
    );
  }
  return JSON.stringify(String(v));
}

/** JSON text for a value, keeping PyFloat's `.0` (JSON.stringify would drop it). */
export function formatJsonValue(v: unknown): string {
  if (v instanceof PyFloat) return formatNumber(v.value, true);
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : 'null';
  if (Array.isArray(v)) return '[' + v.map(formatJsonValue).join(', ') + ']';
  if (v !== null && typeof v === 'object') {
    return (
      '{' +
      Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => JSON.stringify(k) + ': ' + formatJsonValue(x))
        .join(', ') +
      '}'
    );
  }
  if (v === undefined) return 'null';
  return JSON.stringify(v);
}
