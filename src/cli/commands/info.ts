import type { Command } from 'commander';
import { info } from '../../engine/index.js';
import { fail } from '../util.js';

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(1)} GiB`;
}

export function register(program: Command): void {
  program
    .command('info')
    .description('show the native engine: build options, CPU features, threads, CUDA devices')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) => {
      try {
        const i = info();
        if (opts.json) {
          process.stdout.write(JSON.stringify(i, null, 2) + '\n');
          return;
        }
        const lines = [
          `itool ${i.version}`,
          `build      napi ${i.build.napi}, ${i.build.compiler ?? 'unknown compiler'}, CUDA ${i.build.cuda ? 'on' : 'off'}, system BLAS ${i.build.blas ? 'on' : 'off'}${i.build.sanitize ? ', ASan+UBSan' : ''}`,
          `cpu        ${i.cpu.arch}, kernels ${i.cpu.kernels} (available: ${i.cpu.available.join(', ')}), ${i.cpu.threads} threads`,
          `features   ${i.cpu.features.join(' ') || '(none detected)'}`,
        ];
        if (!i.cuda.compiled) lines.push(`cuda       not built: ${i.cuda.reason}`);
        else if (i.cuda.devices.length === 0)
          lines.push(`cuda       runtime ${i.cuda.runtime ?? '?'}${i.cuda.cublas ? ' + cuBLAS' : ', built-in GEMM'}; no device: ${i.cuda.reason}`);
        else {
          lines.push(`cuda       runtime ${i.cuda.runtime}, driver ${i.cuda.driver}${i.cuda.cublas ? ', cuBLAS' : ', built-in GEMM'}`);
          for (const d of i.cuda.devices)
            lines.push(`  cuda:${d.index}   ${d.name}, sm ${d.computeCapability}, ${gib(d.totalMemory)} (${gib(d.freeMemory)} free)`);
        }
        process.stdout.write(lines.join('\n') + '\n');
      } catch (e) {
        fail('info', e);
      }
    });
}
