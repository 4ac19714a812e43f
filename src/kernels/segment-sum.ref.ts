// Float64 CPU reference for summing per-token log-probs into per-sequence log-probs.
// segmentId[n] in [0, S) names the sequence (segment) token n belongs to; -1 = not counted
// (prompt, padding, or positions with no target).

export interface SegmentSumResult {
  sums: Float64Array;   // [S] sum of tokenLogp over the tokens of each segment
  counts: Int32Array;   // [S] number of tokens counted in each segment
}

/** Forward: tokenLogp [N], segmentId [N] (-1 = skip), numSegments S -> sums [S], counts [S]. */
export function segmentSumRef(
  tokenLogp: ArrayLike<number>, segmentId: ArrayLike<number>, numSegments: number,
): SegmentSumResult {
  if (tokenLogp.length !== segmentId.length) {
    throw new Error(`tokenLogp length ${tokenLogp.length} vs segmentId length ${segmentId.length}`);
  }
  const sums = new Float64Array(numSegments);
  const counts = new Int32Array(numSegments);
  for (let n = 0; n < tokenLogp.length; n++) {
    const s = segmentId[n];
    if (s < 0) continue;
    if (!Number.isInteger(s) || s >= numSegments) throw new Error(`segmentId ${s} at ${n} out of range [0, ${numSegments})`);
    sums[s] += tokenLogp[n];
    counts[s] += 1;
  }
  return { sums, counts };
}

/** Backward: dsum [S], segmentId [N] -> dtoken [N] with dtoken[n] = dsum[segmentId[n]] (0 where -1). */
export function segmentSumBackwardRef(dsum: ArrayLike<number>, segmentId: ArrayLike<number>): Float64Array {
  const out = new Float64Array(segmentId.length);
  for (let n = 0; n < segmentId.length; n++) {
    const s = segmentId[n];
    if (s < 0) continue;
    if (!Number.isInteger(s) || s >= dsum.length) throw new Error(`segmentId ${s} at ${n} out of range [0, ${dsum.length})`);
    out[n] = dsum[s];
  }
  return out;
}
