// The nominal matmul work of a training step, so that `bench step` can read its time against this
// adapter's matmul rate measured in the same run (StepResult.matmulShare): a ratio that means the same
// on any GPU, where a step time alone needs a same-card anchor (PyTorch's) to mean anything.
//
// Counted as a model's FLOPs usually are (2 M N K a product, 2 a multiply-add), over the tokens the
// step processes (packed rows: each prompt once):
//   forward, a token:  the blocks' linear layers, 2 x their weights (q, k, v, o; the MLP's two
//                      products, three for SwiGLU), plus attention's two products over the keys the
//                      token sees (scores, then the weighted values: 2 x 2 x heads x headDim a key);
//   output layer:      2 x hidden x vocab, on the tokens whose next token is scored (completions);
//   trained tokens:    3 x forward (the forward, dX and dW products), the policy pass;
//   forward-only:      1 x (the Sr losses' augmented pass, without its shared refinement prompt but once).
// Not counted: the flash backward's recomputed scores, norms, elementwise work, the optimizer, and what
// srk skips (the last block's rows that are never scored). A nominal count: what any trainer of this
// model has to compute, so a higher share is a faster step, whatever the kernels.
import type { ModelConfig } from '../src/model/config.js';

/** One pair's token counts: prompt, the two completions (rejected 0 for SFT), and the augmented prompt's extra prefix (0 without). */
export interface PairLengths { prompt: number; chosen: number; rejected: number; refine: number }

export interface StepFlops {
  /** Policy pass: 3 x the forward of the trained tokens. */
  policy: number;
  /** The Sr losses' augmented forward (0 otherwise). */
  augmented: number;
  total: number;
}

/** Forward FLOPs a token of the blocks' linear layers. */
export function linearFlopsPerToken(cfg: ModelConfig): number {
  const d = cfg.hiddenSize; const q = cfg.numHeads * cfg.headDim; const kv = cfg.numKvHeads * cfg.headDim;
  const mlp = (cfg.act === 'silu' ? 3 : 2) * d * cfg.intermediateSize;
  return 2 * cfg.numLayers * (d * (q + 2 * kv) + q * d + mlp);
}

/** Forward FLOPs of attention for one query and one key it sees: q.k and p v, every head, every layer. */
const attentionFlopsPerKey = (cfg: ModelConfig) => 2 * 2 * cfg.numLayers * cfg.numHeads * cfg.headDim;

/** Keys seen by the tokens at positions [from, to) of a causal row (a sliding window caps each). */
function keysSeen(from: number, to: number, window: number | null): number {
  let s = 0;
  for (let i = from; i < to; i++) s += window ? Math.min(i + 1, window) : i + 1;
  return s;
}

/**
 * Forward FLOPs of one pair's rows. Packed: the prompt, then each completion after the prompt's last
 * token ((prompt - 1) + 2 (1 + completion) tokens, every completion token seeing the prompt and its
 * own completion); unpacked: one row per completion (prompt + completion). The `refine` tokens in
 * front of the prompt (the augmented pass's refinement prompt) are seen as keys; `prefixComputed` says
 * whether they are computed here (false: shared across the micro-batch's rows and counted apart).
 */
function pairForward(cfg: ModelConfig, p: PairLengths, packed: boolean, prefixComputed: boolean): number {
  const lin = linearFlopsPerToken(cfg);
  const att = attentionFlopsPerKey(cfg);
  const w = cfg.slidingWindow;
  const head = 2 * cfg.hiddenSize * cfg.vocabSize * (p.chosen + p.rejected);
  const completions = p.rejected > 0 ? [p.chosen, p.rejected] : [p.chosen];
  const pre = p.refine + p.prompt;               // positions before the first completion token
  const start = prefixComputed ? 0 : p.refine;    // the first position this row computes
  let tokens = 0; let keys = 0;
  if (packed) {
    tokens += pre - 1 - start; keys += keysSeen(start, pre - 1, w);
    for (const c of completions) { tokens += 1 + c; keys += keysSeen(pre - 1, pre + c, w); }
  } else {
    for (const c of completions) { tokens += pre + c - start; keys += keysSeen(start, pre + c, w); }
  }
  return tokens * lin + keys * att + head;
}

/**
 * The step's nominal FLOPs: the policy pass over `pairs` (3 x forward), and for the Sr losses (refine
 * > 0) the augmented forward, whose refinement prompt is computed once per micro-batch of
 * `microBatch` pairs (shared rows: src/model/shared-prefix.ts).
 */
export function stepFlops(cfg: ModelConfig, pairs: readonly PairLengths[], packed: boolean, microBatch: number): StepFlops {
  let policy = 0; let augmented = 0;
  for (const p of pairs) {
    policy += 3 * pairForward(cfg, { ...p, refine: 0 }, packed, true);
    if (p.refine > 0) augmented += pairForward(cfg, p, packed, false);
  }
  // The shared refinement prompt: computed once per micro-batch.
  const refine = pairs.find((p) => p.refine > 0)?.refine ?? 0;
  const shared = Math.ceil(pairs.length / microBatch);
  augmented += shared * (refine * linearFlopsPerToken(cfg) + keysSeen(0, refine, cfg.slidingWindow) * attentionFlopsPerKey(cfg));
  return { policy, augmented, total: policy + augmented };
}
