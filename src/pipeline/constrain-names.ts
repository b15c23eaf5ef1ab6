// Constrained decoding of the function name: a model wrapper whose sampler may write, after a
// call's opening (`<tool_call>\n{"name": "`), only a name from the tool list of the sample's
// prompt. Everything else the model writes is its own (the rest of the call syntax, the
// arguments, whether and how often it calls). The demo's `constrainNames` option: it lifts a
// small model's "tool not in the list" errors, so results with it are the model plus this
// decoder, not the model alone.
//
// A row is constrained while the text after its turn's last call opening is a prefix of that
// opening or of the opening followed by an unfinished name; then only the tokens that keep the
// text a prefix of `opening + name + '"'` for some listed name (or that run past a listed
// name's closing quote) may be sampled, at the sampling temperature, from the model's
// log-probabilities renormalised over them. A token that leaves the call syntax altogether
// stays allowed (the model's own format error). Works token by token (sampleNext), so the
// search's step sampling and generation share it. Every row first draws from the model in one
// batched call; only a row that drew a forbidden token is undone and drawn again from the allowed
// tokens (log-probabilities, one extend per such row), which gives the same distribution and
// keeps the decode batched. sampledLogprobs: under the model's own sampling distribution for a
// row that kept its draw, under the renormalised one for a row drawn again. With a repetition
// penalty (the reference preset's search) a forbidden draw is redrawn by the model's sampler.
import { decodeRows } from '../engine/decode.js';
import type { Generation, GenerateOptions, KvCache, Model, SampleOptions, StepOutput } from '../engine/model-types.js';

export interface ConstrainNamesOptions {
  /** decodes token ids to text */
  decode: (ids: readonly number[]) => string;
  /** the vocabulary's size (every id below it is scored) */
  vocabSize: number;
  /** the text a call opens with, up to the name's first character */
  opening: string;
  /** the text that marks where the opening starts (a prefix of `opening`; the turn's last one counts) */
  marker: string;
  /** the names a prompt's tool list offers (empty: the row is left free) */
  namesOf: (promptText: string) => readonly string[];
  /** tokens looked back at to find the marker (the opening plus the longest name, in tokens) */
  lookback?: number;
}

/** The demo template's tool list: one `name(params) - description` line per tool after `Tools:`. */
export function compactToolNames(promptText: string): string[] {
  const start = promptText.indexOf('Tools:');
  if (start < 0) return [];
  const end = promptText.indexOf('<|im_end|>', start);
  const block = promptText.slice(start + 'Tools:'.length, end < 0 ? undefined : end);
  const out: string[] = [];
  for (const line of block.split('\n')) {
    const m = /^([^\s(]+)\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/**
 * Which of `pieces` (token id → text) may follow `sofar` (the text after the last marker) when
 * the name must be one of `names`; null when the row is free (not inside an opening or name,
 * or every token is allowed).
 */
export function allowedNext(sofar: string, opening: string, names: readonly string[], pieces: readonly string[]): Uint8Array | null {
  if (names.length === 0) return null;
  if (sofar.length <= opening.length) {
    if (!opening.startsWith(sofar)) return null;
  } else {
    if (!sofar.startsWith(opening)) return null;
    if (sofar.indexOf('"', opening.length) >= 0) return null; // the name is finished
  }
  const mask = new Uint8Array(pieces.length);
  let all = true;
  for (let t = 0; t < pieces.length; t++) {
    const x = sofar + pieces[t];
    let ok = true;
    if (x.length > opening.length && x.startsWith(opening)) {
      const rest = x.slice(opening.length);
      const q = rest.indexOf('"');
      const nm = q < 0 ? rest : rest.slice(0, q);
      ok = q < 0 ? names.some((n) => n.startsWith(nm)) : names.includes(nm);
    }
    mask[t] = ok ? 1 : 0;
    if (!ok) all = false;
  }
  return all ? null : mask;
}

/** splitmix32-style hash → [0, 1) */
function uniform(seed: number, a: number, b: number): number {
  let h = (seed ^ Math.imul(a + 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x21f0aaad) >>> 0;
  h = Math.imul(h ^ (h >>> 15), 0x735a2d97) >>> 0;
  h = (h ^ (h >>> 15)) >>> 0;
  return h / 4294967296;
}

/**
 * `model` with the function name constrained to the listed tools in sampleNext and generate;
 * every other member is the model's own (training, saving, log-probabilities).
 */
export function constrainNames(model: Model, o: ConstrainNamesOptions): Model {
  if (!o.opening.startsWith(o.marker) || o.marker.length === 0) throw new Error(`constrainNames: the marker '${o.marker}' must be a non-empty prefix of the opening '${o.opening}'`);
  const pieces: string[] = [];
  for (let t = 0; t < o.vocabSize; t++) pieces.push(o.decode([t]));
  const markerIds = pieces.map((p, t) => (p === o.marker ? t : -1)).filter((t) => t >= 0);
  const lookback = o.lookback ?? 32;
  const namesMemo = new WeakMap<KvCache, readonly string[]>();
  const namesFor = (c: KvCache): readonly string[] => {
    let n = namesMemo.get(c);
    if (!n) {
      n = o.namesOf(o.decode(c.tokens));
      namesMemo.set(c, n);
    }
    return n;
  };
  /** the mask for a cache's next token, or null (free) */
  const maskFor = (c: KvCache): Uint8Array | null => {
    const toks = c.tokens;
    const from = Math.max(0, toks.length - lookback);
    // fast path: a single-token marker that is not in the window
    if (markerIds.length > 0) {
      let seen = false;
      for (let i = toks.length - 1; i >= from && !seen; i--) if (markerIds.includes(toks[i]!)) seen = true;
      if (!seen) return null;
    }
    const tail = o.decode(toks.slice(from));
    const at = tail.lastIndexOf(o.marker);
    if (at < 0) return null;
    return allowedNext(tail.slice(at), o.opening, namesFor(c), pieces);
  };

  const sampleNext = async (caches: readonly KvCache[], opts: SampleOptions = {}): Promise<StepOutput> => {
    const masks = caches.map(maskFor);
    if (masks.some((m) => m) && ((opts.topK ?? 0) > 0 || (opts.topP ?? 1) < 1)) throw new Error('constrainNames: a constrained name is sampled at a temperature only (no top-k or top-p)');
    // every row draws from the model as it is (one batched call); a constrained row whose draw is
    // allowed keeps it: conditioned on being allowed, that draw already follows the model's
    // distribution renormalised over the allowed tokens
    const out = await model.sampleNext(caches, opts);
    const tokens = Int32Array.from(out.tokens);
    const logprobs = Float32Array.from(out.logprobs);
    const sampled = Float32Array.from(out.sampledLogprobs);
    // a row that drew a forbidden token: undo it and draw from the allowed ones (with the first
    // draw, each allowed token comes out with probability p(t) + (1 - A) p(t) / A = p(t) / A)
    let redo = caches.map((_, i) => i).filter((i) => masks[i] && !masks[i]![tokens[i]!]);
    // with a repetition penalty the renormalised distribution needs the penalised logits, which
    // only the model's sampler has: draw again from it (each draw advances the row's counter)
    // until the token is allowed, which is exact; a row still forbidden after 32 draws (or any
    // greedy row) falls back to the allowed tokens' log-probabilities without the penalty
    if ((opts.repetitionPenalty ?? 1) !== 1 && (opts.temperature ?? 1) > 0) {
      for (let k = 0; k < 32 && redo.length > 0; k++) {
        for (const i of redo) caches[i]!.truncate(caches[i]!.length - 1);
        const again = await model.sampleNext(
          redo.map((i) => caches[i]!),
          opts,
        );
        redo.forEach((i, j) => {
          tokens[i] = again.tokens[j]!;
          logprobs[i] = again.logprobs[j]!;
          sampled[i] = again.sampledLogprobs[j]!;
        });
        redo = redo.filter((i) => !masks[i]![tokens[i]!]);
      }
    }
    if (redo.length === 0) return { tokens, logprobs, sampledLogprobs: sampled };
    for (const i of redo) caches[i]!.truncate(caches[i]!.length - 1);
    const V = o.vocabSize;
    const lp = await model.nextLogprobs(redo.map((i) => caches[i]!));
    const temp = opts.temperature ?? 1;
    for (let j = 0; j < redo.length; j++) {
      const i = redo[j]!;
      const mask = masks[i]!;
      const row = lp.subarray(j * V, (j + 1) * V);
      let best = -1;
      for (let t = 0; t < V; t++) if (mask[t] && (best < 0 || row[t]! > row[best]!)) best = t;
      let pick = best;
      let pickLp = 0;
      if (temp > 0) {
        // softmax(lp / T) over the allowed tokens
        let z = 0;
        for (let t = 0; t < V; t++) if (mask[t]) z += Math.exp((row[t]! - row[best]!) / temp);
        const u = uniform(opts.seed ?? 0, caches[i]!.length, i) * z;
        let acc = 0;
        for (let t = 0; t < V; t++) {
          if (!mask[t]) continue;
          acc += Math.exp((row[t]! - row[best]!) / temp);
          pick = t;
          if (acc > u) break;
        }
        pickLp = (row[pick]! - row[best]!) / temp - Math.log(z);
      }
      tokens[i] = pick;
      logprobs[i] = row[pick]!;
      sampled[i] = pickLp;
      await model.extend(caches[i]!, [pick]);
    }
    return { tokens, logprobs, sampledLogprobs: sampled };
  };

  const generate = (caches: readonly KvCache[], opts: GenerateOptions): Promise<Generation[]> => {
    const { maxTokens: _m, stopTokens: _s, stop: _f, ...sample } = opts;
    return decodeRows(caches, opts, (active) => sampleNext(active, sample));
  };

  return new Proxy(model, {
    get(target, prop) {
      if (prop === 'sampleNext') return sampleNext;
      if (prop === 'generate') return generate;
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
