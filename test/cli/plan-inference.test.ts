// The commands that load a model only to run it (itool score, generate, eval --model) plan its
// memory before loading: --weights-dtype auto|f32|bf16 and --max-memory as train/sft/prefer take
// them. auto keeps a bf16 checkpoint in bf16 (exact), and rounds an f32 one to bf16 only when
// f32 would not fit. References: the float64 forward of test/reference/model64.ts given the
// weights the model must hold (the checkpoint's, or them rounded to bf16 by the format's rule,
// written here).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../../src/engine/model.js';
import type { ModelConfig } from '../../src/engine/model-types.js';
import { runScore } from '../../src/cli/commands/score.js';
import { runGenerate } from '../../src/cli/commands/generate.js';
import { planInference } from '../../src/train/plan-cli.js';
import { forward64, logprobs64 } from '../reference/model64.js';
import { itool } from '../helpers/cli.js';
import { tinyModelDir } from '../native/train-helpers.js';
import { bf16 } from '../native/model-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-plan-inference-'));
const f32Dir = join(root, 'f32');
const bf16Dir = join(root, 'bf16');
const dataFile = join(root, 'data.jsonl');
afterAll(() => rmSync(root, { recursive: true, force: true }));

let cfg: ModelConfig;
let weights: Map<string, Float32Array>;
const ids = [5, 17, 40, 3, 99, 12, 7, 64, 2, 31];

beforeAll(async () => {
  const src = join(root, 'src');
  await tinyModelDir({ modelDir: src, dataFile, n: 6, dataSeed: 5, vocabSize: 300, modelSeed: 4, architecture: 'Qwen2ForCausalLM' });
  const m = await loadModel(src, { device: 'cpu' });
  cfg = m.config;
  // larger weights than the default init, so that bf16 rounding moves the log-probabilities visibly
  for (const n of m.paramNames()) m.setParam(n, m.getParam(n).map((v) => v * 8));
  weights = new Map(m.paramNames().map((n) => [n, m.getParam(n)]));
  await m.save(f32Dir, { copyFrom: src });
  await m.save(bf16Dir, { copyFrom: src, dtype: 'bf16' });
  m.dispose();
});

/** log p(ids[i] | ids[..i]) of the float64 forward on these weights */
function reference(w: (name: string) => Float32Array): number[] {
  const V = cfg.vocabSize;
  return [...logprobs64(forward64(cfg, w, ids, [0, ids.length]), V, [...ids.slice(1), -1]).slice(0, ids.length - 1)];
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

async function score(dir: string, flags: { weightsDtype?: string; maxMemory?: string } = {}): Promise<{ lp: number[]; dtype: string | undefined; log: string[] }> {
  const log: string[] = [];
  const r = await runScore({ model: dir, ids: ids.join(','), device: 'cpu', ...flags }, (l) => log.push(l));
  return { lp: r.logprobs.slice(1) as number[], dtype: r.weightsDtype, log };
}

describe('itool score / generate / eval --model: the memory plan before loading', () => {
  it('auto keeps a bf16 checkpoint in bf16 (the float64 reference on the bf16 weights), an f32 one in f32', async () => {
    const rounded = reference((n) => bf16(weights.get(n)!));
    const exact = reference((n) => weights.get(n)!);
    expect(maxDiff(rounded, exact)).toBeGreaterThan(1e-3); // the two references are told apart
    const b = await score(bf16Dir);
    expect(b.dtype).toBe('bf16');
    expect(b.log.join('\n')).toMatch(/^itool score: memory plan: weights bf16: the checkpoint is bf16 .*expected peak .* of the budget of /m);
    expect(maxDiff(b.lp, rounded)).toBeLessThan(1e-4);
    const f = await score(f32Dir);
    expect(f.dtype).toBe('f32');
    expect(f.log.join('\n')).toMatch(/weights f32: the checkpoint is f32 and f32 fits/);
    expect(maxDiff(f.lp, exact)).toBeLessThan(1e-4);
  });

  it('--weights-dtype bf16 rounds an f32 checkpoint; f32 holds a bf16 one in f32 (the same values)', async () => {
    const rounded = reference((n) => bf16(weights.get(n)!));
    const b = await score(f32Dir, { weightsDtype: 'bf16' });
    expect(b.dtype).toBe('bf16');
    expect(b.log.join('\n')).toMatch(/weights bf16: asked for \(--weights-dtype\)/);
    expect(maxDiff(b.lp, rounded)).toBeLessThan(1e-4);
    const f = await score(bf16Dir, { weightsDtype: 'f32' });
    expect(f.dtype).toBe('f32');
    expect(maxDiff(f.lp, rounded)).toBeLessThan(1e-4);
  });

  it('auto stores an f32 checkpoint in bf16 when f32 would not fit the budget', async () => {
    const peakOf = (weightsDtype: string): number =>
      planInference({ maxMemory: '8GB', weightsDtype }, { what: 'test', modelDir: f32Dir, device: 'cpu', scoring: { tokens: ids.length } }, () => {})!.peak;
    const p32 = peakOf('f32'), p16 = peakOf('bf16');
    expect(p16).toBeLessThan(p32);
    const between = String(Math.floor((p32 + p16) / 2));
    const r = await score(f32Dir, { maxMemory: between });
    expect(r.dtype).toBe('bf16');
    expect(r.log.join('\n')).toMatch(/weights bf16: f32 frozen weights do not fit the budget/);
    expect(maxDiff(r.lp, reference((n) => bf16(weights.get(n)!)))).toBeLessThan(1e-4);
    // below the bf16 plan too: refused before loading, with what it needs and what there is
    await expect(score(f32Dir, { maxMemory: String(p16 - 4096) })).rejects.toThrow(/memory plan: .*needs .*\(\d+ bytes\).*the budget is .*\(\d+ bytes\)/s);
  });

  it('generate: greedy tokens of the bf16 checkpoint held in bf16 equal those of the same values held in f32', async () => {
    const opts = { model: bf16Dir, prompt: 'weather in Paris', maxTokens: 6, temperature: 0, device: 'cpu' };
    const log: string[] = [];
    const b = await runGenerate(opts, (l) => log.push(l));
    const f = await runGenerate({ ...opts, weightsDtype: 'f32' });
    expect(b.weightsDtype).toBe('bf16');
    expect(f.weightsDtype).toBe('f32');
    expect(log.join('\n')).toMatch(/^itool generate: memory plan: weights bf16: the checkpoint is bf16/m);
    expect(b.ids).toEqual(f.ids);
  });

  it('a bad --weights-dtype or --max-memory is an error naming the flag, on every command', async () => {
    const common = ['--device', 'cpu'];
    for (const args of [
      ['score', '--model', f32Dir, '--ids', '1,2,3'],
      ['generate', '--model', f32Dir, '--prompt', 'hi', '--max-tokens', '2'],
      ['eval', '--model', f32Dir, '--data', dataFile, '--max-tokens', '2'],
    ]) {
      const d = await itool([...args, ...common, '--weights-dtype', 'f16']);
      expect(d.code, args[0]).toBe(1);
      expect(d.err).toContain("--weights-dtype must be auto, f32 or bf16, got 'f16'");
      const m = await itool([...args, ...common, '--max-memory', '3 bananas']);
      expect(m.code, args[0]).toBe(1);
      expect(m.err).toContain("--max-memory: '3 bananas' is not a size");
    }
    const p = await itool(['eval', '--predictions', join(root, 'none.jsonl'), '--data', dataFile, '--weights-dtype', 'bf16']);
    expect(p.err).toMatch(/--max-memory and --weights-dtype need --model/);
  });

  it('eval --model prints the plan and generates with the chosen weights', async () => {
    const e = await itool(['eval', '--model', bf16Dir, '--data', dataFile, '--max-tokens', '4', '--json', '--device', 'cpu']);
    expect(e.code, e.err).toBe(0);
    expect(e.err).toMatch(/^itool eval: memory plan: weights bf16: the checkpoint is bf16/m);
    expect((JSON.parse(e.out) as { summary: { overall: { total: number } } }).summary.overall.total).toBeGreaterThan(0);
  });

  it('a budget below the weights stops the command before the weights file is read', async () => {
    const d = join(root, 'corrupt');
    mkdirSync(d, { recursive: true });
    for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(f32Dir, f), join(d, f));
    writeFileSync(join(d, 'model.safetensors'), 'not a safetensors file');
    const r = await itool(['score', '--model', d, '--ids', '1,2,3', '--device', 'cpu', '--max-memory', '1MiB']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/memory plan: the model's weights alone need .*\(\d+ bytes\).*more than the budget of 1\.00 MiB \(1048576 bytes\)/);
    const ok = await itool(['score', '--model', d, '--ids', '1,2,3', '--device', 'cpu', '--max-memory', '4GB']);
    expect(ok.code).toBe(1);
    // with room, the plan passes and the load reaches the file, which it refuses
    expect(ok.err).toMatch(/^itool score: memory plan: weights f32/m);
    expect(ok.err).toMatch(/model\.safetensors: safetensors header/);
  });
});
