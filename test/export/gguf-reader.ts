// A GGUF v3 reader written for the tests from ggml's docs/gguf.md, separately from the
// writer in src/export: it checks the magic, version, every key/value type, tensor infos,
// that offsets are aligned and in order, that the padding bytes are zero and that the data
// section ends where the last tensor's padded data ends.
import { readFileSync } from 'node:fs';

export type Value = number | bigint | boolean | string | Value[];
export interface KV {
  type: number;
  itemType?: number;
  value: Value;
}
export interface TensorInfo {
  name: string;
  dims: number[];
  type: number;
  offset: number;
  /** the tensor's bytes (its size from the type and dims) */
  data: Uint8Array;
}
export interface GgufFile {
  version: number;
  metadata: Map<string, KV>;
  tensors: TensorInfo[];
  alignment: number;
  dataStart: number;
}

/** bytes of a tensor of ggml type `type` with `n` elements (the types the tests meet) */
export function tensorBytes(type: number, n: number): number {
  if (type === 0) return 4 * n; // F32
  if (type === 1 || type === 30) return 2 * n; // F16, BF16
  if (type === 8) {
    if (n % 32 !== 0) throw new Error(`q8_0 tensor of ${n} elements`);
    return (n / 32) * 34;
  }
  throw new Error(`reader: unexpected ggml type ${type}`);
}

export function readGguf(pathOrBytes: string | Uint8Array): GgufFile {
  const buf = typeof pathOrBytes === 'string' ? readFileSync(pathOrBytes) : Buffer.from(pathOrBytes);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const need = (k: number) => {
    if (p + k > buf.length) throw new Error(`reader: truncated at byte ${p} (need ${k})`);
  };
  const u8 = () => (need(1), dv.getUint8(p++));
  const u32 = () => {
    need(4);
    const v = dv.getUint32(p, true);
    p += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    return v;
  };
  const str = () => {
    const n = Number(u64());
    need(n);
    const s = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(p, p + n));
    p += n;
    return s;
  };
  const scalar = (t: number): Value => {
    switch (t) {
      case 0: return u8();
      case 1: need(1); return dv.getInt8(p++);
      case 2: { need(2); const v = dv.getUint16(p, true); p += 2; return v; }
      case 3: { need(2); const v = dv.getInt16(p, true); p += 2; return v; }
      case 4: return u32();
      case 5: { need(4); const v = dv.getInt32(p, true); p += 4; return v; }
      case 6: { need(4); const v = dv.getFloat32(p, true); p += 4; return v; }
      case 7: {
        const b = u8();
        if (b > 1) throw new Error(`reader: bool byte ${b}`);
        return b === 1;
      }
      case 8: return str();
      case 10: return u64();
      case 11: { need(8); const v = dv.getBigInt64(p, true); p += 8; return v; }
      case 12: { need(8); const v = dv.getFloat64(p, true); p += 8; return v; }
      default: throw new Error(`reader: unknown value type ${t} at byte ${p - 4}`);
    }
  };
  if (u32() !== 0x46554747) throw new Error('reader: bad magic');
  const version = u32();
  if (version !== 3) throw new Error(`reader: version ${version}`);
  const nTensors = Number(u64());
  const nKv = Number(u64());
  const metadata = new Map<string, KV>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    if (metadata.has(key)) throw new Error(`reader: duplicate key ${key}`);
    const type = u32();
    if (type === 9) {
      const itemType = u32();
      const n = Number(u64());
      const items: Value[] = [];
      for (let j = 0; j < n; j++) items.push(scalar(itemType));
      metadata.set(key, { type, itemType, value: items });
    } else metadata.set(key, { type, value: scalar(type) });
  }
  const al = metadata.get('general.alignment');
  if (al && al.type !== 4) throw new Error('reader: general.alignment is not a u32');
  const alignment = al ? (al.value as number) : 32;
  const infos: Array<Omit<TensorInfo, 'data'>> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    if (nd < 1 || nd > 4) throw new Error(`reader: ${name} has ${nd} dims`);
    const dims: number[] = [];
    for (let j = 0; j < nd; j++) dims.push(Number(u64()));
    const type = u32();
    const offset = Number(u64());
    if (offset % alignment !== 0) throw new Error(`reader: ${name} offset ${offset} not aligned to ${alignment}`);
    infos.push({ name, dims, type, offset });
  }
  const dataStart = p + ((alignment - (p % alignment)) % alignment);
  for (let i = p; i < dataStart; i++) if (buf[i] !== 0) throw new Error(`reader: non-zero header padding at ${i}`);
  let expect = 0;
  const tensors: TensorInfo[] = infos.map((t) => {
    const n = t.dims.reduce((a, b) => a * b, 1);
    const size = tensorBytes(t.type, n);
    if (t.offset !== expect) throw new Error(`reader: ${t.name} at offset ${t.offset}, expected ${expect} (tensors laid out in order)`);
    const start = dataStart + t.offset;
    if (start + size > buf.length) throw new Error(`reader: ${t.name} runs past the end of the file`);
    const padded = size + ((alignment - (size % alignment)) % alignment);
    for (let i = start + size; i < Math.min(buf.length, start + padded); i++) if (buf[i] !== 0) throw new Error(`reader: non-zero padding after ${t.name}`);
    expect += padded;
    return { ...t, data: new Uint8Array(buf.subarray(start, start + size)) };
  });
  if (buf.length !== dataStart + expect) throw new Error(`reader: file is ${buf.length} bytes, expected ${dataStart + expect}`);
  return { version, metadata, tensors, alignment, dataStart };
}

/** f32 values of a tensor (f32/f16/bf16/q8_0), decoded here independently of src/export */
export function tensorValues(t: TensorInfo): Float64Array {
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const n = t.dims.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const half = (h: number): number => {
    const e = (h >> 10) & 31, m = h & 1023, s = h & 0x8000 ? -1 : 1;
    if (e === 0) return s * m * Math.pow(2, -24);
    if (e === 31) return m ? NaN : s * Infinity;
    return s * Math.pow(2, e - 15) * (1 + m / 1024);
  };
  if (t.type === 0) for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, true);
  else if (t.type === 1) for (let i = 0; i < n; i++) out[i] = half(dv.getUint16(2 * i, true));
  else if (t.type === 30) {
    const f = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < n; i++) {
      f.setUint32(0, dv.getUint16(2 * i, true) * 65536);
      out[i] = f.getFloat32(0);
    }
  } else if (t.type === 8) {
    for (let b = 0; b < n / 32; b++) {
      const d = half(dv.getUint16(34 * b, true));
      for (let j = 0; j < 32; j++) out[b * 32 + j] = d * dv.getInt8(34 * b + 2 + j);
    }
  } else throw new Error(`tensorValues: type ${t.type}`);
  return out;
}
