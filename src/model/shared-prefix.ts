// A prefix every row of a batch begins with, computed once in a forward without backward.
//
// The Sr losses' augmented pairs all begin with the refinement prompt p (~60 tokens at the paper's
// text), and chat data often with a template's fixed opening. Where every row of a batch starts with
// the same L tokens (same ids, positions, prompt segment, nothing scored), those tokens' hidden
// states are the same in every row: causal attention lets them see only each other. So the row-wise
// work (norms, linear layers, MLP) needs them once, not B times.
//
// The blocks run on the compact token order: row 0 whole, then every other row without its first L
// tokens (Nc = L + B (T - L) tokens):
//   compact(b, i) = i                for i < L (the prefix, row 0's copy)
//                 = b (T - L) + i    for i >= L
// Attention alone needs the rows whole ([B, T], the mask's layout): a block gathers q, k and v into
// that layout (the prefix's rows copied into every row, by toCompact) and gathers the output back
// (by toFull; rows.ts gatherRows). Each gather moves a row once; where (B - 1) L is a small share of the tokens the
// moves cost more than the products save, so the prefix is shared only from MIN_SHARE of them.
//
// Only forwards without backward (the augmented pass, reference and eval scoring): a backward would
// have to sum the prefix's gradients over the rows.
import type { Tensor } from '../engine/tensor.js';
import { envSwitch } from '../engine/env.js';
import type { BatchLayout } from './batch.js';

/** Where the batch's rows share their first L tokens: the maps between the two token orders. */
export interface SharedPrefix {
  L: number;
  /** B T: tokens in the rows' own layout (attention's, and the log-probs'). */
  full: number;
  /** [B T] u32: the compact token each row token reads (its prefix tokens read row 0's). */
  toCompact: Tensor;
  /** [Nc] u32: the row token each compact token is. */
  toFull: Tensor;
}

/** Share of the batch's tokens the prefix must save, (B - 1) L >= MIN_SHARE B T, unless forced. */
export const MIN_SHARE = 0.04;

/**
 * The longest L such that every row's first L tokens have the same id and position, lie in the
 * shared-prompt segment (0), are within the row's length and are not scored. At most T - 1 (a row
 * keeps a token of its own).
 */
export function sharedPrefixLength(layout: BatchLayout): number {
  const { B, T, ids, positions, segments, targets, lengths } = layout;
  let shortest = T;
  for (let b = 0; b < B; b++) shortest = Math.min(shortest, lengths[b]);
  let L = 0;
  for (; L < Math.min(shortest, T - 1); L++) {
    const id = ids[L]; const pos = positions[L];
    let same = true;
    for (let b = 0; b < B && same; b++) {
      const t = b * T + L;
      same = ids[t] === id && positions[t] === pos && segments[t] === 0 && targets[t] < 0;
    }
    if (!same) break;
  }
  return L;
}

/**
 * How long a prefix to share for this layout: 0 (none) unless B >= 2 and it saves MIN_SHARE of the
 * tokens. SRK_SHARED_PREFIX=0 never shares, =1 shares any common prefix (tests).
 */
export function prefixToShare(layout: BatchLayout): number {
  const choice = envSwitch('SRK_SHARED_PREFIX');
  if (choice === '0' || layout.B < 2) return 0;
  const L = sharedPrefixLength(layout);
  if (choice === '1') return L;
  return (layout.B - 1) * L >= MIN_SHARE * layout.B * layout.T ? L : 0;
}

/** The compact index of token i of row b. */
export function compactIndex(b: number, i: number, T: number, L: number): number {
  return i < L ? i : b * (T - L) + i;
}

/** The two index maps (host arrays): toCompact [B T], toFull [L + B (T - L)]. */
export function prefixMaps(B: number, T: number, L: number): { toCompact: Uint32Array; toFull: Uint32Array } {
  const toCompact = new Uint32Array(B * T);
  const toFull = new Uint32Array(L + B * (T - L));
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T; i++) {
      const c = compactIndex(b, i, T, L);
      toCompact[b * T + i] = c;
      if (b === 0 || i >= L) toFull[c] = b * T + i;
    }
  }
  return { toCompact, toFull };
}
