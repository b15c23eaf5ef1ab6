// The addon boundary: >= 10^4 random bad calls over every exported native function,
// in one child process that must end alive with every call rejected as a JS error.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/native.js';

describe('native boundary fuzz', () => {
  it('rejects 10^4 bad calls with JS errors and stays alive', () => {
    const r = spawnSync(process.execPath, [join(repoRoot, 'test', 'native', 'fuzz-child.mjs'), '10000', '20261125'], {
      cwd: repoRoot,
      env: process.env,
      encoding: 'utf8',
      maxBuffer: 1 << 26,
      timeout: 300_000,
    });
    expect(r.signal, r.stderr).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
      calls: number;
      rejected: number;
      targets: string[];
      accepted: Record<string, number>;
    };
    expect(summary.accepted).toEqual({});
    expect(summary.calls).toBeGreaterThanOrEqual(10_000);
    expect(summary.rejected).toBe(summary.calls);
    expect(summary.targets).toContain('tensorFromArray');
    expect(summary.targets.length).toBeGreaterThan(3);
  });
});
