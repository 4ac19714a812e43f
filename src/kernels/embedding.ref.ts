// Float64 reference for the token embedding (row gather) and its backward (scatter-add).

function checkIds(ids: ArrayLike<number>, V: number): void {
  for (let n = 0; n < ids.length; n++) {
    const id = ids[n];
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new RangeError(`embedding: ids[${n}] = ${id} outside [0, ${V})`);
  }
}

/** table [V, D], ids [N] -> y [N, D] with y[n] = scale * table[ids[n]]. Throws RangeError on an id outside [0, V). */
export function embeddingForward(table: ArrayLike<number>, ids: ArrayLike<number>, V: number, D: number, scale = 1): Float64Array {
  if (table.length !== V * D) throw new RangeError(`embedding: table has ${table.length} elements, expected ${V * D}`);
  checkIds(ids, V);
  const y = new Float64Array(ids.length * D);
  for (let n = 0; n < ids.length; n++) {
    const src = ids[n] * D;
    for (let d = 0; d < D; d++) y[n * D + d] = scale * table[src + d];
  }
  return y;
}

/**
 * dy [N, D], ids [N] -> dTable [V, D], dTable[v] = sum of dy[n] over n with ids[n] == v (rows never
 * used stay 0), times the forward's scale. paddingIdx (optional, torch nn.Embedding(padding_idx=...)): that row
 * gets no gradient.
 */
export function embeddingBackward(
  dy: ArrayLike<number>, ids: ArrayLike<number>, V: number, D: number, paddingIdx?: number, scale = 1,
): Float64Array {
  if (dy.length !== ids.length * D) throw new RangeError(`embedding: dy has ${dy.length} elements, expected ${ids.length * D}`);
  checkIds(ids, V);
  const dTable = new Float64Array(V * D);
  for (let n = 0; n < ids.length; n++) {
    if (ids[n] === paddingIdx) continue;
    const dst = ids[n] * D;
    for (let d = 0; d < D; d++) dTable[dst + d] += scale * dy[n * D + d];
  }
  return dTable;
}
