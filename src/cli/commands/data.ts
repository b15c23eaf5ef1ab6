// itool data: make and convert tool-use data sets.
//   synth    the seeded synthetic generator → ShareGPT/ToolACE JSONL (or another format)
//   convert  any supported format → another
//   stats    samples per bucket
import type { Command } from 'commander';
import type { DataFormat } from '../../data/formats.js';
import { loadSamples, saveSamples } from '../../data/formats.js';
import { byBucket } from '../../data/buckets.js';
import { splitAnswers } from '../../data/answers.js';
import { synthesize, synthTools, synthDomains, type Split } from '../../data/synth.js';
import { fail, parseFloatOption, parseIntOption } from '../util.js';

const FORMATS: DataFormat[] = ['sharegpt', 'openai', 'xlam', 'bfcl', 'sample'];

function format(v: string): DataFormat {
  if (!(FORMATS as string[]).includes(v)) throw new Error(`unknown format '${v}' (one of ${FORMATS.join(', ')})`);
  return v as DataFormat;
}

export function register(program: Command): void {
  const data = program.command('data').description('make and convert tool-use data sets');

  data
    .command('synth')
    .description(`write seeded synthetic tool-use samples (${synthTools().length} tools over ${synthDomains().length} domains, every bucket)`)
    .requiredOption('--out <file>', 'output file (.jsonl: one row a line; .json: one array)')
    .option('--n <n>', 'number of samples', parseIntOption('--n'), 1000)
    .option('--seed <n>', 'random seed', parseIntOption('--seed'), 1)
    .option('--split <split>', "'train' or 'test' (held-out phrasings and values)", 'train')
    .option('--tools <n>', 'use only n tools of the catalog, round-robin over the domains', parseIntOption('--tools'))
    .option('--made-up <p>', 'probability that a name, place, code, path, date or time is made up (default 0.6)', parseFloatOption('--made-up'))
    .option('--format <format>', `output format (${FORMATS.join(', ')})`, 'sharegpt')
    .action((opts: { out: string; n: number; seed: number; split: string; format: string; tools?: number; madeUp?: number }) => {
      try {
        if (opts.n < 0) throw new Error('--n must be >= 0');
        if (opts.split !== 'train' && opts.split !== 'test') throw new Error(`--split must be 'train' or 'test', got '${opts.split}'`);
        const samples = synthesize({ n: opts.n, seed: opts.seed, split: opts.split as Split, ...(opts.tools !== undefined ? { tools: opts.tools } : {}), ...(opts.madeUp !== undefined ? { madeUp: opts.madeUp } : {}) });
        saveSamples(opts.out, samples, format(opts.format));
        const counts = [...byBucket(samples)].map(([k, v]) => `${k} ${v.length}`).join(', ');
        process.stderr.write(`wrote ${samples.length} samples to ${opts.out} (${counts})\n`);
      } catch (e) {
        fail('data synth', e);
      }
    });

  data
    .command('convert')
    .description('convert tool-use data between formats (input format detected per row)')
    .requiredOption('--in <path>', 'input file (JSON/JSONL) or BFCL folder')
    .requiredOption('--out <file>', 'output file')
    .requiredOption('--to <format>', `output format (${FORMATS.join(', ')})`)
    .option('--from <format>', 'input format (default: detected)')
    .action((opts: { in: string; out: string; to: string; from?: string }) => {
      try {
        const samples = loadSamples(opts.in, opts.from ? format(opts.from) : undefined);
        saveSamples(opts.out, samples, format(opts.to));
        process.stderr.write(`wrote ${samples.length} samples to ${opts.out}\n`);
      } catch (e) {
        fail('data convert', e);
      }
    });

  data
    .command('stats')
    .description('count samples, and their answers per bucket (every assistant turn is one answer)')
    .argument('<paths...>', 'data files or BFCL folders')
    .option('--json', 'print JSON')
    .action((paths: string[], opts: { json?: boolean }) => {
      try {
        const samples = paths.flatMap((p) => loadSamples(p));
        const answers = splitAnswers(samples);
        const counts: Record<string, number> = {};
        for (const [k, v] of byBucket(answers)) counts[k] = v.length;
        if (opts.json) process.stdout.write(JSON.stringify({ samples: samples.length, answers: answers.length, buckets: counts }, null, 2) + '\n');
        else process.stdout.write(`${samples.length} samples, ${answers.length} answers\n` + Object.entries(counts).map(([k, v]) => `  ${k.padEnd(18)} ${v}`).join('\n') + '\n');
      } catch (e) {
        fail('data stats', e);
      }
    });
}
