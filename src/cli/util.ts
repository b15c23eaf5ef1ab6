// Small shared pieces for the command files.
import type { Command } from 'commander';

/** Exit code 2: a command whose issue has not landed yet. */
export function notYet(program: Command, name: string, summary: string, issue: number): void {
  program
    .command(name)
    .description(`${summary} (not yet available)`)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .action(() => {
      process.stderr.write(`itool ${name}: not yet available (issue ${issue})\n`);
      process.exitCode = 2;
    });
}

/** Prints a clean one-line error and sets the exit code; keeps stack traces for ITOOL_DEBUG=1. */
export function fail(command: string, err: unknown, code = 1): void {
  const msg = err instanceof Error ? err.message : String(err);
  process.stderr.write(`itool ${command}: ${msg}\n`);
  if (process.env.ITOOL_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exitCode = code;
}

export function parseIntOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new Error(`option ${name} must be an integer, got '${v}'`);
    return n;
  };
}

export function parseFloatOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`option ${name} must be a number, got '${v}'`);
    return n;
  };
}
