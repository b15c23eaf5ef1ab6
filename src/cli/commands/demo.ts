import type { Command } from 'commander';
import { resolve } from 'node:path';
import { synthesize } from '../../data/synth.js';
import type { DeviceRequest } from '../../engine/engine.js';
import { createModel, loadModel } from '../../engine/model.js';
import { runDemo, type DemoDeps } from '../../pipeline/demo.js';
import { parseSeeds } from '../../pipeline/demo-dir.js';
import { presetOf, PRESETS } from '../../pipeline/config.js';
import { runDemoSeeds } from '../../pipeline/demo-seeds.js';
import { fail, parseIntOption } from '../util.js';

export function register(program: Command): void {
  program
    .command('demo')
    .description('run the whole iTool method on a small model trained from scratch (synthetic data, nothing downloaded), side by side with an equal-compute SFT baseline')
    .option('--out <dir>', 'output directory (data, tokenizer, run, results.json, report.html)', 'itool-demo')
    .option('--seed <n>', 'seed of the data, the model and every random choice', parseIntOption('--seed'), 1)
    .option('--seeds <list>', 'run the demo once per seed (comma-separated, e.g. 1,2,3) into <out>/seed-N and write one table of mean and spread (<out>/summary.txt, summary.json)')
    .option('--preset <name>', `the method's preset at the demo's scale: ${Object.values(PRESETS).map((p) => `'${p.name}'`).join(' or ')} (default: the demo's own settings, the itool preset)`)
    .option('--quick', 'a smaller run (seconds on 2 CPU cores; the full run takes up to 10 minutes)')
    .option('--device <device>', "'cpu' (default: the run sized for 2 CPU cores), 'auto' or 'cuda[:N]'", 'cpu')
    .option('--progress', 'progress bars even when stderr is not a terminal')
    .option('--no-progress', 'no progress bars')
    .action(async (opts: { out: string; seed: number; seeds?: string; quick?: boolean; progress?: boolean; device: string; preset?: string }, cmd: Command) => {
      try {
        if (opts.preset !== undefined) presetOf(opts.preset);
        // every option is checked before any work starts
        const seeds = opts.seeds !== undefined ? parseSeeds(opts.seeds) : null;
        if (seeds && cmd.getOptionValueSource('seed') === 'cli') throw new Error('give either --seed or --seeds, not both');
        const out = resolve(opts.out);
        const t0 = performance.now();
        const deps: DemoDeps = {
          synthesize: (o) => synthesize(o),
          createModel: async (config, o) => createModel(config, { seed: o.seed, device: opts.device as DeviceRequest }),
          loadModel: (dir) => loadModel(dir, { device: opts.device as DeviceRequest }),
        };
        const log = (l: string) => process.stderr.write(`itool demo [${((performance.now() - t0) / 1000).toFixed(0)} s]: ${l}\n`);
        if (seeds) {
          const { summary } = await runDemoSeeds(deps, { out, seeds, quick: !!opts.quick, progress: opts.progress, log, preset: opts.preset });
          process.stdout.write(`\n${summary.text}\n`);
          process.stdout.write(`finished ${seeds.length} seeds in ${((performance.now() - t0) / 1000).toFixed(1)} s; wrote ${out}/summary.txt, ${out}/summary.json and ${out}/seed-N/\n`);
          return;
        }
        const { table, results } = await runDemo(deps, { out, seed: opts.seed, quick: !!opts.quick, progress: opts.progress, log, preset: opts.preset });
        process.stdout.write(`\nAccuracy by category on the held-out set (BFCL AST rules):\n\n${table}\n`);
        process.stdout.write(`finished in ${results.seconds.toFixed(1)} s; wrote ${out}/results.json and ${out}/report.html\n`);
      } catch (e) {
        fail('demo', e);
      }
    });
}
