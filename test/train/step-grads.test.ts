// trainStep's gradients, parameter by parameter, against the Hugging Face fixtures' d(mean loss)/d(param)
// (grads_LOSS.safetensors, float64 from transformers): the batch of 6 pairs over micro-batches of 4 + 2
// and 3 x 2, packed and unpacked rows. first-step.test.ts checks the same runs through their global
// norm only, which a mis-scaled or dropped small tensor (a LayerNorm bias) moves by less than its
// tolerance; here each tensor is compared on its own.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { fixture } from './helpers.js';
import { loadModel } from '../../src/model/load.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { Optimizer } from '../../src/kernels/optimizer.js';
import { trainStep } from '../../src/train/step.js';
import type { TokenizedPair } from '../../src/data/tokenize-pairs.js';
import type { ReferenceLogps } from '../../src/train/reference.js';

interface Expected {
  beta: number; lambda: number; refine_prompt_ids: number[];
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  logps: Record<string, number[]>;
}

const CASES = [
  { name: 'gpt-neox-tiny', loss: 'dpo', micro: 4, packed: true },
  { name: 'gpt-neox-tiny', loss: 'sr-ipo', micro: 2, packed: false },
  { name: 'mistral-tiny', loss: 'sr-dpo', micro: 2, packed: true },
  { name: 'llama-tiny-tied', loss: 'ipo', micro: 4, packed: true },
] as const;

describe('trainStep: every parameter gradient accumulated over micro-batches equals the fixture\'s (1e-3 relative L2)', () => {
  for (const c of CASES) {
    it(`${c.name} ${c.loss}, micro-batches of ${c.micro}, ${c.packed ? 'packed' : 'unpacked'}`, async () => {
      const gpu = await getGpu();
      const dir = fixture(c.name);
      const exp = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
      const pairs: TokenizedPair[] = exp.pairs.map((p) => ({
        promptIds: p.prompt_ids, chosenIds: p.chosen_ids, rejectedIds: p.rejected_ids,
        augPromptIds: [...exp.refine_prompt_ids, ...p.prompt_ids], truncated: false,
      }));
      const tokens = (k: 'chosen_ids' | 'rejected_ids') => Int32Array.from(exp.pairs, (p) => p[k].length);
      const ref: ReferenceLogps = {
        plain: { chosen: Float64Array.from(exp.logps.ref_chosen), rejected: Float64Array.from(exp.logps.ref_rejected), chosenTokens: tokens('chosen_ids'), rejectedTokens: tokens('rejected_ids') },
        aug: { chosen: Float64Array.from(exp.logps.ref_chosen_aug), rejected: Float64Array.from(exp.logps.ref_rejected_aug), chosenTokens: tokens('chosen_ids'), rejectedTokens: tokens('rejected_ids') },
      };
      const m = await loadModel(gpu, dir, { grads: true });
      const gradList = m.params.specs.map((s) => m.params.grad(s.name));
      const optimizer = new Optimizer(gpu, { type: 'rmsprop' }, m.params.specs.map((s) => m.params.get(s.name)), { maxGradNorm: 10 });
      const gfile = await openSafetensors(join(dir, `grads_${c.loss}.safetensors`));
      try {
        // lr 0: the weights stay the fixture's; the gradients stay in place after the update.
        const r = await trainStep(gpu, m.model, optimizer, gradList, { pairs, indices: pairs.map((_, i) => i), ref },
          { loss: c.loss, beta: exp.beta, lambda: exp.lambda, microBatchSize: c.micro, lr: 0, t: 1, packed: c.packed });
        expect(Number.isFinite(r.loss)).toBe(true);
        expect(gfile.names.length).toBe(m.params.specs.length);
        for (const pname of gfile.names) {
          // transformers 5 names GPT-NeoX's output layer lm_head in its gradient files (checkpoints: embed_out).
          const ours = pname === 'lm_head.weight' && !m.params.has(pname) ? 'embed_out.weight' : pname;
          const g = await gpu.readF32(m.params.grad(ours));
          const want = await gfile.readTensor(pname);
          expect(g.length, pname).toBe(want.length);
          let num = 0; let den = 0;
          for (let i = 0; i < want.length; i++) { num += (g[i] - want[i]) ** 2; den += want[i] ** 2; }
          expect(den, `${pname}: the fixture's gradient is zero`).toBeGreaterThan(0);
          expect(Math.sqrt(num / den), `${c.loss} grad of ${pname}`).toBeLessThan(1e-3);
        }
      } finally {
        await gfile.close();
        optimizer.release();
        m.model.destroy(); m.params.free();
      }
    });
  }
});
