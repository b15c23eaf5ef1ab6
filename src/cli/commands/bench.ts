// itool bench <name>: each benchmark lives in src/bench/<name>.ts and exports
// `register(cmd: Command)` adding its own options; names not landed yet say so.
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCHES: Array<[string, string]> = [
  ['gemm', 'f32 GEMM GFLOP/s per shape and thread count (--compare numpy)'],
  ['ops', 'GFLOP/s or GB/s of every CPU op'],
  ['model', 'model forward+backward and generation tokens/s'],
  ['train', 'SFT and SimPO training steps (--compare torch)'],
  ['generate', 'tree-search generation workload (--compare torch | llama.cpp)'],
  ['attention', 'attention forward+backward (--device cuda --compare torch)'],
  ['loss', 'fused LM head + log-prob + SimPO (--device cuda --compare torch)'],
  ['memory', 'peak RSS against the memory plan, with tokens/s (SFT, SimPO, search, generation; LoRA and full)'],
];

export function register(program: Command): void {
  const bench = program.command('bench').description('benchmarks of the engine: tables and --json');
  const here = dirname(fileURLToPath(import.meta.url));
  for (const [name, summary] of BENCHES) {
    const file = join(here, '..', '..', 'bench', `${name}.js`);
    const cmd = bench.command(name).description(summary);
    if (existsSync(file)) {
      // the module adds its options and action; loaded lazily so `itool --help` stays fast
      cmd.allowUnknownOption(true).allowExcessArguments(true).helpOption(false).action(async () => {
        const mod = (await import(pathToFileURL(file).href)) as { main: (argv: string[]) => Promise<void> };
        const i = process.argv.indexOf(name);
        await mod.main(process.argv.slice(i + 1));
      });
    } else {
      cmd.allowUnknownOption(true).allowExcessArguments(true).action(() => {
        process.stderr.write(`itool bench ${name}: not yet available\n`);
        process.exitCode = 2;
      });
    }
  }
}
