// Small shared pieces for the command files.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { loadWithAdapter, modelFilesDir } from '../engine/adapter.js';
import type { DeviceRequest } from '../engine/engine.js';
import type { NativeModel } from '../engine/model.js';
import { planLimits } from '../train/plan-cli.js';
import type { MemoryPlan } from '../train/plan.js';

/** Exit code 2: a command whose issue has not landed yet. */
export function notYet(program: Command, name: string, summary: string, issue: number): void {
  program
    .command(name)
    .description(`${summary} (not yet available)`)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      process.stderr.write(`itool ${name}: not yet available (issue ${issue})\n`);
      process.exitCode = 2;
    });
}

/** Prints a clean one-line error and sets the exit code; keeps stack traces for ITOOL_DEBUG=1. */
export function fail(command: string, err: unknown, code = 1): void {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`itool ${command}: ${msg}\n`);
  if (process.env.ITOOL_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exitCode = code;
}

export function parseIntOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`option ${name} must be an integer, got '${v}'`);
    return n;
  };
}

export function parseFloatOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`option ${name} must be a number, got '${v}'`);
    return n;
  };
}

/** The options every training command shares: checkpoints, LoRA, device, progress. */
export function trainingOptions(cmd: Command): Command {
  return cmd
    .option('--save-every <n>', 'checkpoint every N steps, 0: only at the end (default 50)', parseIntOption('--save-every'))
    .option('--keep-last <n>', 'checkpoints kept (default 2)', parseIntOption('--keep-last'))
    .option('--lora-rank <n>', 'train a LoRA adapter of this rank instead of all weights', parseIntOption('--lora-rank'))
    .option('--lora-alpha <x>', 'LoRA alpha (default 2 x rank)', parseFloatOption('--lora-alpha'))
    .option('--lora-targets <list>', 'LoRA target modules, comma-separated (default q_proj,k_proj,v_proj,o_proj)')
    .option('--adapter <dir>', 'a LoRA adapter directory to put on --model and train on (saved as OUT/adapter)')
    .option('--dtype <dtype>', "dtype of the saved model: 'f32' (default) or 'bf16' (half the disk)")
    .option('--device <d>', "'auto' (default: CUDA when a device is present, else the CPU), 'cpu', 'cuda' or 'cuda:N'")
    .option('--progress', 'always show the progress bar (default: only when stderr is a terminal)')
    .option('--no-progress', 'never show the progress bar');
}

/**
 * The options given on the command line, without commander's defaults (negatable flags
 * get one), so that only they override a --config file.
 */
export function cliFlags(opts: Record<string, unknown>, cmd: Command): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(opts)) if (cmd.getOptionValueSource(k) === 'cli') flags[k] = v;
  return flags;
}

/** --adapter DIR: a LoRA adapter put on --model (which may itself be an adapter directory). */
export function adapterOption(cmd: Command): Command {
  return cmd.option('--adapter <dir>', 'a LoRA adapter directory (PEFT) to put on --model; --model may also be an adapter directory itself');
}

/**
 * The model of a command: --model (a model or an adapter directory) with --adapter on it; the
 * tokenizer and config files come from the base model directory. plan: the memory plan's choices
 * the model is loaded with (the base weights' storage dtype and the engine knobs; none: f32 and
 * the engine's defaults).
 */
export async function openModel(o: { model: string; adapter?: string; device?: string; plan?: MemoryPlan | null }): Promise<{ model: NativeModel; filesDir: string }> {
  if (!existsSync(o.model)) throw new Error(`--model ${o.model}: no such directory`);
  const filesDir = modelFilesDir(o.model);
  const { model } = await loadWithAdapter(o.model, { device: (o.device ?? 'auto') as DeviceRequest, ...(o.adapter !== undefined ? { adapter: o.adapter } : {}), ...(o.plan ? { dtype: o.plan.choices.weightsDtype, limits: planLimits(o.plan) } : {}) });
  return { model, filesDir };
}
