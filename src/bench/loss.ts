// itool bench loss [--device cuda[:N]] [--compare torch] [--json] [--quick] [--tokens 16384] [--vocab 151936] [--hidden 896] [--pairs 8] [--iters 5]
//
// The fused LM head -> log-prob -> SimPO loss and its gradient on the CUDA engine, at the
// Qwen2.5-0.5B head (vocab 151936, hidden 896) over 16k tokens laid out as pairs of
// chosen/rejected sequences. One iteration is what a SimPO step does per micro-batch:
//   1. ops.logprob (chunked: only [chunk, V] logits exist at a time) -> per-token log-probs
//   2. per-sequence sums and lengths -> ops.preferenceLoss (SimPO, beta 2.5, gamma 0.5)
//   3. ops.logprob again with dlogp (the loss gradient per token) -> dhidden, dweight
// `--compare torch` runs bench/gpu/loss.py in the same run: the eager PyTorch composition
// (hidden @ weight.T -> float -> log_softmax -> gather -> sums -> SimPO -> backward).
// Memory: the device's free memory before and after one iteration (the engine's pool only
// grows, so the drop is its peak beyond the inputs); torch: max_memory_allocated beyond
// its inputs. Both count the gradient outputs.
import { loadNative } from '../engine/native.js';
import { cudaDevice, deviceFree, fmt, numberList, parseCommon, runPython, syncDevice, table, timeGpu } from './attention.js';
import { uniformBf16Bits } from './random.js';

const HELP = `itool bench loss [--device cuda[:N]] [--compare torch] [--json] [--quick]
                 [--tokens 16384] [--vocab 151936] [--hidden 896] [--pairs 8] [--iters 5]
Fused LM head + log-prob + SimPO loss and gradient on the CUDA engine; --compare torch
runs the eager PyTorch composition on the same GPU in the same run (time and peak memory).
`;

export interface LossReport {
  bench: 'loss';
  device: string;
  tokens: number;
  vocab: number;
  hidden: number;
  pairs: number;
  itool: { ms: number; peakBytes: number; loss: number };
  torch?: { version: string; device: string; ms: number; peakBytes: number; loss: number } | { missing: string };
  speedup?: number; // torch ms / itool ms
  memoryRatio?: number; // itool peak / torch peak
}

const bf16Bits = uniformBf16Bits;

export async function main(argv: string[]): Promise<void> {
  const o = parseCommon(argv);
  if (o.help) {
    process.stdout.write(HELP);
    return;
  }
  const native = loadNative();
  const { device, name } = cudaDevice(o.device);
  const [N] = numberList(o.rest.get('tokens'), [o.quick ? 4096 : 16384]);
  const [V] = numberList(o.rest.get('vocab'), [151936]);
  const [H] = numberList(o.rest.get('hidden'), [896]);
  const [P] = numberList(o.rest.get('pairs'), [8]);
  const L = Math.floor(N! / (2 * P!));
  if (L < 1) throw new Error('--tokens must be at least 2 * --pairs');
  const T = 2 * P! * L;
  const iters = o.quick ? Math.min(o.iters, 2) : Math.min(o.iters, 5);
  const beta = 2.5, gamma = 0.5;
  const log = o.json ? () => {} : (l: string) => process.stderr.write(l + '\n');

  const hidden = native.tensorFromArray({ data: bf16Bits(T * H!, 1, 1.7), dtype: 'bf16', shape: [T, H!], device });
  const weight = native.tensorFromArray({ data: bf16Bits(V! * H!, 2, 0.06), dtype: 'bf16', shape: [V!, H!], device });
  let s = 12345;
  const tg = Int32Array.from({ length: T }, () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % V!);
  const targets = native.tensorFromArray({ data: tg, dtype: 'i32', shape: [T], device });
  const lens = native.tensorFromArray({ data: new Float32Array(P!).fill(L), dtype: 'f32', shape: [P!], device });
  await syncDevice(native, device);

  let lastLoss = NaN;
  const iteration = async (): Promise<void> => {
    const fw = await native.ops.logprob({ hidden, weight, targets });
    const lp = fw.logprob.toArray() as Float32Array;
    fw.logprob.dispose();
    fw.lse.dispose();
    const c = new Float32Array(P!), r = new Float32Array(P!);
    for (let p = 0; p < P!; p++) {
      let a = 0, b = 0;
      for (let i = 0; i < L; i++) {
        a += lp[(2 * p) * L + i]!;
        b += lp[(2 * p + 1) * L + i]!;
      }
      c[p] = a;
      r[p] = b;
    }
    const out = await native.ops.preferenceLoss({
      kind: 'simpo', beta, gamma, chosen: native.tensorFromArray({ data: c, dtype: 'f32', shape: [P!], device }),
      rejected: native.tensorFromArray({ data: r, dtype: 'f32', shape: [P!], device }), chosenLen: lens, rejectedLen: lens,
    });
    const loss = out.loss.toArray() as Float32Array, dc = out.dChosen.toArray() as Float32Array, dr = out.dRejected.toArray() as Float32Array;
    lastLoss = loss.reduce((x, y) => x + y, 0) / P!;
    const dl = new Float32Array(T);
    for (let p = 0; p < P!; p++)
      for (let i = 0; i < L; i++) {
        dl[(2 * p) * L + i] = dc[p]! / P!;
        dl[(2 * p + 1) * L + i] = dr[p]! / P!;
      }
    const dlogp = native.tensorFromArray({ data: dl, dtype: 'f32', shape: [T], device });
    const dweight = native.tensorZeros({ dtype: 'f32', shape: [V!, H!], device });
    const bw = await native.ops.logprob({ hidden, weight, targets, dlogp, dweight });
    for (const t of [bw.logprob, bw.lse, bw.dhidden, dweight, dlogp]) t.dispose();
  };

  const free0 = deviceFree(native, device);
  await iteration();
  await syncDevice(native, device);
  const peak = free0 - deviceFree(native, device);
  const sec = await timeGpu(native, device, iteration, iters, 1);
  log(`itool: ${fmt(sec * 1e3)} ms per iteration, peak ${(peak / 2 ** 20).toFixed(0)} MiB beyond the inputs, loss ${fmt(lastLoss, 4)}`);
  const rep: LossReport = { bench: 'loss', device: name, tokens: T, vocab: V!, hidden: H!, pairs: P!, itool: { ms: sec * 1e3, peakBytes: peak, loss: lastLoss } };
  for (const t of [hidden, weight, targets, lens]) t.dispose();

  if (o.compare === 'torch') {
    const r = runPython('loss.py', { tokens: T, vocab: V, hidden: H, pairs: P, beta, gamma, iters });
    if (!r.ok) rep.torch = { missing: r.reason };
    else {
      const t = { version: String(r.out.torch), device: String(r.out.device), ms: Number(r.out.ms), peakBytes: Number(r.out.peakBytes), loss: Number(r.out.loss) };
      rep.torch = t;
      rep.speedup = t.ms / rep.itool.ms;
      rep.memoryRatio = rep.itool.peakBytes / t.peakBytes;
    }
  }
  if (o.json) {
    process.stdout.write(JSON.stringify(rep, null, 2) + '\n');
    return;
  }
  process.stdout.write(formatLoss(rep) + '\n');
}

export function formatLoss(rep: LossReport): string {
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  const rows = [['itool (chunked, CUDA)', fmt(rep.itool.ms), mib(rep.itool.peakBytes), fmt(rep.itool.loss, 4)]];
  let note = '';
  if (rep.torch && 'missing' in rep.torch) note = `torch: not compared (${rep.torch.missing})`;
  else if (rep.torch) rows.push([`torch ${rep.torch.version} eager`, fmt(rep.torch.ms), mib(rep.torch.peakBytes), fmt(rep.torch.loss, 4)]);
  const head = `fused LM head + log-prob + SimPO loss and gradient: ${rep.tokens} tokens, vocab ${rep.vocab}, hidden ${rep.hidden}, ${rep.pairs} pairs, on ${rep.device}`;
  const tail = rep.speedup !== undefined ? `\nspeed-up ${fmt(rep.speedup)}x (torch time / itool time), memory ${fmt(rep.memoryRatio, 3)} of torch's peak` : '';
  return [head, note, table(['', 'ms', 'peak MiB', 'loss'], rows)].filter(Boolean).join('\n') + tail;
}
