// itool plan, the plan before itool sft / prefer, and a quick itool bench memory subset.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { itool } from '../helpers/cli.js';
import { repoRoot } from '../helpers/native.js';
import { tinyModelDir } from '../native/train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-plan-cli-'));
const modelDir = join(root, 'model');
const dataFile = join(root, 'train.jsonl');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await tinyModelDir({ modelDir, dataFile, n: 8, dataSeed: 3, vocabSize: 320, modelSeed: 1, maxPositions: 8192 });
});

/** a copy of the model directory whose weights file is `weights` (missing when null) */
function brokenCopy(name: string, weights: string | null): string {
  const d = join(root, name);
  mkdirSync(d, { recursive: true });
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(modelDir, f), join(d, f));
  if (weights !== null) writeFileSync(join(d, 'model.safetensors'), weights);
  return d;
}

describe('itool plan', () => {
  it('prints every category in bytes, the choices, the expected peak and the budget; --json holds the same plan', async () => {
    const r = await itool(['plan', '--model', modelDir, '--for', 'sft', '--max-memory', '512MiB']);
    expect(r.code).toBe(0);
    for (const label of ['weights', 'gradients (f32)', 'AdamW state (2 x f32)', 'activations kept for backward', 'log-prob scratch', 'KV cache', 'runtime', 'expected peak'])
      expect(r.out).toMatch(new RegExp(`^${label.replace(/[()]/g, '\\$&')}.* \\d+ B$`, 'm'));
    expect(r.out).toMatch(/^budget \(--max-memory\) +512 MiB +536870912 B$/m);
    expect(r.out).toMatch(/^choices: weights f32, recompute off, micro-batch not split/m);
    const j = await itool(['plan', '--model', modelDir, '--for', 'sft', '--max-memory', '512MiB', '--json']);
    const plan = JSON.parse(j.out) as { fits: boolean; peak: number; budget: number; categories: Record<string, number>; choices: { weightsDtype: string } };
    expect(plan.fits).toBe(true);
    expect(plan.budget).toBe(512 * 2 ** 20);
    const sum = Object.values(plan.categories).reduce((a, b) => a + b, 0);
    expect(sum).toBe(plan.peak); // the categories at the peak add up to it
    expect(r.out).toContain(`expected peak`);
    expect(r.out).toContain(` ${plan.peak} B`);
  });

  it('--max-memory that is not a size is an error naming the flag and the value', async () => {
    for (const bad of ['8X', 'lots', '-3GB']) {
      const r = await itool(['plan', '--model', modelDir, '--max-memory', bad]);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`--max-memory: '${bad}' is not a size`);
    }
    const s = await itool(['sft', '--model', modelDir, '--data', dataFile, '--out', join(root, 'x'), '--max-memory', '1.5 XB']);
    expect(s.code).toBe(1);
    expect(s.err).toContain("--max-memory: '1.5 XB' is not a size");
  });

  it('a budget below the weights alone is refused with both numbers; a tight one names what would fit', async () => {
    const r = await itool(['plan', '--model', modelDir, '--max-memory', '100000']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the model's weights alone need .*\(\d+ bytes\).*more than the budget of .*\(100000 bytes\)/);
    expect(r.err).toMatch(/--max-memory \d+MiB or more/);
    // a budget between the weights and the run's need: the run needs more, and says which options fit
    const j = JSON.parse((await itool(['plan', '--model', modelDir, '--for', 'sft', '--json', '--max-memory', '8GB', '--no-recompute'])).out) as { peak: number; categories: { runtime: number } };
    const tight = Math.floor(j.peak * 0.97);
    const t = await itool(['plan', '--model', modelDir, '--for', 'sft', '--max-memory', String(tight), '--no-recompute', '--micro-tokens', '0']);
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/this run needs .*\(\d+ bytes\) at its peak/);
    expect(t.err).toMatch(/what would fit:\n(  .*\n)*  (recompute on|an automatic micro-batch|--lora-rank|--batch-tokens)/);
  });

  it('itool sft stops on the plan before loading anything: a missing or corrupt weights file is not reached', async () => {
    for (const [name, weights] of [['absent', null], ['corrupt', 'not a safetensors file']] as const) {
      const dir = brokenCopy(name, weights);
      const r = await itool(['sft', '--model', dir, '--data', dataFile, '--out', join(root, `out-${name}`), '--max-memory', '1MiB', '--no-progress']);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/^itool sft: memory plan: the model's weights alone need/);
      // with room to run, the same directory fails at the weights: the plan came first
      const ok = await itool(['sft', '--model', dir, '--data', dataFile, '--out', join(root, `out2-${name}`), '--max-memory', '4GB', '--no-progress']);
      expect(ok.code).toBe(1);
      expect(ok.err).toMatch(/itool sft: memory plan\n/);
      expect(ok.err).toMatch(/safetensors/);
      expect(ok.err).not.toMatch(/memory plan: /);
    }
  });

  it('itool train plans the whole loop (scoring, search, SFT and preference steps) and stops on it before loading', async () => {
    const dir = brokenCopy('train-absent', null);
    const r = await itool(['train', '--model', dir, '--data', dataFile, '--out', join(root, 'train-out'), '--max-memory', '1MiB', '--no-progress']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/itool train: memory plan: the model's weights alone need/);
    expect(r.err).toMatch(/peak by phase: load .*, scoring .*, search .*, sft step .*, preference step /);
  });

  it('itool sft runs with the plan\'s choices (micro-batches and recompute from a small budget)', async () => {
    const shape = ['--for', 'sft', '--json', '--batch-tokens', '2048', '--max-length', '1024'];
    const plain = JSON.parse((await itool(['plan', '--model', modelDir, ...shape, '--max-memory', '8GB'])).out) as { peak: number };
    const least = JSON.parse((await itool(['plan', '--model', modelDir, ...shape, '--max-memory', '1MiB'])).out) as { peak: number; fits: boolean };
    expect(least.fits).toBe(false);
    expect(least.peak).toBeLessThan(plain.peak);
    // between the least any choice needs and what the plain step needs
    const budget = Math.floor((least.peak + plain.peak) / 2);
    const r = await itool(['sft', '--model', modelDir, '--data', dataFile, '--out', join(root, 'sft-small'), '--max-steps', '2', '--batch-tokens', '2048', '--max-length', '1024', '--max-memory', String(budget), '--no-progress']);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/choices: weights f32, recompute (on|off), micro-batch (\d+ tokens|not split)/);
    expect(r.err).not.toMatch(/micro-batch not split, allocator cache cap 1024 MiB\n +weights f32: full fine-tuning trains them\n +recompute off/); // the budget forced a cheaper choice
    expect(r.out).toMatch(/^sft: 2\/2 steps/);
  });
});

describe('itool bench memory', () => {
  it('a quick subset: each row planned and measured in a child process', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'bench', 'memory', '--quick', '--rows', 'sft,search', '--modes', 'lora', '--json'], {
      cwd: repoRoot,
      env: process.env,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { rows: Array<{ workload: string; setting: string; plannedPeak: number; measuredPeak: number; ratio: number; tokensPerSecond: number; weightsDtype: string; enginePeak: number; plannedEnginePeak: number }> };
    expect(j.rows.map((x) => `${x.workload}/${x.setting}`)).toEqual(['sft/before', 'sft/planned', 'search/before', 'search/planned']);
    for (const row of j.rows) {
      expect(row.measuredPeak).toBeGreaterThan(0);
      expect(row.plannedPeak).toBeGreaterThan(0);
      expect(row.ratio).toBeCloseTo(row.measuredPeak / row.plannedPeak, 10);
      expect(row.tokensPerSecond).toBeGreaterThan(0);
      // the engine's own counter against the plan's replay of it: exact for the search (its shape is
      // known); SFT steps are packed up to the token budget, which the plan takes as full
      if (row.workload === 'search') expect(row.enginePeak).toBe(row.plannedEnginePeak);
      else expect(row.enginePeak).toBeLessThanOrEqual(row.plannedEnginePeak);
    }
    expect(j.rows[0]!.weightsDtype).toBe('f32');
    expect(j.rows[1]!.weightsDtype).toBe('bf16'); // LoRA over a bf16 checkpoint: frozen weights in bf16
  });
});
