// The packed layout computes what the unpacked one does: each completion's log-probs, per token, are
// those of its own row [prompt, completion], for every model variant (the Mistral with a sliding window
// shorter than the rows: in a packed row a rejected token's key distance in positions is not its distance
// in the row, so a window measured in the row's indices would differ here).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF as FIX, MODEL_VARIANTS } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch, type BatchLayout, type PromptCompletions } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';

const rng = makeRng();

describe(`packed against unpacked rows (seed ${rng.seed})`, () => {
  for (const [name, dir, change] of MODEL_VARIANTS) {
    it(`${name}: every completion token's log-prob`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const model = new CausalLM(gpu, { ...m.cfg, ...change }, m.params);
      const V = m.cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const items: PromptCompletions[] = [
        { prompt: ids(3 + rng.int(10)), completions: [ids(4 + rng.int(8)), ids(4 + rng.int(8))] },
        { prompt: ids(1 + rng.int(3)), completions: [ids(8 + rng.int(5)), ids(1 + rng.int(3))] },
        { prompt: ids(8), completions: [ids(2), ids(9)] },
      ];
      /** Per sequence, its scored tokens' log-probs in order. */
      const perSequence = async (layout: BatchLayout) => {
        const batch = uploadBatch(gpu, layout, model.cfg);
        const st = model.forward(batch, false);
        const logp = await gpu.readF32(st.logp);
        gpu.pool.release(st.logp); releaseBatch(gpu, batch);
        const out: number[][] = Array.from({ length: layout.numSeqs }, () => []);
        layout.seqOfToken.forEach((s, i) => { if (s >= 0) out[s].push(logp[i]); });
        return out;
      };
      const packed = await perSequence(buildBatch(items, { packed: true }));
      const apart = await perSequence(buildBatch(items, { packed: false }));
      for (let s = 0; s < packed.length; s++) {
        expect(packed[s].length).toBe(apart[s].length);
        for (let t = 0; t < packed[s].length; t++) expect(Math.abs(packed[s][t] - apart[s][t]), `sequence ${s} token ${t}`).toBeLessThan(2e-5);
      }
      m.params.free();
    });
  }
});
