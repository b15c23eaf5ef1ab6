import type { Command } from 'commander';
import { join } from 'node:path';
import { loadModel } from '../../engine/model.js';
import type { DeviceRequest } from '../../engine/engine.js';
import type { ReportEvaluation } from '../../report/html.js';
import { categoryTableText } from '../../report/table.js';
import { mergeConfig } from '../../pipeline/config.js';
import { resolve } from 'node:path';
import { synthesize } from '../../data/synth.js';
import { createModel } from '../../engine/model.js';
import { ablationOverrides, DEMO_ARMS, runDemoAblation, type DemoArm } from '../../pipeline/demo-ablate.js';
import { parseSeeds } from '../../pipeline/demo-dir.js';
import type { DemoDeps } from '../../pipeline/demo.js';
import { resolveConfig, runOnUserData } from '../../pipeline/user-run.js';
import { writeAtomic } from '../../pipeline/state.js';
import { fail } from '../util.js';
import { loopOptions, overridesOf, type LoopFlags } from './train.js';

export function register(program: Command): void {
  loopOptions(
    program
      .command('ablate')
      .description("run the paper's ablations on the same budget: full iTool, no tree search, no iteration, DPO instead of SimPO; with --demo on the embedded default (the demo's data and model), with the reference and itool presets and without warm-up too, over several seeds")
      .option('--model <dir>', 'Hugging Face model directory (not with --demo)')
      .option('--data <files...>', 'training data files (not with --demo)')
      .requiredOption('--out <dir>', 'output directory (one run directory per variant; with --demo seed-N/arm-NAME, ablate.txt, ablate.json, report.html; a stopped run resumes from it)')
      .option('--demo', `the ablation on the embedded default: arms ${DEMO_ARMS.join(', ')}, one shared warm-up per seed`)
      .option('--quick', 'with --demo: the quick demo sizes (CI-sized; the table is a smoke test, not a measurement)')
      .option('--seeds <list>', 'with --demo: comma-separated seeds', '1,2,3')
      .option('--only <variants...>', `run only these variants (itool, no-search, no-iteration, dpo; with --demo: ${DEMO_ARMS.join(', ')})`),
  ).action(async (opts: LoopFlags & { model?: string; data?: string[]; out: string; only?: string[]; demo?: boolean; quick?: boolean; seeds: string }, cmd: Command) => {
    try {
      if (opts.demo) {
        // the arms' settings are the demo's and each arm's own: a loop flag would be silently unused
        const allowed = new Set(['out', 'demo', 'quick', 'seeds', 'only', 'device', 'progress', 'model', 'data']);
        const unused = cmd.options.map((x) => x.attributeName()).filter((n) => !allowed.has(n) && cmd.getOptionValueSource(n) === 'cli');
        if (unused.length) throw new Error(`--demo fixes every arm's settings; not used with it: ${unused.map((n) => '--' + n.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`);
        if (opts.model !== undefined || opts.data !== undefined) throw new Error('--demo runs on the embedded default: give no --model or --data');
        const seeds = parseSeeds(opts.seeds);
        for (const n of opts.only ?? []) if (!(DEMO_ARMS as readonly string[]).includes(n)) throw new Error(`--only: unknown arm '${n}'; known arms: ${DEMO_ARMS.join(', ')}`);
        const device = opts.device === 'auto' ? 'cpu' : (opts.device as DeviceRequest);
        const deps: DemoDeps = {
          synthesize: (o) => synthesize(o),
          createModel: async (config, o) => createModel(config, { seed: o.seed, device }),
          loadModel: (dir) => loadModel(dir, { device }),
        };
        const t0 = performance.now();
        const out = resolve(opts.out);
        const summary = await runDemoAblation(deps, { out, seeds, quick: !!opts.quick, arms: opts.only as DemoArm[] | undefined, progress: opts.progress, log: (l) => process.stderr.write(`itool ablate [${((performance.now() - t0) / 1000).toFixed(0)} s]: ${l}\n`) });
        process.stdout.write(`\n${summary.text}\nfinished in ${((performance.now() - t0) / 1000).toFixed(1)} s; wrote ${out}/ablate.txt, ${out}/ablate.json and ${out}/report.html\n`);
        return;
      }
      if (!opts.model || !opts.data) throw new Error('give --model and --data (or --demo for the embedded default)');
      const model = opts.model;
      const data = opts.data;
      const device = opts.device as DeviceRequest;
      const flags = overridesOf(opts);
      const base = resolveConfig(opts.config, flags, opts.preset);
      const variants = ablationOverrides(base);
      const names = ['itool', ...Object.keys(variants)].filter((n) => !opts.only || opts.only.includes(n));
      for (const n of opts.only ?? []) if (!['itool', ...Object.keys(variants)].includes(n)) throw new Error(`--only: unknown variant '${n}'`);
      const log = (l: string) => process.stderr.write(`itool ablate: ${l}\n`);
      const common = { preset: opts.preset, dataFiles: data, evalFiles: opts.eval ?? [], evalRatio: opts.evalRatio, configFile: opts.config, loadModel: (dir: string, o: { recompute: boolean }) => loadModel(dir, { device, recompute: o.recompute }), progress: opts.progress };
      // the warm-up runs once (in the itool variant); the others start from its model
      const full = await runOnUserData({ ...common, modelDir: model, out: join(opts.out, 'itool'), overrides: flags, log: (l) => log(`itool: ${l}`), title: 'itool ablate: itool' });
      const warmDir = base.warmup ? join(opts.out, 'itool', 'warmup', 'model') : model;
      const evals: ReportEvaluation[] = [...full.result.evaluations.filter((e) => e.series === 'warmup'), { label: 'itool', series: 'itool', categories: full.result.itool.categories }];
      const summary: Record<string, unknown> = { itool: full.results };
      for (const name of names.filter((n) => n !== 'itool')) {
        const over = mergeConfig(mergeConfig(flags, variants[name as keyof typeof variants]), { warmup: false });
        const r = await runOnUserData({ ...common, modelDir: warmDir, out: join(opts.out, name), overrides: over, log: (l) => log(`${name}: ${l}`), title: `itool ablate: ${name}` });
        evals.push({ label: name, series: name, categories: r.result.itool.categories });
        summary[name] = r.results;
      }
      writeAtomic(join(opts.out, 'ablation.json'), JSON.stringify(summary, null, 2) + '\n');
      process.stdout.write(categoryTableText(evals));
    } catch (e) {
      fail('ablate', e);
    }
  });
}
