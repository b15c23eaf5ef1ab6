// itool tokenize: shows the ids, tokens and (for a chat) the loss mask a model is trained on.
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import type { Sample } from '../../data/sample.js';
import { fromOpenAI } from '../../data/formats.js';
import { loadTokenizer, render, type Tokenizer } from '../../text/index.js';
import { fail } from '../util.js';

export interface TokenizeOptions {
  model: string;
  text?: string;
  chat?: string;
  json?: boolean;
  templateKwargs?: string;
}

/**
 * Reads a chat file: OpenAI messages (assistant `tool_calls`, tools wrapped as
 * {"type": "function", "function": ...} or bare), as an object {messages, tools} or a bare array
 * of messages; read by the same loader as `--data` files, so a chat tokenizes as it trains.
 */
export function readChatFile(file: string): Sample {
  if (!existsSync(file)) throw new Error(`--chat: file not found: ${file}`);
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--chat: ${file} is not valid JSON: ${(e as Error).message}`);
  }
  const row = Array.isArray(v) ? { messages: v } : v;
  if (!row || typeof row !== 'object' || !Array.isArray((row as { messages?: unknown }).messages))
    throw new Error(`--chat: ${file} must hold an array of messages or an object with "messages" (and optional "tools")`);
  try {
    const s = fromOpenAI({ id: file, ...(row as object) }, file);
    return { ...s, category: 'chat' };
  } catch (e) {
    throw new Error(`--chat: ${file}: ${(e as Error).message}`);
  }
}

function parseKwargs(s: string | undefined): Record<string, unknown> | undefined {
  if (s === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(s);
  } catch (e) {
    throw new Error(`--template-kwargs must be a JSON object: ${(e as Error).message}`);
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('--template-kwargs must be a JSON object, e.g. \'{"enable_thinking": false}\'');
  return v as Record<string, unknown>;
}

/** The command's output text (tested directly). */
export function runTokenize(opts: TokenizeOptions, tok?: Tokenizer): string {
  if ((opts.text === undefined) === (opts.chat === undefined)) throw new Error('give exactly one of --text TEXT or --chat FILE.json');
  const t = tok ?? loadTokenizer(opts.model);
  let ids: number[];
  let mask: number[] | undefined;
  let promptLength: number | undefined;
  if (opts.text !== undefined) {
    ids = t.encode(opts.text); // plain text: no special tokens added
  } else {
    const r = render(t, readChatFile(opts.chat!), { kwargs: parseKwargs(opts.templateKwargs) });
    ids = r.ids;
    mask = r.mask;
    promptLength = r.promptLength;
  }
  const tokens = t.tokens(ids);
  if (opts.json) return JSON.stringify(mask ? { ids, tokens, mask } : { ids, tokens }) + '\n';
  const lines: string[] = [];
  const w = String(ids.length).length;
  for (let i = 0; i < ids.length; i++) {
    const piece = JSON.stringify(t.decode([ids[i]]));
    const m = mask ? `${mask[i]} ` : '';
    lines.push(`${String(i).padStart(w)} ${String(ids[i]).padStart(7)} ${m}${piece}`);
  }
  const trained = mask ? mask.reduce((a, b) => a + b, 0) : 0;
  lines.push(
    mask
      ? `${ids.length} tokens, ${trained} trained (mask 1), prompt ${promptLength} tokens`
      : `${ids.length} tokens`,
  );
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('tokenize')
    .description('show the tokens and loss mask a model is trained on')
    .requiredOption('--model <dir>', 'model directory with tokenizer.json (and tokenizer_config.json)')
    .option('--text <text>', 'plain text to encode (no special tokens are added)')
    .option('--chat <file>', 'JSON chat: an array of messages or {"messages", "tools"}; prints the loss mask too')
    .option('--template-kwargs <json>', 'extra chat-template variables, e.g. \'{"enable_thinking": false}\'')
    .option('--json', 'print {"ids", "tokens", "mask"} as JSON')
    .action((opts: TokenizeOptions) => {
      try {
        process.stdout.write(runTokenize(opts));
      } catch (e) {
        fail('tokenize', e);
      }
    });
}
