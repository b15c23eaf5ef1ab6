// itool plan: the memory plan of a run without running it (config.json only; no weight is read).
import type { Command } from 'commander';
import { isAdapterDir } from '../../engine/adapter.js';
import { formatPlan, loraShapeOf, memoryOptions, planJson, planRun, PlanError, runShapeOf, type MemoryFlags, type ShapeFlags } from '../../train/plan-cli.js';
import { fail, parseIntOption } from '../util.js';

export function register(program: Command): void {
  memoryOptions(
    program
      .command('plan')
      .description('the memory plan of a run (itool train, sft or prefer) from config.json alone: bytes by category, the choices that fit --max-memory, the expected peak')
      .requiredOption('--model <dir>', 'Hugging Face model directory (only config.json and the safetensors header are read), or an adapter directory')
      .option('--for <command>', 'the run planned: train (default: warm-up SFT, search, preference), sft or prefer', 'train')
      .option('--loss <kind>', 'preference loss (simpo, dpo, ipo, orpo)')
      .option('--lora-rank <n>', 'train a LoRA adapter of this rank (default: full fine-tuning)', parseIntOption('--lora-rank'))
      .option('--lora-targets <list>', 'LoRA target modules, comma-separated (default q_proj,k_proj,v_proj,o_proj)')
      .option('--adapter <dir>', 'a LoRA adapter put on --model (its rank and targets are planned)')
      .option('--batch-tokens <n>', 'tokens per micro-batch of the trainers (default 4096)', parseIntOption('--batch-tokens'))
      .option('--max-length <n>', 'longest sample in tokens (default 2048)', parseIntOption('--max-length'))
      .option('--batch-size <n>', 'generation branches decoded together in the search (default 64)', parseIntOption('--batch-size'))
      .option('--max-tokens <n>', 'tokens per search step (default 50)', parseIntOption('--max-tokens'))
      .option('--max-depth <n>', 'search tree depth (default 3)', parseIntOption('--max-depth'))
      .option('--data <files...>', 'training data (its size counts in the runtime)')
      .option('--json', 'the plan as JSON'),
  ).action((o: ShapeFlags & MemoryFlags & { model: string; json?: boolean; adapter?: string }) => {
    try {
      if (!['train', 'sft', 'prefer'].includes(o.for ?? 'train')) throw new Error(`--for must be train, sft or prefer, got '${o.for}'`);
      const lora = loraShapeOf(o, isAdapterDir(o.model) ? o.model : o.adapter);
      const shape = runShapeOf(o.for as 'train' | 'sft' | 'prefer', o, lora);
      try {
        const plan = planRun(o, shape);
        process.stdout.write(o.json ? JSON.stringify(planJson(plan), null, 2) + '\n' : formatPlan(plan) + '\n');
      } catch (e) {
        if (!(e instanceof PlanError) || !e.plan || !o.json) throw e;
        process.stdout.write(JSON.stringify(planJson(e.plan), null, 2) + '\n');
        process.exitCode = 1;
      }
    } catch (e) {
      fail('plan', e);
    }
  });
}
