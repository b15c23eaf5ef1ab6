// itool generate: a completion from a model directory, with tokens/s.
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import type { ToolSchema } from '../../data/sample.js';
import { modelFilesDir } from '../../engine/adapter.js';
import { inferenceMemoryOptions, planInference } from '../../train/plan-cli.js';
import { adapterOption, fail, openModel, parseFloatOption, parseIntOption } from '../util.js';

export interface GenerateCliOptions {
  model: string;
  prompt: string;
  chat?: boolean;
  tools?: string;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  /** vLLM's repetition penalty on the prompt's and answer's tokens (1: off) */
  repetitionPenalty?: number;
  seed?: number;
  device?: string;
  adapter?: string;
  /** memory budget (--max-memory) and frozen weights' dtype (--weights-dtype auto|f32|bf16) */
  maxMemory?: string;
  weightsDtype?: string;
}

export interface GenerateCliResult {
  text: string;
  ids: number[];
  promptTokens: number;
  seconds: number;
  tokensPerSecond: number;
  finishReason: 'stop' | 'length';
  /** the base weights' storage dtype the model was loaded with */
  weightsDtype: 'f32' | 'bf16';
}

function readTools(file: string): ToolSchema[] {
  if (!existsSync(file)) throw new Error(`--tools: file not found: ${file}`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--tools: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const list = Array.isArray(v) ? v : (v as { tools?: unknown })?.tools;
  if (!Array.isArray(list)) throw new Error(`--tools: ${file} must hold an array of tool schemas (or {"tools": [...]})`);
  // accept OpenAI-style {"type": "function", "function": {...}} entries too
  return list.map((t, i) => {
    const s = (t && typeof t === 'object' && 'function' in t ? (t as { function: unknown }).function : t) as ToolSchema;
    if (!s || typeof s.name !== 'string') throw new Error(`--tools: entry ${i} has no "name"`);
    return { name: s.name, description: s.description, parameters: s.parameters ?? { type: 'object', properties: {} } };
  });
}

/** Sampling options in range (a clear error naming the option, before anything is loaded). */
export function checkSampling(o: Pick<GenerateCliOptions, 'maxTokens' | 'temperature' | 'topP' | 'topK' | 'repetitionPenalty'>): void {
  if (o.maxTokens !== undefined && !(Number.isInteger(o.maxTokens) && o.maxTokens >= 1)) throw new Error(`--max-tokens must be an integer >= 1, got ${o.maxTokens}`);
  if (o.temperature !== undefined && !(o.temperature >= 0)) throw new Error(`--temperature must be >= 0 (0: greedy), got ${o.temperature}`);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw new Error(`--top-p must be in (0, 1], got ${o.topP}`);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0)) throw new Error(`--top-k must be an integer >= 0 (0: off), got ${o.topK}`);
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0 && Number.isFinite(o.repetitionPenalty)))
    throw new Error(`--repetition-penalty must be a finite number > 0 (1: off), got ${o.repetitionPenalty}`);
}

export async function runGenerate(opts: GenerateCliOptions, log: (line: string) => void = () => {}): Promise<GenerateCliResult> {
  checkSampling(opts);
  // the flags are checked before the tokenizer loads; the plan is made once the prompt's length is known
  planInference(opts, { what: 'itool generate', modelDir: opts.model, device: opts.device }, () => {});
  const { loadTokenizer } = await import('../../text/index.js');
  const tok = loadTokenizer(modelFilesDir(opts.model));
  let ids: number[];
  if (opts.chat || opts.tools) {
    const tools = opts.tools ? readTools(opts.tools) : undefined;
    ids = tok.renderPrompt([{ role: 'user', content: opts.prompt }], tools).ids;
  } else {
    if (opts.tools) throw new Error('--tools needs --chat');
    ids = tok.encode(opts.prompt, { addSpecialTokens: true });
  }
  if (ids.length === 0) throw new Error('the prompt encodes to no tokens');
  const plan = planInference(opts, { what: 'itool generate', modelDir: opts.model, ...(opts.adapter !== undefined ? { adapter: opts.adapter } : {}), device: opts.device, generate: { sequences: 1, promptTokens: ids.length, newTokens: opts.maxTokens ?? 256 } }, log);
  const { model } = await openModel({ ...opts, plan });
  try {
    const stops = new Set<number>([...tok.turnEndIds, ...model.config.eosTokenId]);
    const t0 = performance.now();
    const cache = await model.cache(ids);
    const t1 = performance.now();
    const [g] = await model.generate([cache], {
      maxTokens: opts.maxTokens ?? 256,
      temperature: opts.temperature ?? 0.7,
      topP: opts.topP ?? 1,
      topK: opts.topK ?? 0,
      seed: opts.seed ?? 0,
      repetitionPenalty: opts.repetitionPenalty,
      stopTokens: [...stops],
    });
    const t2 = performance.now();
    cache.dispose();
    const out = g!.tokens.filter((t) => !stops.has(t));
    const seconds = (t2 - t1) / 1000;
    void t0;
    return {
      text: tok.decode(out, { skipSpecialTokens: false }),
      ids: g!.tokens,
      promptTokens: ids.length,
      seconds,
      tokensPerSecond: g!.tokens.length / Math.max(seconds, 1e-9),
      finishReason: g!.finishReason,
      weightsDtype: model.weightDtype,
    };
  } finally {
    model.dispose();
  }
}

export function register(program: Command): void {
  inferenceMemoryOptions(adapterOption(program
    .command('generate')
    .description('generate a completion from a model (prints tokens/s)')
    .requiredOption('--model <dir>', 'Hugging Face model directory (with tokenizer files)')
    .requiredOption('--prompt <text>', 'the prompt (the user turn with --chat)')
    .option('--chat', "render the prompt with the model's chat template")
    .option('--tools <file>', 'JSON file with tool schemas offered in the chat (implies --chat)')
    .option('--max-tokens <n>', 'most tokens to generate', parseIntOption('--max-tokens'), 256)
    .option('--temperature <t>', 'sampling temperature (0: greedy)', parseFloatOption('--temperature'), 0.7)
    .option('--top-p <p>', 'nucleus sampling', parseFloatOption('--top-p'), 1)
    .option('--top-k <k>', 'top-k sampling (0: off)', parseIntOption('--top-k'), 0)
    .option('--repetition-penalty <p>', "vLLM's repetition penalty on the prompt's and answer's tokens (1: off; < 1 favours repeats)", parseFloatOption('--repetition-penalty'), 1)
    .option('--seed <n>', 'RNG seed', parseIntOption('--seed'), 0)
    .option('--device <device>', "'auto', 'cpu', 'cuda' or 'cuda:N'", 'auto')))
    .action(async (opts: GenerateCliOptions) => {
      try {
        const r = await runGenerate(opts, (l) => process.stderr.write(l + '\n'));
        process.stdout.write(r.text + '\n');
        process.stderr.write(
          `[${r.ids.length} tokens (${r.finishReason}) after a ${r.promptTokens}-token prompt in ${r.seconds.toFixed(2)} s: ${r.tokensPerSecond.toFixed(1)} tokens/s]\n`,
        );
      } catch (e) {
        fail('generate', e);
      }
    });
}
