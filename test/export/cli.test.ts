// itool export gguf and itool bench generate --compare llama.cpp as a user runs them
// (bin/itool.js over dist/).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/native.js';
import { readGguf } from './gguf-reader.js';
import { llamaCpp, tinyModelDir } from './helpers.js';

function itool(...args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), ...args], { cwd: repoRoot, env: process.env, encoding: 'utf8', timeout: 120_000 });
}

const ll = await llamaCpp();
const skipReason = 'reason' in ll ? ll.reason : null;

describe('itool export gguf', () => {
  it('writes the file and says what it wrote; bad --dtype and a missing model are one-line errors', async () => {
    const { dir, config } = await tinyModelDir('Qwen3ForCausalLM');
    const out = join(dir, 'cli.gguf');
    const r = itool('export', 'gguf', '--model', dir, '--out', out, '--dtype', 'bf16', '--json');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { out: string; architecture: string; dtype: string; tensors: number; bytes: number };
    expect(j).toMatchObject({ out, architecture: 'qwen3', dtype: 'bf16' });
    const g = readGguf(out);
    expect(g.tensors.length).toBe(j.tensors);
    expect(g.metadata.get('general.file_type')!.value).toBe(32);
    expect(g.metadata.get('qwen3.block_count')!.value).toBe(config.numLayers);
    const bad = itool('export', 'gguf', '--model', dir, '--out', join(dir, 'x.gguf'), '--dtype', 'q4_0');
    expect(bad.status).toBe(1);
    expect(bad.stderr.trim()).toBe("itool export gguf: export: unknown --dtype 'q4_0' (known: f32, f16, bf16, q8_0)");
    const missing = itool('export', 'gguf', '--model', join(dir, 'nope'), '--out', join(dir, 'x.gguf'));
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/config.json not found; --model must be a Hugging Face model directory/);
    expect(existsSync(join(dir, 'x.gguf'))).toBe(false);
    rmSync(dir, { recursive: true });
  });
});

describe.skipIf(skipReason !== null)(`itool bench generate --compare llama.cpp${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('--quick --json: both engines on the same weights, every workload row (both llama.cpp ways of the tree) with tokens/s, bound and load', () => {
    const r = itool('bench', 'generate', '--compare', 'llama.cpp', '--quick', '--json', '--prefill-per-sequence');
    expect(r.status, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as { rows: Array<{ workload: string; engine: string; tokensPerSecond: number; boundTokensPerSecond: number; load1: number; itoolOver?: number }>; notes: string[] };
    expect(j.rows.map((x) => `${x.workload} ${x.engine}`)).toEqual(['tree itool', 'tree llama.cpp', 'tree llama.cpp', 'decode itool', 'decode llama.cpp']);
    for (const row of j.rows) {
      expect(row.tokensPerSecond).toBeGreaterThan(0);
      expect(row.boundTokensPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(row.load1)).toBe(true);
      if (row.engine === 'llama.cpp') expect(row.itoolOver).toBeGreaterThan(0);
    }
    expect(j.notes.some((n) => /tiny: same weights: log p\(prompt\[1\] \| prompt\[0\]\) agrees to/.test(n))).toBe(true);
  });
});
