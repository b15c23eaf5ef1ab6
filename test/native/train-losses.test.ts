// The native preference losses (src/engine/ops.ts preferenceLoss, through the trainer's
// nativePreferenceLoss) against float64 closed forms written independently in
// test/train/ref-losses.ts: values, gradients wrt the sums and rewards, over a grid of
// beta, gamma, lengths, margins of both signs and saturated sigmoids.
import { describe, expect, it } from 'vitest';
import { nativePreferenceLoss } from '../../src/train/losses.js';
import { refLoss, type RefPair } from '../train/ref-losses.js';

const f = Math.fround;

function close(got: number, want: number, what: string): void {
  const tol = 2e-5 * Math.max(1, Math.abs(want)) + 1e-7;
  expect(Math.abs(got - want), `${what}: got ${got}, want ${want}`).toBeLessThanOrEqual(tol);
}

function grid(): RefPair[] {
  const out: RefPair[] = [];
  const lens = [[1, 1], [3, 7], [12, 2], [40, 40]];
  // per-token means from near 0 to very unlikely, margins of both signs
  const means = [[-0.05, -0.9], [-0.9, -0.05], [-2.3, -2.3], [-0.01, -6], [-6, -0.01], [-0.3, -0.31]];
  for (const [lc, lr] of lens) for (const [mc, mr] of means) {
    out.push({ c: f(mc! * lc!), r: f(mr! * lr!), lc: lc!, lr: lr!, rc: f(mc! * lc! + 0.37), rr: f(mr! * lr! - 0.21) });
  }
  // saturated: huge positive and negative margins against the reference
  out.push({ c: -1, r: -400, lc: 2, lr: 2, rc: -300, rr: -1 });
  out.push({ c: -400, r: -1, lc: 2, lr: 2, rc: -1, rr: -300 });
  return out;
}

describe('native preference losses against float64 closed forms', () => {
  const pairs = grid();
  const input = {
    chosen: Float32Array.from(pairs, (p) => p.c),
    rejected: Float32Array.from(pairs, (p) => p.r),
    chosenLen: Float32Array.from(pairs, (p) => p.lc),
    rejectedLen: Float32Array.from(pairs, (p) => p.lr),
    refChosen: Float32Array.from(pairs, (p) => f(p.rc!)),
    refRejected: Float32Array.from(pairs, (p) => f(p.rr!)),
  };
  const cases: Array<['dpo' | 'ipo' | 'simpo' | 'orpo', { beta: number; gamma: number; labelSmoothing: number; lambda: number }]> = [];
  for (const beta of [0.1, 0.5, 2.5]) {
    cases.push(['dpo', { beta, gamma: 0, labelSmoothing: 0, lambda: 0 }]);
    cases.push(['dpo', { beta, gamma: 0, labelSmoothing: 0.2, lambda: 0 }]);
    cases.push(['ipo', { beta, gamma: 0, labelSmoothing: 0, lambda: 0 }]);
    for (const gamma of [0, 0.5, 1.6]) cases.push(['simpo', { beta, gamma, labelSmoothing: 0, lambda: 0 }]);
  }
  for (const lambda of [0.1, 1]) cases.push(['orpo', { beta: 0.1, gamma: 0, labelSmoothing: 0, lambda }]);

  for (const [kind, q] of cases) {
    it(`${kind} beta ${q.beta} gamma ${q.gamma} ls ${q.labelSmoothing} lambda ${q.lambda}`, async () => {
      const out = await nativePreferenceLoss(kind, q, input);
      pairs.forEach((p, i) => {
        const r = refLoss(kind, q, { ...p, rc: input.refChosen[i], rr: input.refRejected[i] });
        close(out.loss[i]!, r.loss, `pair ${i} loss`);
        close(out.dChosen[i]!, r.dc, `pair ${i} d/dchosen`);
        close(out.dRejected[i]!, r.dr, `pair ${i} d/drejected`);
        close(out.chosenReward[i]!, r.cw, `pair ${i} chosen reward`);
        close(out.rejectedReward[i]!, r.rw, `pair ${i} rejected reward`);
      });
    });
  }

  it('saturated sigmoids stay finite: loss ~ |z| and gradient ~ beta, or loss ~ 0 and gradient ~ 0', async () => {
    const out = await nativePreferenceLoss('dpo', { beta: 1, gamma: 0, labelSmoothing: 0, lambda: 0 }, input);
    const n = pairs.length;
    // pair n-2: z = (-1 + 300) - (-400 + 1) = 698: loss ~ 0
    expect(out.loss[n - 2]).toBeLessThan(1e-30);
    // pair n-1: z = -698: loss ~ 698, d/dc = -beta
    close(out.loss[n - 1]!, 698, 'saturated loss');
    close(out.dChosen[n - 1]!, -1, 'saturated gradient');
    for (const a of [out.loss, out.dChosen, out.dRejected]) for (const x of a) expect(Number.isFinite(x)).toBe(true);
  });
});
