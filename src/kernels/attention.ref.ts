// Float64 reference for causal self-attention with GQA and the shared mask (attention.ts,
// attention-mask.ts). Naive: full T x T scores per (batch row, query head).
//
// Shapes: q [B, T, Hq, Dh], k [B, T, Hkv, Dh], v [B, T, Hkv, Dh], out [B, T, Hq, Dh], lse [B, Hq, T].
// GQA: Hkv divides Hq; query head h uses kv head floor(h / (Hq / Hkv)) (HF repeat_kv).
// Mask: key j is visible to query i of batch row b iff
//   j <= i  and  i < lengths[b]  and  j < lengths[b]
//   and  (segments[b, j] == 0 or segments[b, j] == segments[b, i])
//   and  (window == 0 or positions[b, i] - positions[b, j] < window).
// Defaults: positions[b, t] = t, segments = 0, lengths[b] = T, window = 0 (none). With default
// positions, window W is HF's sliding window (key j visible iff i - W < j <= i).
// Query rows with no visible key (i >= lengths[b]) output exact zeros and lse = EMPTY_ROW_LSE (0,
// finite, as the GPU kernel writes); their gradients are zero.
// Soft-capping (Gemma 2's attn_logit_softcapping; softcap 0 = none): each scaled score s becomes
// cap tanh(s / cap) before the mask and softmax; lse is of the capped scores.
import { capRef, checkSoftcap } from './softcap.js';

/** Logsumexp written for query rows with no visible key (finite on purpose; same as attention.ts). */
export const EMPTY_ROW_LSE = 0;

export interface AttentionDims { B: number; T: number; Hq: number; Hkv: number; Dh: number }

/** positions [B, T], segments [B, T], lengths [B] (Int32Array or any ArrayLike), window (0 = none). */
export interface AttentionMaskRef {
  positions?: ArrayLike<number>; segments?: ArrayLike<number>; lengths?: ArrayLike<number>; window?: number;
}

/** Whether key j is visible to query i in batch row b (rules above). */
export function attentionVisible(m: AttentionMaskRef, T: number, b: number, i: number, j: number): boolean {
  const len = m.lengths ? m.lengths[b] : T;
  if (j > i || i >= len || j >= len) return false; // (j >= len is implied by j <= i < len)
  const si = m.segments ? m.segments[b * T + i] : 0, sj = m.segments ? m.segments[b * T + j] : 0;
  if (sj !== 0 && sj !== si) return false;
  const w = m.window ?? 0;
  if (w === 0) return true;
  const pi = m.positions ? m.positions[b * T + i] : i, pj = m.positions ? m.positions[b * T + j] : j;
  return pi - pj < w;
}

function check(d: AttentionDims, m: AttentionMaskRef, arrays: [string, ArrayLike<number>, number][], softcap: number): void {
  const { B, T, Hq, Hkv } = d;
  checkSoftcap(softcap, 'attention reference');
  if (Hkv <= 0 || Hq % Hkv !== 0) throw new RangeError(`attention: Hkv ${Hkv} must divide Hq ${Hq}`);
  for (const [name, a, n] of arrays) if (a.length !== n) throw new RangeError(`attention: ${name} has ${a.length} elements, expected ${n}`);
  if (m.positions && m.positions.length !== B * T) throw new RangeError(`attention: positions must be [B*T]`);
  if (m.segments && m.segments.length !== B * T) throw new RangeError(`attention: segments must be [B*T]`);
  if (m.lengths) {
    if (m.lengths.length !== B) throw new RangeError(`attention: lengths must be [B]`);
    for (let b = 0; b < B; b++) if (!(m.lengths[b] >= 0 && m.lengths[b] <= T)) throw new RangeError(`attention: lengths[${b}] outside [0, T]`);
  }
  if (!((m.window ?? 0) >= 0)) throw new RangeError(`attention: window must be >= 0`);
}

/** Scaled scores of query (b, i, h) against every key, uncapped; -Infinity where not visible. -> [T] */
function scores(q: ArrayLike<number>, k: ArrayLike<number>, d: AttentionDims, m: AttentionMaskRef, scale: number,
  b: number, h: number, i: number): Float64Array {
  const { T, Hq, Hkv, Dh } = d, kh = Math.floor(h / (Hq / Hkv));
  const s = new Float64Array(T).fill(-Infinity);
  const qo = ((b * T + i) * Hq + h) * Dh;
  for (let j = 0; j < T; j++) {
    if (!attentionVisible(m, T, b, i, j)) continue;
    const ko = ((b * T + j) * Hkv + kh) * Dh;
    let acc = 0;
    for (let c = 0; c < Dh; c++) acc += q[qo + c] * k[ko + c];
    s[j] = scale * acc;
  }
  return s;
}

/** Soft-capped scores in place (softcap 0: unchanged; -Infinity stays). */
function capScores(s: Float64Array, softcap: number): Float64Array {
  if (softcap) for (let j = 0; j < s.length; j++) if (s[j] !== -Infinity) s[j] = capRef(s[j], softcap);
  return s;
}

/**
 * q [B,T,Hq,Dh], k/v [B,T,Hkv,Dh] -> out [B,T,Hq,Dh], lse [B,Hq,T] (logsumexp over visible keys of
 * scale * q.k, soft-capped with softcap > 0; EMPTY_ROW_LSE for rows with none). scale defaults to
 * 1 / sqrt(Dh) (pass undefined to keep it and give softcap).
 */
export function attentionForward(
  q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, dims: AttentionDims,
  mask: AttentionMaskRef = {}, scale: number = 1 / Math.sqrt(dims.Dh), softcap = 0,
): { out: Float64Array; lse: Float64Array } {
  const { B, T, Hq, Hkv, Dh } = dims;
  check(dims, mask, [['q', q, B * T * Hq * Dh], ['k', k, B * T * Hkv * Dh], ['v', v, B * T * Hkv * Dh]], softcap);
  const out = new Float64Array(B * T * Hq * Dh), lse = new Float64Array(B * Hq * T).fill(EMPTY_ROW_LSE);
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < T; i++) {
    const s = capScores(scores(q, k, dims, mask, scale, b, h, i), softcap);
    const mx = s.reduce((a, x) => Math.max(a, x), -Infinity);
    if (mx === -Infinity) continue; // no visible key: zeros, sentinel lse
    let l = 0;
    for (let j = 0; j < T; j++) l += Math.exp(s[j] - mx); // exp(-Inf) = 0
    const L = mx + Math.log(l);
    lse[(b * Hq + h) * T + i] = L;
    const kh = Math.floor(h / (Hq / Hkv)), oo = ((b * T + i) * Hq + h) * Dh;
    for (let j = 0; j < T; j++) {
      if (s[j] === -Infinity) continue;
      const p = Math.exp(s[j] - L), vo = ((b * T + j) * Hkv + kh) * Dh;
      for (let c = 0; c < Dh; c++) out[oo + c] += p * v[vo + c];
    }
  }
  return { out, lse };
}

/**
 * dout [B,T,Hq,Dh], q, k, v, out and lse from attentionForward (same mask, scale and softcap) ->
 * dq [B,T,Hq,Dh], dk [B,T,Hkv,Dh], dv [B,T,Hkv,Dh] (dk/dv summed over the query heads sharing a kv head).
 * With P = exp(s' - lse) (s' the capped score) and D_i = dout_i . out_i: dv_j += P dout_i,
 * dS = P (dout_i . v_j - D_i) (times 1 - tanh^2(s / cap) with softcap: d s' / d s),
 * dq_i += scale dS k_j, dk_j += scale dS q_i.
 */
export function attentionBackward(
  dout: ArrayLike<number>, q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>,
  out: ArrayLike<number>, lse: ArrayLike<number>, dims: AttentionDims,
  mask: AttentionMaskRef = {}, scale: number = 1 / Math.sqrt(dims.Dh), softcap = 0,
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const { B, T, Hq, Hkv, Dh } = dims;
  const nq = B * T * Hq * Dh, nk = B * T * Hkv * Dh;
  check(dims, mask, [['dout', dout, nq], ['q', q, nq], ['k', k, nk], ['v', v, nk], ['out', out, nq], ['lse', lse, B * Hq * T]], softcap);
  const dq = new Float64Array(nq), dk = new Float64Array(nk), dv = new Float64Array(nk);
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < T; i++) {
    const s = scores(q, k, dims, mask, scale, b, h, i);
    const L = lse[(b * Hq + h) * T + i], kh = Math.floor(h / (Hq / Hkv)), oo = ((b * T + i) * Hq + h) * Dh;
    let D = 0;
    for (let c = 0; c < Dh; c++) D += dout[oo + c] * out[oo + c];
    for (let j = 0; j < T; j++) {
      if (s[j] === -Infinity) continue;
      const t = softcap ? Math.tanh(s[j] / softcap) : 0;
      const p = Math.exp((softcap ? softcap * t : s[j]) - L), ko = ((b * T + j) * Hkv + kh) * Dh;
      let dp = 0;
      for (let c = 0; c < Dh; c++) dp += dout[oo + c] * v[ko + c];
      const ds = p * (dp - D) * (softcap ? 1 - t * t : 1);
      for (let c = 0; c < Dh; c++) {
        dv[ko + c] += p * dout[oo + c];
        dq[oo + c] += scale * ds * k[ko + c];
        dk[ko + c] += scale * ds * q[oo + c];
      }
    }
  }
  return { dq, dk, dv };
}

/**
 * One packed preference row [prompt, chosen, rejected] -> positions [T], segments [T], T = P + C + R.
 * Prompt: segment 0, positions 0..P-1; chosen: segment 1, positions P..P+C-1; rejected: segment 2,
 * positions restart at P (P..P+R-1). Rejected tokens see the prompt and earlier rejected tokens, never
 * chosen ones, so each response attends exactly as in its own [prompt, response] row (sliding window too).
 */
export function packedPairMask(promptLen: number, chosenLen: number, rejectedLen: number): { positions: Int32Array; segments: Int32Array; T: number } {
  const T = promptLen + chosenLen + rejectedLen;
  const positions = new Int32Array(T), segments = new Int32Array(T);
  for (let t = 0; t < T; t++) {
    if (t < promptLen) { positions[t] = t; segments[t] = 0; }
    else if (t < promptLen + chosenLen) { positions[t] = t; segments[t] = 1; }
    else { positions[t] = t - chosenLen; segments[t] = 2; }
  }
  return { positions, segments, T };
}
