// Ctrl-C during `itool sft`: the step in flight finishes, a checkpoint is written and named, the
// exit code is 130; `--resume` says what it resumes from and ends bitwise equal to an
// uninterrupted run; `--resume` with nothing to resume is refused. Runs bin/itool.js (dist/).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/native.js';
import { tinyModelDir } from './train-helpers.js';

const root = mkdtempSync(join(tmpdir(), 'itool-sft-signal-'));
const modelDir = join(root, 'model');
const dataFile = join(root, 'train.jsonl');
const bin = join(repoRoot, 'bin', 'itool.js');
afterAll(() => rmSync(root, { recursive: true, force: true }));

beforeAll(async () => {
  await tinyModelDir({ modelDir, dataFile, n: 16, dataSeed: 8, vocabSize: 300, modelSeed: 4 });
});

const args = (out: string, ...extra: string[]) => ['sft', '--model', modelDir, '--data', dataFile, '--out', out, '--epochs', '12', '--max-steps', '100', '--batch-tokens', '400', '--lr', '0.003', '--seed', '3', '--save-every', '0', '--device', 'cpu', '--no-progress', ...extra];

function steps(out: string): number {
  const f = join(out, 'metrics.jsonl');
  return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).length : 0;
}

/** runs sft and sends SIGINT once `after` steps are in metrics.jsonl */
function interrupted(out: string, after: number): Promise<{ code: number | null; err: string; signalledAt: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args(out)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    let signalledAt = -1;
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const poll = setInterval(() => {
      if (signalledAt < 0 && steps(out) >= after) {
        signalledAt = steps(out);
        p.kill('SIGINT');
      }
    }, 5);
    p.on('error', reject);
    p.on('close', (code) => {
      clearInterval(poll);
      resolve({ code, err, signalledAt });
    });
  });
}

describe('itool sft and SIGINT', () => {
  it('checkpoints and exits 130; --resume continues to bitwise the weights of an uninterrupted run', async () => {
    const whole = join(root, 'whole');
    const r0 = spawnSync(process.execPath, [bin, ...args(whole)], { encoding: 'utf8', timeout: 300_000 });
    expect(r0.status, r0.stderr).toBe(0);
    expect(r0.stdout).toMatch(/^sft: 100\/100 steps/);

    const cut = join(root, 'cut');
    const r1 = await interrupted(cut, 5);
    expect(r1.code, r1.err).toBe(130);
    const m = /sft stopped by SIGINT after step (\d+) of 100: wrote checkpoint (\S+); run the same command with --resume to continue/.exec(r1.err);
    expect(m, r1.err).not.toBeNull();
    const at = Number(m![1]);
    expect(at).toBeGreaterThanOrEqual(r1.signalledAt);
    expect(at).toBeLessThan(100);
    expect(existsSync(join(m![2]!, 'state.json'))).toBe(true);
    expect(existsSync(join(cut, 'model'))).toBe(false);

    const r2 = spawnSync(process.execPath, [bin, ...args(cut, '--resume')], { encoding: 'utf8', timeout: 300_000 });
    expect(r2.status, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(new RegExp(`sft: resuming from .*ckpt-\\d+ \\(step ${at}\\)`));
    expect(r2.stdout).toMatch(new RegExp(`^sft: 100/100 steps \\(resumed at ${at}\\)`));
    const a = readFileSync(join(whole, 'model', 'model.safetensors'));
    const b = readFileSync(join(cut, 'model', 'model.safetensors'));
    expect(b.equals(a)).toBe(true);
  }, 600_000);

  it('itool train: SIGINT in the warm-up checkpoints and exits 130; running it again resumes the phase', async () => {
    const out = join(root, 'train');
    const cfg = join(root, 'train.json');
    writeFileSync(cfg, JSON.stringify({ iterations: 0, sft: { lr: 0.003, epochs: 12, maxSteps: 60, batchTokens: 400, saveEvery: 0 }, eval: { maxTokens: 4, batchSize: 4, maxSamples: 2 } }));
    const targs = ['train', '--model', modelDir, '--data', dataFile, '--out', out, '--config', cfg, '--device', 'cpu', '--no-progress'];
    const r1 = await new Promise<{ code: number | null; err: string }>((resolve, reject) => {
      const p = spawn(process.execPath, [bin, ...targs], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      let sent = false;
      p.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const poll = setInterval(() => {
        if (!sent && steps(join(out, 'warmup')) >= 3) {
          sent = true;
          p.kill('SIGINT');
        }
      }, 5);
      p.on('error', reject);
      p.on('close', (code) => {
        clearInterval(poll);
        resolve({ code, err });
      });
    });
    expect(r1.code, r1.err).toBe(130);
    const m = /stopped by SIGINT in phase warmup after step (\d+) of 60: wrote checkpoint (\S+warmup\/checkpoints\/ckpt-\d+); run the same command again to resume/.exec(r1.err);
    expect(m, r1.err).not.toBeNull();
    expect(existsSync(join(m![2]!, 'state.json'))).toBe(true);
    const state = JSON.parse(readFileSync(join(out, 'state.json'), 'utf8')) as { phases: Array<{ name: string }> };
    expect(state.phases.map((p) => p.name)).not.toContain('warmup');
    const r2 = spawnSync(process.execPath, [bin, ...targs], { encoding: 'utf8', timeout: 300_000 });
    expect(r2.status, r2.stderr).toBe(0);
    // the warm-up went on from the checkpoint: every step once in its metrics
    const lines = readFileSync(join(out, 'warmup', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    expect(lines).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
  }, 600_000);

  it('--resume with no checkpoint is refused', () => {
    const r = spawnSync(process.execPath, [bin, ...args(join(root, 'fresh'), '--resume')], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/--resume: no checkpoint in .*fresh\/checkpoints: nothing to resume \(run without --resume to start\)/);
  });
});
