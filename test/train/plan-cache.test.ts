// The allocator's block cache cap as a choice of the plan (issue 19): the blocks the cache does not
// keep are unmapped (native/cpu/cpu_backend.cpp), so a smaller cap lowers the resident peak by the
// other micro-batch lengths' blocks the cache held; the plan tries 1 GiB, 256 MiB and 64 MiB within
// each (recompute, micro-batch) combination before a dearer combination. Pure: the replay only.
import { describe, expect, it } from 'vitest';
import { shapeConfig } from '../../src/bench/memory.js';
import { evaluate, planMemory, stepCost, DEFAULT_CACHE_CAP, type PlanRequest } from '../../src/train/plan.js';
import { RUNTIME_BASE } from '../../src/train/plan-cli.js';

// the bench's `base` shape (100M parameters, vocab 32000): full fine-tuning at 1.3 x (weights + gradients + AdamW)
const config = shapeConfig('base');
const req = (over: Partial<PlanRequest> = {}): PlanRequest => ({
  config, checkpointDtype: 'f32', lora: null, weightsDtype: 'f32', recompute: 'auto', microTokens: 'auto', batchTokens: 4096, maxSequence: 1024,
  workloads: { sft: true }, budget: 2.08e9, runtime: RUNTIME_BASE, load: 'random', ...over,
});

describe('the block cache cap in the plan', () => {
  it('a smaller cap never raises the planned peak, and lowers it for split steps', () => {
    for (const [rc, micro] of [[false, 0], [true, 1024], [true, 2048], [false, 2048]] as const) {
      const peaks = [DEFAULT_CACHE_CAP, 256 * 2 ** 20, 64 * 2 ** 20].map((cap) => evaluate(req(), 'f32', rc, micro, cap).peak);
      expect(peaks[1]!, `${rc} ${micro}`).toBeLessThanOrEqual(peaks[0]!);
      expect(peaks[2]!, `${rc} ${micro}`).toBeLessThanOrEqual(peaks[1]!);
      if (micro > 0) expect(peaks[2]!, `${rc} ${micro}`).toBeLessThan(peaks[0]!);
    }
  });

  it('a budget that the 1 GiB cache does not fit in the cheapest combination takes a smaller cap before a dearer combination', () => {
    const auto = planMemory(req());
    const fixed = planMemory(req({ cacheCap: DEFAULT_CACHE_CAP }));
    expect(auto.fits).toBe(true);
    expect(auto.choices.cacheCap).toBeLessThan(DEFAULT_CACHE_CAP);
    expect(auto.choices.reasons.join('\n')).toMatch(new RegExp(`allocator block cache capped at ${auto.choices.cacheCap / 2 ** 20} MiB`));
    // with the 1 GiB cache nothing fits, or only a dearer combination does
    if (fixed.fits) expect(stepCost(auto.choices.recompute, auto.choices.microTokens || 4096)).toBeLessThan(stepCost(fixed.choices.recompute, fixed.choices.microTokens || 4096));
    // a split step is counted with the block cache full: the peak holds at least the engine's live peak and the cap
    expect(auto.peak).toBeGreaterThanOrEqual(auto.enginePeakLive + auto.choices.cacheCap + RUNTIME_BASE);
    expect(auto.peak).toBeLessThanOrEqual(2.08e9);
    // a roomy budget keeps the default cap
    expect(planMemory(req({ budget: 64e9 })).choices.cacheCap).toBe(DEFAULT_CACHE_CAP);
  });
});
