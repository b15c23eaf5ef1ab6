// itool eval: score tool-call answers with the BFCL AST rules.
//   --predictions FILE   BFCL result JSONL lines {"id", "result"} (no model needed)
//   --model DIR          generate the answers greedily with the engine first
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import type { Sample } from '../../data/sample.js';
import { loadSamples } from '../../data/formats.js';
import { splitAnswers } from '../../data/answers.js';
import { writeJsonl } from '../../data/io.js';
import { formatReport, scorePredictions, type ScoreRun } from '../../toolcall/score.js';
import { checkerCategory, isIrrelevance } from '../../toolcall/checker.js';
import { modelFilesDir } from '../../engine/adapter.js';
import { inferenceMemoryOptions, planInference } from '../../train/plan-cli.js';
import { adapterOption, fail, openModel, parseIntOption } from '../util.js';

interface EvalOptions {
  predictions?: string;
  model?: string;
  data?: string[];
  json?: boolean;
  explain?: boolean;
  details?: string;
  limit?: number;
  perCategory?: number;
  maxTokens?: number;
  batch?: number;
  out?: string;
  adapter?: string;
  device?: string;
  maxMemory?: string;
  weightsDtype?: string;
}

/** Reads BFCL result lines {"id", "result"}; errors name the file and line. */
export function readPredictions(file: string): Map<string, unknown> {
  if (!existsSync(file)) throw new Error(`${file}: no such predictions file`);
  const lines = readFileSync(file, 'utf8').split('\n');
  const out = new Map<string, unknown>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch (e) {
      throw new Error(`${file}:${i + 1}: not valid JSON: ${(e as Error).message}`);
    }
    const r = row as { id?: unknown; result?: unknown };
    if (typeof r.id !== 'string' && typeof r.id !== 'number') throw new Error(`${file}:${i + 1}: each line needs an 'id'`);
    if (!('result' in (row as object))) throw new Error(`${file}:${i + 1}: each line needs a 'result'`);
    out.set(String(r.id), r.result);
  }
  return out;
}

/** The answers (data/answers.ts) of every sample of the data files: what is scored. */
function loadData(paths: string[]): Sample[] {
  const out: Sample[] = [];
  for (const p of paths) out.push(...splitAnswers(loadSamples(p)));
  if (out.length === 0) throw new Error('--data holds no samples');
  const seen = new Set<string>();
  for (const s of out) {
    if (seen.has(s.id)) throw new Error(`--data: sample id '${s.id}' appears twice`);
    seen.add(s.id);
  }
  return out;
}

/**
 * At most n samples, spread over the categories: round-robin over them in order of first
 * appearance, each category's samples in file order (the first n of a BFCL folder would all be
 * one category).
 */
export function stratifiedLimit<S extends Sample>(samples: readonly S[], n: number): S[] {
  const by = new Map<string, S[]>();
  for (const s of samples) {
    const c = checkerCategory(s);
    if (!by.has(c)) by.set(c, []);
    by.get(c)!.push(s);
  }
  const lists = [...by.values()];
  const keep = new Set<S>();
  for (let i = 0; keep.size < Math.min(n, samples.length); i++) for (const l of lists) if (i < l.length && keep.size < n) keep.add(l[i]!);
  return samples.filter((s) => keep.has(s));
}

/** The first n samples of every category, in file order. */
export function perCategory<S extends Sample>(samples: readonly S[], n: number): S[] {
  const count = new Map<string, number>();
  return samples.filter((s) => {
    const c = checkerCategory(s);
    const k = count.get(c) ?? 0;
    count.set(c, k + 1);
    return k < n;
  });
}

let pipeGuard = false;
/** `itool eval ... | head` closes stdout early: end quietly instead of an EPIPE stack trace. */
function guardPipe(): void {
  if (pipeGuard) return;
  pipeGuard = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

function report(run: ScoreRun, opts: EvalOptions, samples: readonly Sample[]): void {
  guardPipe();
  const missing = run.scores.filter((s) => s.error_type === 'missing_prediction');
  if (missing.length)
    process.stderr.write(
      `itool eval: warning: ${missing.length} of ${run.scores.length} scored samples have no prediction and count as wrong (first: ${missing
        .slice(0, 3)
        .map((s) => s.id)
        .join(', ')})\n`,
    );
  const scoredCats = new Set(run.scores.map((s) => s.category));
  const left = [...new Set(samples.map((s) => checkerCategory(s)))].filter((c) => !scoredCats.has(c));
  if (left.length) process.stderr.write(`itool eval: ${left.length} categor${left.length === 1 ? 'y' : 'ies'} with no prediction at all left out: ${left.join(', ')}\n`);
  if (run.unknownIds.length)
    process.stderr.write(`itool eval: ${run.unknownIds.length} prediction id(s) match no sample (first: ${run.unknownIds.slice(0, 3).join(', ')})\n`);
  if (opts.details)
    writeJsonl(
      opts.details,
      run.scores.map((s) => ({ id: s.id, category: s.category, valid: s.valid, error_type: s.error_type ?? null })),
    );
  if (opts.explain) {
    const lines: string[] = [];
    for (const s of run.scores) if (!s.valid) lines.push(`${s.id} [${s.category}] ${s.error_type}: ${(s.errors ?? []).join(' | ')}`);
    process.stdout.write(lines.length ? lines.join('\n') + '\n\n' : 'no failures\n\n');
  }
  if (opts.json) process.stdout.write(JSON.stringify(run.report, null, 2) + '\n');
  else process.stdout.write(formatReport(run.report));
}

/**
 * Generates answers with the engine (greedy) for every sample; returns id → text. The prompts are
 * rendered first, so that the memory plan (the weights' dtype, --max-memory) knows the longest
 * before the weights are loaded.
 */
async function generateAnswers(dir: string, samples: readonly Sample[], opts: EvalOptions): Promise<Map<string, string>> {
  const { loadTokenizer, renderPrompt } = await import('../../text/index.js');
  const cliProgress = (await import('cli-progress')).default;
  const tok = loadTokenizer(modelFilesDir(dir));
  const prompts = samples.map((s) => renderPrompt(tok, s.messages, s.tools).ids);
  const batch = Math.max(1, opts.batch ?? 8);
  const maxTokens = opts.maxTokens ?? 256;
  const plan = planInference(
    opts,
    { what: 'itool eval', modelDir: dir, ...(opts.adapter !== undefined ? { adapter: opts.adapter } : {}), device: opts.device, generate: { sequences: Math.min(batch, samples.length), promptTokens: Math.max(1, ...prompts.map((p) => p.length)), newTokens: maxTokens }, dataFiles: opts.data ?? [] },
    (l) => process.stderr.write(l + '\n'),
  );
  const { model } = await openModel({ model: dir, adapter: opts.adapter, device: opts.device, plan });
  const out = new Map<string, string>();
  const bar = process.stderr.isTTY ? new cliProgress.SingleBar({ format: 'generating {bar} {value}/{total} samples', hideCursor: true }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(samples.length, 0);
  try {
    for (let i = 0; i < samples.length; i += batch) {
      const group = samples.slice(i, i + batch);
      const caches = await Promise.all(group.map((_, j) => model.cache(prompts[i + j]!)));
      try {
        const gens = await model.generate(caches, { maxTokens, temperature: 0, stopTokens: tok.turnEndIds });
        gens.forEach((g, j) => {
          const ids = g.tokens.filter((t) => !tok.turnEndIds.includes(t));
          out.set(group[j]!.id, tok.decode(ids));
        });
      } finally {
        for (const c of caches) c.dispose();
      }
      bar?.update(Math.min(samples.length, i + batch));
      if (!bar) process.stderr.write(`generated ${Math.min(samples.length, i + batch)}/${samples.length}\n`);
    }
  } finally {
    bar?.stop();
    model.dispose();
  }
  return out;
}

export function register(program: Command): void {
  inferenceMemoryOptions(adapterOption(program
    .command('eval')
    .description('score tool-call predictions (BFCL result JSONL) or a model with the BFCL AST rules')
    .option('--predictions <file>', 'BFCL result JSONL: one {"id", "result"} a line')
    .option('--model <dir>', 'generate the answers greedily with this model directory first')
    .option('--data <paths...>', 'BFCL folder (question files + possible_answer/) or data files in any supported format')
    .option('--json', 'print {categories, summary} as JSON instead of the table')
    .option('--explain', 'list every failure with the rule that failed it')
    .option('--details <file>', 'write one JSON line per sample: {"id", "category", "valid", "error_type"}')
    .option('--limit <n>', 'score at most n samples, spread over the categories (round-robin, file order within each)', parseIntOption('--limit'))
    .option('--per-category <n>', 'score the first n samples of every category', parseIntOption('--per-category'))
    .option('--max-tokens <n>', 'longest generated answer (with --model; default 256)', parseIntOption('--max-tokens'))
    .option('--batch <n>', 'samples generated together (with --model; default 8)', parseIntOption('--batch'))
    .option('--out <file>', 'with --model: also write the generated answers as BFCL result JSONL')
    .option('--device <device>', "with --model: 'auto', 'cpu', 'cuda' or 'cuda:N'", 'auto')))
    .action(async (opts: EvalOptions) => {
      try {
        if (!opts.data || opts.data.length === 0) throw new Error('--data is required (a BFCL folder or data files)');
        if (!!opts.predictions === !!opts.model) throw new Error('give exactly one of --predictions FILE or --model DIR');
        if (opts.adapter !== undefined && !opts.model) throw new Error('--adapter needs --model (the answers are generated by the model with the adapter)');
        if ((opts.maxMemory !== undefined || opts.weightsDtype !== undefined) && !opts.model) throw new Error('--max-memory and --weights-dtype need --model (they size the model that generates the answers)');
        // the memory flags are checked before the data are read (an error names the flag)
        if (opts.model) planInference(opts, { what: 'itool eval', modelDir: opts.model, device: opts.device }, () => {});
        let samples = loadData(opts.data);
        if (opts.limit !== undefined && opts.limit < 1) throw new Error(`--limit must be >= 1, got ${opts.limit}`);
        if (opts.perCategory !== undefined && opts.perCategory < 1) throw new Error(`--per-category must be >= 1, got ${opts.perCategory}`);
        if (opts.perCategory !== undefined) samples = perCategory(samples, opts.perCategory);
        if (opts.limit !== undefined) samples = stratifiedLimit(samples, opts.limit);
        let predictions: Map<string, unknown>;
        if (opts.predictions) predictions = readPredictions(opts.predictions);
        else {
          if (!existsSync(opts.model!)) throw new Error(`--model ${opts.model}: no such directory`);
          const answers = await generateAnswers(opts.model!, samples, opts);
          predictions = answers;
          if (opts.out) writeJsonl(opts.out, [...answers].map(([id, result]) => ({ id, result })));
        }
        for (const s of samples) {
          const hasAnswer = s.groundTruth !== undefined || s.messages.some((m) => m.role === 'assistant');
          if (!hasAnswer && !isIrrelevance(checkerCategory(s)))
            throw new Error(`sample '${s.id}' (${checkerCategory(s)}) has no ground truth: is its possible_answer/ file beside the question file?`);
        }
        report(scorePredictions(samples, predictions), opts, samples);
      } catch (e) {
        fail('eval', e);
      }
    });
}
