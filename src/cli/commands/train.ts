import type { Command } from 'commander';
import { loadModel } from '../../engine/model.js';
import type { DeviceRequest } from '../../engine/engine.js';
import { runOnUserData } from '../../pipeline/user-run.js';
import { configReferenceText } from '../../pipeline/config-schema.js';
import { PRESETS } from '../../pipeline/config.js';
import { InterruptedError, interruptible } from '../../train/cli.js';
import { planLimits, planLoop, type MemoryFlags } from '../../train/plan-cli.js';
import type { MemoryPlan } from '../../train/plan.js';
import { fail, parseFloatOption, parseIntOption } from '../util.js';

export interface LoopFlags {
  config?: string;
  preset?: string;
  eval?: string[];
  evalRatio: number;
  iterations?: number;
  selectRatio?: number;
  perplexityScope?: string;
  maxSelected?: number;
  loss?: string;
  lr?: number;
  warmup: boolean;
  sftLr?: number;
  sftEpochs?: number;
  simulations?: number;
  numActions?: number;
  temperature?: number;
  maxDepth?: number;
  maxTokens?: number;
  evalMaxTokens?: number;
  baseline?: boolean;
  device: string;
  seed?: number;
  progress?: boolean;
  loraRank?: number;
  loraAlpha?: number;
  loraTargets?: string;
  loraMerge?: boolean;
  recompute?: boolean;
  dtype?: string;
  adapter?: string;
}

/** the options `itool train` and `itool ablate` share */
export function loopOptions(cmd: Command): Command {
  return cmd
    .option('--preset <name>', `the preset under the config file and the flags: ${Object.values(PRESETS).map((p) => `'${p.name}' (${p.name === 'itool' ? 'the default: ' : ''}${p.doc})`).join('; ')}`)
    .option('--config <file>', 'JSON config file (pipeline options); flags override it')
    .option('--eval <files...>', 'held-out evaluation data (default: --eval-ratio of --data)')
    .option('--eval-ratio <r>', 'fraction of --data held out when no --eval is given', parseFloatOption('--eval-ratio'), 0.1)
    .option('--iterations <n>', 'iTool iterations (2)', parseIntOption('--iterations'))
    .option('--select-ratio <r>', 'fraction of hardest samples searched each iteration (0.3)', parseFloatOption('--select-ratio'))
    .option('--perplexity-scope <scope>', "tokens of the selection's perplexity: 'answer' (the last assistant turn; the itool preset) or 'assistant' (every assistant turn of the sample; the reference preset)")
    .option('--max-selected <n>', 'cap on searched samples per iteration (0: none)', parseIntOption('--max-selected'))
    .option('--loss <kind>', 'preference loss: simpo (default), dpo, ipo, orpo')
    .option('--lr <lr>', 'preference learning rate (1e-6)', parseFloatOption('--lr'))
    .option('--no-warmup', 'skip the warm-up SFT (the model is already warmed up)')
    .option('--sft-lr <lr>', 'warm-up SFT learning rate (1e-5)', parseFloatOption('--sft-lr'))
    .option('--sft-epochs <n>', 'warm-up SFT epochs per curriculum stage (1)', parseIntOption('--sft-epochs'))
    .option('--simulations <n>', 'MCTS simulations per sample (5)', parseIntOption('--simulations'))
    .option('--num-actions <n>', 'steps sampled per expansion (3)', parseIntOption('--num-actions'))
    .option('--temperature <t>', 'expansion temperature (1.5)', parseFloatOption('--temperature'))
    .option('--max-depth <n>', 'tree depth (3)', parseIntOption('--max-depth'))
    .option('--max-tokens <n>', 'tokens per step (50)', parseIntOption('--max-tokens'))
    .option('--eval-max-tokens <n>', 'tokens per evaluated answer (256)', parseIntOption('--eval-max-tokens'))
    .option('--baseline', 'also train the equal-compute SFT baseline from the warm-up model')
    .option('--lora-rank <n>', 'train a LoRA adapter of this rank through the warm-up and every iteration (the run keeps adapters, not models)', parseIntOption('--lora-rank'))
    .option('--lora-alpha <x>', 'LoRA alpha (default 2 x rank)', parseFloatOption('--lora-alpha'))
    .option('--lora-targets <list>', 'LoRA target modules, comma-separated: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj (default the attention four)')
    .option('--lora-merge', 'merge the adapter into the weights before each training phase and train a fresh one')
    .option('--recompute', 'recompute activations in backward (less memory, more time)')
    .option('--dtype <dtype>', "dtype of the full models saved: 'f32' or 'bf16'")
    .option('--adapter <dir>', 'start from this LoRA adapter on --model (and train it on)')
    .option('--device <device>', "'auto', 'cpu' or 'cuda[:N]'", 'auto')
    .option('--seed <n>', 'seed of every random choice (42)', parseIntOption('--seed'))
    .option('--progress', 'progress bars even when stderr is not a terminal')
    .option('--no-progress', 'no progress bars');
}

/** flags → a partial pipeline config (undefined entries leave the config file's values) */
export function overridesOf(f: LoopFlags): Record<string, unknown> {
  if (f.loss !== undefined && !['simpo', 'dpo', 'ipo', 'orpo'].includes(f.loss)) throw new Error(`--loss must be simpo, dpo, ipo or orpo, got '${f.loss}'`);
  return {
    iterations: f.iterations,
    selectRatio: f.selectRatio,
    perplexityScope: f.perplexityScope,
    maxSelected: f.maxSelected,
    warmup: f.warmup === false ? false : undefined,
    baseline: f.baseline,
    seed: f.seed,
    preference: { loss: f.loss, lr: f.lr, beta: f.loss && f.loss !== 'simpo' ? 0.1 : undefined },
    sft: { lr: f.sftLr, epochs: f.sftEpochs },
    search: { simulations: f.simulations, numActions: f.numActions, temperature: f.temperature, maxDepth: f.maxDepth, maxTokens: f.maxTokens },
    eval: { maxTokens: f.evalMaxTokens },
    lora:
      f.loraRank !== undefined || f.loraAlpha !== undefined || f.loraTargets !== undefined || f.loraMerge !== undefined
        ? { rank: f.loraRank, alpha: f.loraAlpha, targets: f.loraTargets?.split(',').map((t) => t.trim()), merge: f.loraMerge }
        : undefined,
    recompute: f.recompute,
    dtype: f.dtype,
  };
}

export function register(program: Command): void {
  loopOptions(
    program
      .command('train')
      .description('run the iTool loop on a model directory and tool-use data: warm-up SFT → (select → search → pairs → optimize → evaluate) × N')
      .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, safetensors, tokenizer files)')
      .requiredOption('--data <files...>', 'training data: ShareGPT/ToolACE, xLAM, OpenAI messages or BFCL files (JSON/JSONL)')
      .requiredOption('--out <dir>', 'run directory (phases resume from here; run it again with more --iterations to extend a finished run)')
      .option('--max-memory <size>', 'memory budget: 8GB (1e9 bytes), 8G or 8GiB (2^30), 512MiB, or bytes (default: 80% of MemAvailable); the plan is printed before anything is loaded')
      .option('--weights-dtype <dtype>', "frozen weights in memory: 'auto' (default: bf16 for a bf16 checkpoint under LoRA, or when f32 would not fit), 'f32' or 'bf16'")
      .option('--no-recompute', "keep every layer's activations (default: the plan chooses)")
      .option('--micro-tokens <n>', "tokens per micro-batch run at once ('auto', default: the plan chooses; 0: no split)")
      .option('--help-config', 'print every config key with its default and meaning, and exit')
      .on('option:help-config', () => {
        process.stdout.write(configReferenceText());
        process.exit(0);
      }),
  ).action(async (opts: LoopFlags & MemoryFlags & { model: string; data: string[]; out: string }) => {
    let training = false;
    let loopPlan: MemoryPlan | null = null;
    const sig = interruptible('itool train', () => training);
    try {
      const device = opts.device as DeviceRequest;
      const { table, result } = await runOnUserData({
        interrupt: { signal: () => sig.signal(), training: (on) => void (training = on) },
        modelDir: opts.model,
        dataFiles: opts.data,
        evalFiles: opts.eval ?? [],
        evalRatio: opts.evalRatio,
        out: opts.out,
        configFile: opts.config,
        preset: opts.preset,
        overrides: overridesOf(opts),
        // the plan's engine knobs (KV pool cap, log-prob chunk) go to every model the loop loads
        loadModel: (dir, o) => loadModel(dir, { device, recompute: o.recompute, ...(o.dtype ? { dtype: o.dtype } : {}), ...(loopPlan ? { limits: planLimits(loopPlan) } : {}) }),
        plan: (config, start) => (loopPlan = planLoop(opts, opts.device, config, start, opts.data, (l) => process.stderr.write(`itool train: ${l}\n`)))?.choices ?? null,
        adapter: opts.adapter,
        progress: opts.progress,
        log: (l) => process.stderr.write(`itool train: ${l}\n`),
      });
      process.stdout.write(table);
      process.stdout.write(`\nrun directory: ${result.runDir} (results.json, report.html, iteration-*/pairs.jsonl)\n`);
    } catch (e) {
      fail('train', e, e instanceof InterruptedError ? e.exitCode : 1);
    } finally {
      sig.dispose();
    }
  });
}
