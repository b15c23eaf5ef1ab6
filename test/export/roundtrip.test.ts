// The GGUF export checked in llama.cpp (node-llama-cpp's prebuilt CPU binary): tiny random
// models of Llama, Qwen2 (q/k/v biases) and Qwen3 (q/k norms, tied embeddings), each with a
// real byte-level BPE tokenizer, exported as f32, f16, bf16 and q8_0 and loaded by llama.cpp.
// Checked against itool's own engine on the Hugging Face directory:
//   - the same texts give the same token ids (llama.cpp's tokenizer from the GGUF metadata),
//   - per-token log-probabilities of the same texts agree within the stated tolerance,
//   - greedy continuations are equal for f32,
//   - the chat template is carried unchanged and renders the same prompt (text and ids).
// llama.cpp runs with an f32 KV cache and no flash attention here, so f32 differences come
// from summation order only; its f16/bf16/q8_0 matrix products also round the activations
// (to f16, bf16, q8_0 blocks), which the wider tolerances cover.
// ITOOL_EXPORT_REPORT=1 prints the measured differences.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, loadModel, tinyConfig, type NativeModel } from '../../src/engine/index.js';
import type { Architecture, ModelConfig } from '../../src/engine/model-types.js';
import { exportGguf, type ExportDtype } from '../../src/export/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/text/index.js';
import { rng } from '../helpers/native.js';
import { qwen3Dir } from '../text/helpers.js';
import { llamaCpp, LOGPROB_TOLERANCE, tempDir, tinyModelDir } from './helpers.js';


const TEXTS = [
  'The weather in Paris is cloudy. What is the weather in Tokyo, please?',
  '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
  '<tool_call>\n{"name": "convert", "arguments": {"amount": 100}}\n</tool_call>',
  'Zürich → 東京: 12.5 km/h, naïve café 🚀!\n\n  indented\ttab',
  "it's 2026; they'll book 4 seats, we'd ALL'VE come",
];

const ll = await llamaCpp();
const skipReason = 'reason' in ll ? ll.reason : null;
const report = process.env.ITOOL_EXPORT_REPORT === '1';

type LlamaModel = Awaited<ReturnType<Exclude<typeof ll, { reason: string }>['llama']['loadModel']>>;

async function llamaLogprobs(lm: LlamaModel, ids: number[]): Promise<number[]> {
  const ctx = await lm.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
  try {
    const seq = ctx.getSequence();
    const input = ids.map((t, i) => (i < ids.length - 1 ? ([t, { generateNext: { probabilities: true } }] as const) : t));
    const res = await seq.controlledEvaluate(input as Parameters<typeof seq.controlledEvaluate>[0]);
    return ids.slice(1).map((next, i) => Math.log(res[i]?.next?.probabilities?.get(next as never) ?? 0));
  } finally {
    await ctx.dispose();
  }
}

/** greedy tokens, one decode at a time (llama.cpp's evaluate() would stop at an end-of-generation token) */
async function llamaGreedy(lm: LlamaModel, ids: number[], n: number): Promise<number[]> {
  const ctx = await lm.createContext({ contextSize: 256, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
  try {
    const seq = ctx.getSequence();
    const next = { generateNext: { token: true, options: { temperature: 0 } } } as const;
    type Input = Parameters<typeof seq.controlledEvaluate>[0];
    let res = await seq.controlledEvaluate([...ids.slice(0, -1), [ids[ids.length - 1]!, next]] as Input);
    const out: number[] = [];
    for (;;) {
      const t = res[res.length - 1]?.next?.token;
      if (t === undefined || t === null) throw new Error('llama.cpp gave no next token');
      out.push(t);
      if (out.length === n) return out;
      res = await seq.controlledEvaluate([[t, next]] as Input);
    }
  } finally {
    await ctx.dispose();
  }
}

async function itoolLogprobs(m: NativeModel, ids: number[]): Promise<Float32Array> {
  return m.logprobs({ tokens: Int32Array.from(ids), targets: Int32Array.from([...ids.slice(1), -1]), cuSeqlens: Int32Array.from([0, ids.length]) });
}

const ARCHS: Architecture[] = ['LlamaForCausalLM', 'Qwen2ForCausalLM', 'Qwen3ForCausalLM'];
const DTYPES: ExportDtype[] = ['f32', 'f16', 'bf16', 'q8_0'];

describe.skipIf(skipReason !== null)(`GGUF round trip in llama.cpp${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const llama = 'llama' in ll ? ll.llama : (null as never);
  for (const arch of ARCHS) {
    describe(arch, () => {
      let dir = '';
      let config: ModelConfig;
      let tok: Tokenizer;
      let model: NativeModel;
      const files = new Map<ExportDtype, string>();
      beforeAll(async () => {
        ({ dir, config } = await tinyModelDir(arch, arch === 'Qwen2ForCausalLM' ? {} : { tieWordEmbeddings: arch === 'Qwen3ForCausalLM' }));
        tok = loadTokenizer(dir);
        model = await loadModel(dir, { device: 'cpu' });
        for (const dtype of DTYPES) {
          const out = join(dir, `model-${dtype}.gguf`);
          await exportGguf({ model: dir, out, dtype });
          files.set(dtype, out);
        }
      });
      afterAll(() => {
        model?.dispose();
        if (dir) rmSync(dir, { recursive: true, force: true });
      });

      it('llama.cpp tokenizes every text to the same ids as the Hugging Face tokenizer', async () => {
        const lm = await llama.loadModel({ modelPath: files.get('f32')!, gpuLayers: 0 });
        try {
          expect(lm.tokens.bos ?? null).toBe(config.bosTokenId);
          expect(lm.tokens.eos).toBe(tok.eosId);
          for (const text of TEXTS) {
            expect(Array.from(lm.tokenize(text, true)), text).toEqual(tok.encode(text));
            // and back: llama.cpp's detokenizer spells the text
            expect(lm.detokenize(lm.tokenize(text, true), true)).toBe(text);
          }
        } finally {
          await lm.dispose();
        }
      });

      for (const dtype of DTYPES) {
        it(`${dtype}: per-token log-probabilities agree within ${LOGPROB_TOLERANCE[dtype]}`, async () => {
          const lm = await llama.loadModel({ modelPath: files.get(dtype)!, gpuLayers: 0 });
          try {
            let maxDiff = 0, n = 0;
            for (const text of TEXTS) {
              const ids = tok.encode(text);
              const ref = await itoolLogprobs(model, ids);
              const got = await llamaLogprobs(lm, ids);
              for (let i = 0; i < got.length; i++) {
                expect(Number.isFinite(got[i]!), `${text} token ${i}`).toBe(true);
                maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
                n++;
              }
            }
            if (report) console.log(`[export report] ${arch} ${dtype}: max |Δ log p| = ${maxDiff.toExponential(2)} over ${n} tokens (tolerance ${LOGPROB_TOLERANCE[dtype]})`);
            expect(n).toBeGreaterThan(100);
            expect(maxDiff).toBeLessThanOrEqual(LOGPROB_TOLERANCE[dtype]);
          } finally {
            await lm.dispose();
          }
        });
      }

      it('f32: greedy continuations equal itool\'s', async () => {
        const lm = await llama.loadModel({ modelPath: files.get('f32')!, gpuLayers: 0 });
        try {
          for (const text of TEXTS.slice(0, 3)) {
            const ids = tok.encode(text);
            const cache = await model.cache(ids);
            const [g] = await model.generate([cache], { maxTokens: 24, temperature: 0 });
            cache.dispose();
            expect(await llamaGreedy(lm, ids, 24), text).toEqual(g!.tokens);
          }
        } finally {
          await lm.dispose();
        }
      });

      it('the chat template is carried unchanged and renders the same prompt', async () => {
        const { JinjaTemplateChatWrapper } = await import('node-llama-cpp');
        const lm = await llama.loadModel({ modelPath: files.get('f32')!, gpuLayers: 0 });
        try {
          const template = (lm.fileInfo.metadata as { tokenizer?: { chat_template?: string } }).tokenizer?.chat_template;
          expect(template).toBe(tok.chatTemplate!.source);
          const messages = [
            { role: 'system' as const, content: 'You are a helpful assistant.' },
            { role: 'user' as const, content: 'What is the weather in Paris?' },
            { role: 'assistant' as const, content: 'It is cloudy.' },
            { role: 'user' as const, content: 'And in Tokyo?' },
          ];
          const mine = tok.renderPrompt(messages);
          const wrapper = new JinjaTemplateChatWrapper({ template: template! });
          const state = wrapper.generateContextState({
            chatHistory: [
              { type: 'system', text: messages[0]!.content },
              { type: 'user', text: messages[1]!.content },
              { type: 'model', response: [messages[2]!.content] },
              { type: 'user', text: messages[3]!.content },
              { type: 'model', response: [] },
            ],
          });
          const ids = Array.from(state.contextText.tokenize(lm.tokenizer));
          expect(lm.detokenize(ids, true)).toBe(mine.text);
          expect(ids).toEqual(mine.ids);
        } finally {
          await lm.dispose();
        }
      });
    });
  }
});

/** max |Δ log p| between llama.cpp on `gguf` and itool's `model` over TEXTS tokenized by `tok` */
async function maxLogprobDiff(llama: Exclude<typeof ll, { reason: string }>['llama'], gguf: string, model: NativeModel, tok: Tokenizer, texts = TEXTS): Promise<{ maxDiff: number; n: number }> {
  const lm = await llama.loadModel({ modelPath: gguf, gpuLayers: 0 });
  try {
    let maxDiff = 0, n = 0;
    for (const text of texts) {
      const ids = tok.encode(text);
      const ref = await itoolLogprobs(model, ids);
      const got = await llamaLogprobs(lm, ids);
      for (let i = 0; i < got.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
        n++;
      }
    }
    return { maxDiff, n };
  } finally {
    await lm.dispose();
  }
}

describe.skipIf(skipReason !== null)(`GGUF round trip in llama.cpp: variants${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const llama = 'llama' in ll ? ll.llama : (null as never);
  const variants: Array<[string, Architecture, Partial<ModelConfig>]> = [
    ['Llama with llama3 rope scaling (rope_freqs.weight)', 'LlamaForCausalLM', { ropeScaling: { ropeType: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } }],
    ["Mistral (llama.cpp's llama)", 'MistralForCausalLM', {}],
    ['Qwen2 with tied embeddings', 'Qwen2ForCausalLM', { tieWordEmbeddings: true }],
  ];
  for (const [what, arch, over] of variants) {
    it(`${what}: f32 log-probabilities within ${LOGPROB_TOLERANCE.f32}`, async () => {
      const { dir } = await tinyModelDir(arch, over);
      const out = join(dir, 'm.gguf');
      await exportGguf({ model: dir, out });
      const model = await loadModel(dir, { device: 'cpu' });
      try {
        const { maxDiff, n } = await maxLogprobDiff(llama, out, model, loadTokenizer(dir));
        if (report) console.log(`[export report] ${what} f32: max |Δ log p| = ${maxDiff.toExponential(2)} over ${n} tokens`);
        expect(maxDiff).toBeLessThanOrEqual(LOGPROB_TOLERANCE.f32);
      } finally {
        model.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it(`a LoRA adapter merged on export: llama.cpp agrees with itool running the adapter unmerged (f32, ${LOGPROB_TOLERANCE.f32})`, async () => {
    const { dir } = await tinyModelDir('Qwen3ForCausalLM');
    const adapter = join(dir, 'adapter');
    const m = await loadModel(dir, { device: 'cpu' });
    try {
      m.addLora({ rank: 4, alpha: 16, targetModules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 2 });
      const r = rng(5);
      for (const n of m.paramNames().filter((x) => x.includes('lora_B'))) m.setParam(n, Float32Array.from(m.getParam(n), () => (r() - 0.5) * 0.3));
      await m.saveAdapter(adapter);
      const out = join(dir, 'merged.gguf');
      await exportGguf({ model: dir, adapter, out });
      const base = await loadModel(dir, { device: 'cpu' });
      const { maxDiff: fromBase } = await maxLogprobDiff(llama, out, base, loadTokenizer(dir), TEXTS.slice(0, 1));
      base.dispose();
      const { maxDiff, n } = await maxLogprobDiff(llama, out, m, loadTokenizer(dir));
      if (report) console.log(`[export report] LoRA-merged Qwen3 f32: max |Δ log p| = ${maxDiff.toExponential(2)} over ${n} tokens (vs the base model: ${fromBase.toExponential(2)})`);
      expect(fromBase).toBeGreaterThan(100 * LOGPROB_TOLERANCE.f32); // the adapter changes the model
      expect(maxDiff).toBeLessThanOrEqual(LOGPROB_TOLERANCE.f32);
    } finally {
      m.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("Qwen3's own tokenizer (151,669 tokens, NFC, added tokens) on a tiny Qwen3: same ids, the same chat prompt", async () => {
    const dir = tempDir('itool-export-qwen3tok-');
    try {
      for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(qwen3Dir, f), join(dir, f));
      const tok = loadTokenizer(dir);
      const config = tinyConfig('Qwen3ForCausalLM', { vocabSize: tok.vocabSize, hiddenSize: 32, intermediateSize: 64, numHeads: 2, numKvHeads: 1, headDim: 16, bosTokenId: null, eosTokenId: [tok.eosId!] });
      const m0 = createModel(config, { seed: 4, initStd: 0.1 });
      await m0.save(dir);
      m0.dispose();
      const out = join(dir, 'q.gguf');
      const r = await exportGguf({ model: dir, out });
      expect(r.tokenizer.pre).toBe('qwen2');
      const lm = await llama.loadModel({ modelPath: out, gpuLayers: 0 });
      const texts = [...TEXTS, '<think>\n好的，我来查一下。\n</think>\n\n<tool_call>\n{"name": "f"}\n</tool_call><|im_end|>', 'Ａｂｃ é café'];
      try {
        for (const text of texts) expect(Array.from(lm.tokenize(text, true)), text).toEqual(tok.encode(text));
        // llama.cpp does not apply the tokenizer's NFC normalizer: text not in NFC must be normalized first
        const decomposed = 'cafe\u0301 Ａｂｃ';
        expect(Array.from(lm.tokenize(decomposed, true))).not.toEqual(tok.encode(decomposed));
        expect(Array.from(lm.tokenize(decomposed.normalize('NFC'), true))).toEqual(tok.encode(decomposed));
        const messages = [
          { role: 'system' as const, content: 'You are a helpful assistant.' },
          { role: 'user' as const, content: '今天东京的天气怎么样？' },
        ];
        const { JinjaTemplateChatWrapper } = await import('node-llama-cpp');
        const template = (lm.fileInfo.metadata as { tokenizer?: { chat_template?: string } }).tokenizer?.chat_template;
        expect(template).toBe(tok.chatTemplate!.source);
        // node-llama-cpp's wrapper renders the model turn as an assistant message and cuts it, so Qwen3's
        // template always puts the empty <think></think> block there (whatever its reasoning option):
        // that is Hugging Face's generation prompt with enable_thinking = false
        const state = new JinjaTemplateChatWrapper({ template: template!, reasoning: false }).generateContextState({
          chatHistory: [
            { type: 'system', text: messages[0]!.content },
            { type: 'user', text: messages[1]!.content },
            { type: 'model', response: [] },
          ],
        });
        const ids = Array.from(state.contextText.tokenize(lm.tokenizer));
        expect(ids).toEqual(tok.renderPrompt(messages, undefined, { kwargs: { enable_thinking: false } }).ids);
      } finally {
        await lm.dispose();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
