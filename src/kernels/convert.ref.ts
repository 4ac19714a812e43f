// References for convert.ts: decode raw little-endian bytes in float64.
export function decodeRef(from: 'f16' | 'bf16' | 'f64', bytes: Uint8Array): Float64Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (from === 'f64') return Float64Array.from({ length: bytes.byteLength / 8 }, (_, i) => dv.getFloat64(8 * i, true));
  return Float64Array.from({ length: bytes.byteLength / 2 }, (_, i) => {
    const h = dv.getUint16(2 * i, true);
    if (from === 'bf16') { const b = new DataView(new ArrayBuffer(4)); b.setUint32(0, h << 16); return b.getFloat32(0); }
    const s = h >> 15 ? -1 : 1; const e = (h >> 10) & 31; const m = h & 1023;
    if (e === 0) return s * m * 2 ** -24;
    if (e === 31) return m ? NaN : s * Infinity;
    return s * (1 + m / 1024) * 2 ** (e - 15);
  });
}
