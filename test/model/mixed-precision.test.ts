// Mixed precision (f16 matmul operands, f32 sums; gradients' operands scaled per tensor) against the
// float64 Hugging Face fixtures: log-probs, the DPO loss and every parameter gradient stay within
// f16's reach of the f32 path. On adapters without tensor-core f16 this runs the f32 kernels with
// f16-rounded operands, which is the same arithmetic up to summation order.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { GOLDEN_FIXTURES } from '../helpers/models.js';
import { loadModel, type LoadedModel } from '../../src/model/load.js';
import { buildBatch, type PromptCompletions } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { segmentSum, segmentSumBackward } from '../../src/kernels/segment-sum.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { preferenceLossRef } from '../../src/losses/preference.ref.js';
import type { Gpu } from '../../src/engine/gpu.js';


interface Expected {
  beta: number; lambda: number;
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  logps: Record<string, number[]>; losses_mean: Record<string, number>;
}

async function seqLogps(gpu: Gpu, m: LoadedModel, items: PromptCompletions[], train: boolean) {
  const layout = buildBatch(items, { packed: true });
  const batch = uploadBatch(gpu, layout, m.cfg.vocabSize);
  const st = m.model.forward(batch, train);
  const sums = gpu.pool.acquire([batch.S]);
  segmentSum(gpu, { x: st.logp, ranges: batch.ranges, sums, S: batch.S });
  const s = await gpu.readF32(sums);
  gpu.pool.release(sums);
  return { chosen: items.map((_, i) => s[layout.seqIndex[i][0]]), rejected: items.map((_, i) => s[layout.seqIndex[i][1]]), st, batch, layout };
}

for (const [name, dir] of GOLDEN_FIXTURES) {
  describe(`mixed precision, fixture ${name}`, () => {
    const exp: Expected = JSON.parse(readFileSync(resolve(dir, name, 'expected.json'), 'utf8'));
    const plain = exp.pairs.map((p) => ({ prompt: p.prompt_ids, completions: [p.chosen_ids, p.rejected_ids] }));

    // Measured on lavapipe (f16 staging) 2026-11-27: |dlogp| <= 6.7e-3 per sequence of 30-50
    // tokens (issue 6 asks 1e-2), DPO loss within 1e-4 relative, gradients within 1.4e-3 relative L2
    // (f32: 1e-3 is the bound there too, with most tensors near 1e-6).
    it('log-probs within 1e-2, DPO loss within 1e-3 and every gradient within 5e-3 relative L2 of float64', async () => {
      const gpu = await getGpu();
      try {
        const m = await loadModel(gpu, resolve(dir, name), { grads: true });
        gpu.matmulPrecision = 'f32';
        const f32 = await seqLogps(gpu, m, plain, false);
        releaseBatch(gpu, f32.batch); gpu.pool.release(f32.st.logp);
        gpu.matmulPrecision = 'f16';
        const pol = await seqLogps(gpu, m, plain, true);
        const lp = [...pol.chosen, ...pol.rejected];
        const want = [...exp.logps.policy_chosen, ...exp.logps.policy_rejected];
        lp.forEach((v, i) => expect(Math.abs(v - want[i]), `sequence ${i}: ${v} vs ${want[i]}`).toBeLessThan(1e-2));
        // f16 rounding is really in effect: the f32 kernels are deterministic, so any difference is it.
        const fromF32 = Math.max(...[...f32.chosen, ...f32.rejected].map((v, i) => Math.abs(v - lp[i])));
        expect(fromF32).toBeGreaterThan(1e-5);
        const logps = {
          policyChosen: pol.chosen, policyRejected: pol.rejected, refChosen: exp.logps.ref_chosen, refRejected: exp.logps.ref_rejected,
        };
        const res = preferenceLossRef('dpo', logps, { beta: exp.beta, lambda: exp.lambda });
        expect(Math.abs(res.loss - exp.losses_mean.dpo) / exp.losses_mean.dpo).toBeLessThan(1e-3);
        const dsum = new Float32Array(pol.batch.S);
        exp.pairs.forEach((_, i) => { dsum[pol.layout.seqIndex[i][0]] = res.dPolicyChosen[i]; dsum[pol.layout.seqIndex[i][1]] = res.dPolicyRejected[i]; });
        const tdsum = gpu.tensor([pol.batch.S], dsum);
        const w = gpu.pool.acquire([pol.batch.N]);
        segmentSumBackward(gpu, { dsum: tdsum, ranges: pol.batch.ranges, g: w, S: pol.batch.S });
        m.model.backward(pol.st, w);
        const gfile = await openSafetensors(resolve(dir, name, 'grads_dpo.safetensors'));
        for (const pname of gfile.names) {
          const ours = pname === 'lm_head.weight' && !m.params.has(pname) ? 'embed_out.weight' : pname;
          const g = await gpu.readF32(m.params.grad(ours));
          const r = await gfile.readTensor(pname);
          let num = 0; let den = 0;
          for (let i = 0; i < r.length; i++) { num += (g[i] - r[i]) ** 2; den += r[i] ** 2; }
          expect(Math.sqrt(num / Math.max(den, 1e-30)), `grad of ${pname}`).toBeLessThan(5e-3);
        }
        await gfile.close();
        gpu.pool.release(tdsum, w, pol.st.logp); releaseBatch(gpu, pol.batch);
        m.model.destroy(); m.params.free();
      } finally {
        gpu.matmulPrecision = 'f32';
      }
    });
  });
}
