// A forward without backward adds each block's residual sums into its input in place
// (gpt-neox.ts, llama.ts `inPlace`): no copy of the residual stream per block. Its log-probs must be
// those of the training forward to the bit (the same kernels on the same values, in another order),
// it must return every pooled tensor, and it must dispatch no copy.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dispatchedKernels, getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { FIXTURES_HF as FIX, MODEL_VARIANTS } from '../helpers/models.js';

const rng = makeRng();

describe(`forward without backward, residual in place (seed ${rng.seed})`, () => {
  for (const [name, dir, change] of MODEL_VARIANTS) {
    it(name, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const cfg = { ...m.cfg, ...change };
      const model = new CausalLM(gpu, cfg, m.params);
      const V = cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const layout = buildBatch([{ prompt: ids(9), completions: [ids(7), ids(4)] }, { prompt: ids(3), completions: [ids(11), ids(6)] }], { packed: true });
      const batch = uploadBatch(gpu, layout, V);

      const st = model.forward(batch, true);
      const trained = await gpu.readF32(st.logp);
      model.release(st, false);

      const before = gpu.pool.inUseBytes;
      const { names, result } = await dispatchedKernels(gpu, () => model.forward(batch, false));
      const plain = await gpu.readF32(result.logp);
      gpu.pool.release(result.logp);
      expect(gpu.pool.inUseBytes).toBe(before);
      expect(names.filter((n) => n === 'copy')).toEqual([]);
      expect(names.length).toBeGreaterThan(cfg.numLayers * 5); // (the recorder was watched)

      expect(plain.some((x) => x !== 0)).toBe(true);
      expect(Array.from(plain)).toEqual(Array.from(trained));
      releaseBatch(gpu, batch);
      m.params.free();
    });
  }
});
