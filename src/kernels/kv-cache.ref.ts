// Reference for kv-cache.ts: cache (a copy) with the rows of src written at their slots.
// src: token i's head h column d at offset + i tokenStride + h headStride + d; cache [slots, heads, Dh].
export function kvAppendRef(src: ArrayLike<number>, slots: ArrayLike<number>, cache: ArrayLike<number>,
  o: { heads: number; Dh: number; offset?: number; tokenStride?: number; headStride?: number }): Float64Array {
  const { heads, Dh } = o;
  const off = o.offset ?? 0; const ts = o.tokenStride ?? heads * Dh; const hs = o.headStride ?? Dh;
  const out = Float64Array.from(cache);
  for (let i = 0; i < slots.length; i++) {
    for (let h = 0; h < heads; h++) for (let d = 0; d < Dh; d++) out[(slots[i] * heads + h) * Dh + d] = src[off + i * ts + h * hs + d];
  }
  return out;
}

/** Reference for kvCopy: cache (a copy) with row dst set to row src for each pair, width values a row. */
export function kvCopyRef(cache: ArrayLike<number>, pairs: ArrayLike<number>, width: number): Float64Array {
  const out = Float64Array.from(cache);
  for (let i = 0; 2 * i < pairs.length; i++) for (let e = 0; e < width; e++) out[pairs[2 * i + 1] * width + e] = cache[pairs[2 * i] * width + e];
  return out;
}
