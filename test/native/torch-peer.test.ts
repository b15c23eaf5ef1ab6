// `itool bench train --compare torch` (src/bench/train_compare.ts, bench/torch_peer.py):
// the PyTorch peer computes the same step-0 loss as itool on a tiny Qwen2-style shape
// (QKV bias, GQA, tied embeddings) from itool's saved initial weights; the generation
// peer reads the same weights; and the --quick forms print well-formed tables without
// the peer.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runItoolGenerate, runPeerGenerate } from '../../src/bench/generate.js';
import { LOSS_RTOL, runItool, runPeer, SHAPES } from '../../src/bench/train_compare.js';
import { repoRoot } from '../helpers/native.js';

const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const torchOk = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
// under the ASan run LD_PRELOAD carries the sanitizer runtime into every child, python too
const asan = process.env.ITOOL_ASAN === '1';

describe('bench train --compare torch', () => {
  it.skipIf(!torchOk || asan)(
    `the peer's step-0 loss equals itool's on a tiny shape (skipped without torch: apt-get install -y python3-torch libopenblas0-pthread; and under ASan)`,
    async () => {
      const tiny = SHAPES.find((s) => s.name === 'tiny')!;
      const dir = mkdtempSync(join(tmpdir(), 'itool-peer-test-'));
      try {
        const it = await runItool(tiny, 1, dir);
        const peer = runPeer(tiny, 1, dir);
        if (!peer.ok) throw new Error(peer.reason);
        expect(Number.isFinite(it.loss0)).toBe(true);
        // an untrained model predicts close to uniform: loss near ln(V)
        expect(Math.abs(it.loss0 - Math.log(tiny.config.vocabSize))).toBeLessThan(0.5);
        expect(Math.abs(peer.r.loss0 - it.loss0) / Math.abs(it.loss0)).toBeLessThanOrEqual(LOSS_RTOL);
        expect(peer.r.secondsPerStep.length).toBe(1);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!torchOk || asan)(
    `generate: the peer runs the same weights and decodes every branch (skipped without torch: apt-get install -y python3-torch libopenblas0-pthread; and under ASan)`,
    async () => {
      const tiny = SHAPES.find((s) => s.name === 'tiny')!;
      const w = { branches: 3, promptTokens: 9, newTokens: 4 };
      const dir = mkdtempSync(join(tmpdir(), 'itool-peer-gen-test-'));
      try {
        const it = await runItoolGenerate(tiny, w, dir);
        const peer = runPeerGenerate(tiny, w, dir);
        if (!peer.ok) throw new Error(peer.reason);
        expect(it.generated).toBe(12);
        expect(peer.r.generated).toBe(12);
        expect(it.promptLogprob0).toBeLessThan(0);
        expect(Math.abs(peer.r.promptLogprob0 - it.promptLogprob0)).toBeLessThanOrEqual(1e-4);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('generate --quick prints a table without the peer', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'bench', 'generate', '--quick', '--compare', 'torch', '--json'], {
      encoding: 'utf8',
      env: process.env,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { rows: Array<{ engine: string; tokensPerSecond: number; branches: number }> };
    expect(out.rows.map((x) => x.engine)).toEqual(['itool']);
    expect(out.rows[0]!.branches).toBe(4);
    expect(out.rows[0]!.tokensPerSecond).toBeGreaterThan(0);
  });

  it('--quick prints itool rows without the peer', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'bench', 'train', '--compare', 'torch', '--quick', '--json'], {
      encoding: 'utf8',
      env: process.env,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { rows: Array<Record<string, number | string>>; notes: string[] };
    expect(out.rows.length).toBe(1);
    const row = out.rows[0]!;
    expect(row.side).toBe('itool');
    for (const k of ['parameters', 'loss0', 'msPerStep', 'tokensPerSecond', 'gflops', 'peakRssMiB']) expect(Number(row[k])).toBeGreaterThan(0);
    expect(out.notes.join(' ')).toMatch(/peer not run/);
  });

  it.skipIf(asan)('the full form adds numpy SGEMM rows from the same run and each itool row its fraction of them (or says why not)', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'bench', 'train', '--compare', 'torch', '--shape', 'tiny', '--steps', '1', '--json'], {
      encoding: 'utf8',
      env: process.env,
      timeout: 300_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as {
      rows: Array<{ side: string; gflops: number; fractionOfNumpy?: number }>;
      numpy: Array<{ name: string; m: number; n: number; k: number; gflops: number; threads: number }> | null;
      notes: string[];
    };
    const itoolRow = out.rows.find((x) => x.side === 'itool')!;
    if (out.numpy === null) {
      // python3 without numpy: the itool rows stay and a note says why
      expect(out.notes.join(' ')).toMatch(/no numpy SGEMM reference: /);
      expect(itoolRow.fractionOfNumpy).toBeUndefined();
      return;
    }
    // square 2048, then the tiny shape's gate/up GEMM: B*T rows x intermediate x hidden
    const tiny = SHAPES.find((s) => s.name === 'tiny')!;
    expect(out.numpy.map((x) => [x.m, x.n, x.k])).toEqual([
      [2048, 2048, 2048],
      [tiny.batch * tiny.seqLen, tiny.config.intermediateSize, tiny.config.hiddenSize],
    ]);
    for (const x of out.numpy) expect(x.gflops).toBeGreaterThan(0);
    const best = Math.max(...out.numpy.map((x) => x.gflops));
    expect(itoolRow.fractionOfNumpy).toBeCloseTo(itoolRow.gflops / best, 10);
  });

  it('an unknown shape is an error naming it', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'bench', 'train', '--compare', 'torch', '--shape', 'huge'], {
      encoding: 'utf8',
      env: process.env,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown shape 'huge'/);
  });
});
