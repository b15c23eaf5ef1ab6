// itool score / itool generate as a user runs them (bin/itool.js over dist/), on a tiny
// random model saved with a tokenizer trained here by the text layer's BPE trainer.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createModel, tinyConfig } from '../../src/engine/index.js';
import { trainBpe, writeTokenizer } from '../../src/text/index.js';
import { forward64, logprobs64 } from '../reference/model64.js';
import { repoRoot } from '../helpers/native.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function itool(...args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), ...args], { cwd: repoRoot, env: process.env, encoding: 'utf8', timeout: 60_000 });
}

describe('itool score / generate', () => {
  const bare = join(tmp, 'bare');
  const withTok = join(tmp, 'tok');
  const cfg = tinyConfig('Qwen3ForCausalLM');
  let weights: Map<string, Float32Array>;
  let vocab = 0;

  beforeAll(async () => {
    const corpus = Array.from({ length: 50 }, (_, i) => `call the weather tool for city ${i} and say hello world`);
    const bpe = trainBpe({ corpus, vocabSize: 300 });
    const tokDir = join(tmp, 'tokenizer-src');
    writeTokenizer(tokDir, bpe);
    const { loadTokenizer } = await import('../../src/text/index.js');
    vocab = loadTokenizer(tokDir).vocabSize;
    const m = createModel({ ...cfg, vocabSize: vocab }, { seed: 3, initStd: 0.2 });
    weights = new Map(m.paramNames().map((n) => [n, m.getParam(n)]));
    await m.save(bare);
    await m.save(withTok, { copyFrom: tokDir });
    m.dispose();
  });

  it('score --ids --json gives each token log-probability (float64 reference) and the perplexity, without tokenizer files', () => {
    const ids = [5, 17, 3, 99, 42, 7];
    const r = itool('score', '--model', bare, '--ids', ids.join(','), '--json', '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { ids: number[]; logprobs: Array<number | null>; perplexity: number };
    expect(out.ids).toEqual(ids);
    const ref = logprobs64(forward64({ ...cfg, vocabSize: vocab }, (n) => weights.get(n)!, ids, [0, ids.length]), vocab, [...ids.slice(1), -1]);
    expect(out.logprobs[0]).toBeNull();
    for (let i = 1; i < ids.length; i++) expect(Math.abs(out.logprobs[i]! - ref[i - 1]!)).toBeLessThan(1e-4);
    const mean = ref.slice(0, ids.length - 1).reduce((a, b) => a + b, 0) / (ids.length - 1);
    expect(Math.abs(out.perplexity - Math.exp(-mean)) / Math.exp(-mean)).toBeLessThan(1e-4);
  });

  it('score --text needs tokenizer files and prints a table', () => {
    const bad = itool('score', '--model', bare, '--text', 'hello');
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/tokenizer/);
    const r = itool('score', '--model', withTok, '--text', 'hello world weather', '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/perplexity \d+\.\d+ over \d+ predicted tokens/);
  });

  it('generate prints a completion and tokens/s (chat template, tools)', () => {
    const r = itool('generate', '--model', withTok, '--prompt', 'hello', '--chat', '--max-tokens', '6', '--seed', '1', '--device', 'cpu');
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/tokens\/s/);
    const again = itool('generate', '--model', withTok, '--prompt', 'hello', '--chat', '--max-tokens', '6', '--seed', '1', '--device', 'cpu');
    expect(again.stdout).toBe(r.stdout); // same seed, same completion
    const tools = join(tmp, 'tools.json');
    writeFileSync(tools, JSON.stringify([{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]));
    const t = itool('generate', '--model', withTok, '--prompt', 'weather in Paris?', '--tools', tools, '--max-tokens', '4', '--device', 'cpu');
    expect(t.status, t.stderr).toBe(0);
    const missing = itool('generate', '--model', withTok, '--prompt', 'x', '--tools', join(tmp, 'nope.json'));
    expect(missing.stderr).toMatch(/--tools: file not found/);
  });
});
