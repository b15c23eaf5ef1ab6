// A GGUF (version 3) writer, from ggml's format description (docs/gguf.md):
//
//   header   : magic "GGUF" (u32 0x46554747 little-endian), version u32 = 3,
//              tensor count u64, metadata key/value count u64
//   metadata : key (string), value type (u32), value
//   tensors  : name (string), number of dimensions (u32), dimensions (u64 each, the
//              fastest-varying first: ggml's ne[0]), ggml type (u32), offset (u64) from the
//              start of the data section, a multiple of the alignment
//   padding  : zeros up to a multiple of `general.alignment` (32 when absent)
//   data     : each tensor's bytes at its offset, zero padding between them
//
// A string is a u64 byte length and UTF-8 bytes (no terminator); an array is the item type
// (u32), the count (u64) and the items. Everything is little-endian.
//
// The file is written atomically: to a temporary file beside the output, fsync'ed, then
// renamed over the output path; on any error the temporary file is removed, so an
// interrupted export leaves nothing at the output path.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf_type). */
export enum GgufValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** The ggml tensor types this exporter writes (ggml_type values). */
export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q8_0 = 8,
  BF16 = 30,
}

export type GgufScalarType = Exclude<GgufValueType, GgufValueType.ARRAY>;

export type GgufMetadataValue =
  | { type: GgufScalarType; value: number | bigint | boolean | string }
  | { type: GgufValueType.ARRAY; itemType: GgufScalarType; value: ReadonlyArray<number | bigint | boolean | string> };

export interface GgufMetadataEntry {
  key: string;
  value: GgufMetadataValue;
}

export interface GgufTensorSource {
  name: string;
  /** ggml order: ne[0] (the fastest-varying, a row's length) first */
  dims: number[];
  type: GgmlType;
  /** the exact size of the tensor's data in bytes */
  nbytes: number;
  /** produces the data (called once, in file order, so only one tensor is in memory at a time) */
  data: () => Uint8Array;
}

export interface GgufWriteOptions {
  alignment?: number;
  /** called after each tensor's data is written (progress; tests interrupt here) */
  onTensor?: (index: number, name: string) => void;
}

const MAX_KEY_BYTES = 65535;

class Sink {
  private buf = Buffer.allocUnsafe(1 << 16);
  private n = 0;
  pos = 0;
  constructor(private readonly fd: number) {}
  private ensure(k: number): void {
    if (this.n + k <= this.buf.length) return;
    this.flush();
    if (k > this.buf.length) this.buf = Buffer.allocUnsafe(k);
  }
  flush(): void {
    let off = 0;
    while (off < this.n) off += writeSync(this.fd, this.buf, off, this.n - off);
    this.n = 0;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.n);
    this.n += 1;
    this.pos += 1;
  }
  i8(v: number): void {
    this.ensure(1);
    this.buf.writeInt8(v, this.n);
    this.n += 1;
    this.pos += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.n);
    this.n += 2;
    this.pos += 2;
  }
  i16(v: number): void {
    this.ensure(2);
    this.buf.writeInt16LE(v, this.n);
    this.n += 2;
    this.pos += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v, this.n);
    this.n += 4;
    this.pos += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.n);
    this.n += 4;
    this.pos += 4;
  }
  f32(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.n);
    this.n += 4;
    this.pos += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.n);
    this.n += 8;
    this.pos += 8;
  }
  u64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.n);
    this.n += 8;
    this.pos += 8;
  }
  i64(v: number | bigint): void {
    this.ensure(8);
    this.buf.writeBigInt64LE(BigInt(v), this.n);
    this.n += 8;
    this.pos += 8;
  }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array): void {
    if (b.length > (1 << 20)) {
      this.flush();
      let off = 0;
      while (off < b.length) off += writeSync(this.fd, b, off, b.length - off);
      this.pos += b.length;
      return;
    }
    this.ensure(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
    this.pos += b.length;
  }
  zeros(k: number): void {
    for (let i = 0; i < k; i++) this.u8(0);
  }
}

function checkScalar(key: string, type: GgufScalarType, v: unknown): void {
  const bad = (what: string) => new RangeError(`gguf: metadata '${key}': ${what}, got ${typeof v === 'bigint' ? `${v}n` : JSON.stringify(v)}`);
  const intIn = (lo: number, hi: number) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw bad(`expected an integer in [${lo}, ${hi}]`);
  };
  switch (type) {
    case GgufValueType.UINT8: return intIn(0, 255);
    case GgufValueType.INT8: return intIn(-128, 127);
    case GgufValueType.UINT16: return intIn(0, 65535);
    case GgufValueType.INT16: return intIn(-32768, 32767);
    case GgufValueType.UINT32: return intIn(0, 0xffffffff);
    case GgufValueType.INT32: return intIn(-0x80000000, 0x7fffffff);
    case GgufValueType.FLOAT32:
    case GgufValueType.FLOAT64:
      if (typeof v !== 'number') throw bad('expected a number');
      return;
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw bad('expected a boolean');
      return;
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw bad('expected a string');
      return;
    case GgufValueType.UINT64:
      if (!(typeof v === 'bigint' ? v >= 0n && v < 1n << 64n : typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) throw bad('expected an unsigned 64-bit integer');
      return;
    case GgufValueType.INT64:
      if (!(typeof v === 'bigint' ? v >= -(1n << 63n) && v < 1n << 63n : typeof v === 'number' && Number.isSafeInteger(v))) throw bad('expected a signed 64-bit integer');
      return;
    default:
      throw new RangeError(`gguf: metadata '${key}': unknown value type ${String(type)}`);
  }
}

function writeScalar(s: Sink, type: GgufScalarType, v: number | bigint | boolean | string): void {
  switch (type) {
    case GgufValueType.UINT8: return s.u8(v as number);
    case GgufValueType.INT8: return s.i8(v as number);
    case GgufValueType.UINT16: return s.u16(v as number);
    case GgufValueType.INT16: return s.i16(v as number);
    case GgufValueType.UINT32: return s.u32(v as number);
    case GgufValueType.INT32: return s.i32(v as number);
    case GgufValueType.FLOAT32: return s.f32(v as number);
    case GgufValueType.BOOL: return s.u8(v ? 1 : 0);
    case GgufValueType.STRING: return s.str(v as string);
    case GgufValueType.UINT64: return s.u64(v as number | bigint);
    case GgufValueType.INT64: return s.i64(v as number | bigint);
    case GgufValueType.FLOAT64: return s.f64(v as number);
  }
}

/** Checks metadata and tensor descriptions; throws (naming the key or tensor) before any byte is written. */
export function validateGguf(metadata: readonly GgufMetadataEntry[], tensors: readonly GgufTensorSource[], alignment: number): void {
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0 || alignment > 1 << 20)
    throw new RangeError(`gguf: alignment must be a positive multiple of 8, got ${alignment}`);
  const keys = new Set<string>();
  for (const { key, value } of metadata) {
    if (typeof key !== 'string' || key.length === 0 || Buffer.byteLength(key) > MAX_KEY_BYTES) throw new RangeError(`gguf: invalid metadata key ${JSON.stringify(key)}`);
    if (keys.has(key)) throw new RangeError(`gguf: metadata key '${key}' given twice`);
    keys.add(key);
    if (value.type === GgufValueType.ARRAY) {
      if (!Array.isArray(value.value)) throw new RangeError(`gguf: metadata '${key}': an array value must be an array`);
      if ((value.itemType as GgufValueType) === GgufValueType.ARRAY) throw new RangeError(`gguf: metadata '${key}': nested arrays are not written`);
      for (const v of value.value) checkScalar(key, value.itemType, v);
    } else checkScalar(key, value.type, value.value);
  }
  const al = metadata.find((m) => m.key === 'general.alignment');
  if (al && (al.value.type !== GgufValueType.UINT32 || al.value.value !== alignment))
    throw new RangeError(`gguf: general.alignment must be a u32 equal to the alignment used (${alignment})`);
  if (!al && alignment !== GGUF_DEFAULT_ALIGNMENT) throw new RangeError(`gguf: an alignment other than ${GGUF_DEFAULT_ALIGNMENT} needs a general.alignment key`);
  const names = new Set<string>();
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0 || Buffer.byteLength(t.name) > 63) throw new RangeError(`gguf: invalid tensor name ${JSON.stringify(t.name)} (1 to 63 bytes)`);
    if (names.has(t.name)) throw new RangeError(`gguf: tensor '${t.name}' given twice`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isSafeInteger(d) || d <= 0)) throw new RangeError(`gguf: tensor '${t.name}': dimensions must be 1 to 4 positive integers, got [${t.dims.join(', ')}]`);
    if (!Number.isSafeInteger(t.nbytes) || t.nbytes <= 0) throw new RangeError(`gguf: tensor '${t.name}': invalid byte size ${t.nbytes}`);
  }
}

const pad = (n: number, a: number): number => (a - (n % a)) % a;

/**
 * Writes a GGUF v3 file atomically. Tensor data is asked for one tensor at a time; each
 * `data()` must return exactly `nbytes` bytes.
 */
export function writeGguf(path: string, metadata: readonly GgufMetadataEntry[], tensors: readonly GgufTensorSource[], opts: GgufWriteOptions = {}): void {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  validateGguf(metadata, tensors, alignment);
  const offsets: number[] = [];
  let off = 0;
  for (const t of tensors) {
    offsets.push(off);
    off += t.nbytes + pad(t.nbytes, alignment);
  }
  const tmp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
  const fd = openSync(tmp, 'wx', 0o644);
  let closed = false;
  try {
    const s = new Sink(fd);
    s.u32(GGUF_MAGIC);
    s.u32(GGUF_VERSION);
    s.u64(tensors.length);
    s.u64(metadata.length);
    for (const { key, value } of metadata) {
      s.str(key);
      s.u32(value.type);
      if (value.type === GgufValueType.ARRAY) {
        s.u32(value.itemType);
        s.u64(value.value.length);
        for (const v of value.value) writeScalar(s, value.itemType, v);
      } else writeScalar(s, value.type, value.value);
    }
    tensors.forEach((t, i) => {
      s.str(t.name);
      s.u32(t.dims.length);
      for (const d of t.dims) s.u64(d);
      s.u32(t.type);
      s.u64(offsets[i]!);
    });
    s.zeros(pad(s.pos, alignment));
    const dataStart = s.pos;
    tensors.forEach((t, i) => {
      const b = t.data();
      if (b.length !== t.nbytes) throw new Error(`gguf: tensor '${t.name}' produced ${b.length} bytes, expected ${t.nbytes}`);
      if (s.pos - dataStart !== offsets[i]) throw new Error(`gguf: internal offset mismatch at tensor '${t.name}'`);
      s.bytes(b);
      s.zeros(pad(b.length, alignment));
      s.flush();
      opts.onTensor?.(i, t.name);
    });
    s.flush();
    fsyncSync(fd);
    closeSync(fd);
    closed = true;
    renameSync(tmp, path);
  } catch (e) {
    if (!closed) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
    try {
      unlinkSync(tmp);
    } catch {
      /* not there */
    }
    throw e;
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* directories cannot be fsync'ed everywhere */
  }
}
