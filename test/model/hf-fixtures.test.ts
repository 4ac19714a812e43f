// The models against Hugging Face transformers (float64 golden fixtures, test/fixtures/hf, copied
// from ../shared/fixtures/hf; Qwen3 from a float64 JAX reference of transformers' code, test/fixtures/jax): sequence log-probs (plain and augmented, packed and unpacked rows),
// all four preference losses, and every parameter gradient of each loss, on our f32 GPU path.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { FIXTURES_JAX, GOLDEN_FIXTURES } from '../helpers/models.js';
import { makePhi3Fixture } from '../helpers/phi3-fixture.js';
import { loadModel, type LoadedModel } from '../../src/model/load.js';
import { buildBatch, type PromptCompletions } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { segmentSum, segmentSumBackward } from '../../src/kernels/segment-sum.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { PREFERENCE_LOSS_TYPES, preferenceLossRef, type PreferenceLogps } from '../../src/losses/preference.ref.js';
import type { Gpu } from '../../src/engine/gpu.js';


interface Expected {
  beta: number; lambda: number; refine_prompt_ids: number[];
  pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
  logps: Record<string, number[]>;
  per_pair: Record<string, number[]>; losses_mean: Record<string, number>;
}

/** Sequence log-probs of (prompt, chosen) and (prompt, rejected) for every pair: [chosen[], rejected[]]. */
async function seqLogps(gpu: Gpu, m: LoadedModel, items: PromptCompletions[], packed: boolean, train = false) {
  const layout = buildBatch(items, { packed });
  const batch = uploadBatch(gpu, layout, m.cfg.vocabSize);
  const st = m.model.forward(batch, train);
  const sums = gpu.pool.acquire([batch.S]);
  segmentSum(gpu, { x: st.logp, ranges: batch.ranges, sums, S: batch.S });
  const s = await gpu.readF32(sums);
  gpu.pool.release(sums);
  const chosen = items.map((_, i) => s[layout.seqIndex[i][0]]);
  const rejected = items.map((_, i) => s[layout.seqIndex[i][1]]);
  return { chosen, rejected, st, batch, layout };
}

/**
 * Sequence log-probs (sums of 20-100 token log-probs, |sum| up to ~200) against float64: f32 on
 * lavapipe is within 5e-6 relative (5.8e-4 absolute at 194); 2e-5 leaves room for another GPU's
 * summation order while a wrong token or a lost position (~1 nat) fails by far.
 */
const LOGP_TOL = 2e-5;

function relClose(got: number[], want: number[], tol: number): void {
  got.forEach((g, i) => expect(Math.abs(g - want[i]) / Math.max(1, Math.abs(want[i])), `index ${i}: ${g} vs ${want[i]}`).toBeLessThan(tol));
}

// Phi-3: mistral-tiny's weights and numbers with q/k/v_proj and gate/up_proj fused as Phi-3 stores them (phi3-fixture.ts).
const DERIVED = await makePhi3Fixture(mkdtempSync(join(tmpdir(), 'srk-phi3-')));
afterAll(() => rmSync(DERIVED, { recursive: true, force: true }));

for (const [name, dir] of [...GOLDEN_FIXTURES, ['phi3-tiny', DERIVED] as const]) {
  describe(`${dir === FIXTURES_JAX ? 'JAX' : dir === DERIVED ? 'derived (HF mistral-tiny, Phi-3\'s fused layout)' : 'HF'} fixture ${name}`, () => {
    const exp: Expected = JSON.parse(readFileSync(resolve(dir, name, 'expected.json'), 'utf8'));
    const plain = exp.pairs.map((p) => ({ prompt: p.prompt_ids, completions: [p.chosen_ids, p.rejected_ids] }));
    const aug = exp.pairs.map((p) => ({ prompt: [...exp.refine_prompt_ids, ...p.prompt_ids], completions: [p.chosen_ids, p.rejected_ids] }));

    it('log-probs (plain and augmented; policy and reference; packed and unpacked) within 2e-5 relative', async () => {
      const gpu = await getGpu();
      for (const [sub, who] of [[name, 'policy'], [`${name}_ref`, 'ref']] as const) {
        const m = await loadModel(gpu, resolve(dir, sub));
        for (const packed of [false, true]) {
          const r = await seqLogps(gpu, m, plain, packed);
          relClose(r.chosen, exp.logps[`${who}_chosen`], LOGP_TOL);
          relClose(r.rejected, exp.logps[`${who}_rejected`], LOGP_TOL);
          releaseBatch(gpu, r.batch); gpu.pool.release(r.st.logp);
        }
        const a = await seqLogps(gpu, m, aug, true);
        relClose(a.chosen, exp.logps[`${who}_chosen_aug`], LOGP_TOL);
        relClose(a.rejected, exp.logps[`${who}_rejected_aug`], LOGP_TOL);
        releaseBatch(gpu, a.batch); gpu.pool.release(a.st.logp);
        m.model.destroy(); m.params.free();
      }
    });

    it('losses within 1e-4 and every parameter gradient within 1e-3 relative L2', async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(dir, name), { grads: true });
      const ref = await loadModel(gpu, resolve(dir, `${name}_ref`));
      const refPlain = await seqLogps(gpu, ref, plain, true);
      const refAug = await seqLogps(gpu, ref, aug, true);
      const polAug = await seqLogps(gpu, m, aug, true);
      for (const r of [refPlain, refAug, polAug]) { releaseBatch(gpu, r.batch); gpu.pool.release(r.st.logp); }
      for (const loss of PREFERENCE_LOSS_TYPES) {
        m.params.zeroGrads();
        const pol = await seqLogps(gpu, m, plain, true, true);
        const logps: PreferenceLogps = {
          policyChosen: pol.chosen, policyRejected: pol.rejected, refChosen: refPlain.chosen, refRejected: refPlain.rejected,
          policyChosenAug: polAug.chosen, policyRejectedAug: polAug.rejected, refChosenAug: refAug.chosen, refRejectedAug: refAug.rejected,
        };
        const res = preferenceLossRef(loss, logps, { beta: exp.beta, lambda: exp.lambda });
        relClose([...res.perPair], exp.per_pair[loss], 1e-4);
        relClose([res.loss], [exp.losses_mean[loss]], 1e-4);
        // dL/dsum per sequence -> per-token weights -> backward.
        const dsum = new Float32Array(pol.batch.S);
        exp.pairs.forEach((_, i) => { dsum[pol.layout.seqIndex[i][0]] = res.dPolicyChosen[i]; dsum[pol.layout.seqIndex[i][1]] = res.dPolicyRejected[i]; });
        const tdsum = gpu.tensor([pol.batch.S], dsum);
        const w = gpu.pool.acquire([pol.batch.N]);
        segmentSumBackward(gpu, { dsum: tdsum, ranges: pol.batch.ranges, g: w, S: pol.batch.S });
        m.model.backward(pol.st, w);
        const gfile = await openSafetensors(resolve(dir, name, `grads_${loss}.safetensors`));
        for (const pname of gfile.names) {
          // transformers 5 calls GPT-NeoX's output layer lm_head in named_parameters (the gradient
          // files) while its checkpoints keep the hub name embed_out.
          const ours = pname === 'lm_head.weight' && !m.params.has(pname) ? 'embed_out.weight' : pname;
          const g = await gpu.readF32(m.params.grad(ours));
          const r = await gfile.readTensor(pname);
          let num = 0; let den = 0;
          for (let i = 0; i < r.length; i++) { num += (g[i] - r[i]) ** 2; den += r[i] ** 2; }
          expect(Math.sqrt(num / Math.max(den, 1e-30)), `${loss} grad of ${pname}`).toBeLessThan(1e-3);
        }
        expect(gfile.names.length).toBe(m.params.specs.length);
        await gfile.close();
        gpu.pool.release(tdsum, w, pol.st.logp); releaseBatch(gpu, pol.batch);
      }
    });
  });
}
