// Tiny Hugging Face model directories for the export tests: random weights of each
// architecture with a real byte-level BPE tokenizer (the project's trainer, Qwen2's split
// regex, the Hermes chat template) whose vocabulary is the model's, and node-llama-cpp
// loaded once, or the reason it cannot be.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createModel, tinyConfig } from '../../src/engine/index.js';
import type { Architecture, ModelConfig } from '../../src/engine/model-types.js';
import type { ExportDtype } from '../../src/export/index.js';
import { loadTokenizer, trainBpe, writeTokenizer } from '../../src/text/index.js';

/**
 * max |log p_llama.cpp - log p_itool| per token, by the stored dtype. llama.cpp's f16, bf16
 * and q8_0 products also round the activations, so those bounds hold both roundings.
 */
export const LOGPROB_TOLERANCE: Record<ExportDtype, number> = { f32: 1e-4, f16: 1e-2, bf16: 5e-2, q8_0: 0.25 };

export const CORPUS = [
  'The weather in Paris is cloudy. What is the weather in Tokyo, please?',
  '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
  'Convert 100 USD to EUR, then 20 GBP to JPY. Book a table for 4 at 19:30.',
  'You may call one or more functions to assist with the user query.',
];

export function tempDir(prefix = 'itool-export-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A tokenizer directory of about `vocab` tokens; returns its vocabulary size and special ids. */
export function writeTinyTokenizer(dir: string, vocab = 384): { vocabSize: number; eos: number; bos: number } {
  writeTokenizer(dir, trainBpe({ corpus: CORPUS, vocabSize: vocab, seed: 5, minFrequency: 1 }));
  const tok = loadTokenizer(dir);
  return { vocabSize: tok.vocabSize, eos: tok.eosId!, bos: tok.tokenToId('<|endoftext|>')! };
}

/**
 * A random model of `arch` with a tokenizer, saved as a Hugging Face directory. Dimensions
 * are multiples of 32 so that q8_0 applies to every matrix; initStd 0.1 makes the
 * next-token distributions peaked enough that greedy choices are clear.
 */
export async function tinyModelDir(arch: Architecture, over: Partial<ModelConfig> = {}, seed = 3): Promise<{ dir: string; config: ModelConfig }> {
  const dir = tempDir(`itool-export-${arch}-`);
  const t = writeTinyTokenizer(dir);
  const config = tinyConfig(arch, {
    vocabSize: t.vocabSize,
    hiddenSize: 64,
    intermediateSize: 128,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 16,
    bosTokenId: t.bos,
    eosTokenId: [t.eos],
    ...over,
  });
  const m = createModel(config, { seed, initStd: 0.1 });
  try {
    await m.save(dir);
  } finally {
    m.dispose();
  }
  return { dir, config };
}

type Llama = Awaited<ReturnType<typeof import('node-llama-cpp')['getLlama']>>;
let llamaP: Promise<{ llama: Llama } | { reason: string }> | null = null;

/** node-llama-cpp's prebuilt CPU binary, or why it cannot load on this machine. */
export function llamaCpp(): Promise<{ llama: Llama } | { reason: string }> {
  llamaP ??= (async () => {
    try {
      const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
      const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, progressLogs: false });
      return { llama };
    } catch (e) {
      return { reason: `node-llama-cpp's prebuilt llama.cpp does not load here: ${(e as Error).message.split('\n')[0]}` };
    }
  })();
  return llamaP;
}
