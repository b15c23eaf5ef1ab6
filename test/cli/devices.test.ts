// --device on every command that loads a model, defaulting to auto everywhere (sft and prefer
// defaulted to the CPU, eval had no --device).
import type { Command, Option } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/index.js';
import { deviceOf } from '../../src/train/cli.js';

const MODEL_COMMANDS = ['train', 'ablate', 'eval', 'generate', 'score', 'merge', 'sft', 'prefer'];

function deviceOption(cmd: Command): Option | undefined {
  return cmd.options.find((o) => o.long === '--device');
}

describe('--device', () => {
  const program = buildProgram();
  it.each(MODEL_COMMANDS)('itool %s takes --device, auto by default', (name) => {
    const cmd = program.commands.find((c) => c.name() === name);
    expect(cmd, name).toBeDefined();
    const o = deviceOption(cmd!);
    expect(o, `${name} --device`).toBeDefined();
    // either commander's default is auto, or (sft/prefer, whose flags override a config file) the help says so
    if (o!.defaultValue !== undefined) expect(o!.defaultValue).toBe('auto');
    else expect(o!.description).toMatch(/'auto' \(default/);
  });

  it('sft and prefer resolve no --device and no config device to auto; the flag or the config file otherwise', () => {
    expect(deviceOf({}, {})).toBe('auto');
    expect(deviceOf({ device: 'cpu' }, {})).toBe('cpu');
    expect(deviceOf({}, { device: 'cuda:1' })).toBe('cuda:1');
    expect(() => deviceOf({}, { device: 3 })).toThrow(/device must be a string/);
  });
});
