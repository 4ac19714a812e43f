// One optimizer step on the GPU: gradients of one batch of pairs accumulated over micro-batches,
// then clipping and the optimizer update. Nothing is read back until the whole step is recorded;
// the metrics come back in one readback at the end (Gpu.readManyF32).
//
// Preference losses, per micro-batch of m pairs (packed rows: each prompt computed once):
//   [sr only] policy forward without gradients on the augmented pairs -> logps rows 4, 5
//             (its matmuls in c.augMatmulPrecision: f16 on tensor cores even in an f32 step, if asked)
//   policy forward with activations on the plain pairs                -> logps rows 0, 1
//   reference rows 2, 3 (and 6, 7) come from the cache (uploaded)
//   preferenceLoss: per-pair loss, dL/dlogp (scaled by 1/batch so the micro-batches add up to
//   the gradient of the batch mean), metrics
//   segmentSumBackward -> per-token weights -> model backward (gradients accumulate)
// SFT: the mean NLL over every completion token of the batch; per-token weight -1/T_batch.
import type { Gpu } from '../engine/gpu.js';
import { withMatmulPrecision } from '../engine/precision.js';
import type { Tensor } from '../engine/tensor.js';
import { segmentSum, segmentSumBackward } from '../kernels/segment-sum.js';
import { preferenceLoss, PREFERENCE_STATS, preferenceStats } from '../losses/preference.js';
import { sftLoss, sftWeights } from '../losses/sft.js';
import { buildBatch, type BatchLayout, type PromptCompletions } from '../model/batch.js';
import { releaseBatch, uploadBatch, type UploadedBatch } from '../model/gpu-batch.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { Optimizer } from '../kernels/optimizer.js';
import { sameCompletions, type TokenizedPair } from '../data/tokenize-pairs.js';
import type { ReferenceLogps } from './reference.js';
import { lengthOrder } from './length-order.js';
import { isSrLoss, type LossName } from './options.js';

export interface StepInput {
  pairs: readonly TokenizedPair[];
  /** Index of each pair in the data set (for the reference cache). */
  indices: ArrayLike<number>;
  ref?: ReferenceLogps;
}

export interface StepConfig {
  loss: LossName; beta: number; lambda: number; microBatchSize: number; lr: number; t: number;
  /** cDPO's label smoothing (dpo, sr-dpo; options.ts TrainOptions.labelSmoothing); default 0. */
  labelSmoothing?: number;
  /** Pack each pair into one row, prompt once (default); false: one row per sequence. */
  packed?: boolean;
  /** Longest pairs first, so micro-batches hold similar lengths (default); false: in the given order. */
  orderByLength?: boolean;
  /**
   * Matmul operand precision of the augmented pass (Sr losses; precision.ts setAugPrecision); default
   * gpu.matmulPrecision, as the rest of the step.
   */
  augMatmulPrecision?: 'f32' | 'f16';
}

export interface StepMetrics {
  loss: number; margin: number | null; accuracy: number | null; augAccuracy: number | null;
  rewardChosen: number | null; rewardRejected: number | null; logpChosen: number; logpRejected: number | null;
  gradNorm: number; tokens: number;
  /** Augmented-pass tokens computed once for several rows: their shared refinement prompt (shared-prefix.ts). */
  augSharedTokens: number;
  /**
   * Host milliseconds spent recording the step's work (from the call until the optimizer update was
   * recorded, before the readback) and the dispatches recorded: when recordMs approaches the step's
   * time the host, not the GPU, bounds the step (bench step reports both).
   */
  recordMs: number; dispatches: number;
}

/**
 * The token ranges of a micro-batch's m chosen then m rejected completions ([2m, 2] u32, the loss kernel's
 * order), for segmentSum. `same[i]`: pair
 * i's completions are the same tokens (sameCompletions): forward, its rejected sum is read over the chosen
 * tokens (one sum for both, a margin of exactly 0); backward (`grads`), both ranges are empty, the gradient of
 * a margin that is 0 whatever the weights.
 */
function chosenThenRejected(layout: BatchLayout, m: number, same?: readonly boolean[], grads = false): Uint32Array {
  const byRun = new Uint32Array(2 * 2 * m);
  const put = (slot: number, seq: number) => {
    const runs = layout.seqRanges[seq];
    if (runs.length !== 1) throw new Error(`sequence ${seq} is not contiguous in the batch`);
    byRun[2 * slot] = runs[0][0]; byRun[2 * slot + 1] = runs[0][1];
  };
  for (let i = 0; i < m; i++) {
    if (same?.[i] && grads) continue; // (start, end) = (0, 0): empty
    put(i, layout.seqIndex[i][0]);
    put(m + i, layout.seqIndex[i][same?.[i] ? 0 : 1]);
  }
  return byRun;
}

function tokensOf(layout: BatchLayout): number {
  let n = 0; for (const l of layout.lengths) n += l; return n;
}

export function microBatches(n: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = 0; s < n; s += size) out.push([s, Math.min(n, s + size)]);
  return out;
}

export async function trainStep(gpu: Gpu, model: CausalLM, optimizer: Optimizer, grads: Tensor[], inp: StepInput, c: StepConfig): Promise<StepMetrics> {
  const t0 = performance.now();
  const dispatches0 = gpu.recorder.totalDispatches;
  const params = model.params;
  params.zeroGrads();
  // Micro-batches of similar lengths (length-order.ts): less padding, the same step.
  const order = c.orderByLength === false ? inp.pairs.map((_, i) => i) : lengthOrder(inp.pairs);
  inp = { ...inp, pairs: order.map((i) => inp.pairs[i]), indices: Int32Array.from(order, (i) => inp.indices[i]) };
  const B = inp.pairs.length;
  const sr = isSrLoss(c.loss);
  let tokens = 0;
  let augSharedTokens = 0;
  const statsTensors: { t: Tensor; m: number }[] = [];
  const sftStats: Tensor[] = [];
  let sftTokens = 0;
  if (c.loss === 'sft') for (const p of inp.pairs) sftTokens += p.chosenIds.length;

  for (const [s, e] of microBatches(B, c.microBatchSize)) {
    const m = e - s;
    const mb = inp.pairs.slice(s, e);
    if (c.loss === 'sft') {
      const layout = buildBatch(mb.map((p) => ({ prompt: p.promptIds, completions: [p.chosenIds] })), { packed: false });
      tokens += tokensOf(layout);
      const batch = uploadBatch(gpu, layout, model.cfg);
      // Token-weighted over the whole step: every counted token of every micro-batch weighs -1/T_batch.
      const weights = gpu.pool.acquire([batch.N], 'f32', 'token_weights');
      const stats = gpu.pool.acquire([2], 'f32', 'sft_stats');
      sftWeights(gpu, { targets: batch.targets, weights, stats, N: batch.N, count: sftTokens });
      const st = model.forward(batch, true);
      sftLoss(gpu, { logp: st.logp, targets: batch.targets, stats, N: batch.N, count: sftTokens });
      sftStats.push(stats);
      model.backward(st, weights);
      gpu.pool.release(st.logp, weights);
      releaseBatch(gpu, batch);
      continue;
    }
    const same = mb.map(sameCompletions);
    // Reference rows of the logps tensor, uploaded with zeros in the policy rows.
    const R = sr ? 8 : 4;
    const host = new Float32Array(R * m);
    for (let i = 0; i < m; i++) {
      const k = inp.indices[s + i];
      if (!inp.ref) throw new Error('preference loss without reference log-probs');
      host[2 * m + i] = inp.ref.plain.chosen[k]; host[3 * m + i] = inp.ref.plain.rejected[k];
      if (sr) {
        if (!inp.ref.aug) throw new Error(`${c.loss} needs augmented reference log-probs`);
        host[6 * m + i] = inp.ref.aug.chosen[k]; host[7 * m + i] = inp.ref.aug.rejected[k];
      }
      // NaN: a pair the reference pass left out (reference.ts `needed`): a bug to name, not a loss of NaN.
      if ([2, 3, ...(sr ? [6, 7] : [])].some((row) => Number.isNaN(host[row * m + i]))) throw new Error(`pair ${k} has no reference log-probs (not scored)`);
    }
    const logps = gpu.tensor([R, m], host, 'f32', 'pair_logps');
    if (sr) {
      const items: PromptCompletions[] = mb.map((p, i) => {
        if (!p.augPromptIds) throw new Error(`pair ${inp.indices[s + i]} has no augmented prompt`);
        return { prompt: p.augPromptIds, completions: [p.chosenIds, p.rejectedIds] };
      });
      const layout = buildBatch(items, { packed: c.packed ?? true });
      // Every augmented row begins with the refinement prompt: it goes through the blocks once (shared-prefix.ts).
      const batch = uploadBatch(gpu, layout, model.cfg, { sharePrefix: true });
      if (batch.shared) augSharedTokens += (batch.B - 1) * batch.shared.L;
      const ranges = gpu.tensor([2 * m, 2], chosenThenRejected(layout, m, same), 'u32', 'ranges_cr');
      const st = withMatmulPrecision(gpu, c.augMatmulPrecision, () => model.forward(batch, false));
      segmentSum(gpu, { x: st.logp, ranges, sums: logps.view([2 * m], 4 * m), S: 2 * m });
      gpu.pool.release(st.logp, ranges);
      releaseBatch(gpu, batch);
    }
    const layout = buildBatch(mb.map((p) => ({ prompt: p.promptIds, completions: [p.chosenIds, p.rejectedIds] })), { packed: c.packed ?? true });
    tokens += tokensOf(layout);
    const batch: UploadedBatch = uploadBatch(gpu, layout, model.cfg);
    const ranges = gpu.tensor([2 * m, 2], chosenThenRejected(layout, m, same), 'u32', 'ranges_cr');
    // Pairs of the same tokens twice take no gradient: their own ranges for the backward (chosenThenRejected).
    const gradRanges = same.some(Boolean) ? gpu.tensor([2 * m, 2], chosenThenRejected(layout, m, same, true), 'u32', 'ranges_cr_grad') : ranges;
    const st = model.forward(batch, true);
    segmentSum(gpu, { x: st.logp, ranges, sums: logps.view([2 * m], 0), S: 2 * m });
    const grad = gpu.pool.acquire([2, m], 'f32', 'dlogps');
    const stats = gpu.pool.acquire([PREFERENCE_STATS.length], 'f32', 'loss_stats');
    preferenceLoss(gpu, { type: c.loss, beta: c.beta, lambda: c.lambda, labelSmoothing: c.labelSmoothing, P: m, logps, grad, stats, gradScale: 1 / B, hasAug: sr });
    const weights = gpu.pool.acquire([batch.N], 'f32', 'token_weights');
    segmentSumBackward(gpu, { dsum: grad, ranges: gradRanges, g: weights, S: 2 * m });
    model.backward(st, weights);
    statsTensors.push({ t: stats, m });
    gpu.pool.release(st.logp, ranges, grad, weights, logps, ...(gradRanges !== ranges ? [gradRanges] : []));
    releaseBatch(gpu, batch);
  }
  optimizer.setStep(c.lr, c.t);
  optimizer.step(grads);
  const recordMs = performance.now() - t0;
  const dispatches = gpu.recorder.totalDispatches - dispatches0;
  // One readback for the whole step: the gradient norm and every micro-batch's statistics.
  const [norm, ...statValues] = await gpu.readManyF32([optimizer.norm, ...sftStats, ...statsTensors.map((s) => s.t)]);
  // The first steps time candidate kernels (engine/tuner.ts); the readback above means they ran.
  await gpu.tuner?.settle();
  // Nothing recorded or in flight now: free buffers past twice the peak in use may go (engine/tensor.ts).
  gpu.pool.trimExcess();
  const out: StepMetrics = {
    loss: 0, margin: null, accuracy: null, augAccuracy: null, rewardChosen: null, rewardRejected: null,
    logpChosen: 0, logpRejected: null, gradNorm: norm[0], tokens, augSharedTokens, recordMs, dispatches,
  };
  if (c.loss === 'sft') {
    // Each micro-batch's stats[0] is its share of the step's mean NLL (divided by the step's count).
    let loss = 0;
    for (const v of statValues) loss += v[0];
    gpu.pool.release(...sftStats);
    out.loss = loss; out.logpChosen = (-loss * sftTokens) / B;
  } else {
    const acc: Record<string, number> = {};
    statsTensors.forEach(({ t, m }, i) => {
      const st = preferenceStats(statValues[i], sr);
      for (const [k, v] of Object.entries(st)) acc[k] = (acc[k] ?? 0) + v * m;
      gpu.pool.release(t);
    });
    const mean = (k: string) => acc[k] / B;
    Object.assign(out, {
      loss: mean('loss'), margin: mean('margin'), accuracy: mean('accuracy'), augAccuracy: sr ? mean('augAccuracy') : null,
      rewardChosen: mean('rewardsChosen'), rewardRejected: mean('rewardsRejected'), logpChosen: mean('logpsChosen'), logpRejected: mean('logpsRejected'),
    });
  }
  return out;
}
