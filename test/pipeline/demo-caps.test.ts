// The demo's token caps against its own data: every held-out answer fits the evaluation's
// maxTokens (and the search's rollouts), counted with the demo's tokenizer trained as the demo
// trains it. At 96 tokens, 26 of the 184 parallel / parallel_multiple answers of seeds 1-3 did
// not fit, so a model could not answer them right whatever it knew.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { synthesize } from '../../src/data/synth.js';
import { DEMO_TEMPLATE, demoSize, structureCorpus, tokenizerCorpus } from '../../src/pipeline/demo.js';
import { trainBpe, writeTokenizer } from '../../src/text/bpe.js';
import { loadTokenizer } from '../../src/text/tokenizer.js';
import { formatHermesCalls } from '../../src/toolcall/index.js';

const root = mkdtempSync(join(tmpdir(), 'itool-demo-caps-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('demo token caps', () => {
  it('every held-out answer of seed 1 fits eval.maxTokens and search.rolloutMaxTokens (full size)', () => {
    const size = demoSize(false);
    const seed = 1;
    const train = synthesize({ n: size.trainSamples, seed, split: 'train' });
    const test = synthesize({ n: size.testSamples, seed, split: 'test' });
    const bpe = trainBpe({ corpus: size.tokenizerCorpus === 'full' ? tokenizerCorpus(train) : structureCorpus(train), vocabSize: size.vocabSize, seed, chatTemplate: DEMO_TEMPLATE });
    writeTokenizer(join(root, 'tok'), bpe);
    const tok = loadTokenizer(join(root, 'tok'));
    let longest = { n: 0, category: '' };
    for (const s of test) {
      const last = s.messages[s.messages.length - 1]!;
      const text = last.role === 'assistant' ? (last.toolCalls?.length ? formatHermesCalls(last.toolCalls) : (last.content ?? '')) : '';
      // the answer's tokens and the turn's end token
      const n = tok.encode(text, { addSpecialTokens: false }).length + 1;
      if (n > longest.n) longest = { n, category: s.category ?? '' };
    }
    // the longest answers are parallel calls: well past the single-call ones (about 60 tokens)
    expect(longest.n).toBeGreaterThan(64);
    const p = size.pipeline as { eval: { maxTokens: number }; search: { rolloutMaxTokens: number } };
    expect(longest.n, `longest held-out answer (${longest.category})`).toBeLessThanOrEqual(p.eval.maxTokens);
    expect(longest.n).toBeLessThanOrEqual(p.search.rolloutMaxTokens);
  });
});
