// ITOOL_PROFILE (native/core/profile.cpp): the op profiler wraps the backend and, when
// the process exits, writes per-op and per-GEMM-shape times. Checked on a tiny model
// whose op calls and GEMM shapes follow from its configuration.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/native.js';

const tmp = mkdtempSync(join(tmpdir(), 'itool-profile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// 2 layers, hidden 32, 4 heads of 12 (2 kv heads), intermediate 40, 2 sequences of 12
// tokens (every projection a distinct GEMM shape): one training forward with the
// gradients given ahead, then backward.
const L = 2, H = 32, Hq = 4, Hkv = 2, D = 12, I = 40, V = 64, T = 24;
const script = `
import { createModel, llamaConfig } from ${JSON.stringify(join(repoRoot, 'dist', 'engine', 'index.js'))};
const m = createModel(llamaConfig({ vocabSize: ${V}, hiddenSize: ${H}, intermediateSize: ${I}, numLayers: ${L}, numHeads: ${Hq}, numKvHeads: ${Hkv}, headDim: ${D} }), { seed: 1 });
const tokens = Int32Array.from({ length: ${T} }, (_, i) => (i * 7) % ${V});
const targets = Int32Array.from({ length: ${T} }, (_, i) => (i * 5 + 1) % ${V});
const batch = { tokens, targets, cuSeqlens: Int32Array.from([0, 12, ${T}]) };
await m.forward(batch, { train: true, dlogprobs: new Float32Array(${T}).fill(-1 / ${T}) });
await m.backward();
m.dispose();
`;

function run(env: Record<string, string | undefined>) {
  const e = { ...process.env, ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: e as NodeJS.ProcessEnv, encoding: 'utf8' });
}

interface Report {
  totalSeconds: number;
  ops: Array<{ op: string; calls: number; seconds: number }>;
  gemm: Array<{ shape: string; calls: number; seconds: number; gflops: number }>;
}

describe('ITOOL_PROFILE', () => {
  it('writes per-op calls and per-shape GEMM rows that match the model (JSON file)', () => {
    const file = join(tmp, 'profile.json');
    const r = run({ ITOOL_PROFILE: file });
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(`${file}.tmp`)).toBe(false);
    const rep = JSON.parse(readFileSync(file, 'utf8')) as Report;
    const calls = (op: string) => rep.ops.find((o) => o.op.endsWith(` ${op}`))?.calls ?? 0;
    expect(calls('attention_forward')).toBe(L);
    expect(calls('attention_backward')).toBe(L);
    expect(calls('rmsnorm_forward')).toBe(2 * L + 1);
    expect(calls('swiglu_forward')).toBe(L);
    expect(calls('logprob_backward')).toBe(1); // the head's gradient made in the forward's pass
    expect(calls('logprob_forward')).toBe(0);
    const shape = (m: number, n: number, k: number, ta: string, tb: string) =>
      rep.gemm.find((g) => g.shape.endsWith(` ${m}x${n}x${k} ${ta}${tb} b1`))?.calls ?? 0;
    expect(shape(T, Hq * D, H, 'N', 'T')).toBe(L); // q projection
    expect(shape(T, Hkv * D, H, 'N', 'T')).toBe(2 * L); // k, v projections
    expect(shape(T, H, Hq * D, 'N', 'T')).toBe(L); // o projection
    expect(shape(T, I, H, 'N', 'T')).toBe(2 * L); // gate, up
    expect(shape(T, H, I, 'N', 'T')).toBe(L); // down projection
    expect(shape(I, H, T, 'T', 'N')).toBe(2 * L); // gate, up weight gradients
    expect(shape(H, I, T, 'T', 'N')).toBe(L); // down projection's weight gradient
    const gemmCalls = rep.gemm.reduce((a, g) => a + g.calls, 0);
    expect(gemmCalls).toBe(calls('gemm'));
    const total = rep.ops.reduce((a, o) => a + o.seconds, 0);
    expect(rep.totalSeconds).toBeCloseTo(total, 5);
    for (const g of rep.gemm) expect(g.gflops).toBeGreaterThan(0);
  });

  it('prints the table on stderr with ITOOL_PROFILE=1, and nothing without it', () => {
    const on = run({ ITOOL_PROFILE: '1' });
    expect(on.status, on.stderr).toBe(0);
    expect(on.stderr).toMatch(/itool profile \(ITOOL_PROFILE\)/);
    expect(on.stderr).toMatch(/attention_backward\s+2\s/);
    expect(on.stderr).toMatch(/gemm shape \(M x N x K tA tB batch\)/);
    const off = run({ ITOOL_PROFILE: undefined });
    expect(off.status, off.stderr).toBe(0);
    expect(off.stderr).not.toMatch(/itool profile/);
  });

  it('an unwritable target still prints the table and says why', () => {
    const r = run({ ITOOL_PROFILE: join(tmp, 'no-such-dir', 'p.json') });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/could not write .*p\.json/);
  });
});
