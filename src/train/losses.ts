// The preference losses on per-sequence log-probability sums. The trainer calls the
// native op (native/core/ops.h PreferenceParams, through src/engine/ops.ts); tests may
// pass another implementation with the same signature.
import type { PreferenceLossKind } from './options.js';

export interface PreferenceLossParams {
  beta: number;
  gamma: number;
  labelSmoothing: number;
  lambda: number;
}

/** P pairs: log-probability sums over the step tokens and the step lengths. */
export interface PreferenceLossInput {
  chosen: Float32Array;
  rejected: Float32Array;
  chosenLen: Float32Array;
  rejectedLen: Float32Array;
  /** reference sums (DPO, IPO) */
  refChosen?: Float32Array;
  refRejected?: Float32Array;
}

export interface PreferenceLossOutput {
  /** per-pair loss */
  loss: Float32Array;
  /** d loss / d chosen sum, d loss / d rejected sum */
  dChosen: Float32Array;
  dRejected: Float32Array;
  /** beta*(c - rc) for DPO/IPO, beta*c/|c| for SimPO, the log-odds for ORPO */
  chosenReward: Float32Array;
  rejectedReward: Float32Array;
}

export type PreferenceLossFn = (
  kind: PreferenceLossKind,
  params: PreferenceLossParams,
  input: PreferenceLossInput,
) => PreferenceLossOutput | Promise<PreferenceLossOutput>;

type OpsModule = Record<string, unknown>;
let opsModule: Promise<OpsModule> | null = null;

/** The native preference loss (src/engine/ops.ts). */
export const nativePreferenceLoss: PreferenceLossFn = async (kind, params, input) => {
  opsModule ??= import('../engine/ops.js' as string) as Promise<OpsModule>;
  const ops = await opsModule;
  const f = ops.preferenceLoss as undefined | ((o: Record<string, unknown>) => PreferenceLossOutput | Promise<PreferenceLossOutput>);
  if (typeof f !== 'function') throw new Error('preference loss: src/engine/ops.ts has no preferenceLoss()');
  return await f({ kind, ...params, ...input });
};
