import type { Command } from 'commander';
import { resolve } from 'node:path';
import { synthesize } from '../../data/synth.js';
import type { DeviceRequest } from '../../engine/engine.js';
import { createModel, loadModel } from '../../engine/model.js';
import { runDemo } from '../../pipeline/demo.js';
import { fail, parseIntOption } from '../util.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description('run the whole iTool method on a small model trained from scratch (synthetic data, nothing downloaded), side by side with an equal-compute SFT baseline')
    .option('--out <dir>', 'output directory (data, tokenizer, run, results.json, report.html)', 'itool-demo')
    .option('--seed <n>', 'seed of the data, the model and every random choice', parseIntOption('--seed'), 1)
    .option('--quick', 'a smaller run (seconds on 2 CPU cores; the full run takes about 3 minutes)')
    .option('--device <device>', "'cpu' (default: the run sized for 2 CPU cores), 'auto' or 'cuda[:N]'", 'cpu')
    .option('--progress', 'progress bars even when stderr is not a terminal')
    .option('--no-progress', 'no progress bars')
    .action(async (opts: { out: string; seed: number; quick?: boolean; progress?: boolean; device: string }) => {
      try {
        const out = resolve(opts.out);
        const t0 = performance.now();
        const { table, results } = await runDemo(
          {
            synthesize: (o) => synthesize(o),
            createModel: async (config, o) => createModel(config, { seed: o.seed, device: opts.device as DeviceRequest }),
            loadModel: (dir) => loadModel(dir, { device: opts.device as DeviceRequest }),
          },
          {
            out,
            seed: opts.seed,
            quick: !!opts.quick,
            progress: opts.progress,
            log: (l) => process.stderr.write(`itool demo [${((performance.now() - t0) / 1000).toFixed(0)} s]: ${l}\n`),
          },
        );
        process.stdout.write(`\nAccuracy by category on the held-out set (BFCL AST rules):\n\n${table}\n`);
        process.stdout.write(`finished in ${results.seconds.toFixed(1)} s; wrote ${out}/results.json and ${out}/report.html\n`);
      } catch (e) {
        fail('demo', e);
      }
    });
}
