// `itool train`'s config: one schema, unknown keys refused with the nearest known key, every
// value checked before the model is loaded (no state.json left behind), the reference of every
// key (--help-config), and a finished run extended with more iterations.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configReference } from '../../src/pipeline/config-schema.js';
import { resolveConfig } from '../../src/pipeline/user-run.js';
import { repoRoot } from '../helpers/native.js';
import { itool } from '../helpers/cli.js';
import { tinyModelDir } from './train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-train-config-'));
const modelDir = join(root, 'model');
const brokenModel = join(root, 'broken');
const dataFile = join(root, 'train.jsonl');
const small = join(root, 'small.json');
afterAll(() => rmSync(root, { recursive: true, force: true }));

const SMALL = {
  maxSelected: 2,
  sft: { lr: 0.01, batchTokens: 2000 },
  search: { simulations: 2, numActions: 2, maxDepth: 2, maxTokens: 6, batchSize: 8 },
  eval: { maxTokens: 8, batchSize: 8, maxSamples: 2 },
};

beforeAll(async () => {
  await tinyModelDir({ modelDir, dataFile, n: 10, dataSeed: 6, vocabSize: 300, modelSeed: 1 });
  // a model directory whose weights cannot be loaded: any error about the config must come first
  mkdirSync(brokenModel);
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) if (existsSync(join(modelDir, f))) writeFileSync(join(brokenModel, f), readFileSync(join(modelDir, f)));
  writeFileSync(join(brokenModel, 'model.safetensors'), 'not a safetensors file');
  writeFileSync(small, JSON.stringify(SMALL));
});

function refused(name: string, config: unknown, flags: string[] = []) {
  const cfg = join(root, `${name}.json`);
  writeFileSync(cfg, JSON.stringify(config));
  const out = join(root, name);
  return itool(['train', '--model', brokenModel, '--data', dataFile, '--out', out, '--config', cfg, ...flags, '--no-progress']).then((r) => ({ ...r, out }));
}

describe('itool train config', () => {
  it('unknown keys are refused with the nearest known key, before the model is loaded', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ num_iterations: 3 }, /unknown key 'num_iterations' \(did you mean 'iterations'\?\)/],
      [{ search: { simulation: 3 } }, /unknown key 'search\.simulation' \(did you mean 'search\.simulations'\?\)/],
      [{ sft: { learning_rate: 1e-5 } }, /unknown key 'sft\.learning_rate' \(did you mean 'sft\.lr'\?\)/],
      [{ preference: { los: 'dpo' } }, /unknown key 'preference\.los' \(did you mean 'preference\.loss'\?\)/],
      [{ sft: { seed: 3 } }, /unknown key 'sft\.seed'.*'seed' is a top-level key/],
      [{ lora: { rank: 8, target_modules: ['q_proj'] } }, /unknown key 'lora\.target_modules' \(did you mean 'lora\.targets'\?\)/],
    ];
    for (const [i, [cfg, re]] of cases.entries()) {
      const r = await refused(`typo-${i}`, cfg);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(re);
      expect(r.err).toMatch(/itool train --help-config/);
      expect(existsSync(join(r.out, 'state.json'))).toBe(false);
    }
  });

  it('values out of range are refused before the model is loaded, and the corrected run then starts', async () => {
    const bad: Array<[string[], RegExp]> = [
      [['--lr', '-1'], /config 'preference': option lr must be a number in \[0, Infinity\], got -1/],
      [['--sft-lr', '-1'], /config 'sft': option lr must be a number in \[0, Infinity\], got -1/],
      [['--sft-lr', '0'], /config 'sft\.lr' must be > 0, got 0/],
      [['--select-ratio', '1.5'], /config 'selectRatio' must be in \(0, 1\]/],
      [['--temperature', '-1'], /config 'search\.temperature' must be a number in \[0, ∞\], got -1/],
    ];
    for (const [i, [flags, re]] of bad.entries()) {
      const r = await refused(`range-${i}`, SMALL, flags);
      expect(r.code, r.err).toBe(1);
      expect(r.err).toMatch(re);
      expect(existsSync(join(r.out, 'state.json'))).toBe(false);
    }
    const cfgRange = await refused('range-cfg', { ...SMALL, search: { ...SMALL.search, overlapLimit: 2 } });
    expect(cfgRange.err).toMatch(/config 'search\.overlapLimit' must be a number in \[0, 1\], got 2/);
    // the same run directory, corrected, on a loadable model
    const ok = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', join(root, 'range-1'), '--config', small, '--iterations', '0', '--sft-lr', '0.001', '--no-progress']);
    expect(ok.code, ok.err).toBe(0);
  }, 120_000);

  it('a finished run is extended by running it again with more iterations', async () => {
    const out = join(root, 'extend');
    const r1 = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', small, '--iterations', '1', '--no-progress']);
    expect(r1.code, r1.err).toBe(0);
    const r2 = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', small, '--iterations', '2', '--no-progress']);
    expect(r2.code, r2.err).toBe(0);
    for (const p of ['warmup', 'eval-0', 'iteration-1/select', 'iteration-1/search', 'iteration-1/optimize', 'iteration-1/evaluate'])
      expect(r2.err).toMatch(new RegExp(`${p}: done earlier .* skipped`));
    for (const p of ['iteration-2/select', 'iteration-2/search', 'iteration-2/optimize', 'iteration-2/evaluate']) expect(r2.err).toMatch(new RegExp(`${p}: finished in`));
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as { itool: { iterations: unknown[] } };
    expect(results.itool.iterations.length).toBe(2);
    // other options are still refused on a started run
    const r3 = await itool(['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', small, '--iterations', '2', '--sft-lr', '0.5', '--no-progress']);
    expect(r3.code).toBe(1);
    expect(r3.err).toMatch(/holds a run with other data or options/);
  }, 180_000);

  it('--help-config lists every key with its default; the defaults themselves pass the schema', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'train', '--help-config'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const keys = configReference();
    expect(keys.length).toBeGreaterThan(60);
    for (const k of keys) expect(r.stdout).toMatch(new RegExp(`^  ${k.key.replace(/\./g, '\\.')} `, 'm'));
    for (const k of ['iterations', 'lora.rank', 'lora.targets', 'lora.merge', 'recompute', 'dtype', 'sft.lr', 'preference.beta', 'search.simulations']) expect(keys.map((x) => x.key)).toContain(k);
    // every key at its documented default (a concrete value) is accepted
    const cfg: Record<string, Record<string, unknown> | unknown> = {};
    for (const k of keys) {
      if (k.default === '{…}' || (typeof k.default === 'string' && k.default.startsWith('sft.'))) continue;
      const [a, b] = k.key.split('.');
      if (b === undefined) cfg[a!] = k.default;
      else if (a === 'lora') continue;
      else ((cfg[a!] ??= {}) as Record<string, unknown>)[b] = k.default;
    }
    cfg.lora = { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], merge: true };
    const file = join(root, 'all.json');
    writeFileSync(file, JSON.stringify(cfg));
    expect(() => resolveConfig(file, {})).not.toThrow();
  });
});
