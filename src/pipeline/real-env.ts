// The pipeline's environment on the real layers: the text layer's tokenizer and chat
// template, the trainers, the tool-call reward and the BFCL AST checker.
import cliProgress from 'cli-progress';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { isAdapterDir, loadWithAdapter, saveAdapterWithChain, type AdapterChain, type AdapterModel } from '../engine/adapter.js';
import type { LoraOptions, Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import { isSplitAnswer } from '../data/answers.js';
import type { CategoryTable } from '../report/html.js';
import { renderPrompt } from '../text/render.js';
import type { Tokenizer } from '../text/tokenizer.js';
import { checkAnswer } from '../toolcall/checker.js';
import { gradesPrompt } from '../search/judge.js';
import { reward } from '../toolcall/reward.js';
import { scorePerplexity } from '../train/perplexity.js';
import { trainPreference } from '../train/preference.js';
import { trainSft } from '../train/sft.js';
import type { StepMetrics } from '../train/report.js';
import type { TrainHooks } from '../train/loop.js';
import { InterruptedError } from '../train/cli.js';
import type { PhaseTrainResult, PipelineEnv, TrainPoint } from './env.js';

export interface RealEnvOptions {
  tokenizer: Tokenizer;
  /** directory whose tokenizer files are copied next to every saved model */
  tokenizerDir: string;
  loadModel: (dir: string) => Promise<Model>;
  /** progress bars: true always, false never, undefined when stderr is a TTY */
  progress?: boolean;
  log?: (line: string) => void;
  /** reward kind: the graded AST reward (default) or the token-overlap reward */
  rewardKind?: 'ast' | 'overlap';
  perplexityBatchTokens?: number;
  /**
   * train a LoRA adapter instead of every weight: a model directory gets a fresh adapter (seeded),
   * an adapter directory (what saveModel writes then) is loaded with its base and chain;
   * `merge`: each training phase first merges the adapter it starts from and trains a fresh one;
   * `warmup` false: the warm-up's model (loadModel(dir, 'warmup')) has no adapter and trains whole
   */
  lora?: { options: LoraOptions; merge: boolean; seed: number; warmup?: boolean } | null;
  /** dtype of the full models saved (not adapters); f32 */
  dtype?: 'f32' | 'bf16';
  /**
   * SIGINT/SIGTERM: asked after every training step (true: the trainer writes a checkpoint and
   * the run stops with an InterruptedError); `training` is told when a trainer runs
   */
  interrupt?: { signal(): NodeJS.Signals | null; training(on: boolean): void };
}

async function interruptibly<R extends { stopped: boolean; steps: number; totalSteps: number; phase: string; checkpoint: { dir: string } | null }>(
  o: RealEnvOptions,
  run: (hooks: TrainHooks) => Promise<R>,
  onStep: (m: StepMetrics) => void,
): Promise<R> {
  const it = o.interrupt;
  it?.training(true);
  let r: R;
  try {
    r = await run({ onStep, shouldStop: () => it?.signal() != null });
  } finally {
    it?.training(false);
  }
  const sig = it?.signal();
  if (r.stopped && sig)
    throw new InterruptedError(
      `stopped by ${sig} in phase ${r.phase} after step ${r.steps} of ${r.totalSteps}: wrote checkpoint ${r.checkpoint?.dir ?? '(none)'}; run the same command again to resume`,
      sig === 'SIGINT' ? 130 : 143,
    );
  return r;
}

interface AdapterState {
  /** the chain beneath the model's adapter */
  chain: AdapterChain;
  /** the adapter directory the model's adapter was loaded from or last saved to (null: trained in this process, unsaved) */
  from: string | null;
}

/** Points of a phase from its metrics.jsonl (all runs of it, resumed ones included). */
function pointsFromMetrics(outDir: string | null | undefined, phase: string, fallback: TrainPoint[]): TrainPoint[] {
  if (!outDir) return fallback;
  const f = join(outDir, 'metrics.jsonl');
  if (!existsSync(f)) return fallback;
  const out: TrainPoint[] = [];
  for (const line of readFileSync(f, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const m = JSON.parse(line) as Partial<StepMetrics>;
      if (m.phase === phase && typeof m.step === 'number') out.push({ step: m.step, loss: Number(m.loss), tokens: Number(m.tokens ?? 0) });
    } catch {
      /* a line cut by a kill */
    }
  }
  out.sort((a, b) => a.step - b.step);
  const dedup = out.filter((p, i) => i === 0 || p.step !== out[i - 1].step);
  return dedup.length ? dedup : fallback;
}

function summarise(steps: number, points: TrainPoint[]): PhaseTrainResult {
  return { steps, tokens: points.reduce((a, p) => a + p.tokens, 0), points };
}

export function scoreByCategory(items: ReadonlyArray<{ sample: Sample; answer: string }>): { categories: CategoryTable; valid: boolean[] } {
  const categories: CategoryTable = {};
  const valid = items.map((it) => checkAnswer(it.sample, it.answer).valid);
  items.forEach((it, i) => {
    const c = (categories[String(it.sample.category)] ??= { correct: 0, total: 0, accuracy: 0 });
    c.total++;
    if (valid[i]) c.correct++;
  });
  for (const c of Object.values(categories)) c.accuracy = c.total ? c.correct / c.total : 0;
  return { categories, valid };
}

export function makeProgress(on: boolean | undefined): PipelineEnv['progress'] {
  return (label, total) => {
    const stream = process.stderr;
    if (!(on ?? stream.isTTY)) return { update() {}, stop() {} };
    const bar = new cliProgress.SingleBar(
      { stream, format: `${label} |{bar}| {value}/{total} | ETA {eta_formatted}{info}`, barsize: 24, hideCursor: true, noTTYOutput: !stream.isTTY, notTTYSchedule: 5000, clearOnComplete: false },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { info: '' });
    return {
      update: (done: number, info?: string) => bar.update(done, { info: info ? ` | ${info}` : '' }),
      stop: () => bar.stop(),
    };
  };
}

/** the tokens of the letters A, B, C and D (each must encode to one token of its own) */
export function gradeLetterIds(tok: Tokenizer): { A: number; B: number; C: number; D: number } | undefined {
  const ids = ['A', 'B', 'C', 'D'].map((l) => tok.encode(l));
  if (ids.some((x) => x.length !== 1) || new Set(ids.map((x) => x[0])).size !== 4) return undefined;
  return { A: ids[0][0], B: ids[1][0], C: ids[2][0], D: ids[3][0] };
}

/** the first token of "Yes" (+1) and of "No" (−1) */
export function gradeTokens(tok: Tokenizer): Array<{ id: number; value: number }> | undefined {
  const yes = tok.encode('Yes')[0];
  const no = tok.encode('No')[0];
  if (yes === undefined || no === undefined || yes === no) return undefined;
  return [
    { id: yes, value: 1 },
    { id: no, value: -1 },
  ];
}

export function realEnv(o: RealEnvOptions): PipelineEnv {
  const tok = o.tokenizer;
  const lora = o.lora ?? null;
  const adapters = new WeakMap<Model, AdapterState>();
  const adaptable = (m: Model): AdapterModel => {
    const a = m as Partial<AdapterModel>;
    if (typeof a.addLora !== 'function' || typeof a.loadAdapter !== 'function') throw new Error('LoRA training needs a model that takes adapters (addLora, loadAdapter)');
    return m as AdapterModel;
  };
  // a model directory gets a fresh adapter; an adapter directory comes back with its base and chain
  const loadAdapted = async (dir: string): Promise<Model> => {
    if (!lora) return o.loadModel(dir);
    const { model, chain, adapter } = await loadWithAdapter(dir, {}, async (base) => adaptable(await o.loadModel(base)));
    if (!adapter) model.addLora({ ...lora.options, seed: lora.seed });
    adapters.set(model, { chain, from: adapter });
    return model;
  };
  // with merge: the adapter a training phase starts from goes into the weights, a fresh one is trained
  const beforeTraining = async (m: Model): Promise<void> => {
    const st = adapters.get(m);
    if (!lora || !lora.merge || !st || st.from === null) return;
    await m.mergeAdapter();
    adaptable(m).addLora({ ...lora.options, seed: lora.seed });
    adapters.set(m, { chain: { base: st.chain.base, merged: [...st.chain.merged, st.from] }, from: null });
  };
  const warmupWhole = !!lora && lora.warmup === false;
  // the warm-up's model trained whole: a model directory without an adapter
  const loadForWarmup = async (dir: string): Promise<Model> => {
    if (isAdapterDir(dir))
      throw new Error(`config lora.warmup false trains the warm-up whole, which needs a model directory to start from, but ${dir} is an adapter: set lora.warmup true (or warmup false when the adapter is already warmed up)`);
    return o.loadModel(dir);
  };
  const renderIds = (s: Sample) => {
    const r = tok.render(s);
    // an answer split off a longer conversation trains its own turn only: the earlier turns
    // are answers of their own (data/answers.ts)
    const mask = isSplitAnswer(s) ? r.mask.map((m, i) => (i < r.promptLength ? 0 : m)) : r.mask;
    return { ids: r.ids, mask, promptLength: r.promptLength };
  };
  const ends = new Set(tok.turnEndIds);
  const answerText = (s: Sample) => {
    const r = renderIds(s);
    return tok.decode(r.ids.filter((t, i) => i >= r.promptLength && r.mask[i] === 1 && !ends.has(t)));
  };
  return {
    text: {
      render: renderIds,
      answerText,
      gradesPrompt: (s, answer) => tok.encode(gradesPrompt(answerText(s), answer)),
      gradeIds: gradeLetterIds(tok),
      prompt: (s) => renderPrompt(tok, s.messages, s.tools),
      decode: (ids) => tok.decode(ids),
      endTokens: tok.turnEndIds,
      judgePrompt: (s, answer) => {
        const user = [...s.messages].reverse().find((m) => m.role === 'user');
        const question =
          `A user asked: ${user && 'content' in user ? user.content : ''}\n` +
          `The assistant answered:\n${answer}\n` +
          'Is this answer a correct use of the tools listed above? Reply Yes or No.';
        const msgs = [...s.messages.filter((m) => m.role === 'system'), { role: 'user' as const, content: question }];
        return renderPrompt(tok, msgs, s.tools).ids;
      },
      judgeGrades: gradeTokens(tok),
    },
    trainer: {
      async sft(model, samples, opts) {
        await beforeTraining(model);
        const pts: TrainPoint[] = [];
        const r = await interruptibly(o, (hooks) => trainSft(model, samples, renderIds, { ...opts, progress: o.progress }, hooks), (m) => void pts.push({ step: m.step, loss: m.loss, tokens: m.tokens }));
        return summarise(r.steps, pointsFromMetrics(opts.outDir, r.phase, pts));
      },
      async prefer(model, pairs, opts) {
        await beforeTraining(model);
        const pts: TrainPoint[] = [];
        const r = await interruptibly(o, (hooks) => trainPreference(model, pairs, { ...opts, progress: o.progress }, hooks), (m) => void pts.push({ step: m.step, loss: m.loss, tokens: m.tokens }));
        return summarise(r.steps, pointsFromMetrics(opts.outDir, r.phase, pts));
      },
      async perplexity(model, samples, opts) {
        const scope = opts?.scope ?? 'answer';
        // 'assistant': every assistant turn of the sample, those before a split answer too (its
        // rendering as a whole, not the warm-up's mask of its own turn)
        const render = scope === 'assistant' ? (s: Sample) => tok.render(s) : renderIds;
        const r = await scorePerplexity(model, samples, render, { batchTokens: o.perplexityBatchTokens ?? 8192, progress: o.progress, scope });
        return Array.from(r.perplexity);
      },
    },
    reward: (answer, sample, partial) => reward(answer, sample, { partial, kind: o.rewardKind ?? 'ast' }),
    score: scoreByCategory,
    loadModel: (dir, use) => (warmupWhole && use === 'warmup' ? loadForWarmup(dir) : lora ? loadAdapted(dir) : o.loadModel(dir)),
    warmupWhole,
    saveModel: async (model, dir) => {
      const st = adapters.get(model);
      if (lora && st) {
        await saveAdapterWithChain(model, dir, st.chain);
        st.from = resolve(dir);
      } else await model.save(dir, { copyFrom: o.tokenizerDir, dtype: o.dtype ?? 'f32' });
    },
    log: o.log,
    progress: makeProgress(o.progress),
  };
}
