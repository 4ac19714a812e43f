// Rope scaling through the whole model (model/rope.ts, the models' rotary calls): a scaled table that
// equals the built-in one (linear, factor 1) gives the same log-probs to the bit, so the scaled path
// is the default path with another table; a table that differs changes them. Its gradient is checked
// against finite differences in llama-variants-fd.test.ts and neox-variants-fd.test.ts.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF as FIX } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import type { RopeScaling } from '../../src/model/rope.js';

const rng = makeRng();

describe(`rope scaling in the model (seed ${rng.seed})`, () => {
  const cases: [string, RopeScaling][] = [
    ['gpt-neox-tiny', { type: 'linear', factor: 4 }],
    ['mistral-tiny', { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 16 }],
    ['llama-tiny-tied', { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 }],
  ];
  for (const [dir, scaled] of cases) {
    it(`${dir}: ${scaled.type} changes the log-probs; linear factor 1 leaves them as they are`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const V = m.cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const layout = buildBatch([{ prompt: ids(9), completions: [ids(7), ids(5)] }, { prompt: ids(4), completions: [ids(10), ids(6)] }], { packed: true });
      const logps = async (ropeScaling: RopeScaling | null) => {
        const model = new CausalLM(gpu, { ...m.cfg, ropeScaling }, m.params);
        const batch = uploadBatch(gpu, layout, model.cfg);
        const st = model.forward(batch, false);
        const out = await gpu.readF32(st.logp);
        gpu.pool.release(st.logp); releaseBatch(gpu, batch);
        return out;
      };
      const plain = await logps(null);
      expect(await logps({ type: 'linear', factor: 1 })).toEqual(plain);
      const other = await logps(scaled);
      const moved = Math.max(...Array.from(other, (x, i) => Math.abs(x - plain[i])));
      expect(moved).toBeGreaterThan(1e-4);
      m.params.free();
    });
  }
});
