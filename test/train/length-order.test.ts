import { describe, expect, it } from 'vitest';
import { lengthOrder, pairTokens } from '../../src/train/length-order.js';
import type { TokenizedPair } from '../../src/data/tokenize-pairs.js';

const pair = (p: number, c: number, r: number, aug = 0): TokenizedPair => ({
  promptIds: new Array(p).fill(1), chosenIds: new Array(c).fill(2), rejectedIds: new Array(r).fill(3),
  augPromptIds: aug ? new Array(aug + p).fill(4) : undefined, truncated: false,
});

describe('length order of micro-batches', () => {
  it('longest packed row first, ties in their original order; the augmented prompt when asked', () => {
    const pairs = [pair(5, 3, 3), pair(10, 1, 1), pair(2, 9, 1), pair(4, 4, 3), pair(1, 1, 1, 20)];
    expect(pairs.map((p) => pairTokens(p))).toEqual([11, 12, 12, 11, 3]);
    expect(lengthOrder(pairs)).toEqual([1, 2, 0, 3, 4]);
    expect(lengthOrder(pairs, true)).toEqual([4, 1, 2, 0, 3]); // 21 + 2 tokens with the refine prompt
    expect(lengthOrder([])).toEqual([]);
  });
});
