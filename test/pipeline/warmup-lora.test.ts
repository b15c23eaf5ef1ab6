// config lora.warmup false (the reference preset: the authors' code puts LoRA on the preference
// step only, mcts/dpo_train.py, and has no warm-up of its own): the warm-up's model is loaded
// without an adapter and trained whole, the later phases load its model again with an adapter.
// The environment's loading and the pipeline's order of loads, on stand-ins (the real engine:
// test/native/train-lora.test.ts).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Model } from '../../src/engine/model-types.js';
import type { Sample } from '../../src/data/sample.js';
import type { PipelineConfig } from '../../src/pipeline/config.js';
import { realEnv } from '../../src/pipeline/real-env.js';
import { runPipeline } from '../../src/pipeline/pipeline.js';
import { hermesTokenizer } from '../text/helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-warmup-lora-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** a stand-in model that records the adapters added to it and how it is saved */
function stubModel(dir: string, calls: string[]): Model {
  const m = {
    addLora: () => void calls.push(`addLora ${dir}`),
    loadAdapter: async () => void calls.push(`loadAdapter ${dir}`),
    mergeAdapter: async () => void calls.push(`mergeAdapter ${dir}`),
    save: async (to: string) => void calls.push(`save whole ${to}`),
    dispose: () => {},
  };
  return m as unknown as Model;
}

describe('realEnv: lora.warmup', () => {
  const modelDir = join(tmp, 'model');
  mkdirSync(modelDir, { recursive: true });
  const lora = { options: { rank: 4, alpha: 8, targetModules: ['q_proj' as const] }, merge: true, seed: 1 };
  const make = (warmup: boolean | undefined, calls: string[]) =>
    realEnv({ tokenizer: hermesTokenizer(), tokenizerDir: modelDir, loadModel: async (d) => (calls.push(`load ${d}`), stubModel(d, calls)), lora: { ...lora, ...(warmup === undefined ? {} : { warmup }) } });

  it('false: the warm-up model has no adapter and is saved whole; other phases get an adapter', async () => {
    const calls: string[] = [];
    const env = make(false, calls);
    expect(env.warmupWhole).toBe(true);
    const w = await env.loadModel(modelDir, 'warmup');
    await env.saveModel(w, join(tmp, 'warm'));
    expect(calls).toEqual([`load ${modelDir}`, `save whole ${join(tmp, 'warm')}`]);
    calls.length = 0;
    await env.loadModel(modelDir);
    expect(calls).toEqual([`load ${modelDir}`, `addLora ${modelDir}`]);
  });

  it('absent or true: the warm-up trains the adapter as before', async () => {
    for (const warmup of [undefined, true]) {
      const calls: string[] = [];
      const env = make(warmup, calls);
      expect(env.warmupWhole).toBe(false);
      await env.loadModel(modelDir, 'warmup');
      expect(calls).toEqual([`load ${modelDir}`, `addLora ${modelDir}`]);
    }
  });

  it('false, starting from an adapter: a clear error (nothing to train whole)', async () => {
    const ad = join(tmp, 'adapter');
    mkdirSync(ad, { recursive: true });
    writeFileSync(join(ad, 'adapter_config.json'), '{}');
    const env = make(false, []);
    await expect(env.loadModel(ad, 'warmup')).rejects.toThrow(/lora.warmup false trains the warm-up whole, which needs a model directory to start from, but .*adapter is an adapter: set lora.warmup true/);
  });
});

describe('the pipeline: the warm-up model is loaded again only when the warm-up trained whole', () => {
  it('env.warmupWhole: one load for the warm-up, one after it; otherwise the trained model goes on', async () => {
    const fx = (await import(join(import.meta.dirname, 'fixtures', 'fake-env.mjs'))) as {
      fakeEnv: (f: string) => { loadModel: (d: string, use?: string) => Promise<unknown>; warmupWhole?: boolean };
      config: () => PipelineConfig;
      samples: (n: number, prefix: string) => Sample[];
      initModel: (dir: string) => void;
    };
    const loads: Record<string, string[]> = {};
    for (const whole of [false, true]) {
      const dir = join(tmp, `run-${whole}`);
      fx.initModel(join(dir, 'init'));
      const env = fx.fakeEnv(join(dir, 'log'));
      const inner = env.loadModel;
      const seen: string[] = (loads[String(whole)] = []);
      env.loadModel = (d, use) => (seen.push(`${d.slice(dir.length + 1)}${use ? ` (${use})` : ''}`), inner(d));
      if (whole) env.warmupWhole = true;
      await runPipeline({ env: env as never, config: { ...fx.config(), iterations: 1, baseline: false }, runDir: join(dir, 'run'), modelDir: join(dir, 'init'), train: fx.samples(6, 's'), test: fx.samples(2, 't') });
      expect(readFileSync(join(dir, 'log'), 'utf8')).toMatch(/op sft warmup/);
    }
    expect(loads.false![0]).toBe('init (warmup)');
    expect(loads.false!.includes('run/warmup/model')).toBe(false);
    expect(loads.true!.slice(0, 2)).toEqual(['init (warmup)', 'run/warmup/model']);
  });
});
