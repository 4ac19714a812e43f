// Sequence log-probs of tokenized pairs without gradients: the reference pass, `srk logprobs`,
// `srk eval`, and the policy's augmented pass outside training. Pairs go through in micro-batches
// in the packed layout (each prompt computed once for both completions).
import type { Gpu } from '../engine/gpu.js';
import { withMatmulPrecision } from '../engine/precision.js';
import { segmentSum } from '../kernels/segment-sum.js';
import { buildBatch, type BatchLayout, type PromptCompletions } from '../model/batch.js';
import type { Tensor } from '../engine/tensor.js';
import { lengthOrder } from './length-order.js';
import { releaseBatch, uploadBatch } from '../model/gpu-batch.js';
import type { CausalLM } from '../model/causal-lm.js';
import { isSftPair, sameCompletions, type TokenizedPair } from '../data/tokenize-pairs.js';
import { userError } from '../errors.js';

export interface PairLogps {
  /** An SFT row (isSftPair) has no rejected response: its rejected log-prob and tokens are 0. */
  chosen: Float64Array; rejected: Float64Array;
  chosenTokens: Int32Array; rejectedTokens: Int32Array;
}

export interface ScoreOptions {
  /** Pairs per forward pass. */
  microBatch: number;
  /** Score the augmented prompt (refine prompt ++ prompt) instead of the plain one. */
  augmented?: boolean;
  packed?: boolean;
  /** Matmul operand precision of the forward passes; default gpu.matmulPrecision (precision.ts setAugPrecision). */
  matmulPrecision?: 'f32' | 'f16';
  onProgress?: (done: number, total: number) => void;
  /** Called once before the first micro-batch with the pairs already scored (a resumed pass's) and the total (Progress.start). */
  onStart?: (done: number, total: number) => void;
  /** How an error names pair k (e.g. its data file and line); default `pair k`. */
  pairName?: (k: number) => string;
  /**
   * An interrupted pass's results (reference.ts): the pairs marked in `done` are not scored again, and
   * the others are written into `logps`, which is returned.
   */
  resume?: { logps: PairLogps; done: Uint8Array };
  /** The pairs to score (1 each; default all): a run that trains on only some scores their reference alone (reference.ts). */
  only?: Uint8Array;
  /** After each readback: the results so far and which pairs they cover (a partial save). */
  onResults?: (logps: PairLogps, done: Uint8Array) => void;
  /** Asked before each micro-batch: true stops the pass (ScoringStopped) once what was recorded is read back. */
  stop?: () => boolean;
}

/** A pass stopped by ScoreOptions.stop (a signal during an evaluation: the run saves rather than finish it). */
export class ScoringStopped extends Error {
  constructor() { super('scoring stopped'); }
}

/**
 * What a non-finite result in f16 operands may also be, and the flag that tells it from the data or the model:
 * `--aug-precision` where only the augmented pass runs in f16 (an f32 run's, `passPrecision` f16), else `--precision`.
 * Empty where nothing ran in f16. Scoring passes (here) and a training step (trainer.ts) say it alike.
 */
export function mixedHint(gpu: Gpu, passPrecision?: 'f32' | 'f16'): string {
  if ((passPrecision ?? gpu.matmulPrecision) !== 'f16') return '';
  const augOnly = passPrecision === 'f16' && gpu.matmulPrecision !== 'f16';
  return ` (${augOnly ? 'the augmented pass in mixed precision, --aug-precision mixed' : 'mixed precision'}: a weight or an activation ` +
    `past f16's range, 65504, ends this way too; ${augOnly ? '--aug-precision' : '--precision'} f32 tells the two apart)`;
}

/** Arrays for the log-probs of `n` pairs. */
export function emptyLogps(n: number): PairLogps {
  return { chosen: new Float64Array(n), rejected: new Float64Array(n), chosenTokens: new Int32Array(n), rejectedTokens: new Int32Array(n) };
}

export async function scorePairs(gpu: Gpu, model: CausalLM, pairs: readonly TokenizedPair[], o: ScoreOptions): Promise<PairLogps> {
  const P = pairs.length;
  const out: PairLogps = o.resume?.logps ?? emptyLogps(P);
  const scored = o.resume?.done ?? new Uint8Array(P);
  // Longest first, so micro-batches carry little padding (length-order.ts); results go back to
  // the pairs' own places. Sums are read back every READ_EVERY micro-batches, in one readback, not
  // after each, so the GPU is not left idle while the host waits and then records the next one.
  // Pairs a resumed pass has already are left out, and so are those not asked for (`only`).
  const order = lengthOrder(pairs, o.augmented).filter((k) => !scored[k] && (!o.only || o.only[k]));
  const pending: { sums: Tensor; idx: number[]; layout: BatchLayout }[] = [];
  const total = o.only ? o.only.reduce((a, x) => a + x, 0) : P;
  let done = total - order.length;
  o.onStart?.(done, total);
  let reported = -1; // the count last reported: the end once (the loop's last micro-batches may have been read already)
  const drain = async () => {
    const batch = pending.splice(0);
    const values = await gpu.readManyF32(batch.map((q) => q.sums));
    // Pairs whose log-prob is not finite: the first named, the others of this readback counted (a model that
    // overflows does so on every pair, and naming one alone read as that row's fault).
    const bad: { k: number; chosen: number; rejected?: number }[] = [];
    let read = 0;
    for (const [j, q] of batch.entries()) {
      const s = values[j];
      gpu.pool.release(q.sums);
      q.idx.forEach((k, i) => {
        const [c, r] = q.layout.seqIndex[i];
        out.chosen[k] = s[c]; out.chosenTokens[k] = q.layout.tokenCounts[c];
        // An SFT row has one completion (r undefined): rejected stays 0 with 0 tokens.
        // (The same tokens twice: one sum for both, so the margin is exactly 0: sameCompletions.)
        if (r !== undefined) { out.rejected[k] = sameCompletions(pairs[k]) ? s[c] : s[r]; out.rejectedTokens[k] = q.layout.tokenCounts[r]; }
        if (!Number.isFinite(s[c]) || (r !== undefined && !Number.isFinite(s[r]))) bad.push({ k, chosen: s[c], rejected: r !== undefined ? s[r] : undefined });
      });
      read += q.idx.length;
      done += q.idx.length;
      for (const k of q.idx) scored[k] = 1;
    }
    if (bad.length) {
      // A model that overflows on this data (f16 past 65504, say): the user's to see, not a stack trace.
      const { k, chosen, rejected } = bad[0];
      throw userError(`${o.pairName ? o.pairName(k) : `pair ${k}`}: log-prob is not finite (chosen ${chosen}` +
        `${rejected !== undefined ? `, rejected ${rejected}` : ''})` +
        `${bad.length > 1 ? `; so are ${bad.length - 1} more of the ${read} pairs read back with it` : ''}${mixedHint(gpu, o.matmulPrecision)}`);
    }
    o.onResults?.(out, scored);
    // A long scoring pass (the reference log-probs before training) tunes as steps do (engine/tuner.ts).
    await gpu.tuner?.settle();
    gpu.pool.trimExcess(); // after the readback: nothing recorded uses a free buffer (engine/tensor.ts)
    if (done !== reported) { reported = done; o.onProgress?.(done, total); }
  };
  for (let p0 = 0; p0 < order.length; p0 += o.microBatch) {
    // Read back what is recorded first: its buffers return to the pool only after that.
    if (o.stop?.()) { await drain(); throw new ScoringStopped(); }
    const idx = order.slice(p0, p0 + o.microBatch);
    const items: PromptCompletions[] = idx.map((k) => {
      const p = pairs[k];
      const prompt = o.augmented ? p.augPromptIds : p.promptIds;
      if (!prompt) throw new Error(`pair ${k}: no augmented prompt (tokenize with a refine prompt)`);
      return { prompt, completions: isSftPair(p) ? [p.chosenIds] : [p.chosenIds, p.rejectedIds] };
    });
    const layout = buildBatch(items, { packed: o.packed ?? true });
    // Rows that begin alike (the refinement prompt, a chat template's opening) share it (shared-prefix.ts).
    const batch = uploadBatch(gpu, layout, model.cfg, { sharePrefix: true });
    const st = withMatmulPrecision(gpu, o.matmulPrecision, () => model.forward(batch, false));
    const sums = gpu.pool.acquire([batch.S], 'f32', 'seq_logps');
    segmentSum(gpu, { x: st.logp, ranges: batch.ranges, sums, S: batch.S });
    gpu.pool.release(st.logp);
    releaseBatch(gpu, batch);
    pending.push({ sums, idx, layout });
    if (pending.length >= READ_EVERY) await drain();
  }
  await drain();
  return out;
}

const READ_EVERY = 8;
