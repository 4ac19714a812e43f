// Float64 CPU reference for the SFT loss: mean negative log-likelihood over ALL completion tokens
// of the batch (token-weighted, not a mean of per-sequence means).
//   loss = -sum_n mask[n] logp[n] / sum_n mask[n]
//   dloss/dlogp[n] = -mask[n] / sum_n mask[n]
// These per-token gradients are the g [N] that outputLogprobBackwardRef / the GPU output-layer
// backward take.

export interface SftLossResult {
  loss: number;             // mean NLL over the counted tokens (NaN if none)
  count: number;            // number of counted tokens
  dTokenLogp: Float64Array; // [N] d loss / d logp[n]
}

/**
 * tokenLogp [N] (log-probs of the target tokens), mask [N] (nonzero = completion token; e.g. target >= 0
 * or a 0/1 completion mask) -> loss, count, dTokenLogp [N].
 * Without a mask every token counts.
 */
export function sftLossRef(tokenLogp: ArrayLike<number>, mask?: ArrayLike<number | boolean>): SftLossResult {
  const N = tokenLogp.length;
  if (mask && mask.length !== N) throw new Error(`mask length ${mask.length}, expected ${N}`);
  let count = 0; let s = 0;
  for (let n = 0; n < N; n++) {
    if (mask && !mask[n]) continue;
    count++; s += tokenLogp[n];
  }
  const dTokenLogp = new Float64Array(N);
  if (count > 0) for (let n = 0; n < N; n++) if (!mask || mask[n]) dTokenLogp[n] = -1 / count;
  return { loss: count > 0 ? -s / count : NaN, count, dTokenLogp };
}

/** Mask [N] from next-token targets [N] (-1 = no target): 1 where target >= 0. */
export function sftMaskFromTargets(targets: ArrayLike<number>): Uint8Array {
  const m = new Uint8Array(targets.length);
  for (let n = 0; n < targets.length; n++) m[n] = targets[n] >= 0 ? 1 : 0;
  return m;
}
