// Sequence log-probs of tokenized pairs without gradients: the reference pass, `srk logprobs`,
// `srk eval`, and the policy's augmented pass outside training. Pairs go through in micro-batches
// in the packed layout (each prompt computed once for both completions).
import type { Gpu } from '../engine/gpu.js';
import { segmentSum } from '../kernels/segment-sum.js';
import { buildBatch, type PromptCompletions } from '../model/batch.js';
import { releaseBatch, uploadBatch } from '../model/gpu-batch.js';
import type { CausalLM } from '../model/causal-lm.js';
import type { TokenizedPair } from '../data/tokenize-pairs.js';

export interface PairLogps {
  chosen: Float64Array; rejected: Float64Array;
  chosenTokens: Int32Array; rejectedTokens: Int32Array;
}

export interface ScoreOptions {
  /** Pairs per forward pass. */
  microBatch: number;
  /** Score the augmented prompt (refine prompt ++ prompt) instead of the plain one. */
  augmented?: boolean;
  packed?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export async function scorePairs(gpu: Gpu, model: CausalLM, pairs: readonly TokenizedPair[], o: ScoreOptions): Promise<PairLogps> {
  const P = pairs.length;
  const out: PairLogps = {
    chosen: new Float64Array(P), rejected: new Float64Array(P),
    chosenTokens: new Int32Array(P), rejectedTokens: new Int32Array(P),
  };
  for (let p0 = 0; p0 < P; p0 += o.microBatch) {
    const chunk = pairs.slice(p0, p0 + o.microBatch);
    const items: PromptCompletions[] = chunk.map((p, i) => {
      const prompt = o.augmented ? p.augPromptIds : p.promptIds;
      if (!prompt) throw new Error(`pair ${p0 + i}: no augmented prompt (tokenize with a refine prompt)`);
      return { prompt, completions: [p.chosenIds, p.rejectedIds] };
    });
    const layout = buildBatch(items, { packed: o.packed ?? true });
    const batch = uploadBatch(gpu, layout, model.cfg);
    const st = model.forward(batch, false);
    const sums = gpu.pool.acquire([batch.S], 'f32', 'seq_logps');
    segmentSum(gpu, { x: st.logp, ranges: batch.ranges, sums, S: batch.S });
    gpu.pool.release(st.logp);
    releaseBatch(gpu, batch);
    const s = await gpu.readF32(sums);
    gpu.pool.release(sums);
    chunk.forEach((_, i) => {
      const [c, r] = layout.seqIndex[i];
      out.chosen[p0 + i] = s[c]; out.rejected[p0 + i] = s[r];
      out.chosenTokens[p0 + i] = layout.tokenCounts[c]; out.rejectedTokens[p0 + i] = layout.tokenCounts[r];
      if (!Number.isFinite(s[c]) || !Number.isFinite(s[r])) {
        throw new Error(`pair ${p0 + i}: log-prob is not finite (${s[c]}, ${s[r]})`);
      }
    });
    o.onProgress?.(Math.min(P, p0 + o.microBatch), P);
  }
  return out;
}
