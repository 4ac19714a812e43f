// Float64 reference for attention-cached.ts: each query token attends to the cached keys of its own
// row up to and including its position (and within the sliding window, if any).
//
//   q [N, Hq, Dh]; kCache, vCache [rows, Tmax, Hkv, Dh]; slots [N] = row * Tmax + position
//   out[i, h] = sum_j softmax_j(scale q[i, h] . k[row, j, kvh]) v[row, j, kvh],
//   j in [lo, position], lo = max(0, position - window + 1) with a window, else 0; kvh = h / (Hq / Hkv).
//   softcap (Gemma 2; absent or 0: none): each scaled score s becomes softcap tanh(s / softcap) first.
import { capRef } from './softcap.js';
export function attentionCachedRef(q: ArrayLike<number>, kCache: ArrayLike<number>, vCache: ArrayLike<number>, slots: ArrayLike<number>,
  o: { Hq: number; Hkv: number; Dh: number; Tmax: number; window?: number; scale?: number; softcap?: number }): Float64Array {
  const { Hq, Hkv, Dh, Tmax } = o;
  const scale = o.scale ?? 1 / Math.sqrt(Dh);
  const cap = o.softcap ?? 0;
  const w = o.window ?? 0;
  const N = slots.length;
  const out = new Float64Array(N * Hq * Dh);
  for (let i = 0; i < N; i++) {
    const row = Math.floor(slots[i] / Tmax); const pos = slots[i] % Tmax;
    const lo = w > 0 ? Math.max(0, pos - w + 1) : 0;
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / (Hq / Hkv));
      const s: number[] = [];
      for (let j = lo; j <= pos; j++) {
        let acc = 0;
        for (let d = 0; d < Dh; d++) acc += q[(i * Hq + h) * Dh + d] * kCache[((row * Tmax + j) * Hkv + kvh) * Dh + d];
        s.push(capRef(acc * scale, cap));
      }
      const m = Math.max(...s);
      const e = s.map((x) => Math.exp(x - m));
      const z = e.reduce((a, b) => a + b, 0);
      for (let d = 0; d < Dh; d++) {
        let acc = 0;
        for (let j = lo; j <= pos; j++) acc += e[j - lo] * vCache[((row * Tmax + j) * Hkv + kvh) * Dh + d];
        out[(i * Hq + h) * Dh + d] = acc / z;
      }
    }
  }
  return out;
}
