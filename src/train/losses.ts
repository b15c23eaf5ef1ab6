// The preference losses on per-sequence log-probability sums. The trainer calls the
// native op (native/core/ops.h PreferenceParams, through src/engine/ops.ts); tests may
// pass another implementation with the same signature.
import { preferenceLoss } from '../engine/ops.js';
import { tensor, type NativeTensor } from '../engine/tensor.js';
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

/** The native preference loss (native/core/ops.h PreferenceParams, through src/engine/ops.ts), on the CPU. */
export const nativePreferenceLoss: PreferenceLossFn = async (kind, params, input) => {
  const made: NativeTensor[] = [];
  const t = (a: Float32Array): NativeTensor => {
    const x = tensor(a, [a.length], 'f32');
    made.push(x);
    return x;
  };
  try {
    const out = await preferenceLoss({
      kind,
      beta: params.beta,
      gamma: params.gamma,
      labelSmoothing: params.labelSmoothing,
      lambda: params.lambda,
      chosen: t(input.chosen),
      rejected: t(input.rejected),
      ...(kind === 'simpo' || kind === 'orpo' ? { chosenLen: t(input.chosenLen), rejectedLen: t(input.rejectedLen) } : {}),
      ...(kind === 'dpo' || kind === 'ipo'
        ? { refChosen: t(input.refChosen ?? fail(kind, 'refChosen')), refRejected: t(input.refRejected ?? fail(kind, 'refRejected')) }
        : {}),
    });
    const read = (x: NativeTensor): Float32Array => {
      made.push(x);
      return x.toArray() as Float32Array;
    };
    return { loss: read(out.loss), dChosen: read(out.dChosen), dRejected: read(out.dRejected), chosenReward: read(out.chosenReward), rejectedReward: read(out.rejectedReward) };
  } finally {
    for (const x of made) x.dispose();
  }
};

function fail(kind: string, what: string): never {
  throw new Error(`preference loss ${kind}: ${what} (reference log-probabilities) missing`);
}
