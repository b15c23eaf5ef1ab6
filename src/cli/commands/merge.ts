// itool merge: a LoRA adapter merged into its base model, saved as a Hugging Face directory.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { isAdapterDir } from '../../engine/adapter.js';
import { adapterOption, fail, openModel } from '../util.js';

export interface MergeOptions {
  model: string;
  adapter?: string;
  out: string;
  dtype: string;
  device?: string;
}

/** Merges and saves; returns the line printed. */
export async function runMerge(o: MergeOptions): Promise<string> {
  if (o.dtype !== 'f32' && o.dtype !== 'bf16') throw new Error(`--dtype must be 'f32' or 'bf16', got '${o.dtype}'`);
  if (o.adapter === undefined && !isAdapterDir(o.model)) throw new Error(`nothing to merge: --model ${o.model} is not an adapter directory and no --adapter is given`);
  if (existsSync(o.out) && [resolve(o.model), o.adapter && resolve(o.adapter)].includes(resolve(o.out))) throw new Error(`--out ${o.out} is an input directory`);
  const { model, filesDir } = await openModel({ model: o.model, adapter: o.adapter, device: o.device ?? 'cpu' });
  try {
    await model.mergeAdapter();
    await model.save(o.out, { copyFrom: filesDir, dtype: o.dtype });
  } finally {
    model.dispose();
  }
  return `merged ${o.adapter ?? o.model} into ${filesDir}: wrote ${o.out} (${o.dtype})`;
}

export function register(program: Command): void {
  adapterOption(
    program
      .command('merge')
      .description('merge a LoRA adapter into its base model and save a Hugging Face directory (config, safetensors, tokenizer files)')
      .requiredOption('--model <dir>', 'the base model directory, or an adapter directory (its base is read from it)')
      .requiredOption('--out <dir>', 'the merged model directory')
      .option('--dtype <dtype>', "weights saved as 'f32' or 'bf16' (half the disk)", 'f32')
      .option('--device <device>', "'auto', 'cpu', 'cuda' or 'cuda:N'", 'auto'),
  ).action(async (o: MergeOptions) => {
    try {
      process.stdout.write((await runMerge(o)) + '\n');
    } catch (e) {
      fail('merge', e);
    }
  });
}
