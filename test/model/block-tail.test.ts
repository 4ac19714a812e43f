// The last block's tail (after attention) runs on the scored rows only (block-tail.ts), and so do the
// final norm and the backward through them. Against the last block on every row
// (SRK_LAST_BLOCK_TRIM=0): the same log-probs, training and not, and the same gradient of every
// parameter up to summation order, for every architecture, packed and unpacked in f32, packed in mixed.
// (test/model/hf-fixtures.test.ts checks the trimmed model against transformers as well.)
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch, type PromptCompletions } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch, type UploadedBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { lastBlockTail } from '../../src/model/block-tail.js';
import type { GpuBatch } from '../../src/model/context.js';
import { FIXTURES_HF as FIX, MODEL_VARIANTS } from '../helpers/models.js';

const rng = makeRng();
const saved = process.env.SRK_LAST_BLOCK_TRIM;
afterEach(() => { if (saved === undefined) delete process.env.SRK_LAST_BLOCK_TRIM; else process.env.SRK_LAST_BLOCK_TRIM = saved; });

describe(`last block's tail on the scored rows (seed ${rng.seed})`, () => {
  it('SRK_LAST_BLOCK_TRIM other than 0 or 1 is refused by name', () => {
    process.env.SRK_LAST_BLOCK_TRIM = 'yes';
    expect(() => lastBlockTail({} as GpuBatch)).toThrow(/SRK_LAST_BLOCK_TRIM=yes: expected 0 or 1/);
  });

  for (const [name, dir, change] of MODEL_VARIANTS) {
    it(`${name}: log-probs and gradients as on every row`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir), { grads: true });
      const cfg = { ...m.cfg, ...change };
      const model = new CausalLM(gpu, cfg, m.params);
      const V = cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const items: PromptCompletions[] = [
        { prompt: ids(4 + rng.int(8)), completions: [ids(2 + rng.int(8)), ids(2 + rng.int(8))] },
        { prompt: ids(1 + rng.int(4)), completions: [ids(2 + rng.int(8)), ids(1 + rng.int(3))] },
      ];
      let warm = false; // (the first pass makes the pool's lasting tensors: the usage check starts after it)
      try {
        for (const packed of [true, false]) {
          // Mixed precision in the packed layout only, the step's (each case compiles its own kernels: suite time).
          for (const precision of packed ? ['f32', 'f16'] as const : ['f32'] as const) {
            gpu.matmulPrecision = precision;
            const what = `${packed ? 'packed' : 'unpacked'} ${precision}`;
            const batch = uploadBatch(gpu, buildBatch(items, { packed }), V);
            const w = Float32Array.from({ length: batch.layout.B * batch.layout.T }, (_, i) => (batch.layout.targets[i] >= 0 ? rng.normal() : 0));
            process.env.SRK_LAST_BLOCK_TRIM = '0';
            const all = await run(batch, w, false);
            process.env.SRK_LAST_BLOCK_TRIM = '1';
            const trimmed = await run(batch, w, true);
            expect(trimmed.logp.some((x) => x !== 0)).toBe(true);
            // f32: the same products on the same rows, the same bits on lavapipe (a GPU's rule may tile
            // n rows otherwise than N: 1e-5). f16: operands take a power-of-two scale from their tensor's
            // max, over the scored rows perhaps another, so another rounding (measured up to 3.5e-4 a token).
            const tol = precision === 'f32' ? 1e-5 : 3e-3;
            trimmed.logp.forEach((v, i) => expect(Math.abs(v - all.logp[i]), `${what} token ${i}`).toBeLessThan(tol));
            trimmed.noGrad.forEach((v, i) => expect(Math.abs(v - all.noGrad[i]), `${what} token ${i}`).toBeLessThan(tol));
            for (const [pname, g] of all.grads) {
              const t = trimmed.grads.get(pname)!;
              let d2 = 0; let n2 = 0;
              g.forEach((v, i) => { d2 += (v - t[i]) ** 2; n2 += v * v; });
              // f32: measured up to 1.1e-7; f16 up to 8.3e-4 (the mixed path is within 5e-3 of float64).
              expect(Math.sqrt(d2 / Math.max(n2, 1e-30)), `${what} ${pname}`).toBeLessThan(precision === 'f32' ? 1e-5 : 5e-3);
            }
            releaseBatch(gpu, batch);
          }
        }
      } finally {
        gpu.matmulPrecision = 'f32';
        m.params.free();
      }

      // Log-probs of a training forward and of one without backward, and every gradient; the pool's
      // usage ends where it started, and the final norm had n rows exactly where trimmed.
      async function run(batch: UploadedBatch, w: Float32Array, trim: boolean) {
        const before = gpu.pool.inUseBytes;
        m.params.zeroGrads();
        const st = model.forward(batch, true);
        expect(st.tail).toBe(trim);
        expect(st.xL.shape[0]).toBe(trim ? batch.scored.n : batch.N);
        const logp = await gpu.readF32(st.logp);
        const weights = gpu.tensor([w.length], w, 'f32', 'weights');
        model.backward(st, weights);
        gpu.pool.release(st.logp, weights);
        const grads = new Map<string, Float32Array>();
        for (const sp of m.params.specs) grads.set(sp.name, await gpu.readF32(m.params.grad(sp.name)));
        const ng = model.forward(batch, false);
        const noGrad = await gpu.readF32(ng.logp);
        gpu.pool.release(ng.logp);
        if (warm) expect(gpu.pool.inUseBytes).toBe(before);
        warm = true;
        return { logp, noGrad, grads };
      }
    });
  }
});
