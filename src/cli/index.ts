// itool command line. Commands live one per file in ./commands; this file only wires them.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../engine/native.js';
import * as ablate from './commands/ablate.js';
import * as bench from './commands/bench.js';
import * as data from './commands/data.js';
import * as demo from './commands/demo.js';
import * as evalCmd from './commands/eval.js';
import * as exportCmd from './commands/export.js';
import * as generate from './commands/generate.js';
import * as infoCmd from './commands/info.js';
import * as merge from './commands/merge.js';
import * as plan from './commands/plan.js';
import * as prefer from './commands/prefer.js';
import * as score from './commands/score.js';
import * as sft from './commands/sft.js';
import * as tokenize from './commands/tokenize.js';
import * as train from './commands/train.js';

export function buildProgram(): Command {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string };
  const program = new Command();
  program
    .name('itool')
    .description('Fine-tune language models for tool use with the iTool method on a native C++/CUDA engine')
    .version(pkg.version, '-V, --version')
    .showHelpAfterError();
  for (const m of [demo, train, ablate, evalCmd, data, tokenize, generate, score, merge, sft, prefer, plan, exportCmd, bench, infoCmd]) m.register(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  program.exitOverride((err) => {
    // commander's own messages (unknown option, --help, --version) already printed
    process.exit(err.exitCode);
  });
  try {
    await program.parseAsync(argv);
  } catch (e) {
    process.stderr.write(`itool: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  }
}
