import type { Command } from 'commander';
import { join } from 'node:path';
import { loadModel } from '../../engine/model.js';
import type { DeviceRequest } from '../../engine/engine.js';
import type { ReportEvaluation } from '../../report/html.js';
import { categoryTableText } from '../../report/table.js';
import { mergeConfig } from '../../pipeline/config.js';
import { resolveConfig, runOnUserData } from '../../pipeline/user-run.js';
import { writeAtomic } from '../../pipeline/state.js';
import { fail } from '../util.js';
import { loopOptions, overridesOf, type LoopFlags } from './train.js';

/**
 * The paper's ablations on the same budget, each from the same warm-up model:
 *   itool         the full method;
 *   no-search     pairs from whole sampled answers (numActions·simulations answers per
 *                 sample, best over worst), no tree;
 *   no-iteration  one round selecting iterations × selectRatio of the data (about the same
 *                 total pairs as all iterations);
 *   dpo           DPO (beta 0.1) instead of SimPO.
 */
export function ablationOverrides(base: ReturnType<typeof resolveConfig>): Record<string, Record<string, unknown>> {
  const s = base.search;
  return {
    'no-search': {
      search: { maxDepth: 1, simulations: 1, numActions: s.numActions * s.simulations, stepPattern: '(?!)', maxTokens: s.rolloutMaxTokens },
    },
    'no-iteration': { iterations: 1, selectRatio: Math.min(1, base.selectRatio * Math.max(1, base.iterations)), maxSelected: base.maxSelected * Math.max(1, base.iterations) },
    dpo: { preference: { loss: 'dpo', beta: 0.1 } },
  };
}

export function register(program: Command): void {
  loopOptions(
    program
      .command('ablate')
      .description("run the paper's ablations on the same budget: full iTool, no tree search, no iteration, DPO instead of SimPO")
      .requiredOption('--model <dir>', 'Hugging Face model directory')
      .requiredOption('--data <files...>', 'training data files')
      .requiredOption('--out <dir>', 'output directory (one run directory per variant)')
      .option('--only <variants...>', 'run only these variants (itool, no-search, no-iteration, dpo)'),
  ).action(async (opts: LoopFlags & { model: string; data: string[]; out: string; only?: string[] }) => {
    try {
      const device = opts.device as DeviceRequest;
      const flags = overridesOf(opts);
      const base = resolveConfig(opts.config, flags);
      const variants = ablationOverrides(base);
      const names = ['itool', ...Object.keys(variants)].filter((n) => !opts.only || opts.only.includes(n));
      for (const n of opts.only ?? []) if (!['itool', ...Object.keys(variants)].includes(n)) throw new Error(`--only: unknown variant '${n}'`);
      const log = (l: string) => process.stderr.write(`itool ablate: ${l}\n`);
      const common = { dataFiles: opts.data, evalFiles: opts.eval ?? [], evalRatio: opts.evalRatio, configFile: opts.config, loadModel: (dir: string, o: { recompute: boolean }) => loadModel(dir, { device, recompute: o.recompute }), progress: opts.progress };
      // the warm-up runs once (in the itool variant); the others start from its model
      const full = await runOnUserData({ ...common, modelDir: opts.model, out: join(opts.out, 'itool'), overrides: flags, log: (l) => log(`itool: ${l}`), title: 'itool ablate: itool' });
      const warmDir = base.warmup ? join(opts.out, 'itool', 'warmup', 'model') : opts.model;
      const evals: ReportEvaluation[] = [...full.result.evaluations.filter((e) => e.series === 'warmup'), { label: 'itool', series: 'itool', categories: full.result.itool.categories }];
      const summary: Record<string, unknown> = { itool: full.results };
      for (const name of names.filter((n) => n !== 'itool')) {
        const over = mergeConfig(mergeConfig(flags, variants[name]), { warmup: false });
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
