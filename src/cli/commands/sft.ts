// itool sft: supervised fine-tuning alone (loss on assistant tokens, easy-to-hard curriculum).
import type { Command } from 'commander';
import { InterruptedError, runSftCli } from '../../train/cli.js';
import { memoryOptions } from '../../train/plan-cli.js';
import { cliFlags, fail, parseFloatOption, parseIntOption, trainingOptions } from '../util.js';

export function register(program: Command): void {
  const command = program
    .command('sft')
    .description('supervised fine-tuning alone: loss on assistant tokens, packed batches, easy-to-hard curriculum, resumable')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json)')
    .option('--data <files...>', 'training data: ShareGPT/ToolACE, xLAM, OpenAI chat or BFCL files (JSON/JSONL)')
    .requiredOption('--out <dir>', 'output directory: metrics.jsonl, checkpoints/, model/ (or adapter/), result.json')
    .option('--config <file>', 'JSON file of options (camelCase keys, e.g. {"lr": 2e-5, "epochs": 2}); flags override it')
    .option('--max-steps <n>', 'stop after N optimizer steps (0: no limit)', parseIntOption('--max-steps'))
    .option('--seed <n>', 'seed of the data order and curriculum replay (default 42)', parseIntOption('--seed'))
    .option('--resume', 'continue from the latest checkpoint in --out')
    .option('--lr <x>', 'peak learning rate (default 1e-5)', parseFloatOption('--lr'))
    .option('--epochs <n>', 'passes over each curriculum stage (default 1)', parseIntOption('--epochs'))
    .option('--schedule <kind>', 'cosine | linear | constant (default cosine)')
    .option('--warmup-ratio <x>', 'fraction of steps warming up (default 0.1)', parseFloatOption('--warmup-ratio'))
    .option('--batch-tokens <n>', 'tokens per micro-batch, samples packed whole (default 4096)', parseIntOption('--batch-tokens'))
    .option('--grad-accum <n>', 'micro-batches per optimizer step (default 1)', parseIntOption('--grad-accum'))
    .option('--max-length <n>', 'truncate samples to N tokens (default 2048)', parseIntOption('--max-length'))
    .option('--max-grad-norm <x>', 'gradient clipping norm, 0 off (default 1)', parseFloatOption('--max-grad-norm'))
    .option('--weight-decay <x>', 'AdamW weight decay (default 0)', parseFloatOption('--weight-decay'))
    .option('--no-curriculum', 'train all buckets together instead of easy to hard')
    .option('--replay <x>', 'fraction of easier stages replayed in each later stage (default 0.2)', parseFloatOption('--replay'));
  memoryOptions(trainingOptions(command))
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      try {
        const flags = cliFlags(o, cmd);
        const line = await runSftCli({ ...flags, model: o.model as string, out: o.out as string } as Parameters<typeof runSftCli>[0]);
        process.stdout.write(line + '\n');
      } catch (e) {
        fail('sft', e, e instanceof InterruptedError ? e.exitCode : 1);
      }
    });
}
