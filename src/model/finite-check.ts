// Non-finite weights (NaN, Inf) are refused when a checkpoint loads: a NaN in a query or key row does not
// always reach the log-probs as a NaN (a max over scores may pass it by), so it would be a silent wrong
// answer, or a "log-prob is not finite" blamed on a data row. The check reads the bytes already on the
// host on their way to the GPU: an exponent field of all ones is Inf or NaN in every IEEE format.

/** Float formats a checkpoint stores weights in. */
export type FloatFormat = 'F32' | 'F16' | 'BF16' | 'F64';

/** The largest finite float32. */
const F32_MAX = 3.4028234663852886e38;

/** Index of the first element whose value is NaN or +-Inf (F64: or past float32's range), or -1; `bytes` little-endian, aligned to the element size. */
export function firstNonFinite(bytes: Uint8Array, format: FloatFormat): number {
  if (format === 'F64') {
    // Also past float32's range: the weights become float32 on the GPU, where such a value is Inf.
    const a = new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
    for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i]) <= F32_MAX)) return i;
    return -1;
  }
  if (format === 'F32') {
    const a = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
    for (let i = 0; i < a.length; i++) if ((a[i] & 0x7f800000) === 0x7f800000) return i;
    return -1;
  }
  const a = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const exp = format === 'F16' ? 0x7c00 : 0x7f80;
  for (let i = 0; i < a.length; i++) if ((a[i] & exp) === exp) return i;
  return -1;
}

/** An element's index in a row-major tensor as [i, j, ...]. */
export function elementIndex(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  for (let d = shape.length - 1; d >= 0; d--) { out[d] = flat % shape[d]; flat = Math.floor(flat / shape[d]); }
  return out;
}
