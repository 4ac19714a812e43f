// Float64 CPU reference for the output layer + log-softmax gather (per-token log-probs).
// All arrays are dense row-major. Targets use -1 for "no target" (prompt, padding, last position):
// those rows get logp = 0 and contribute no gradient.
//
// Forward:  logits = H W^T                               H [N, d], W [V, d] -> logits [N, V]
//           lse[n]  = logsumexp_v logits[n, v]                               -> lse [N]
//           logp[n] = logits[n, target[n]] - lse[n]   (0 where target < 0)   -> logp [N]
// Backward: g [N] = dL/dlogp (zero on prompt/padding rows)
//           dlogits[n, v] = g[n] * (onehot(target[n])[v] - softmax(logits[n])[v])   [N, V]
//           (rows with target < 0 have dlogits = 0, whatever g says)
//           dH = dlogits W     [N, d]
//           dW = dlogits^T H   [V, d]
// With tied embeddings W is the embedding matrix; dW here is only the output-layer part of its
// gradient (the caller adds the embedding-lookup part).
//
// Soft-capping (`softcap` c > 0, Gemma 2's final_logit_softcapping; absent or 0: none): the
// softmax sees logit' = c tanh(logit / c) in place of logit (lse and logp of the capped logits),
// and dlogits[n, v] = g[n] * (onehot - softmax(logit'[n]))[v] * (1 - tanh^2(logit[n, v] / c)).
// The `logits` arrays taken and returned are the raw H W^T; `dlogits` is the gradient of those.
import { capRef, checkSoftcap } from './softcap.js';

/** logits [N, V] = H [N, d] x W[V, d]^T, float64. */
export function outputLogitsRef(H: ArrayLike<number>, W: ArrayLike<number>, N: number, d: number, V: number): Float64Array {
  checkLen('H', H, N * d); checkLen('W', W, V * d);
  const logits = new Float64Array(N * V);
  for (let n = 0; n < N; n++) {
    const h0 = n * d;
    for (let v = 0; v < V; v++) {
      const w0 = v * d;
      let s = 0;
      for (let k = 0; k < d; k++) s += H[h0 + k] * W[w0 + k];
      logits[n * V + v] = s;
    }
  }
  return logits;
}


/** logits capped: c tanh(x / c) element-wise (a copy; c 0 or absent: the logits unchanged). */
export function softcapRef(logits: ArrayLike<number>, softcap?: number): Float64Array {
  const c = checkSoftcap(softcap, 'output layer reference');
  return Float64Array.from(logits, (x) => capRef(x, c));
}

/** Row-wise logsumexp: logits [N, V] -> lse [N] (max-shifted, stable). */
export function logSumExpRowsRef(logits: ArrayLike<number>, N: number, V: number): Float64Array {
  checkLen('logits', logits, N * V);
  const lse = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const r = n * V;
    let m = -Infinity;
    for (let v = 0; v < V; v++) if (logits[r + v] > m) m = logits[r + v];
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[r + v] - m);
    lse[n] = m + Math.log(s);
  }
  return lse;
}

/**
 * Log-softmax gather: logits [N, V], targets [N] (-1 = none) -> logp [N]
 * (logp[n] = logits[n, t] - logsumexp(logits[n]); 0 where t < 0). V defaults to logits.length / N.
 * softcap: the raw logits capped first (see the header).
 */
export function logSoftmaxGather(logits: ArrayLike<number>, targets: ArrayLike<number>, V?: number, softcap?: number): Float64Array {
  return logSoftmaxGatherWithLse(logits, targets, V, softcap).logp;
}

/** Same as logSoftmaxGather, also returning lse [N] (of the capped logits with softcap; computed
 *  for every row, targets or not). */
export function logSoftmaxGatherWithLse(
  rawLogits: ArrayLike<number>, targets: ArrayLike<number>, V?: number, softcap?: number,
): { logp: Float64Array; lse: Float64Array } {
  const N = targets.length;
  const Vv = V ?? rawLogits.length / Math.max(N, 1);
  if (!Number.isInteger(Vv)) throw new Error(`logits length ${rawLogits.length} is not a multiple of N=${N}`);
  checkLen('logits', rawLogits, N * Vv);
  const logits = checkSoftcap(softcap, 'output layer reference') ? softcapRef(rawLogits, softcap) : rawLogits;
  const lse = logSumExpRowsRef(logits, N, Vv);
  const logp = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t < 0) continue;
    checkTarget(t, Vv, n);
    logp[n] = logits[n * Vv + t] - lse[n];
  }
  return { logp, lse };
}

/**
 * Backward of the log-softmax gather: logits [N, V], targets [N], g [N] = dL/dlogp
 * -> dlogits [N, V] = g[n] * (onehot(t) - softmax(logits[n])); zero rows where t < 0.
 * lse [N] may be passed to skip recomputing it (with softcap: the capped logits' lse, as
 * logSoftmaxGatherWithLse gives it). softcap: logits are the raw ones, dlogits their gradient
 * (the softmax of the capped logits, times 1 - tanh^2(logit / softcap)).
 */
export function logSoftmaxGatherBackward(
  rawLogits: ArrayLike<number>, targets: ArrayLike<number>, g: ArrayLike<number>, V?: number, lse?: ArrayLike<number>,
  softcap?: number,
): Float64Array {
  const N = targets.length;
  const Vv = V ?? rawLogits.length / Math.max(N, 1);
  checkLen('logits', rawLogits, N * Vv); checkLen('g', g, N);
  const c = checkSoftcap(softcap, 'output layer reference');
  const logits = c ? softcapRef(rawLogits, c) : rawLogits;
  const l = lse ?? logSumExpRowsRef(logits, N, Vv);
  const dlogits = new Float64Array(N * Vv);
  for (let n = 0; n < N; n++) {
    const t = targets[n];
    if (t < 0) continue;
    checkTarget(t, Vv, n);
    const gn = g[n];
    const r = n * Vv;
    for (let v = 0; v < Vv; v++) dlogits[r + v] = -gn * Math.exp(logits[r + v] - l[n]);
    dlogits[r + t] += gn;
    if (c) for (let v = 0; v < Vv; v++) { const th = Math.tanh(rawLogits[r + v] / c); dlogits[r + v] *= 1 - th * th; }
  }
  return dlogits;
}

export interface OutputLogprobArgs {
  H: ArrayLike<number>;        // [N, d] final hidden states (after the final norm)
  W: ArrayLike<number>;        // [V, d] output weight (lm_head / embed_out, or the tied embedding)
  targets: ArrayLike<number>;  // [N] next-token ids, -1 = no target
  N: number; d: number; V: number;
  softcap?: number;            // final logit soft-capping (header); absent or 0: none
}

export interface OutputLogprobResult {
  logits: Float64Array; // [N, V] raw H W^T (uncapped even with softcap)
  lse: Float64Array;    // [N] of the logits the softmax sees (capped with softcap)
  logp: Float64Array;   // [N], 0 where target < 0
}

/** Forward: H [N, d], W [V, d], targets [N] -> logits [N, V], lse [N], logp [N]. */
export function outputLogprobRef(a: OutputLogprobArgs): OutputLogprobResult {
  checkLen('targets', a.targets, a.N);
  const logits = outputLogitsRef(a.H, a.W, a.N, a.d, a.V);
  const { logp, lse } = logSoftmaxGatherWithLse(logits, a.targets, a.V, a.softcap);
  return { logits, lse, logp };
}

export interface OutputLogprobGrads {
  dlogits: Float64Array; // [N, V] (of the raw logits)
  dH: Float64Array;      // [N, d]
  dW: Float64Array;      // [V, d]
}

/**
 * Backward: g [N] = dL/dlogp -> dlogits [N, V], dH [N, d] = dlogits W, dW [V, d] = dlogits^T H.
 */
export function outputLogprobBackwardRef(a: OutputLogprobArgs, g: ArrayLike<number>): OutputLogprobGrads {
  const { N, d, V, H, W } = a;
  checkLen('targets', a.targets, N);
  const logits = outputLogitsRef(H, W, N, d, V);
  const dlogits = logSoftmaxGatherBackward(logits, a.targets, g, V, undefined, a.softcap);
  const dH = new Float64Array(N * d);
  const dW = new Float64Array(V * d);
  for (let n = 0; n < N; n++) {
    for (let v = 0; v < V; v++) {
      const c = dlogits[n * V + v];
      if (c === 0) continue;
      for (let k = 0; k < d; k++) {
        dH[n * d + k] += c * W[v * d + k];
        dW[v * d + k] += c * H[n * d + k];
      }
    }
  }
  return { dlogits, dH, dW };
}

function checkLen(name: string, x: ArrayLike<number>, n: number): void {
  if (x.length !== n) throw new Error(`${name}: length ${x.length}, expected ${n}`);
}

function checkTarget(t: number, V: number, n: number): void {
  if (!Number.isInteger(t) || t >= V) throw new Error(`target ${t} at row ${n} out of range [0, ${V})`);
}
