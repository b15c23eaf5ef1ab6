// The iTool loop: warm-up SFT → (select → search → pairs → optimize → evaluate) × N, and
// optionally the equal-compute SFT baseline. Every phase writes its outputs into the run
// directory and is recorded in state.json when finished; a run started again on the same
// directory skips finished phases (a phase killed midway starts over, or resumes from the
// trainer's own checkpoints inside its directory).
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../engine/model-types.js';
import type { Sample } from '../data/sample.js';
import type { CategoryTable, ReportCurve, ReportEvaluation, ReportIteration, ReportTree } from '../report/html.js';
import { gradesValue, makeSelfJudge } from '../search/judge.js';
import { DEFAULT_STEP_PATTERN, searchTrees, type Judge, type SearchTask } from '../search/mcts.js';
import { dedupePairs, pairsToJsonl, parsePairsJsonl, type StepPair } from '../search/pairs.js';
import { treeToJson, type TreeJson } from '../search/tree.js';
import { checkConfig, type PipelineConfig } from './config.js';
import type { PhaseTrainResult, PipelineEnv, TrainPoint } from './env.js';
import { evaluateModel, type EvalResult } from './evaluate.js';
import { balanceDecisionPairs, selectHardest } from './select.js';
import { parseCalls } from '../toolcall/parse.js';
import { fnv1a, RunState, writeAtomic } from './state.js';
import { shuffled } from './user-run.js';

export interface IterationRow {
  iteration: number;
  selected: number;
  nodes: number;
  pairs: number;
  steps: number;
  tokens: number;
  categories: CategoryTable;
  seconds: number;
}

export interface PipelineResult {
  runDir: string;
  warmup: { categories: CategoryTable } | null;
  itool: { categories: CategoryTable; iterations: IterationRow[] };
  baseline: { categories: CategoryTable; steps: number; tokens: number } | null;
  curves: ReportCurve[];
  evaluations: ReportEvaluation[];
  reportIterations: ReportIteration[];
  tree: ReportTree | null;
  /** optimizer steps and tokens of all preference phases (what the baseline matches) */
  itoolSteps: number;
  itoolTokens: number;
}

export interface PipelineInput {
  env: PipelineEnv;
  config: PipelineConfig;
  runDir: string;
  /** Hugging Face directory of the starting policy */
  modelDir: string;
  train: readonly Sample[];
  test: readonly Sample[];
  /** called after each phase is recorded (tests kill the process here) */
  onPhase?: (name: string) => void;
}

interface SelectResult {
  ids: string[];
}
interface SearchSummary {
  selected: number;
  pairs: number;
  nodes: number;
  chosenValues: number[];
  rejectedValues: number[];
  tokens: number;
  meanBatch: number;
  tree: ReportTree | null;
}
interface TrainSummary extends PhaseTrainResult {
  model: string;
}
interface EvalSummary {
  categories: CategoryTable;
  tokens: number;
}

function fingerprintOf(input: PipelineInput): string {
  const { config } = input;
  return fnv1a(
    JSON.stringify({
      // iterations left out: a finished run is extended by running it again with more
      c: { ...config, iterations: undefined },
      m: input.modelDir,
      train: input.train.map((s) => s.id),
      test: input.test.map((s) => s.id),
    }),
  );
}

export async function runPipeline(input: PipelineInput): Promise<PipelineResult> {
  const { env, runDir } = input;
  const config = checkConfig(input.config);
  const log = env.log ?? (() => {});
  mkdirSync(runDir, { recursive: true });
  const state = new RunState(runDir, fingerprintOf(input));
  const evalSamples = config.eval.maxSamples > 0 ? input.test.slice(0, config.eval.maxSamples) : input.test;

  let model: Model | null = null;
  let modelDir: string | null = null;
  // the model loaded for the warm-up may differ from the same directory loaded for other phases
  // (env.warmupWhole: trained whole, no adapter), so the use is part of the key
  let modelUse: 'warmup' | undefined;
  const ensureModel = async (dir: string, use?: 'warmup'): Promise<Model> => {
    if (model && modelDir === dir && modelUse === use) return model;
    if (model) model.dispose();
    model = null;
    model = use ? await env.loadModel(dir, use) : await env.loadModel(dir);
    modelDir = dir;
    modelUse = use;
    return model;
  };

  async function phase<T>(name: string, run: () => Promise<{ result: T; model?: string }>): Promise<T> {
    const rec = state.done(name);
    if (rec) {
      log(`${name}: done earlier (${rec.seconds.toFixed(1)} s), skipped`);
      return rec.result as T;
    }
    log(`${name}: start`);
    const t0 = performance.now();
    const out = await run();
    const sec = (performance.now() - t0) / 1000;
    state.finish(name, sec, out.result, out.model);
    // a finished phase is never resumed: its trainer checkpoints (weights and optimizer moments) go
    const ck = name === 'warmup' ? join(runDir, 'warmup') : name === 'baseline/train' ? join(runDir, 'baseline') : /^iteration-\d+\/optimize$/.test(name) ? join(runDir, name) : null;
    if (ck && existsSync(join(ck, 'checkpoints'))) rmSync(join(ck, 'checkpoints'), { recursive: true, force: true });
    log(`${name}: finished in ${sec.toFixed(1)} s`);
    input.onPhase?.(name);
    return out.result;
  }

  const evalPhase = (name: string, dir: string, label: string) =>
    phase<EvalSummary>(name, async () => {
      const m = await ensureModel(dir);
      const r: EvalResult = await evaluateModel(m, env, evalSamples, { maxTokens: config.eval.maxTokens, batchSize: config.eval.batchSize, label });
      const out = join(runDir, name);
      writeAtomic(join(out, 'eval.json'), JSON.stringify({ categories: r.categories, tokens: r.tokens, seconds: r.seconds }, null, 2) + '\n');
      writeAtomic(join(out, 'predictions.jsonl'), r.predictions.map((p) => JSON.stringify(p)).join('\n') + '\n');
      return { result: { categories: r.categories, tokens: r.tokens } };
    });

  const curves: ReportCurve[] = [];
  const curve = (phaseName: string, pts: TrainPoint[]) => curves.push({ phase: phaseName, points: pts.map((p) => ({ step: p.step, loss: p.loss })) });

  // warm-up SFT with the curriculum
  let chainDir = input.modelDir;
  let warmupEval: EvalSummary | null = null;
  if (config.warmup) {
    const w = await phase<TrainSummary>('warmup', async () => {
      const m = await ensureModel(input.modelDir, 'warmup');
      const dir = join(runDir, 'warmup');
      const r = await env.trainer.sft(m, input.train, { ...config.sft, outDir: dir, resume: true, phase: 'warmup', seed: config.seed });
      const md = join(dir, 'model');
      await env.saveModel(m, md);
      modelDir = md;
      // a warm-up trained whole under a LoRA run: the later phases load md again, with an adapter
      modelUse = env.warmupWhole ? 'warmup' : undefined;
      return { result: { ...r, model: md }, model: md };
    });
    chainDir = w.model;
    curve('warm-up SFT', w.points);
  }
  const warmDir = chainDir;
  warmupEval = await evalPhase('eval-0', chainDir, 'evaluate warm-up');

  const evaluations: ReportEvaluation[] = [{ label: config.warmup ? 'warm-up' : 'start', series: 'warmup', categories: warmupEval.categories }];
  const iterations: IterationRow[] = [];
  const reportIterations: ReportIteration[] = [];
  let tree: ReportTree | null = null;
  let itoolSteps = 0;
  let itoolTokens = 0;
  let lastEval = warmupEval;

  for (let it = 1; it <= config.iterations; it++) {
    const dir = join(runDir, `iteration-${it}`);
    const t0 = performance.now();
    const sel = await phase<SelectResult>(`iteration-${it}/select`, async () => {
      const m = await ensureModel(chainDir);
      const ppl = config.perplexityScope ? await env.trainer.perplexity(m, input.train, { scope: config.perplexityScope }) : await env.trainer.perplexity(m, input.train);
      const idx = selectHardest(input.train, ppl, config.selectRatio, config.maxSelected, config.selectStrata);
      const rows = idx.map((i) => ({ id: input.train[i].id, category: input.train[i].category, perplexity: ppl[i] }));
      writeAtomic(join(dir, 'selected.json'), JSON.stringify(rows, null, 1) + '\n');
      writeAtomic(join(dir, 'perplexity.json'), JSON.stringify(input.train.map((s, i) => ({ id: s.id, perplexity: ppl[i] }))) + '\n');
      return { result: { ids: rows.map((r) => r.id) } };
    });
    const search = await phase<SearchSummary>(`iteration-${it}/search`, async () => {
      const m = await ensureModel(chainDir);
      const byId = new Map(input.train.map((s) => [s.id, s]));
      const selected = sel.ids.map((id) => byId.get(id)!).filter(Boolean);
      const tasks: SearchTask[] = selected.map((s) => {
        const p = env.text.prompt(s);
        const task: SearchTask = { sampleId: s.id, prompt: p.text, promptIds: p.ids, reward: (answer: string, partial: boolean) => env.reward(answer, s, partial) };
        if (config.search.initialValue === 'heuristic') {
          if (!env.text.answerText) throw new Error("search.initialValue 'heuristic' needs the ground-truth answer text, which this environment does not give");
          task.truth = env.text.answerText(s);
        }
        return task;
      });
      const sc = config.search;
      let judge: Judge | undefined;
      if (sc.judgeWeight > 0 && sc.judge === 'grades') {
        const gp = env.text.gradesPrompt;
        const ids = env.text.gradeIds;
        if (!gp || !ids) throw new Error("search.judge 'grades' needs the grades prompt and one token for each of the letters A, B, C, D, which this tokenizer does not give");
        const byTask = new Map(tasks.map((t, k) => [t, selected[k]]));
        judge = makeSelfJudge(m, (t, answer) => gp(byTask.get(t)!, answer), (lp) => gradesValue(lp, ids), sc.batchSize);
      } else if (sc.judgeWeight > 0) {
        const jp = env.text.judgePrompt;
        const grades = env.text.judgeGrades;
        if (!jp || !grades) throw new Error('search.judgeWeight > 0 needs a self-judgement prompt and grade tokens, which this tokenizer does not give');
        const byTask = new Map(tasks.map((t, k) => [t, selected[k]]));
        judge = makeSelfJudge(m, (t, answer) => jp(byTask.get(t)!, answer), grades, sc.batchSize);
      }
      // the bar counts searched samples: every simulation advances all of them together
      const bar = env.progress?.(`iteration ${it} search (${tasks.length} samples x ${sc.simulations} simulations)`, tasks.length * sc.simulations);
      let res;
      try {
        let repetitionPenalty = sc.repetitionPenalty ?? 1;
        if (repetitionPenalty !== 1 && (m as { supportsRepetitionPenalty?: boolean }).supportsRepetitionPenalty !== true) {
          log(`iteration ${it}: search.repetitionPenalty ${repetitionPenalty} asked, but the engine's sampler has no repetition penalty yet: sampling without it`);
          repetitionPenalty = 1;
        }
        res = await searchTrees(m, tasks, {
          ...sc,
          repetitionPenalty,
          stepPattern: sc.stepPattern ? new RegExp(sc.stepPattern, 'g') : DEFAULT_STEP_PATTERN,
          endTokens: env.text.endTokens,
          decode: (ids) => env.text.decode(ids),
          seed: config.seed * 1000 + it,
          judge,
          onProgress: (d) => bar?.update(d * tasks.length),
        });
      } finally {
        bar?.stop();
      }
      let pairs: StepPair[] = dedupePairs(res.results.flatMap((r) => r.pairs));
      if (config.maxPairs && pairs.length > config.maxPairs) {
        // a seeded random subset, in the search's order (the authors shuffle and the trainer takes the first max_samples)
        const keep = new Set(shuffled(pairs.map((_, i) => i), config.seed * 7 + it).slice(0, config.maxPairs));
        log(`iteration ${it}: ${pairs.length} pairs, ${config.maxPairs} kept (maxPairs)`);
        pairs = pairs.filter((_, i) => keep.has(i));
      }
      if (config.balanceDecisionPairs) {
        const isProse = (t: string) => t.trim() !== '' && parseCalls(t).format === 'none';
        const before = pairs.length;
        pairs = balanceDecisionPairs(pairs, isProse);
        if (pairs.length < before) log(`iteration ${it}: ${before - pairs.length} decision pairs rejecting the no-call answer dropped (balance)`);
      }
      writeAtomic(join(dir, 'pairs.jsonl'), pairsToJsonl(pairs));
      const trees = res.results.map((r) => ({ sampleId: r.sampleId, root: treeToJson(r.root), pairs: r.pairs.map((p) => ({ nodeId: p.nodeId, chosenNode: p.chosenNode, rejectedNode: p.rejectedNode })) }));
      writeAtomic(join(dir, 'trees.jsonl'), trees.map((t) => JSON.stringify(t)).join('\n') + '\n');
      // the tree with the most pairs (then the most nodes) goes into the report
      const count = (t: TreeJson): number => 1 + t.children.reduce((a, c) => a + count(c), 0);
      let best: (typeof trees)[number] | null = null;
      for (const t of trees) if (!best || t.pairs.length > best.pairs.length || (t.pairs.length === best.pairs.length && count(t.root) > count(best.root))) best = t;
      const summary: SearchSummary = {
        selected: tasks.length,
        pairs: pairs.length,
        nodes: res.stats.nodes,
        chosenValues: pairs.map((p) => p.chosenValue),
        rejectedValues: pairs.map((p) => p.rejectedValue),
        tokens: res.stats.generatedTokens,
        meanBatch: res.stats.meanBatch,
        tree: best ? { ...best, prompt: tasks.find((t) => t.sampleId === best!.sampleId)?.prompt } : null,
      };
      writeAtomic(join(dir, 'search.json'), JSON.stringify({ ...summary, tree: undefined }, null, 1) + '\n');
      log(`iteration ${it}: ${tasks.length} trees, ${res.stats.nodes} nodes, ${pairs.length} pairs, ${res.stats.generatedTokens} tokens generated (mean batch ${res.stats.meanBatch.toFixed(1)})`);
      return { result: summary };
    });
    if (search.tree) tree = search.tree;
    const opt = await phase<TrainSummary>(`iteration-${it}/optimize`, async () => {
      const m = await ensureModel(chainDir);
      const pairs = parsePairsJsonl(readFileSync(join(dir, 'pairs.jsonl'), 'utf8'), join(dir, 'pairs.jsonl'));
      let r: PhaseTrainResult = { steps: 0, tokens: 0, points: [] };
      if (pairs.length > 0) r = await env.trainer.prefer(m, pairs, { ...config.preference, outDir: join(dir, 'optimize'), resume: true, phase: `iteration-${it}`, seed: config.seed + it });
      else {
        // nothing changed: the iteration's model is the one it started from (no copy)
        log(`iteration ${it}: no pairs, the policy is left unchanged`);
        return { result: { ...r, model: chainDir }, model: chainDir };
      }
      const md = join(dir, 'model');
      await env.saveModel(m, md);
      modelDir = md;
      return { result: { ...r, model: md }, model: md };
    });
    chainDir = opt.model;
    itoolSteps += opt.steps;
    itoolTokens += opt.tokens;
    curve(`iteration ${it} ${config.preference.loss ?? 'simpo'}`, opt.points);
    lastEval = await evalPhase(`iteration-${it}/evaluate`, chainDir, `evaluate iteration ${it}`);
    evaluations.push({ label: `iTool it ${it}`, series: 'itool', categories: lastEval.categories });
    const recs = [`iteration-${it}/select`, `iteration-${it}/search`, `iteration-${it}/optimize`, `iteration-${it}/evaluate`].map((n) => state.done(n)?.seconds ?? 0);
    const row: IterationRow = {
      iteration: it,
      selected: search.selected,
      nodes: search.nodes,
      pairs: search.pairs,
      steps: opt.steps,
      tokens: opt.tokens,
      categories: lastEval.categories,
      seconds: recs.reduce((a, b) => a + b, 0) || (performance.now() - t0) / 1000,
    };
    iterations.push(row);
    reportIterations.push({ iteration: it, selected: search.selected, nodes: search.nodes, pairs: search.pairs, chosenValues: search.chosenValues, rejectedValues: search.rejectedValues, seconds: row.seconds });
  }

  let baseline: PipelineResult['baseline'] = null;
  if (config.baseline) {
    const b = await phase<TrainSummary>('baseline/train', async () => {
      const m = await ensureModel(warmDir);
      const dir = join(runDir, 'baseline');
      let r: PhaseTrainResult = { steps: 0, tokens: 0, points: [] };
      if (itoolSteps > 0) {
        // the same optimizer steps and (about) the same tokens as the preference phases
        const perStep = Math.max(64, Math.ceil(itoolTokens / itoolSteps));
        r = await env.trainer.sft(m, input.train, {
          ...config.sft,
          ...config.baselineSft,
          curriculum: false,
          batchTokens: perStep,
          maxSteps: itoolSteps,
          // enough passes for maxSteps steps (a sample has at least 16 tokens)
          epochs: Math.max(1, Math.ceil((itoolSteps * perStep) / (input.train.length * 16)) + 1),
          outDir: dir,
          resume: true,
          phase: 'baseline',
          seed: config.seed + 777,
        });
      }
      const md = join(dir, 'model');
      await env.saveModel(m, md);
      modelDir = md;
      return { result: { ...r, model: md } };
    });
    curve('SFT baseline', b.points);
    const be = await evalPhase('baseline/evaluate', b.model, 'evaluate baseline');
    evaluations.push({ label: 'SFT baseline', series: 'baseline', categories: be.categories });
    baseline = { categories: be.categories, steps: b.steps, tokens: b.tokens };
  }
  if (model) (model as Model).dispose();
  model = null;

  return {
    runDir,
    warmup: warmupEval ? { categories: warmupEval.categories } : null,
    itool: { categories: lastEval.categories, iterations },
    baseline,
    curves,
    evaluations,
    reportIterations,
    tree,
    itoolSteps,
    itoolTokens,
  };
}

/** the run's result if state.json says every phase finished (for `itool report`-like readers) */
export function runFinished(runDir: string): boolean {
  return existsSync(join(runDir, 'state.json'));
}
