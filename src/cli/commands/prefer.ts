// itool prefer: preference optimisation on step pairs alone (SimPO, DPO, IPO, ORPO).
import type { Command } from 'commander';
import { runPreferCli } from '../../train/cli.js';
import { fail, parseFloatOption, parseIntOption } from '../util.js';

export function register(program: Command): void {
  program
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
    .option('--weight-decay <x>', 'AdamW weight decay (default 0)', parseFloatOption('--weight-decay'))
    .option('--save-every <n>', 'checkpoint every N steps, 0: only at the end (default 50)', parseIntOption('--save-every'))
    .option('--keep-last <n>', 'checkpoints kept (default 2)', parseIntOption('--keep-last'))
    .option('--lora-rank <n>', 'train a LoRA adapter of this rank instead of all weights', parseIntOption('--lora-rank'))
    .option('--lora-alpha <x>', 'LoRA alpha (default 2 x rank)', parseFloatOption('--lora-alpha'))
    .option('--lora-targets <list>', 'LoRA target modules, comma-separated (default q_proj,k_proj,v_proj,o_proj)')
    .option('--device <d>', 'cpu | cuda | cuda:N (default cpu)')
    .option('--progress', 'always show the progress bar (default: only when stderr is a terminal)')
    .option('--no-progress', 'never show the progress bar')
    .action(async (o: Record<string, unknown>, cmd: Command) => {
      try {
        const flags: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(o)) if (cmd.getOptionValueSource(k) === 'cli') flags[k] = v;
        const line = await runPreferCli({ ...flags, model: o.model as string, out: o.out as string } as Parameters<typeof runPreferCli>[0]);
        process.stdout.write(line + '\n');
      } catch (e) {
        fail('prefer', e);
      }
    });
}
