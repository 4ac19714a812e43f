// pad_token_id on Llama / Mistral: transformers builds nn.Embedding(padding_idx = pad_token_id), so the
// embedding lookup gives that row no gradient, while the function is unchanged. With tied embeddings the
// row still gets the output layer's part (lm_head shares the Parameter; padding_idx only masks the lookup).
// Checked through the whole model: against the same model without padding_idx, and the tied case against
// an untied copy of it (lm_head = the embedding), whose two gradients are the lookup's and the output
// layer's parts apart.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF as FIX, logpAndGrads } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { Params } from '../../src/model/params.js';
import { expectedParameters } from '../../src/model/tensor-names.js';
import { copy } from '../../src/kernels/elementwise.js';

const rng = makeRng();

const row = (a: Float32Array, r: number, D: number) => a.subarray(r * D, (r + 1) * D);
const otherRows = (a: Float32Array, r: number, D: number) => Float32Array.from(a).fill(0, r * D, (r + 1) * D);

describe(`pad_token_id: the embedding row gets no lookup gradient (seed ${rng.seed})`, () => {
  for (const dir of ['mistral-tiny', 'llama-tiny-tied']) {
    it(dir, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir), { grads: true });
      const { vocabSize: V, hiddenSize: D } = m.cfg;
      const pad = 1 + rng.int(V - 1);
      // The padding id in prompts and completions (it is an ordinary token to the forward).
      const ids = (n: number) => Array.from({ length: n }, () => (rng.uniform() < 0.25 ? pad : rng.int(V)));
      const layout = buildBatch([{ prompt: [pad, ...ids(6)], completions: [[...ids(5), pad], ids(4)] },
        { prompt: ids(3), completions: [ids(7), [pad, ...ids(2)]] }], { packed: true });
      const w = Float32Array.from({ length: layout.B * layout.T }, () => rng.normal());
      const embed = 'model.embed_tokens.weight';
      const plain = await logpAndGrads(gpu, new CausalLM(gpu, m.cfg, m.params), layout, w);
      const padded = await logpAndGrads(gpu, new CausalLM(gpu, { ...m.cfg, embedPaddingIdx: pad }, m.params), layout, w);
      // The same function and the same other gradients (equal here; a GPU's tuner may pick another tiling
      // between the passes, hence the tolerance).
      expect(relErr(padded.logp, plain.logp)).toBeLessThan(1e-6);
      for (const s of m.params.specs) {
        const a = plain.grads.get(s.name)!; const b = padded.grads.get(s.name)!;
        if (s.name === embed) expect(relErr(otherRows(b, pad, D), otherRows(a, pad, D))).toBeLessThan(1e-6);
        else expect(relErr(b, a), s.name).toBeLessThan(1e-6);
      }
      const padRow = row(padded.grads.get(embed)!, pad, D);
      if (!m.cfg.tiedEmbeddings) {
        expect(padRow.every((v) => v === 0)).toBe(true);
        expect(row(plain.grads.get(embed)!, pad, D).some((v) => v !== 0)).toBe(true);
      } else {
        // Untied copy: lm_head = the embedding; its two gradients are the lookup's and the output layer's parts.
        const cfg = { ...m.cfg, tiedEmbeddings: false };
        const params = new Params(gpu, expectedParameters(cfg)).allocate();
        params.allocateGrads();
        for (const s of params.specs) copy(gpu, m.params.get(s.name === 'lm_head.weight' ? embed : s.name), params.get(s.name));
        const apart = await logpAndGrads(gpu, new CausalLM(gpu, cfg, params), layout, w);
        const lookup = row(apart.grads.get(embed)!, pad, D); const output = row(apart.grads.get('lm_head.weight')!, pad, D);
        expect(lookup.some((v) => v !== 0) && output.some((v) => v !== 0)).toBe(true);
        expect(relErr(padRow, output)).toBeLessThan(1e-5);
        expect(relErr(row(plain.grads.get(embed)!, pad, D), Float32Array.from(lookup, (v, i) => v + output[i]))).toBeLessThan(1e-5);
        params.free();
      }
      m.params.free();
    });
  }
});
