// The GGUF writer against the test reader (gguf-reader.ts, written from the format's
// description separately from the writer): every value type and array type, alignments,
// tensor data of every type; f16/bf16/q8_0 against brute-force nearest values; the
// exporter's metadata field by field; atomic writes and every bad input it must refuse.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, loadModel, readSafetensors } from '../../src/engine/index.js';
import {
  encodeTensor,
  exportGguf,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  GgmlType,
  GgufValueType as T,
  permuteHeads,
  writeGguf,
  type GgufMetadataEntry,
} from '../../src/export/index.js';
import { loadTokenizer } from '../../src/text/index.js';
import { repoRoot, rng } from '../helpers/native.js';
import { readGguf, tensorValues } from './gguf-reader.js';
import { tempDir, tinyModelDir } from './helpers.js';

const EVERY_TYPE: GgufMetadataEntry[] = [
  { key: 'u8', value: { type: T.UINT8, value: 255 } },
  { key: 'i8', value: { type: T.INT8, value: -128 } },
  { key: 'u16', value: { type: T.UINT16, value: 65535 } },
  { key: 'i16', value: { type: T.INT16, value: -32768 } },
  { key: 'u32', value: { type: T.UINT32, value: 0xffffffff } },
  { key: 'i32', value: { type: T.INT32, value: -0x80000000 } },
  { key: 'f32', value: { type: T.FLOAT32, value: 1.5e-7 } },
  { key: 'bool.t', value: { type: T.BOOL, value: true } },
  { key: 'bool.f', value: { type: T.BOOL, value: false } },
  { key: 'str', value: { type: T.STRING, value: 'héllo 東京 🚀\n\0end' } },
  { key: 'str.empty', value: { type: T.STRING, value: '' } },
  { key: 'u64', value: { type: T.UINT64, value: (1n << 64n) - 1n } },
  { key: 'i64', value: { type: T.INT64, value: -(1n << 63n) } },
  { key: 'f64', value: { type: T.FLOAT64, value: Math.PI } },
  { key: 'arr.u8', value: { type: T.ARRAY, itemType: T.UINT8, value: [0, 1, 255] } },
  { key: 'arr.i8', value: { type: T.ARRAY, itemType: T.INT8, value: [-128, 0, 127] } },
  { key: 'arr.u16', value: { type: T.ARRAY, itemType: T.UINT16, value: [0, 65535] } },
  { key: 'arr.i16', value: { type: T.ARRAY, itemType: T.INT16, value: [-32768, 32767] } },
  { key: 'arr.u32', value: { type: T.ARRAY, itemType: T.UINT32, value: [0, 0xffffffff] } },
  { key: 'arr.i32', value: { type: T.ARRAY, itemType: T.INT32, value: [-1, 5, 0x7fffffff] } },
  { key: 'arr.f32', value: { type: T.ARRAY, itemType: T.FLOAT32, value: [0.25, -2, 1e30] } },
  { key: 'arr.bool', value: { type: T.ARRAY, itemType: T.BOOL, value: [true, false, true] } },
  { key: 'arr.str', value: { type: T.ARRAY, itemType: T.STRING, value: ['a', '', 'Ġb c', '<|im_end|>'] } },
  { key: 'arr.u64', value: { type: T.ARRAY, itemType: T.UINT64, value: [0n, 12345678901234567890n] } },
  { key: 'arr.i64', value: { type: T.ARRAY, itemType: T.INT64, value: [-5n, 9007199254740993n] } },
  { key: 'arr.f64', value: { type: T.ARRAY, itemType: T.FLOAT64, value: [Math.E, -0.1] } },
  { key: 'arr.empty', value: { type: T.ARRAY, itemType: T.UINT32, value: [] } },
];

function f32Bytes(v: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(v).buffer);
}

/** every finite f16 value, sorted, for brute-force nearest-value checks */
const HALVES = (() => {
  const v: Array<{ bits: number; x: number }> = [];
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isFinite(x) && !(x === 0 && h !== 0)) v.push({ bits: h, x });
  }
  return v.sort((a, b) => a.x - b.x);
})();

function nearestHalf(x: number): number {
  // binary search, then ties to the even bit pattern
  let lo = 0, hi = HALVES.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (HALVES[mid]!.x <= x) lo = mid;
    else hi = mid;
  }
  const a = HALVES[lo]!, b = HALVES[hi]!;
  const da = Math.abs(x - a.x), db = Math.abs(x - b.x);
  if (da < db) return a.x;
  if (db < da) return b.x;
  return (a.bits & 1) === 0 ? a.x : b.x;
}

describe('GGUF writer and reader', () => {
  for (const alignment of [32, 64, 8]) {
    it(`writes every value type and tensor type; the reader gets them back (alignment ${alignment})`, () => {
      const dir = tempDir();
      const path = join(dir, 'all.gguf');
      const md = alignment === 32 ? EVERY_TYPE : [{ key: 'general.alignment', value: { type: T.UINT32, value: alignment } } as GgufMetadataEntry, ...EVERY_TYPE];
      const a = [1, -2, 3.5, 0.1, 7, 8, 9];
      const b16 = Float32Array.from({ length: 6 }, (_, i) => (i - 2.5) / 3);
      const q = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i) * (i + 1));
      writeGguf(
        path,
        md,
        [
          { name: 'a', dims: [7], type: GgmlType.F32, nbytes: 28, data: () => f32Bytes(a) },
          { name: 'h', dims: [3, 2], type: GgmlType.F16, nbytes: 12, data: () => encodeTensor(b16, 'f16') },
          { name: 'b', dims: [2, 3], type: GgmlType.BF16, nbytes: 12, data: () => encodeTensor(b16, 'bf16') },
          { name: 'q', dims: [32, 2], type: GgmlType.Q8_0, nbytes: 68, data: () => encodeTensor(q, 'q8_0') },
          { name: 'blk.0.x4', dims: [1, 2, 1, 2], type: GgmlType.F32, nbytes: 16, data: () => f32Bytes([1, 2, 3, 4]) },
        ],
        { alignment },
      );
      const g = readGguf(path);
      expect(g.version).toBe(3);
      expect(g.alignment).toBe(alignment);
      expect(g.dataStart % alignment).toBe(0);
      expect([...g.metadata.keys()]).toEqual(md.map((m) => m.key));
      for (const m of md) {
        const kv = g.metadata.get(m.key)!;
        expect(kv.type, m.key).toBe(m.value.type);
        if (m.value.type === T.ARRAY) {
          expect(kv.itemType, m.key).toBe(m.value.itemType);
          const want = m.value.itemType === T.FLOAT32 ? m.value.value.map((x) => Math.fround(x as number)) : m.value.value;
          expect(kv.value, m.key).toEqual(want);
        } else if (m.value.type === T.FLOAT32) expect(kv.value).toBe(Math.fround(m.value.value as number));
        else expect(kv.value, m.key).toEqual(m.value.value);
      }
      expect(g.tensors.map((t) => [t.name, t.dims, t.type])).toEqual([
        ['a', [7], 0],
        ['h', [3, 2], 1],
        ['b', [2, 3], 30],
        ['q', [32, 2], 8],
        ['blk.0.x4', [1, 2, 1, 2], 0],
      ]);
      for (const t of g.tensors) expect(t.offset % alignment).toBe(0);
      expect(Array.from(tensorValues(g.tensors[0]!))).toEqual(a.map(Math.fround));
      expect(Array.from(tensorValues(g.tensors[1]!))).toEqual(Array.from(b16, nearestHalf));
      expect(Array.from(tensorValues(g.tensors[4]!))).toEqual([1, 2, 3, 4]);
      expect(readdirSync(dir)).toEqual(['all.gguf']); // no temporary file left
      rmSync(dir, { recursive: true });
    });
  }

  it('refuses bad metadata and tensors before writing anything, naming the key or tensor', () => {
    const dir = tempDir();
    const path = join(dir, 'bad.gguf');
    const t1 = { name: 't', dims: [4], type: GgmlType.F32, nbytes: 16, data: () => f32Bytes([1, 2, 3, 4]) };
    const cases: Array<[GgufMetadataEntry[], (typeof t1)[], RegExp, number?]> = [
      [[{ key: 'x', value: { type: T.UINT8, value: 256 } }], [t1], /'x'.*\[0, 255\]/],
      [[{ key: 'x', value: { type: T.INT32, value: 1.5 } }], [t1], /'x'.*integer/],
      [[{ key: 'x', value: { type: T.STRING, value: 5 as unknown as string } }], [t1], /'x'.*string/],
      [[{ key: 'x', value: { type: T.ARRAY, itemType: T.INT8, value: [1, 300] } }], [t1], /'x'/],
      [[{ key: 'x', value: { type: T.BOOL, value: true } }, { key: 'x', value: { type: T.BOOL, value: true } }], [t1], /'x' given twice/],
      [[], [t1, t1], /tensor 't' given twice/],
      [[], [{ ...t1, name: 'n'.repeat(64) }], /invalid tensor name/],
      [[], [{ ...t1, dims: [0] }], /tensor 't': dimensions/],
      [[], [t1], /needs a general.alignment key/, 64],
      [[{ key: 'general.alignment', value: { type: T.UINT32, value: 32 } }], [t1], /general.alignment must be a u32 equal/, 64],
    ];
    for (const [md, ts, re, al] of cases) {
      expect(() => writeGguf(path, md, ts, { alignment: al })).toThrow(re);
      expect(readdirSync(dir)).toEqual([]);
    }
    // a tensor whose data is not its declared size: the temporary file is removed
    expect(() => writeGguf(path, [], [{ ...t1, data: () => f32Bytes([1, 2, 3]) }])).toThrow(/produced 12 bytes, expected 16/);
    expect(readdirSync(dir)).toEqual([]);
    rmSync(dir, { recursive: true });
  });
});

describe('tensor encodings', () => {
  it('f16 is the nearest binary16 value (ties to even), with subnormals, overflow to inf and NaN', () => {
    const r = rng(7);
    const xs = [0, -0, 1, -1, 65504, 65519.99, 65520, 1e-8, 5.96e-8, 2.98e-8, 2.99e-8, 6.1e-5, 6.0e-5, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, -3.14159];
    for (let i = 0; i < 4000; i++) xs.push((r() - 0.5) * 2 ** Math.floor(r() * 40 - 28));
    for (const x0 of xs) {
      const x = Math.fround(x0);
      const got = f16BitsToF32(f32ToF16Bits(x));
      if (Math.abs(x) >= 65520) expect(got).toBe(x > 0 ? Infinity : -Infinity);
      else expect(got, `f16(${x})`).toBe(nearestHalf(x) === 0 ? (x < 0 || Object.is(x, -0) ? -0 : 0) : nearestHalf(x));
    }
    expect(Number.isNaN(f16BitsToF32(f32ToF16Bits(NaN)))).toBe(true);
  });

  it('bf16 keeps the nearest value with 8 significand bits (ties to even)', () => {
    const r = rng(8);
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    for (let i = 0; i < 4000; i++) {
      f[0] = (r() - 0.5) * 2 ** Math.floor(r() * 60 - 30);
      if (i < 8) u[0] = (u[0]! & 0xffff0000) | 0x8000 | (i << 16); // exact ties
      const x = f[0]!;
      const lo = (u[0]! & 0xffff0000) >>> 0, hi = (lo + 0x10000) >>> 0;
      const vLo = new Float32Array(new Uint32Array([lo]).buffer)[0]!, vHi = new Float32Array(new Uint32Array([hi]).buffer)[0]!;
      const dLo = Math.abs(x - vLo), dHi = Math.abs(vHi - x);
      const want = dLo < dHi ? lo : dHi < dLo ? hi : ((lo >>> 16) & 1) === 0 ? lo : hi;
      expect(f32ToBf16Bits(x), `bf16(${x})`).toBe(want >>> 16);
    }
  });

  it('q8_0: each block of 32 has the f16 scale max|x|/127 and values within half a step', () => {
    const r = rng(9);
    const x = Float32Array.from({ length: 32 * 40 }, (_, i) => (i < 32 ? 0 : (r() - 0.5) * (1 + (i % 7))));
    const bytes = encodeTensor(x, 'q8_0');
    const dv = new DataView(bytes.buffer);
    const deq = tensorValues({ name: 'q', dims: [x.length], type: 8, offset: 0, data: bytes });
    for (let b = 0; b < 40; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      const d = f16BitsToF32(dv.getUint16(34 * b, true));
      expect(d).toBe(nearestHalf(Math.fround(amax / 127)));
      for (let j = 0; j < 32; j++) {
        const q = dv.getInt8(34 * b + 2 + j);
        expect(Math.abs(q)).toBeLessThanOrEqual(127);
        // q is round(x / (amax / 127)); dequantised with the f16 scale
        expect(Math.abs(x[b * 32 + j]! - deq[b * 32 + j]!)).toBeLessThanOrEqual(amax / 127 / 2 + 127 * Math.abs(d - amax / 127) + 1e-7);
      }
    }
  });

  it("permuteHeads reorders each head's rows from (i, i + D/2) pairs to (2i, 2i + 1) pairs", () => {
    // 2 heads of D = 4, rows of 1 value: head h row r holds 10h + r
    const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]);
    expect(Array.from(permuteHeads(w, 2, 1))).toEqual([0, 2, 1, 3, 10, 12, 11, 13]);
  });
});

describe('exportGguf', () => {
  it('writes the hyperparameters, tokenizer and tensors llama.cpp reads (Qwen2, f32), each field checked', async () => {
    const { dir, config } = await tinyModelDir('Qwen2ForCausalLM');
    const out = join(dir, 'm.gguf');
    const r = await exportGguf({ model: dir, out, name: 'tiny' });
    const g = readGguf(out);
    const tok = loadTokenizer(dir);
    const v = (k: string) => g.metadata.get(k)?.value;
    const ty = (k: string) => g.metadata.get(k)?.type;
    const expected: Array<[string, T, unknown]> = [
      ['general.architecture', T.STRING, 'qwen2'],
      ['general.name', T.STRING, 'tiny'],
      ['general.file_type', T.UINT32, 0],
      ['general.quantization_version', T.UINT32, 2],
      ['qwen2.vocab_size', T.UINT32, config.vocabSize],
      ['qwen2.context_length', T.UINT32, config.maxPositionEmbeddings],
      ['qwen2.embedding_length', T.UINT32, 64],
      ['qwen2.block_count', T.UINT32, 2],
      ['qwen2.feed_forward_length', T.UINT32, 128],
      ['qwen2.attention.head_count', T.UINT32, 4],
      ['qwen2.attention.head_count_kv', T.UINT32, 2],
      ['qwen2.attention.key_length', T.UINT32, 16],
      ['qwen2.attention.value_length', T.UINT32, 16],
      ['qwen2.rope.dimension_count', T.UINT32, 16],
      ['qwen2.rope.freq_base', T.FLOAT32, 10000],
      ['qwen2.attention.layer_norm_rms_epsilon', T.FLOAT32, Math.fround(1e-6)],
      ['tokenizer.ggml.model', T.STRING, 'gpt2'],
      ['tokenizer.ggml.pre', T.STRING, 'qwen2'],
      ['tokenizer.ggml.bos_token_id', T.UINT32, config.bosTokenId],
      ['tokenizer.ggml.eos_token_id', T.UINT32, tok.eosId],
      ['tokenizer.ggml.padding_token_id', T.UINT32, tok.padId],
      ['tokenizer.ggml.add_bos_token', T.BOOL, false],
      ['tokenizer.ggml.add_eos_token', T.BOOL, false],
      ['tokenizer.chat_template', T.STRING, tok.chatTemplate!.source],
    ];
    for (const [k, t, val] of expected) {
      expect(ty(k), k).toBe(t);
      expect(v(k), k).toEqual(val);
    }
    // tokens in id order, byte-level strings as in tokenizer.json; types: added special = control (3), added = user-defined (4)
    const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: Array<string | string[]> }; added_tokens: Array<{ id: number; content: string; special: boolean }> };
    const tokens = v('tokenizer.ggml.tokens') as string[];
    const types = v('tokenizer.ggml.token_type') as number[];
    expect(g.metadata.get('tokenizer.ggml.tokens')!.itemType).toBe(T.STRING);
    expect(g.metadata.get('tokenizer.ggml.token_type')!.itemType).toBe(T.INT32);
    expect(tokens.length).toBe(config.vocabSize);
    for (const [s, id] of Object.entries(tj.model.vocab)) expect([tokens[id], types[id]]).toEqual([s, 1]);
    for (const a of tj.added_tokens) expect([tokens[a.id], types[a.id]]).toEqual([a.content, a.special ? 3 : 4]);
    expect(v('tokenizer.ggml.merges')).toEqual(tj.model.merges.map((m) => (Array.isArray(m) ? m.join(' ') : m)));
    expect(g.metadata.size).toBe(expected.length + 3);
    // tensors: names, ggml dims (row length first), f32 values equal to the model's parameters
    const m = await loadModel(dir, { device: 'cpu' });
    const names: Record<string, string> = {
      'token_embd.weight': 'model.embed_tokens.weight',
      'output_norm.weight': 'model.norm.weight',
      'output.weight': 'lm_head.weight',
    };
    const per: Record<string, [string, number[]]> = {
      attn_norm: ['input_layernorm.weight', [64]],
      attn_q: ['self_attn.q_proj', [64, 64]],
      attn_k: ['self_attn.k_proj', [64, 32]],
      attn_v: ['self_attn.v_proj', [64, 32]],
      attn_output: ['self_attn.o_proj.weight', [64, 64]],
      ffn_norm: ['post_attention_layernorm.weight', [64]],
      ffn_gate: ['mlp.gate_proj.weight', [64, 128]],
      ffn_up: ['mlp.up_proj.weight', [64, 128]],
      ffn_down: ['mlp.down_proj.weight', [128, 64]],
    };
    const dims: Record<string, number[]> = { 'token_embd.weight': [64, config.vocabSize], 'output_norm.weight': [64], 'output.weight': [64, config.vocabSize] };
    for (let l = 0; l < 2; l++)
      for (const [k, [hf, d]] of Object.entries(per)) {
        if (k === 'attn_q' || k === 'attn_k' || k === 'attn_v') {
          names[`blk.${l}.${k}.weight`] = `model.layers.${l}.${hf}.weight`;
          names[`blk.${l}.${k}.bias`] = `model.layers.${l}.${hf}.bias`;
          dims[`blk.${l}.${k}.weight`] = d;
          dims[`blk.${l}.${k}.bias`] = [d[1]!];
        } else {
          names[`blk.${l}.${k}.weight`] = `model.layers.${l}.${hf}`;
          dims[`blk.${l}.${k}.weight`] = d;
        }
      }
    expect(g.tensors.map((t) => t.name).sort()).toEqual(Object.keys(names).sort());
    for (const t of g.tensors) {
      expect(t.type, t.name).toBe(0);
      expect(t.dims, t.name).toEqual(dims[t.name]);
      expect(Array.from(tensorValues(t)), t.name).toEqual(Array.from(m.getParam(names[t.name]!)));
    }
    m.dispose();
    expect(r).toMatchObject({ architecture: 'qwen2', dtype: 'f32', tensors: g.tensors.length, kept: [] });
    rmSync(dir, { recursive: true });
  });

  it('q8_0 keeps 1-D tensors in f32 and writes matrices whose rows are not whole blocks as f16', async () => {
    const { dir } = await tinyModelDir('Qwen3ForCausalLM', { intermediateSize: 80 });
    const out = join(dir, 'q.gguf');
    const r = await exportGguf({ model: dir, out, dtype: 'q8_0' });
    const g = readGguf(out);
    expect(g.metadata.get('general.file_type')!.value).toBe(7);
    for (const t of g.tensors) {
      const want = t.dims.length === 1 ? 0 : t.name.endsWith('ffn_down.weight') ? 1 : 8;
      expect(t.type, t.name).toBe(want);
    }
    expect(r.kept.filter((k) => k.type === 'f16').map((k) => k.name)).toEqual(['blk.0.ffn_down.weight', 'blk.1.ffn_down.weight']);
    rmSync(dir, { recursive: true });
  });

  it('Llama: q/k rows in llama.cpp order, llama3 rope scaling as rope_freqs.weight (the Hugging Face rule, in float64 here)', async () => {
    const ropeScaling = { ropeType: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 };
    const { dir, config } = await tinyModelDir('LlamaForCausalLM', { ropeScaling });
    const out = join(dir, 'l.gguf');
    await exportGguf({ model: dir, out });
    const g = readGguf(out);
    expect(g.metadata.get('general.architecture')!.value).toBe('llama');
    const rf = g.tensors.find((t) => t.name === 'rope_freqs.weight')!;
    expect(rf.dims).toEqual([8]);
    const D = 16;
    const want = Array.from({ length: D / 2 }, (_, i) => {
      const inv = Math.pow(10000, (-2 * i) / D);
      const wl = (2 * Math.PI) / inv;
      if (wl < 64 / 4) return 1;
      if (wl > 64 / 1) return 8;
      const s = (64 / wl - 1) / (4 - 1);
      const scaled = (1 - s) * (inv / 8) + s * inv; // HF's new frequency; llama.cpp divides by the factor
      return inv / scaled;
    });
    const got = Array.from(tensorValues(rf));
    for (let i = 0; i < want.length; i++) expect(got[i]).toBeCloseTo(want[i]!, 5);
    expect(want.some((x) => x !== 1 && x !== 8)).toBe(true); // the smooth band is exercised
    const m = await loadModel(dir, { device: 'cpu' });
    const q = m.getParam('model.layers.1.self_attn.q_proj.weight');
    const gq = tensorValues(g.tensors.find((t) => t.name === 'blk.1.attn_q.weight')!);
    const H = config.hiddenSize;
    for (let h = 0; h < config.numHeads; h++)
      for (let i = 0; i < D / 2; i++)
        for (let j = 0; j < 2; j++)
          for (let c = 0; c < H; c += 7) expect(gq[(h * D + 2 * i + j) * H + c]).toBe(q[(h * D + j * (D / 2) + i) * H + c]);
    m.dispose();
    rmSync(dir, { recursive: true });
  });

  it('merges a LoRA adapter first: tensors equal W + (alpha / r) B A from the adapter file in float64', async () => {
    const { dir, config } = await tinyModelDir('Qwen2ForCausalLM');
    const adapter = join(dir, 'adapter');
    const m = await loadModel(dir, { device: 'cpu' });
    m.addLora({ rank: 4, alpha: 8, targetModules: ['q_proj', 'v_proj', 'down_proj'], seed: 3 });
    const r = rng(11);
    for (const n of m.paramNames().filter((x) => x.includes('lora_B'))) m.setParam(n, Float32Array.from(m.getParam(n), () => (r() - 0.5) * 0.2));
    await m.saveAdapter(adapter);
    m.dispose();
    const out = join(dir, 'merged.gguf');
    await exportGguf({ model: dir, adapter, out });
    const g = readGguf(out);
    const base = readSafetensors(join(dir, 'model.safetensors'));
    const ad = readSafetensors(join(adapter, 'adapter_model.safetensors'));
    const byName = new Map([...base.tensors, ...ad.tensors].map((t) => [t.name, t]));
    let checked = 0;
    for (const [mod, gg] of [['self_attn.q_proj', 'attn_q'], ['self_attn.v_proj', 'attn_v'], ['mlp.down_proj', 'ffn_down'], ['self_attn.k_proj', 'attn_k']] as const) {
      for (let l = 0; l < config.numLayers; l++) {
        const W = byName.get(`model.layers.${l}.${mod}.weight`)!;
        const A = byName.get(`base_model.model.model.layers.${l}.${mod}.lora_A.weight`);
        const B = byName.get(`base_model.model.model.layers.${l}.${mod}.lora_B.weight`);
        const [rows, cols] = W.shape as [number, number];
        const got = tensorValues(g.tensors.find((t) => t.name === `blk.${l}.${gg}.weight`)!);
        let maxd = 0;
        for (let i = 0; i < rows; i++)
          for (let j = 0; j < cols; j++) {
            let w = W.data![i * cols + j]!;
            if (A && B) for (let k = 0; k < 4; k++) w += (8 / 4) * B.data![i * 4 + k]! * A.data![k * cols + j]!;
            maxd = Math.max(maxd, Math.abs(got[i * cols + j]! - w));
          }
        expect(maxd, `${mod} layer ${l}`).toBeLessThan(1e-6);
        if (A && B) checked++;
      }
    }
    expect(checked).toBe(6);
    rmSync(dir, { recursive: true });
  });

  describe('bad input: an error that names the problem, and no file at the output path', () => {
    it('an unknown --dtype lists the known ones', async () => {
      const { dir } = await tinyModelDir('Qwen3ForCausalLM');
      await expect(exportGguf({ model: dir, out: join(dir, 'x.gguf'), dtype: 'q4_k' })).rejects.toThrow("unknown --dtype 'q4_k' (known: f32, f16, bf16, q8_0)");
      expect(existsSync(join(dir, 'x.gguf'))).toBe(false);
      rmSync(dir, { recursive: true });
    });

    it('an architecture llama.cpp cannot read as one of its own, or a field it cannot represent', async () => {
      const { dir } = await tinyModelDir('MistralForCausalLM');
      const cfgPath = join(dir, 'config.json');
      const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
      const out = join(dir, 'x.gguf');
      writeFileSync(cfgPath, JSON.stringify({ ...cfg, architectures: ['GemmaForCausalLM'] }));
      await expect(exportGguf({ model: dir, out })).rejects.toThrow(/architecture \["GemmaForCausalLM"\] cannot be exported to GGUF/);
      writeFileSync(cfgPath, JSON.stringify({ ...cfg, sliding_window: 64 }));
      await expect(exportGguf({ model: dir, out })).rejects.toThrow(/sliding_window = 64 cannot be represented/);
      writeFileSync(cfgPath, JSON.stringify({ ...cfg, sliding_window: null }));
      const r = await exportGguf({ model: dir, out }); // Mistral without a window: llama.cpp's 'llama'
      expect(r.architecture).toBe('llama');
      rmSync(out);
      // a tokenizer llama.cpp would split differently
      const tjPath = join(dir, 'tokenizer.json');
      const tj = JSON.parse(readFileSync(tjPath, 'utf8')) as { pre_tokenizer: { pretokenizers: Array<{ pattern?: { Regex: string } }> } };
      tj.pre_tokenizer.pretokenizers[0]!.pattern!.Regex = '\\s+|\\w+';
      writeFileSync(tjPath, JSON.stringify(tj));
      await expect(exportGguf({ model: dir, out })).rejects.toThrow(/pre-tokenizer regex "\\\\s\+\|\\\\w\+" is not one llama.cpp implements/);
      rmSync(tjPath);
      await expect(exportGguf({ model: dir, out })).rejects.toThrow(/tokenizer.json not found/);
      expect(readdirSync(dir).filter((f) => f.includes('.gguf'))).toEqual([]);
      rmSync(dir, { recursive: true });
    });

    it("an adapter whose shapes do not match the model names the tensor", async () => {
      const { dir } = await tinyModelDir('Qwen2ForCausalLM');
      const other = createModel({ ...(await import('../../src/engine/index.js')).tinyConfig('Qwen2ForCausalLM'), hiddenSize: 48, numHeads: 4, headDim: 12 }, { seed: 1 });
      other.addLora({ rank: 2, alpha: 4, targetModules: ['q_proj'] });
      const adapter = join(dir, 'adapter');
      await other.saveAdapter(adapter);
      other.dispose();
      const out = join(dir, 'x.gguf');
      await expect(exportGguf({ model: dir, adapter, out })).rejects.toThrow(/tensor 'base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight' has shape \[2, 48\]/);
      await expect(exportGguf({ model: dir, adapter: join(dir, 'nope'), out })).rejects.toThrow(/adapter_config.json not found/);
      expect(existsSync(out)).toBe(false);
      rmSync(dir, { recursive: true });
    });

    it('an output directory that does not exist', async () => {
      const { dir } = await tinyModelDir('Qwen3ForCausalLM');
      await expect(exportGguf({ model: dir, out: join(dir, 'no', 'x.gguf') })).rejects.toThrow(/output's directory .* does not exist/);
      rmSync(dir, { recursive: true });
    });
  });

  describe('interrupted exports leave no file at the output path', () => {
    it('an error part-way (after 3 tensors) removes the temporary file and leaves an older file untouched', async () => {
      const { dir } = await tinyModelDir('Qwen2ForCausalLM');
      const out = join(dir, 'x.gguf');
      await expect(
        exportGguf({ model: dir, out, onTensor: (i) => { if (i === 2) throw new Error('interrupted'); } }),
      ).rejects.toThrow('interrupted');
      expect(readdirSync(dir).filter((f) => f.includes('gguf'))).toEqual([]);
      writeFileSync(out, 'older');
      await expect(exportGguf({ model: dir, out, dtype: 'q8_0', onTensor: (i) => { if (i === 5) throw new Error('interrupted'); } })).rejects.toThrow('interrupted');
      expect(readFileSync(out, 'utf8')).toBe('older');
      expect(readdirSync(dir).filter((f) => f.includes('gguf'))).toEqual(['x.gguf']);
      rmSync(dir, { recursive: true });
    });

    it('kill -9 part-way through the tensors: nothing at the output path', async () => {
      const { dir } = await tinyModelDir('Qwen2ForCausalLM');
      const out = join(dir, 'x.gguf');
      const script = `
        import { exportGguf } from ${JSON.stringify(join(repoRoot, 'dist', 'export', 'index.js'))};
        await exportGguf({ model: ${JSON.stringify(dir)}, out: ${JSON.stringify(out)}, onTensor: (i) => {
          if (i === 4) { process.stdout.write('part-way\\n'); Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60000); }
        } });`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
        child.stdout.on('data', (d: Buffer) => {
          if (d.toString().includes('part-way')) child.kill('SIGKILL');
        });
        child.on('exit', (_code, sig) => resolve(sig));
      });
      expect(signal, err).toBe('SIGKILL');
      expect(existsSync(out)).toBe(false);
      // the killed process's temporary file is all that remains (a dot-file beside the output)
      const left = readdirSync(dir).filter((f) => f.includes('gguf'));
      expect(left.length).toBe(1);
      expect(left[0]).toMatch(/^\.x\.gguf\.tmp-\d+-/);
      rmSync(dir, { recursive: true });
    });
  });
});
