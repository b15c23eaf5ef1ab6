// Steps: the fragments of an answer that one MCTS action produces. The answer is cut after
// each match of the step pattern (by default `. `, `, `, `=`, `(`), and `stepLimit`
// consecutive fragments make one step.

/** The paper's cut points: after '. ', ', ', '=', '('. */
export const DEFAULT_STEP_PATTERN = /\. |, |=|\(/g;

export interface StepOptions {
  /** cut after every match of this pattern (a global RegExp, or a source string) */
  pattern?: RegExp | string;
  /** fragments per step (default 1) */
  stepLimit?: number;
}

export interface StepSpan {
  text: string;
  /** [start, end) in UTF-16 units of the answer text */
  start: number;
  end: number;
}

function globalPattern(p: RegExp | string | undefined): RegExp {
  if (p === undefined) return new RegExp(DEFAULT_STEP_PATTERN.source, 'g');
  if (typeof p === 'string') {
    if (p === '') throw new Error('step pattern must not be empty');
    try {
      return new RegExp(p, 'gu');
    } catch (e) {
      throw new Error(`step pattern ${JSON.stringify(p)} is not a valid regular expression: ${(e as Error).message}`);
    }
  }
  if (!(p instanceof RegExp)) throw new Error('step pattern must be a RegExp or a string');
  return new RegExp(p.source, p.flags.includes('g') ? p.flags : p.flags + 'g');
}

/** Character spans of the steps of `text`; they tile the text exactly (no gaps, no overlap). */
export function splitStepSpans(text: string, opts: StepOptions = {}): StepSpan[] {
  if (typeof text !== 'string') throw new Error('splitSteps: text must be a string');
  const limit = opts.stepLimit ?? 1;
  if (!Number.isInteger(limit) || limit < 1) throw new Error(`stepLimit must be a positive integer, got ${limit}`);
  const re = globalPattern(opts.pattern);
  const cuts: number[] = [];
  for (const m of text.matchAll(re)) {
    const end = m.index + m[0].length;
    if (m[0].length === 0) continue; // an empty match cuts nothing
    if (end < text.length) cuts.push(end);
  }
  const fragments: Array<[number, number]> = [];
  let prev = 0;
  for (const c of cuts) {
    if (c > prev) fragments.push([prev, c]);
    prev = c;
  }
  if (prev < text.length) fragments.push([prev, text.length]);
  const out: StepSpan[] = [];
  for (let i = 0; i < fragments.length; i += limit) {
    const start = fragments[i][0];
    const end = fragments[Math.min(i + limit, fragments.length) - 1][1];
    out.push({ text: text.slice(start, end), start, end });
  }
  return out;
}

/** Splits an answer into steps; joined back they give the answer exactly. */
export function splitSteps(text: string, opts: StepOptions = {}): string[] {
  return splitStepSpans(text, opts).map((s) => s.text);
}
