// The command line in-process, as the CLI tests drive it: stdout, stderr and the exit code
// of one `itool ...` invocation (commander's exits become exceptions through exitOverride).
import { vi } from 'vitest';
import { buildProgram } from '../../src/cli/index.js';

export async function itool(args: string[]): Promise<{ out: string; err: string; code: number }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => ((err += String(s)), true));
  const before = process.exitCode;
  process.exitCode = 0;
  try {
    await buildProgram().exitOverride().parseAsync(['node', 'itool', ...args]);
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
  const code = Number(process.exitCode ?? 0);
  process.exitCode = before;
  return { out, err, code };
}
