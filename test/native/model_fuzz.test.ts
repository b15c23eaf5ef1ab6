// The model object's native methods with random bad arguments: each call must end in a
// JS error (thrown or rejected) or succeed harmlessly; the process must stay alive and the
// model usable afterwards.
import { describe, expect, it } from 'vitest';
import { createModel, tinyConfig } from '../../src/engine/index.js';
import { rng } from '../helpers/native.js';

describe('model boundary fuzz', () => {
  it('survives 3000 calls with bad arguments on every method', async () => {
    const cfg = tinyConfig('Qwen3ForCausalLM');
    const m = createModel(cfg, { seed: 1 });
    const h = m.handle();
    const good = (await m.cache([1, 2, 3])) as unknown as { id: number };
    const r = rng(77);
    const pick = <T,>(a: T[]): T => a[Math.floor(r() * a.length)]!;
    const leaves: unknown[] = [
      undefined, null, NaN, Infinity, -1, 0, 1, 2 ** 31, 2 ** 60, -(2 ** 60), 1.5, '', 'x', '/nonexistent/dir', '/', 'q_proj', [], [NaN], [-1],
      [2 ** 40], [0, 1], {}, true, new Float32Array(3), new Int32Array([0, 3]), new Int32Array([1, 2, 99999]), new Uint8Array(2),
      { tokens: new Int32Array([1]), targets: new Int32Array([1]), cuSeqlens: new Int32Array([0, 1]) },
      { tokens: new Int32Array([1, 2]), targets: new Int32Array([1]), cuSeqlens: new Int32Array([0, 2]) },
      { tokens: new Int32Array([1, 2]), targets: new Int32Array([1, -5]), cuSeqlens: new Int32Array([0, 2]) },
      { tokens: new Int32Array([1, 2]), targets: new Int32Array([1, 2]), cuSeqlens: new Int32Array([0, 3]) },
      { tokens: new Int32Array([1, 2]), targets: new Int32Array([1, 2]), cuSeqlens: new Int32Array([0, 2]), positions: new Int32Array([-1, 0]) },
      { lr: NaN }, { lr: -1 }, { lr: 1e-3, beta1: 2 }, { rank: 0, alpha: 1, targetModules: ['q_proj'] }, { rank: 2, alpha: 1, targetModules: ['bogus'] },
      { temperature: NaN }, { topK: -1 }, { topP: 2 }, { seed: -1 },
      good.id, good.id + 1000, [good.id, good.id], [good.id], [1e15],
    ];
    const methods = Object.keys(h).filter((k) => typeof h[k] === 'function' && k !== 'dispose');
    let calls = 0;
    for (let i = 0; i < 3000; i++) {
      const name = pick(methods);
      const args = Array.from({ length: Math.floor(r() * 3) }, () => pick(leaves));
      calls++;
      try {
        const out = h[name](...args);
        if (out && typeof out.then === 'function') await out.catch((e: unknown) => expect(e).toBeInstanceOf(Error));
      } catch (e) {
        expect(e, `${name}(${args.map((a) => String(a)).join(', ')})`).toBeInstanceOf(Error);
      }
    }
    expect(calls).toBe(3000);
    // still usable (the fuzz may have added an adapter or changed weights: compare shapes, not values)
    const lp = await m.logprobs({ tokens: Int32Array.from([1, 2, 3]), targets: Int32Array.from([2, 3, -1]), cuSeqlens: Int32Array.from([0, 3]) });
    expect(lp.length).toBe(3);
    m.dispose();
    await expect(m.logprobs({ tokens: Int32Array.from([1]), targets: Int32Array.from([-1]), cuSeqlens: Int32Array.from([0, 1]) })).rejects.toThrow(/disposed/);
  });
});
