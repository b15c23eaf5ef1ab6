// The demo's trained model (itool demo --quick: a from-scratch Llama with the project's own
// BPE tokenizer and Hermes chat template, after warm-up SFT and 2 iTool iterations)
// exported to GGUF and served by llama.cpp: tool-use prompts rendered by the chat template
// tokenize to the same ids, log-probabilities of whole conversations agree, and the greedy
// answer to a held-out prompt is the same tokens (f32).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synthesize } from '../../src/data/index.js';
import { loadModel, type NativeModel } from '../../src/engine/index.js';
import { exportGguf } from '../../src/export/index.js';
import { loadTokenizer, type Tokenizer } from '../../src/text/index.js';
import { repoRoot } from '../helpers/native.js';
import { llamaCpp, LOGPROB_TOLERANCE, tempDir } from './helpers.js';

const ll = await llamaCpp();
const skipReason = 'reason' in ll ? ll.reason : null;
const report = process.env.ITOOL_EXPORT_REPORT === '1';

describe.skipIf(skipReason !== null)(`the demo's trained model in llama.cpp${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  const llama = 'llama' in ll ? ll.llama : (null as never);
  let out = '';
  let modelDir = '';
  let tok: Tokenizer;
  let model: NativeModel;
  beforeAll(async () => {
    out = tempDir('itool-export-demo-');
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'demo', '--quick', '--out', out], { encoding: 'utf8', timeout: 300_000 });
    if (r.status !== 0) throw new Error(`itool demo --quick failed: ${r.stderr.slice(-500)}`);
    // the policy after the last iteration that trained: an iteration whose search found no pairs
    // (the quick model's second one may not) keeps the previous policy and saves no model
    const trained = [2, 1].map((i) => join(out, 'run', `iteration-${i}`, 'model')).filter((d) => existsSync(d));
    if (trained.length === 0) throw new Error(`itool demo --quick saved no iteration's model under ${join(out, 'run')}`);
    modelDir = trained[0]!;
    tok = loadTokenizer(modelDir);
    model = await loadModel(modelDir, { device: 'cpu' });
    for (const dtype of ['f32', 'q8_0']) await exportGguf({ model: modelDir, out: join(out, `demo-${dtype}.gguf`), dtype });
  }, 300_000);
  afterAll(() => {
    model?.dispose();
    if (out) rmSync(out, { recursive: true, force: true });
  });

  for (const dtype of ['f32', 'q8_0'] as const) {
    it(`${dtype}: tool-use conversations: same ids, log-probabilities within ${LOGPROB_TOLERANCE[dtype]}${dtype === 'f32' ? ', the same greedy answers' : ''}`, async () => {
      const lm = await llama.loadModel({ modelPath: join(out, `demo-${dtype}.gguf`), gpuLayers: 0 });
      try {
        let maxDiff = 0, n = 0, greedy = 0;
        for (const sample of synthesize({ n: 4, seed: 21, split: 'test' })) {
          const full = tok.render(sample);
          const text = tok.decode(full.ids);
          expect(Array.from(lm.tokenize(text, true))).toEqual(full.ids);
          const ctx = await lm.createContext({ contextSize: 2048, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
          try {
            const seq = ctx.getSequence();
            const ids = full.ids;
            const input = ids.map((t, i) => (i < ids.length - 1 ? ([t, { generateNext: { probabilities: true } }] as const) : t));
            const res = await seq.controlledEvaluate(input as Parameters<typeof seq.controlledEvaluate>[0]);
            const ref = await model.logprobs({ tokens: Int32Array.from(ids), targets: Int32Array.from([...ids.slice(1), -1]), cuSeqlens: Int32Array.from([0, ids.length]) });
            for (let i = 0; i + 1 < ids.length; i++) {
              maxDiff = Math.max(maxDiff, Math.abs(Math.log(res[i]?.next?.probabilities?.get(ids[i + 1] as never) ?? 0) - ref[i]!));
              n++;
            }
          } finally {
            await ctx.dispose();
          }
          if (dtype === 'f32') {
            const prompt = tok.renderPrompt(sample.messages, sample.tools);
            const cache = await model.cache(prompt.ids);
            const [g] = await model.generate([cache], { maxTokens: 32, temperature: 0 });
            cache.dispose();
            const gctx = await lm.createContext({ contextSize: 2048, threads: 1, experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false });
            try {
              const seq = gctx.getSequence();
              const next = { generateNext: { token: true, options: { temperature: 0 } } } as const;
              type Input = Parameters<typeof seq.controlledEvaluate>[0];
              let res = await seq.controlledEvaluate([...prompt.ids.slice(0, -1), [prompt.ids[prompt.ids.length - 1]!, next]] as Input);
              const mine: number[] = [];
              while (mine.length < 32) {
                const t = res[res.length - 1]!.next!.token!;
                mine.push(t);
                res = await seq.controlledEvaluate([[t, next]] as Input);
              }
              expect(mine, tok.decode(g!.tokens)).toEqual(g!.tokens);
              greedy++;
              if (report) console.log(`[export report] demo greedy answer: ${JSON.stringify(tok.decode(mine))}`);
            } finally {
              await gctx.dispose();
            }
          }
        }
        if (report) console.log(`[export report] demo model ${dtype}: max |Δ log p| = ${maxDiff.toExponential(2)} over ${n} tokens of 4 conversations; greedy answers compared: ${greedy}`);
        expect(n).toBeGreaterThan(200);
        expect(maxDiff).toBeLessThanOrEqual(LOGPROB_TOLERANCE[dtype]);
      } finally {
        await lm.dispose();
      }
    });
  }
});
