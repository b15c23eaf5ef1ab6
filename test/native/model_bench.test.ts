// The model benchmark's code paths at a tiny size (figures are not asserted: speed lives
// in `itool bench model`); the prefix-sharing run must hold fewer KV blocks.
import { describe, expect, it } from 'vitest';
import { benchGenerate, benchTrain, CONFIGS } from '../../src/bench/model.js';

describe('bench model (tiny)', () => {
  const tiny = { ...CONFIGS[0]!, name: 'tiny', config: { ...CONFIGS[0]!.config, vocabSize: 256, hiddenSize: 32, intermediateSize: 64, numLayers: 2, headDim: 8 }, batch: 2, seqLen: 16 };
  it('training rows are complete', async () => {
    const r = await benchTrain(tiny, 1, 'cpu', 100);
    expect(r.parameters).toBeGreaterThan(0);
    expect(r.tokensPerSecond).toBeGreaterThan(0);
    expect(r.fractionOfGemmPeak).toBeCloseTo(r.gflops / 100, 10);
  });
  it('generation with a shared prefix holds fewer KV blocks than without', async () => {
    const g = await benchGenerate(tiny, 'cpu', 8, 4, 40);
    // 40 prompt tokens: 2 full blocks shared + each branch's copied partial block, vs 3 blocks per branch
    expect(g.shared.blocks).toBe(2 + 8);
    expect(g.unshared.blocks).toBe(8 * 3);
  });
});
