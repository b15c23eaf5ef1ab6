// The command line as a user runs it: bin/itool.js over dist/.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/native.js';

function itool(...args: string[]) {
  return spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), ...args], {
    cwd: repoRoot,
    env: process.env,
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('itool CLI', () => {
  it('--version prints the package version', () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    const r = itool('--version');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('--help lists the commands', () => {
    const r = itool('--help');
    expect(r.status).toBe(0);
    for (const c of ['demo', 'train', 'eval', 'bench', 'info']) expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it('info --json parses and lists the CPU features of this machine', () => {
    const r = itool('info', '--json');
    expect(r.status, r.stderr).toBe(0);
    const info = JSON.parse(r.stdout) as {
      version: string;
      cpu: { features: string[]; kernels: string; available: string[]; threads: number; arch: string };
      build: { cuda: boolean };
      cuda: { compiled: boolean; devices: unknown[]; reason?: string };
    };
    expect(Array.isArray(info.cpu.features)).toBe(true);
    // compare with what the kernel reports for this CPU
    if (process.platform === 'linux' && info.cpu.arch === 'x64') {
      const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
      for (const f of ['avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'])
        expect(info.cpu.features.includes(f), f).toBe(flags.includes(f));
    }
    expect(info.cpu.available).toContain('scalar');
    expect(info.cpu.available).toContain(info.cpu.kernels);
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(info.cuda.compiled).toBe(info.build.cuda);
    if (info.cuda.devices.length === 0) expect(info.cuda.reason).toBeTruthy();
  });

  it('ITOOL_THREADS sets the pool size', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'bin', 'itool.js'), 'info', '--json'], {
      cwd: repoRoot,
      env: { ...process.env, ITOOL_THREADS: '3' },
      encoding: 'utf8',
    });
    expect(JSON.parse(r.stdout).cpu.threads).toBe(3);
  });

  it('an unknown command fails with a message', () => {
    const r = itool('frobnicate');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/unknown command/);
  });
});
