// itool export gguf: a Hugging Face model directory (and optionally a LoRA adapter, merged
// first) as one GGUF file for llama.cpp, node-llama-cpp and Ollama (src/export).
import type { Command } from 'commander';
import { fail } from '../util.js';

export function register(program: Command): void {
  const exp = program.command('export').description('write a model in another format: gguf (llama.cpp, node-llama-cpp, Ollama)');
  exp
    .command('gguf')
    .description('a Hugging Face model directory (Llama, Mistral, Qwen2, Qwen3) as one GGUF v3 file, tokenizer and chat template included')
    .requiredOption('--model <dir>', 'Hugging Face model directory (config.json, safetensors, tokenizer.json)')
    .requiredOption('--out <file>', 'the .gguf file to write (atomically)')
    .option('--adapter <dir>', 'PEFT LoRA adapter directory, merged into the weights first')
    .option('--dtype <type>', 'tensor type of the matrices: f32 | f16 | bf16 | q8_0 (norms and biases stay f32)', 'f32')
    .option('--name <name>', "general.name (default: the model directory's name)")
    .option('--json', 'print the result as JSON')
    .action(async (o: { model: string; out: string; adapter?: string; dtype: string; name?: string; json?: boolean }) => {
      try {
        const { exportGguf } = await import('../../export/index.js');
        const t0 = performance.now();
        const r = await exportGguf({ model: o.model, out: o.out, adapter: o.adapter, dtype: o.dtype, name: o.name });
        const seconds = (performance.now() - t0) / 1000;
        if (o.json) process.stdout.write(JSON.stringify({ ...r, seconds }, null, 2) + '\n');
        else {
          const kept = r.kept.length > 0 ? `; kept: ${r.kept.filter((k) => k.type === 'f32').length} 1-D tensors f32${r.kept.some((k) => k.type === 'f16') ? `, ${r.kept.filter((k) => k.type === 'f16').map((k) => k.name).join(', ')} f16 (rows not a multiple of 32)` : ''}` : '';
          process.stdout.write(
            `wrote ${r.out}: ${r.architecture}, ${r.dtype}, ${r.tensors} tensors, ${(r.bytes / 2 ** 20).toFixed(1)} MiB in ${seconds.toFixed(1)} s${kept}\n` +
              `tokenizer: ${r.tokenizer.tokens} tokens, ${r.tokenizer.merges} merges, pre-tokenizer ${r.tokenizer.pre}, bos ${r.tokenizer.bosId ?? '-'}, eos ${r.tokenizer.eosId ?? '-'}, chat template ${r.tokenizer.chatTemplate ? 'yes' : 'no'}\n`,
          );
        }
      } catch (e) {
        fail('export gguf', e);
      }
    });
}
