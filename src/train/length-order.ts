// The order in which a set of pairs goes through the GPU: longest first, so that each micro-batch
// holds pairs of similar length and its rows carry little padding (every row of a batch is padded
// to the longest; with real data of mixed lengths, random micro-batches waste a third or more of
// their tokens on padding). A step's gradient and metrics are sums over all its pairs, so the
// grouping changes nothing but the f32 summation order. Stable (ties keep their order), so runs and
// resumed runs group alike.
import type { TokenizedPair } from '../data/tokenize-pairs.js';

/** Tokens of a pair's packed row: prompt + both completions (the augmented prompt when asked). */
export function pairTokens(p: TokenizedPair, augmented = false): number {
  const prompt = augmented ? p.augPromptIds ?? p.promptIds : p.promptIds;
  return prompt.length + p.chosenIds.length + p.rejectedIds.length;
}

/** Indices of `pairs`, longest first (stable). */
export function lengthOrder(pairs: readonly TokenizedPair[], augmented = false): number[] {
  const len = pairs.map((p) => pairTokens(p, augmented));
  return pairs.map((_, i) => i).sort((a, b) => len[b] - len[a] || a - b);
}
