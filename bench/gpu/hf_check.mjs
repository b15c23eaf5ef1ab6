#!/usr/bin/env node
// Interop check for the GPU machine (bench/gpu/run.sh): itool writes a model (random
// Qwen2-shaped weights) and a trained LoRA adapter with their logits on fixed tokens;
// bench/gpu/hf_check.py then loads both with transformers / PEFT and compares the logits.
//   node bench/gpu/hf_check.mjs DIR [device]     (needs dist/: npx tsc -p tsconfig.json)
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createModel, tinyConfig } from '../../dist/engine/index.js';

const dir = process.argv[2];
const device = process.argv[3] ?? 'cuda:0';
if (!dir) throw new Error('usage: node bench/gpu/hf_check.mjs DIR [device]');
const cfg = tinyConfig('Qwen2ForCausalLM', {
  vocabSize: 512, hiddenSize: 256, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 512, numLayers: 4,
  tieWordEmbeddings: false, maxPositionEmbeddings: 1024,
});
const m = createModel(cfg, { seed: 1, initStd: 0.05, device });
let s = 7;
const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) >>> 8) % (cfg.vocabSize - 3) + 3;
const seqs = [Array.from({ length: 40 }, rnd), Array.from({ length: 23 }, rnd)];
const logitsOf = async () => {
  const out = [];
  for (const q of seqs) {
    const r = await m.forward({ tokens: Int32Array.from(q), targets: new Int32Array(q.length).fill(-1), cuSeqlens: Int32Array.from([0, q.length]) }, { logits: true });
    out.push(Array.from(r.logits));
  }
  return out;
};
const base = await logitsOf();
await m.save(join(dir, 'model'));
// a LoRA adapter with nonzero B: a few steps on the sequences
m.addLora({ rank: 8, alpha: 16, targetModules: ['q_proj', 'v_proj', 'o_proj', 'down_proj'], seed: 3 });
const packed = seqs.flat();
const cu = [0, seqs[0].length, packed.length];
const targets = Int32Array.from(packed.map((_, i) => (i + 1 === cu[1] || i + 1 === cu[2] ? -1 : packed[i + 1])));
for (let step = 0; step < 5; step++) {
  m.zeroGrad();
  await m.forward({ tokens: Int32Array.from(packed), targets, cuSeqlens: Int32Array.from(cu) }, { train: true });
  await m.backward(Float32Array.from(targets, (t) => (t < 0 ? 0 : -1 / packed.length)));
  await m.step({ lr: 1e-2 });
}
const lora = await logitsOf();
await m.saveAdapter(join(dir, 'adapter'));
writeFileSync(join(dir, 'itool_logits.json'), JSON.stringify({ device, vocab: cfg.vocabSize, seqs, base, lora }));
m.dispose();
console.log(`wrote ${dir}/model, ${dir}/adapter and itool_logits.json (${device})`);
