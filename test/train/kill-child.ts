// The child of the kill -9 tests: trains with a checkpoint after every step and resumes
// from the latest one each time it starts; writes the final training state to OUT/final.
// Usage: node kill-child.js OUT fake|native
// Prints 'STEP n' after each step (then waits STEP_DELAY_MS) and 'COMMIT' while a checkpoint is written but not yet
// committed (it then lingers COMMIT_DELAY_MS so that the parent can kill it right there).
import { join } from 'node:path';
import type { Model, ModelConfig } from '../../src/engine/model-types.js';
import { Checkpointer } from '../../src/train/checkpoint.js';
import { trainSft, type RenderedSample } from '../../src/train/sft.js';
import { BigramModel } from './fake-model.js';

export const TINY_CONFIG: ModelConfig = {
  architecture: 'LlamaForCausalLM',
  vocabSize: 64,
  hiddenSize: 32,
  intermediateSize: 64,
  numLayers: 2,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 8,
  rmsNormEps: 1e-6,
  ropeTheta: 10000,
  ropeScaling: null,
  maxPositionEmbeddings: 256,
  tieWordEmbeddings: true,
  attentionBias: false,
  qkNorm: false,
  bosTokenId: null,
  eosTokenId: [1],
};

export function killData(V: number): RenderedSample[] {
  const out: RenderedSample[] = [];
  for (let i = 0; i < 12; i++) {
    const p = [2 + (i % 7), 3 + ((i * 5) % 11), 4 + (i % 3)];
    const a = Array.from({ length: 3 + (i % 4) }, (_, j) => 16 + ((i * 7 + j * 3) % (V - 16)));
    out.push({ ids: [...p, ...a, 1], mask: [...p.map(() => 0), ...a.map(() => 1), 1], category: ['simple', 'multiple', 'parallel'][i % 3] });
  }
  return out;
}

async function main(): Promise<void> {
  const [out, mode] = process.argv.slice(2) as [string, string];
  const delay = Number(process.env.COMMIT_DELAY_MS ?? 0);
  // bounds how many steps run between a STEP line and the kill it triggers
  const stepDelay = Number(process.env.STEP_DELAY_MS ?? 0);
  let model: Model;
  let V: number;
  if (mode === 'fake') {
    V = 32;
    model = new BigramModel(V, 7);
  } else {
    const mod = (await import('../../src/engine/model.js' as string)) as { createModel: (c: ModelConfig, o: { seed: number }) => Promise<Model> | Model };
    V = TINY_CONFIG.vocabSize;
    model = await mod.createModel(TINY_CONFIG, { seed: 7 });
  }
  const ck = new Checkpointer(join(out, 'checkpoints'), {
    keepLast: 2,
    beforeCommit: async () => {
      process.stdout.write('COMMIT\n');
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    },
  });
  await trainSft(
    model,
    killData(V),
    null,
    { lr: 0.02, epochs: 8, batchTokens: 24, gradAccum: 2, replay: 0.5, seed: 11, resume: true, outDir: out, checkpointer: ck, saveEvery: 1, progress: false, maxGradNorm: 1 },
    {
      onStep: async (m) => {
        process.stdout.write(`STEP ${m.step}\n`);
        if (stepDelay > 0) await new Promise((r) => setTimeout(r, stepDelay));
      },
    },
  );
  await model.saveTrainingState(join(out, 'final'));
  process.stdout.write('DONE\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`kill-child: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
