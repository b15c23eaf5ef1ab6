// itool sft and itool prefer end to end on a tiny model directory with a BPE tokenizer
// trained here, synthetic ShareGPT data and text pairs; run in-process through commander.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itool } from '../helpers/cli.js';
import { tinyModelDir } from './train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-train-cli-'));
const modelDir = join(root, 'model');
const dataFile = join(root, 'train.jsonl');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await tinyModelDir({ modelDir, dataFile, n: 12, dataSeed: 3, vocabSize: 320, modelSeed: 1, maxPositions: 8192 });
});

function metrics(dir: string): Array<Record<string, number | string | boolean>> {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
}

/** stderr without the memory plan the commands print before they load the model */
const withoutPlan = (err: string): string => err.replace(/^itool (sft|prefer): memory plan\n(  .*\n)+/, '');

describe('itool sft / itool prefer', () => {
  it('sft: config file with flags overriding, metrics per step, a loadable model, and --resume', async () => {
    const out = join(root, 'sft');
    const cfg = join(root, 'sft.json');
    writeFileSync(cfg, JSON.stringify({ lr: 0.5, warmupRatio: 0, schedule: 'constant', batchTokens: 3000, saveEvery: 1 }));
    const r = await itool(['sft', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfg, '--lr', '0.002', '--max-steps', '3', '--seed', '5', '--no-progress']);
    expect(withoutPlan(r.err)).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^sft: 3\/3 steps, 0 skipped, final loss \d+\.\d+; saved .*model\n$/);
    const ms = metrics(out);
    expect(ms.map((m) => m.step)).toEqual([1, 2, 3]);
    for (const m of ms) {
      expect(m.lr).toBe(0.002); // the flag beat the config's 0.5; the config's constant schedule applied
      for (const k of ['loss', 'gradNorm', 'tokensPerSec', 'tokens', 'lossTokens']) expect(typeof m[k]).toBe('number');
    }
    expect(existsSync(join(out, 'model', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'model', 'tokenizer.json'))).toBe(true);
    const res = JSON.parse(readFileSync(join(out, 'result.json'), 'utf8')) as { steps: number };
    expect(res.steps).toBe(3);
    // resume with a larger budget: continues at step 3
    const r2 = await itool(['sft', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfg, '--lr', '0.002', '--max-steps', '5', '--seed', '5', '--resume', '--no-progress']);
    expect(r2.code).toBe(0);
    expect(r2.out).toMatch(/^sft: 5\/5 steps \(resumed at 3\)/);
    expect(metrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4, 5]);
  });

  it('prefer: text pairs encoded with the model tokenizer, DPO metrics per step', async () => {
    const out = join(root, 'prefer');
    const pairsFile = join(root, 'pairs.jsonl');
    const rows = Array.from({ length: 6 }, (_, i) => ({
      prompt: `<|im_start|>user\nWeather in city ${i}?<|im_end|>\n<|im_start|>assistant\n`,
      prefix: '<tool_call>\n{"name": "get_weather", ',
      chosen: `"arguments": {"city": "c${i}"}}`,
      rejected: `"args": ${i}`,
      sampleId: `s${i}`,
      depth: 1,
    }));
    writeFileSync(pairsFile, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = await itool(['prefer', '--model', modelDir, '--pairs', pairsFile, '--loss', 'dpo', '--beta', '0.2', '--out', out, '--max-steps', '2', '--batch-pairs', '3', '--lr', '1e-3', '--no-progress']);
    expect(withoutPlan(r.err)).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^prefer \(preference\): 2\/2 steps/);
    const ms = metrics(out);
    expect(ms.length).toBe(2);
    for (const k of ['chosenReward', 'rejectedReward', 'margin', 'accuracy', 'loss', 'lr']) expect(typeof ms[1]![k]).toBe('number');
    expect(ms[0]!.margin).toBeCloseTo(0, 5); // policy = reference before the first update
    expect(existsSync(join(out, 'reference-preference.json'))).toBe(true);
    expect(existsSync(join(out, 'model', 'model.safetensors'))).toBe(true);
  });

  it('bad input: a clear error naming the problem', async () => {
    const r = await itool(['prefer', '--model', modelDir, '--pairs', join(root, 'nope.jsonl'), '--out', join(root, 'x')]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/itool prefer: pairs file .*nope\.jsonl/);
    const r2 = await itool(['sft', '--model', join(root, 'nomodel'), '--data', dataFile, '--out', join(root, 'y')]);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/itool sft: .*nomodel/);
    // a bad flag value is rejected while parsing (src/cli/index.ts main() prints it)
    await expect(itool(['sft', '--model', modelDir, '--data', dataFile, '--out', join(root, 'z'), '--lr', 'abc'])).rejects.toThrow(/option --lr must be a number, got 'abc'/);
    const cfg = join(root, 'bad.json');
    writeFileSync(cfg, JSON.stringify({ learningRate: 1 }));
    const r4 = await itool(['sft', '--model', modelDir, '--data', dataFile, '--out', join(root, 'w'), '--config', cfg]);
    expect(r4.err).toMatch(/itool sft: sft: unknown option 'learningRate' in the config file/);
  });
});
