// itool score: each token's log-probability given the tokens before it, and the perplexity.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { modelFilesDir } from '../../engine/adapter.js';
import { inferenceMemoryOptions, planInference } from '../../train/plan-cli.js';
import { adapterOption, fail, openModel } from '../util.js';

export interface ScoreOptions {
  model: string;
  text?: string;
  ids?: string;
  json?: boolean;
  device?: string;
  adapter?: string;
  /** memory budget (--max-memory) and frozen weights' dtype (--weights-dtype auto|f32|bf16) */
  maxMemory?: string;
  weightsDtype?: string;
}

export interface ScoreResult {
  ids: number[];
  /** logprobs[i]: log p(ids[i] | ids[..i]); null for the first token (nothing before it) */
  logprobs: Array<number | null>;
  perplexity: number;
  tokens?: string[];
  /** the base weights' storage dtype the model was loaded with */
  weightsDtype?: 'f32' | 'bf16';
}

export function parseIds(s: string): number[] {
  const parts = s.split(/[\s,]+/).filter((x) => x.length > 0);
  if (parts.length === 0) throw new Error('--ids must list token ids, e.g. --ids 1,2,3');
  return parts.map((p) => {
    const n = Number(p);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--ids: '${p}' is not a non-negative integer`);
    return n;
  });
}

export async function runScore(opts: ScoreOptions, log: (line: string) => void = () => {}): Promise<ScoreResult> {
  if ((opts.text === undefined) === (opts.ids === undefined)) throw new Error('give exactly one of --text TEXT or --ids 1,2,3');
  // the flags are checked before the tokenizer loads; the plan is made once the tokens are known
  planInference(opts, { what: 'itool score', modelDir: opts.model, device: opts.device }, () => {});
  let ids: number[];
  let tokens: string[] | undefined;
  let tok: { tokens(ids: number[]): string[] } | undefined;
  const filesDir = modelFilesDir(opts.model);
  if (opts.ids !== undefined) {
    ids = parseIds(opts.ids);
    if (existsSync(join(filesDir, 'tokenizer.json'))) {
      const { loadTokenizer } = await import('../../text/index.js');
      tok = loadTokenizer(filesDir);
    }
  } else {
    if (!existsSync(join(filesDir, 'tokenizer.json'))) throw new Error(`--text needs tokenizer files in ${filesDir} (no tokenizer.json); use --ids instead`);
    const { loadTokenizer } = await import('../../text/index.js');
    const t = loadTokenizer(filesDir);
    tok = t;
    ids = t.encode(opts.text!, { addSpecialTokens: true });
  }
  if (ids.length < 2) throw new Error(`need at least 2 tokens to score, got ${ids.length}`);
  const plan = planInference(opts, { what: 'itool score', modelDir: opts.model, ...(opts.adapter !== undefined ? { adapter: opts.adapter } : {}), device: opts.device, scoring: { tokens: ids.length } }, log);
  const { model } = await openModel({ ...opts, plan });
  try {
    const V = model.config.vocabSize;
    for (const id of ids) if (id >= V) throw new Error(`token id ${id} is outside the model's vocabulary [0, ${V})`);
    const targets = Int32Array.from(ids.slice(1).concat([-1]));
    const lp = await model.logprobs({ tokens: Int32Array.from(ids), targets, cuSeqlens: Int32Array.from([0, ids.length]) });
    const logprobs: Array<number | null> = [null];
    let sum = 0;
    for (let i = 0; i + 1 < ids.length; i++) {
      logprobs.push(lp[i]!);
      sum += lp[i]!;
    }
    if (tok) tokens = tok.tokens(ids);
    return { ids, logprobs, perplexity: Math.exp(-sum / (ids.length - 1)), ...(tokens ? { tokens } : {}), weightsDtype: model.weightDtype };
  } finally {
    model.dispose();
  }
}

export function formatScore(r: ScoreResult): string {
  const lines = ['   i       id  logprob  token'];
  r.ids.forEach((id, i) => {
    const lp = r.logprobs[i];
    const t = r.tokens ? JSON.stringify(r.tokens[i]) : '';
    lines.push(`${String(i).padStart(4)} ${String(id).padStart(8)} ${lp === null ? '       -' : lp!.toFixed(4).padStart(8)}  ${t}`);
  });
  lines.push(`perplexity ${r.perplexity.toFixed(4)} over ${r.ids.length - 1} predicted tokens`);
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  inferenceMemoryOptions(adapterOption(program
    .command('score')
    .description("print each token's log-probability given the tokens before it, and the perplexity")
    .requiredOption('--model <dir>', 'Hugging Face model directory')
    .option('--text <text>', 'text to score (needs tokenizer files; special tokens added as the tokenizer does)')
    .option('--ids <ids>', 'comma-separated token ids (works without tokenizer files)')
    .option('--device <device>', "'auto', 'cpu', 'cuda' or 'cuda:N'", 'auto')
    .option('--json', 'write {"ids", "logprobs", "perplexity"} (logprobs[0] is null)')))
    .action(async (opts: ScoreOptions) => {
      try {
        const r = await runScore(opts, (l) => process.stderr.write(l + '\n'));
        if (opts.json) process.stdout.write(JSON.stringify({ ids: r.ids, logprobs: r.logprobs, perplexity: r.perplexity }) + '\n');
        else process.stdout.write(formatScore(r));
      } catch (e) {
        fail('score', e);
      }
    });
}
