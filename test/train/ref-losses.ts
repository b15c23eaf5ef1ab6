// Float64 closed forms of the preference losses and their derivatives, written from the
// papers (DPO: Rafailov et al. 2023 with cDPO label smoothing; IPO: Azar et al. 2023;
// SimPO: Meng et al. 2024; ORPO: Hong et al. 2024), independently of native/cpu.
import type { PreferenceLossFn } from '../../src/train/losses.js';

/** log σ(x), stable for large |x| */
export function logSigmoid(x: number): number {
  return x >= 0 ? -Math.log1p(Math.exp(-x)) : x - Math.log1p(Math.exp(x));
}
export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export interface RefPair { c: number; r: number; lc: number; lr: number; rc?: number; rr?: number }
export interface RefParams { beta: number; gamma: number; labelSmoothing: number; lambda: number }
export interface RefOut { loss: number; dc: number; dr: number; cw: number; rw: number }

/** log(p / (1 - p)) for log p = m (m < 0) */
function logOdds(m: number): number {
  return m - Math.log(-Math.expm1(m));
}
/** d logOdds / d m = 1 / (1 - p) */
function dLogOdds(m: number): number {
  return 1 / -Math.expm1(m);
}

export function refLoss(kind: 'dpo' | 'ipo' | 'simpo' | 'orpo', q: RefParams, p: RefPair): RefOut {
  switch (kind) {
    case 'dpo': {
      const cw = q.beta * (p.c - p.rc!);
      const rw = q.beta * (p.r - p.rr!);
      const z = cw - rw;
      const ls = q.labelSmoothing;
      const loss = -(1 - ls) * logSigmoid(z) - ls * logSigmoid(-z);
      // d/dz: -(1-ls)(1-σ(z)) + ls σ(z)
      const dz = -(1 - ls) * sigmoid(-z) + ls * sigmoid(z);
      return { loss, dc: dz * q.beta, dr: -dz * q.beta, cw, rw };
    }
    case 'ipo': {
      const h = p.c - p.rc! - (p.r - p.rr!);
      const d = h - 1 / (2 * q.beta);
      return { loss: d * d, dc: 2 * d, dr: -2 * d, cw: q.beta * (p.c - p.rc!), rw: q.beta * (p.r - p.rr!) };
    }
    case 'simpo': {
      const cw = (q.beta * p.c) / p.lc;
      const rw = (q.beta * p.r) / p.lr;
      const z = cw - rw - q.gamma;
      const dz = -sigmoid(-z);
      return { loss: -logSigmoid(z), dc: (dz * q.beta) / p.lc, dr: (-dz * q.beta) / p.lr, cw, rw };
    }
    case 'orpo': {
      const mc = p.c / p.lc;
      const mr = p.r / p.lr;
      const z = logOdds(mc) - logOdds(mr);
      const loss = -mc - q.lambda * logSigmoid(z);
      const dz = -q.lambda * sigmoid(-z);
      return { loss, dc: (-1 + dz * dLogOdds(mc)) / p.lc, dr: (-dz * dLogOdds(mr)) / p.lr, cw: logOdds(mc), rw: logOdds(mr) };
    }
  }
}

/** refLoss shaped as the trainer's PreferenceLossFn (float64 math, float32 out). */
export const refLossFn: PreferenceLossFn = (kind, params, x) => {
  const n = x.chosen.length;
  const o = { loss: new Float32Array(n), dChosen: new Float32Array(n), dRejected: new Float32Array(n), chosenReward: new Float32Array(n), rejectedReward: new Float32Array(n) };
  for (let i = 0; i < n; i++) {
    const r = refLoss(kind, params, { c: x.chosen[i]!, r: x.rejected[i]!, lc: x.chosenLen[i]!, lr: x.rejectedLen[i]!, rc: x.refChosen?.[i], rr: x.refRejected?.[i] });
    o.loss[i] = r.loss;
    o.dChosen[i] = r.dc;
    o.dRejected[i] = r.dr;
    o.chosenReward[i] = r.cw;
    o.rejectedReward[i] = r.rw;
  }
  return o;
};
