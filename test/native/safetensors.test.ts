// safetensors read/write (native/core/safetensors.*) against the format's published rules
// (8-byte little-endian header length, JSON header, data_offsets relative to the data
// section, no holes or overlaps), corrupt files, and a mutation fuzz of 10^3 files.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkpointShards, createModel, loadModel, readSafetensors, tinyConfig, writeSafetensors } from '../../src/engine/index.js';
import { addon, rng } from '../helpers/native.js';

const native = addon();
const tmp = mkdtempSync(join(tmpdir(), 'itool-st-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a safetensors file built by hand from the format description (not by the code under test) */
function handMade(tensors: Array<{ name: string; dtype: string; shape: number[]; bytes: Uint8Array }>, pad = true): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let h = JSON.stringify(header);
  if (pad) while (h.length % 8) h += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, Buffer.from(h), ...tensors.map((t) => Buffer.from(t.bytes))]);
}

function f32Bytes(v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

describe('safetensors', () => {
  it('reads a hand-made file with F32, BF16 and F16 tensors, converting to f32', () => {
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc000, 0x4049]).buffer); // 1, -2, 3.140625
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3555]).buffer); // 1, -2, 0.333251953125
    const p = join(tmp, 'hand.safetensors');
    writeFileSync(p, handMade([
      { name: 'a', dtype: 'F32', shape: [2, 2], bytes: f32Bytes([1, 2, 3, 4]) },
      { name: 'b', dtype: 'BF16', shape: [3], bytes: bf16 },
      { name: 'c', dtype: 'F16', shape: [3], bytes: f16 },
      { name: 'e', dtype: 'F32', shape: [0], bytes: new Uint8Array(0) },
    ]));
    const r = native.safetensorsRead(p);
    const by = Object.fromEntries(r.tensors.map((t: { name: string }) => [t.name, t]));
    expect(Array.from(by.a.data)).toEqual([1, 2, 3, 4]);
    expect(by.a.shape).toEqual([2, 2]);
    expect(Array.from(by.b.data)).toEqual([1, -2, 3.140625]);
    expect(by.b.dtype).toBe('bf16');
    expect(Array.from(by.c.data)).toEqual([1, -2, 0.333251953125]);
    expect(by.e.shape).toEqual([0]);
    expect(r.metadata).toEqual({ format: 'pt' });
  });

  it('writes files whose layout follows the format (aligned header, offsets, little-endian data)', () => {
    const p = join(tmp, 'w.safetensors');
    native.safetensorsWrite(p, [
      { name: 'x', dtype: 'f32', shape: [3], data: Float32Array.from([1.5, -2, 3]) },
      { name: 'y', dtype: 'bf16', shape: [1, 2], data: Float32Array.from([1, -2]) },
    ], { k: 'v' });
    const b = readFileSync(p);
    const n = Number(b.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const h = JSON.parse(b.subarray(8, 8 + n).toString());
    expect(h.x).toEqual({ dtype: 'F32', shape: [3], data_offsets: [0, 12] });
    expect(h.y).toEqual({ dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] });
    expect(h.__metadata__).toEqual({ k: 'v' });
    expect(b.readFloatLE(8 + n)).toBe(1.5);
    expect(b.readUInt16LE(8 + n + 12)).toBe(0x3f80);
    expect(b.readUInt16LE(8 + n + 14)).toBe(0xc000);
    expect(b.length).toBe(8 + n + 16);
    expect(readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]); // temp file renamed away
  });

  it('the TypeScript wrappers round-trip values and list shards', () => {
    const p = join(tmp, 'ts.safetensors');
    writeSafetensors(p, [{ name: 'w', dtype: 'bf16', shape: [2], data: Float32Array.from([1.5, 3.0078125]) }], { m: '1' });
    const r = readSafetensors(p);
    expect(r.tensors[0]!.dtype).toBe('bf16');
    expect(Array.from(r.tensors[0]!.data!)).toEqual([1.5, 3]); // rounded to bf16 (8 bits of mantissa)
    expect(readSafetensors(p, { headerOnly: true }).tensors[0]!.data).toBeUndefined();
    expect(() => checkpointShards(tmp + '/nowhere')).toThrow(/no model\.safetensors/);
  });

  const good = () => handMade([{ name: 'a', dtype: 'F32', shape: [4], bytes: f32Bytes([1, 2, 3, 4]) }, { name: 'b', dtype: 'F32', shape: [2], bytes: f32Bytes([5, 6]) }]);
  const bad = (name: string, bytes: Buffer, re: RegExp) =>
    it(name, () => {
      const p = join(tmp, `bad-${name.replace(/\W+/g, '_')}.safetensors`);
      writeFileSync(p, bytes);
      expect(() => native.safetensorsRead(p)).toThrow(re);
    });
  bad('a truncated file', good().subarray(0, good().length - 3), /truncated|past the end/);
  bad('an empty file', Buffer.alloc(0), /empty/);
  bad('a file shorter than the length prefix', Buffer.from([1, 2, 3]), /8-byte/);
  bad('a header length pointing past the end', (() => { const b = good(); b.writeBigUInt64LE(BigInt(b.length)); return b; })(), /points past the end/);
  bad('a header length over the bound', (() => { const b = good(); b.writeBigUInt64LE(1n << 40n); return b; })(), /bound/);
  bad('an unknown dtype', handMade([{ name: 'a', dtype: 'I64', shape: [1], bytes: new Uint8Array(8) }]), /dtype 'I64' is not supported/);
  bad('a shape disagreeing with the byte length', handMade([{ name: 'a', dtype: 'F32', shape: [3], bytes: f32Bytes([1, 2]) }]), /needs 12/);
  bad('overlapping tensors', (() => {
    const h = JSON.stringify({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } });
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([len, Buffer.from(h), Buffer.alloc(12)]);
  })(), /overlaps/);
  bad('invalid JSON', (() => { const b = good(); b[9] = 0x7b; b[10] = 0x7b; return b; })(), /invalid JSON|header/);

  it('a missing tensor and a shape disagreeing with config.json are errors naming them', async () => {
    const cfg = tinyConfig('LlamaForCausalLM');
    const m = createModel(cfg, { seed: 1 });
    const dir = join(tmp, 'ck');
    await m.save(dir);
    m.dispose();
    const st = native.safetensorsRead(join(dir, 'model.safetensors'));
    const missing = join(tmp, 'ck-missing');
    mkdirSync(missing);
    copyFileSync(join(dir, 'config.json'), join(missing, 'config.json'));
    native.safetensorsWrite(join(missing, 'model.safetensors'), st.tensors.filter((t: { name: string }) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
    await expect(loadModel(missing, { device: 'cpu' })).rejects.toThrow(/model\.layers\.1\.mlp\.up_proj\.weight.*missing/);
    const shape = join(tmp, 'ck-shape');
    mkdirSync(shape);
    copyFileSync(join(dir, 'model.safetensors'), join(shape, 'model.safetensors'));
    const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    c.intermediate_size = 40;
    writeFileSync(join(shape, 'config.json'), JSON.stringify(c));
    await expect(loadModel(shape, { device: 'cpu' })).rejects.toThrow(/gate_proj\.weight' has shape \[48, 32\] but config\.json implies \[40, 32\]/);
    const arch = join(tmp, 'ck-arch');
    mkdirSync(arch);
    c.architectures = ['GPT2LMHeadModel'];
    writeFileSync(join(arch, 'config.json'), JSON.stringify(c));
    await expect(loadModel(arch, { device: 'cpu' })).rejects.toThrow(/GPT2LMHeadModel.*not supported/);
  });

  it('loads a sharded checkpoint through model.safetensors.index.json', async () => {
    const cfg = tinyConfig('Qwen2ForCausalLM');
    const m = createModel(cfg, { seed: 4 });
    const dir = join(tmp, 'one');
    await m.save(dir);
    const st = native.safetensorsRead(join(dir, 'model.safetensors'));
    const sh = join(tmp, 'sharded');
    mkdirSync(sh);
    copyFileSync(join(dir, 'config.json'), join(sh, 'config.json'));
    const half = Math.floor(st.tensors.length / 2);
    const parts = [st.tensors.slice(0, half), st.tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    parts.forEach((p, i) => {
      const f = `model-0000${i + 1}-of-00002.safetensors`;
      native.safetensorsWrite(join(sh, f), p);
      for (const t of p) weightMap[t.name] = f;
    });
    writeFileSync(join(sh, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const m2 = await loadModel(sh, { device: 'cpu' });
    for (const n of m.paramNames()) expect(m2.getParam(n), n).toEqual(m.getParam(n));
    m.dispose();
    m2.dispose();
  });

  it('survives a mutation fuzz of 1000 corrupted files: each read succeeds or throws an error naming the file', () => {
    const base = handMade([
      { name: 'w', dtype: 'F32', shape: [2, 3], bytes: f32Bytes([1, 2, 3, 4, 5, 6]) },
      { name: 'b', dtype: 'BF16', shape: [4], bytes: new Uint8Array(8).fill(0x3f) },
      { name: 'h', dtype: 'F16', shape: [1], bytes: new Uint8Array([0, 0x3c]) },
    ]);
    const r = rng(20261125);
    const hdr = Number(base.readBigUInt64LE(0)) + 8;
    const p = join(tmp, 'fuzz.safetensors');
    let rejected = 0, accepted = 0;
    for (let i = 0; i < 1000; i++) {
      let b = Buffer.from(base);
      const kind = Math.floor(r() * 6);
      const at = () => Math.floor(r() * (r() < 0.8 ? hdr : b.length));
      if (kind === 0) for (let k = 0; k < 1 + Math.floor(r() * 4); k++) b[at()] = Math.floor(r() * 256); // random bytes
      else if (kind === 1) b = b.subarray(0, Math.floor(r() * b.length)); // truncation
      else if (kind === 2) { const j = at(); b = Buffer.concat([b.subarray(0, j), Buffer.from([Math.floor(r() * 256)]), b.subarray(j)]); } // insertion
      else if (kind === 3) { const j = at(); b = Buffer.concat([b.subarray(0, j), b.subarray(j + 1)]); } // deletion
      else if (kind === 4) { const j = 8 + Math.floor(r() * (hdr - 8)); b[j] = '0123456789[]{}",:-e.'.charCodeAt(Math.floor(r() * 21)); } // JSON-ish character
      else b.writeBigUInt64LE(BigInt(Math.floor(r() * 2 ** 32)) * (r() < 0.5 ? 1n : 1n << 20n)); // header length
      writeFileSync(p, b);
      try {
        const out = native.safetensorsRead(p);
        accepted++;
        for (const t of out.tensors) expect(t.data.length).toBe(t.shape.reduce((a: number, x: number) => a * x, 1));
      } catch (e) {
        rejected++;
        expect(e).toBeInstanceOf(Error);
        expect((e as Error).message).toContain(p);
      }
    }
    expect(rejected + accepted).toBe(1000);
    expect(rejected).toBeGreaterThan(500);
  });
});
