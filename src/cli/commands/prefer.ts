// itool prefer: preference optimisation on step pairs alone (SimPO, DPO, IPO, ORPO).
import type { Command } from 'commander';
import { InterruptedError, runPreferCli } from '../../train/cli.js';
import { memoryOptions } from '../../train/plan-cli.js';
import { cliFlags, fail, parseFloatOption, parseIntOption, trainingOptions } from '../util.js';

export function register(program: Command): void {
  const command = program
    .command('prefer')
    .description('preference optimisation on pairs alone: SimPO (default), DPO, IPO or ORPO, resumable')
    .requiredOption('--model <dir>', 'Hugging Face model directory (the policy; for DPO/IPO also the reference)')
    .option('--pairs <file>', 'pairs JSONL: promptIds/prefixIds/chosenIds/rejectedIds, or prompt/prefix/chosen/rejected text')
    .requiredOption('--out <dir>', 'output directory: metrics.jsonl, checkpoints/, model/ (or adapter/), result.json')
    .option('--loss <kind>', 'simpo | dpo | ipo | orpo (default simpo)')
    .option('--config <file>', 'JSON file of options (camelCase keys); flags override it')
    .option('--max-steps <n>', 'stop after N optimizer steps (0: no limit)', parseIntOption('--max-steps'))
    .option('--seed <n>', 'seed of the pair order (default 42)', parseIntOption('--seed'))
    .option('--resume', 'continue from the latest checkpoint in --out')
    .option('--beta <x>', 'beta (default 2.5 for SimPO, 0.1 otherwise)', parseFloatOption('--beta'))
    .option('--gamma <x>', 'SimPO target margin (default 0.5)', parseFloatOption('--gamma'))
    .option('--label-smoothing <x>', 'DPO label smoothing (default 0)', parseFloatOption('--label-smoothing'))
    .option('--lambda <x>', 'ORPO odds-ratio weight (default 0.1)', parseFloatOption('--lambda'))
    .option('--lr <x>', 'peak learning rate (default 1e-6)', parseFloatOption('--lr'))
    .option('--epochs <n>', 'passes over the pairs (default 2)', parseIntOption('--epochs'))
    .option('--schedule <kind>', 'cosine | linear | constant (default cosine)')
    .option('--warmup-ratio <x>', 'fraction of steps warming up (default 0.1)', parseFloatOption('--warmup-ratio'))
    .option('--batch-pairs <n>', 'pairs per micro-batch group (default 16)', parseIntOption('--batch-pairs'))
    .option('--batch-tokens <n>', 'token budget of a micro-batch (default 4096)', parseIntOption('--batch-tokens'))
    .option('--grad-accum <n>', 'multiplies the pairs per optimizer step (default 1)', parseIntOption('--grad-accum'))
    .option('--max-grad-norm <x>', 'gradient clipping norm, 0 off (default 1)', parseFloatOption('--max-grad-norm'))
    .option('--weight-decay <x>', 'AdamW weight decay (default 0)', parseFloatOption('--weight-decay'));
  memoryOptions(trainingOptions(command))
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      try {
        const flags = cliFlags(o, cmd);
        const line = await runPreferCli({ ...flags, model: o.model as string, out: o.out as string } as Parameters<typeof runPreferCli>[0]);
        process.stdout.write(line + '\n');
      } catch (e) {
        fail('prefer', e, e instanceof InterruptedError ? e.exitCode : 1);
      }
    });
}
