// Preset resolution: the defaults are the itool preset, the reference preset's values, an unknown
// name, and a preset overridden by the config file or a flag (applied, said once).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_PIPELINE, presetConflicts, presetOf, PRESETS } from '../../src/pipeline/config.js';
import { presetTable, resolvePipelineConfig } from '../../src/pipeline/config-schema.js';
import { itool } from '../helpers/cli.js';

describe('presets', () => {
  it('no preset: the defaults unchanged, no preset recorded (the itool preset)', () => {
    const r = resolvePipelineConfig(undefined, {});
    expect(r.config).toEqual(DEFAULT_PIPELINE);
    expect(r.notes).toEqual([]);
    const i = resolvePipelineConfig(undefined, {}, 'itool');
    expect({ ...i.config, preset: undefined }).toEqual({ ...DEFAULT_PIPELINE, preset: undefined });
    expect(i.config.preset).toBe('itool');
  });

  it("reference: the authors' values", () => {
    const { config, notes } = resolvePipelineConfig(undefined, {}, 'reference');
    expect(notes).toEqual([]);
    expect(config.preset).toBe('reference');
    expect(config.iterations).toBe(1);
    expect(config.maxPairs).toBe(4000);
    expect(config.search).toMatchObject({ temperature: 1.5, repetitionPenalty: 0.75, maxTokens: 50, maxDepth: 3, stepLimit: 2, numActions: 3, simulations: 5, expansion: 'chain', initialValue: 'heuristic', rollout: 'tree', rolloutSteps: 2, judge: 'grades', judgeWeight: 1, pairValue: 'sum', overlap: 'words', pairCoverage: 'partial-answer', valueThreshold: 0.1, overlapLimit: 0.95, acceptValue: -0.3 });
    expect(config.preference).toMatchObject({ loss: 'simpo', beta: 2.5, gamma: 0.5, lr: 1e-6, epochs: 2, schedule: 'cosine', warmupRatio: 0.1 });
    expect(config.lora).toEqual({ rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], merge: true, warmup: false });
    expect(config.perplexityScope).toBe('assistant');
  });

  it('an unknown preset lists the known ones', () => {
    expect(() => presetOf('paper')).toThrow("unknown preset \"paper\"; known presets: itool, reference");
    expect(() => resolvePipelineConfig(undefined, {}, 'Reference')).toThrow(/known presets: itool, reference/);
  });

  it('a flag or config file key against the preset applies and is named in one note', () => {
    const dir = mkdtempSync(join(tmpdir(), 'itool-preset-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ preset: 'reference', search: { stepLimit: 1, maxDepth: 3 } }));
    const r = resolvePipelineConfig(file, { search: { temperature: 1, numActions: 3 }, preference: { loss: 'dpo', beta: 0.1 } });
    expect(r.config.preset).toBe('reference');
    expect(r.config.search.stepLimit).toBe(1);
    expect(r.config.search.temperature).toBe(1);
    expect(r.config.preference.loss).toBe('dpo');
    expect(r.config.search.expansion).toBe('chain');
    // same values (maxDepth 3, numActions 3) are no conflict
    expect(r.notes).toEqual(["preset 'reference' overridden: search.stepLimit 2 → 1 (config file), search.temperature 1.5 → 1 (flag), preference.loss \"simpo\" → \"dpo\" (flag), preference.beta 2.5 → 0.1 (flag)"]);
    // --preset wins over the file's
    const r2 = resolvePipelineConfig(file, {}, 'itool');
    expect(r2.config.preset).toBe('itool');
    expect(r2.config.search.expansion).toBeUndefined();
    expect(r2.notes[0]).toMatch(/--preset itool applies, not the config file's preset 'reference'/);
    expect(presetConflicts(PRESETS.reference.config, { search: { temperature: undefined } })).toEqual([]);
  });

  it('the knob table has both presets for every key', () => {
    const t = presetTable();
    const row = (k: string) => t.find((r) => r.key === k)!;
    expect(row('search.stepLimit')).toMatchObject({ itool: 1, reference: 2 });
    expect(row('search.judge')).toMatchObject({ itool: 'yes-no', reference: 'grades' });
    expect(row('iterations')).toMatchObject({ itool: 2, reference: 1 });
    expect(row('lora.rank')).toMatchObject({ itool: null, reference: 8 });
    expect(row('lora.warmup')).toMatchObject({ itool: null, reference: false });
    expect(row('perplexityScope')).toMatchObject({ itool: 'answer', reference: 'assistant' });
    expect(row('preset')).toMatchObject({ itool: 'itool', reference: 'reference' });
  });

  it('itool train --preset: an unknown name is refused before anything is loaded', async () => {
    const r = await itool(['train', '--model', '/nonexistent-model', '--data', '/nonexistent.json', '--out', join(tmpdir(), 'never-written'), '--preset', 'paper']);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/unknown preset "paper"; known presets: itool, reference/);
  });
});
