// Choosing the next token from a row of logits, on the host, as transformers' generate() does:
// greedy (the first largest logit, torch.argmax's choice) when temperature is 0, otherwise a draw
// after the warpers in transformers' order: logits / temperature, then top-k (the k largest kept,
// ties at the k-th kept too), then top-p (the smallest set of the most likely tokens whose
// probability reaches p, the one crossing it included), renormalized.
import type { Rng } from '../init/prng.js';

export interface SamplingOptions {
  /** 0: greedy. */
  temperature: number;
  /** Keep the k most likely tokens (0: all). */
  topK: number;
  /** Keep the most likely tokens up to this total probability (1: all). */
  topP: number;
}

export function checkSampling(o: SamplingOptions): void {
  if (!(o.temperature >= 0) || !Number.isFinite(o.temperature)) throw new RangeError(`temperature must be 0 (greedy) or positive, got ${o.temperature}`);
  if (!(Number.isInteger(o.topK) && o.topK >= 0)) throw new RangeError(`top-k must be a whole number, 0 for all tokens, got ${o.topK}`);
  if (!(o.topP > 0 && o.topP <= 1)) throw new RangeError(`top-p must be in (0, 1], got ${o.topP}`);
}

/**
 * Index of the first largest value of logits[off, off + V). As the sampling warpers (warp below): a NaN
 * or +Inf logit is an error naming its token, and so is a row whose largest logit is -Inf (not token 0).
 */
export function argmax(logits: ArrayLike<number>, off: number, V: number): number {
  let best = 0; let bv = -Infinity;
  for (let j = 0; j < V; j++) {
    const x = logits[off + j];
    if (Number.isNaN(x) || x === Infinity) throw new RangeError(`logit of token ${j} is ${x} (the model's weights or activations are not finite)`);
    if (x > bv) { bv = x; best = j; }
  }
  if (bv === -Infinity) throw new RangeError('the largest logit is -Infinity (the model\'s weights or activations are not finite)');
  return best;
}

/**
 * The tokens a draw chooses from, in token order, and their probabilities (renormalized): the warpers
 * above applied to logits[off, off + V). Ties at the top-k or top-p boundary are all kept. Linear in V
 * but for the kept tokens' sort (a 50k vocabulary each token, each row: well under a millisecond).
 */
function warp(logits: ArrayLike<number>, off: number, V: number, o: SamplingOptions): { ids: Int32Array; probs: Float64Array } {
  // (x - max) / T rather than x / T: a tiny temperature gives -Infinity (probability 0) below the
  // largest logit and 0 at it, never an overflow to Infinity and NaN probabilities.
  let xmax = -Infinity;
  for (let j = 0; j < V; j++) {
    const x = logits[off + j];
    if (Number.isNaN(x)) throw new RangeError(`logit of token ${j} is NaN (the model's weights or activations are not finite)`);
    if (x > xmax) xmax = x;
  }
  if (!Number.isFinite(xmax)) throw new RangeError(`the largest logit is ${xmax} (the model's weights or activations are not finite)`);
  const scaled = new Float64Array(V);
  for (let j = 0; j < V; j++) scaled[j] = (logits[off + j] - xmax) / o.temperature;
  const m = 0;
  const floor = o.topK > 0 && o.topK < V ? kthLargest(scaled, o.topK) : -Infinity;
  let n = 0;
  for (let j = 0; j < V; j++) if (scaled[j] >= floor) n++;
  let ids = new Int32Array(n); let probs = new Float64Array(n);
  let z = 0;
  for (let j = 0, i = 0; j < V; j++) {
    if (scaled[j] < floor) continue;
    const e = Math.exp(scaled[j] - m);
    ids[i] = j; probs[i++] = e; z += e;
  }
  for (let i = 0; i < n; i++) probs[i] /= z;
  if (o.topP < 1) {
    // transformers drops the tokens whose cumulative probability, counted from the least likely, is at
    // most 1 - p: what stays is the most likely tokens up to and including the one that reaches p. Only
    // tokens above a bound t can be among them once those alone reach p: t falls by 16x until they do.
    let t = 1 / 64; let head: Float64Array;
    for (;;) {
      let sum = 0; let c = 0;
      for (let i = 0; i < n; i++) if (probs[i] > t) { sum += probs[i]; c++; }
      if (sum >= o.topP || t === 0) {
        head = new Float64Array(c);
        for (let i = 0, k = 0; i < n; i++) if (probs[i] > t) head[k++] = probs[i];
        break;
      }
      t = t < 1e-12 ? 0 : t / 16;
    }
    head.sort();
    let cum = 0; let cut = head[head.length - 1];
    for (let i = head.length - 1; i >= 0 && cum < o.topP; i--) { cum += head[i]; cut = head[i]; }
    let k = 0; let s = 0;
    for (let i = 0; i < n; i++) if (probs[i] >= cut) { k++; s += probs[i]; }
    const keptIds = new Int32Array(k); const keptProbs = new Float64Array(k);
    for (let i = 0, q = 0; i < n; i++) if (probs[i] >= cut) { keptIds[q] = ids[i]; keptProbs[q++] = probs[i] / s; }
    ids = keptIds; probs = keptProbs;
  }
  return { ids, probs };
}

/** The k-th largest of xs (k in [1, xs.length]): a min-heap of the k largest seen. */
function kthLargest(xs: Float64Array, k: number): number {
  const heap = new Float64Array(k);
  heap.set(xs.subarray(0, k));
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1; const r = l + 1; let s = i;
      if (l < k && heap[l] < heap[s]) s = l;
      if (r < k && heap[r] < heap[s]) s = r;
      if (s === i) return;
      const tmp = heap[i]; heap[i] = heap[s]; heap[s] = tmp; i = s;
    }
  };
  for (let i = (k >> 1) - 1; i >= 0; i--) down(i);
  for (let j = k; j < xs.length; j++) if (xs[j] > heap[0]) { heap[0] = xs[j]; down(0); }
  return heap[0];
}

/** The candidates of a draw (warp), most likely first: for tests and inspection. */
export function candidates(logits: ArrayLike<number>, off: number, V: number, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const w = warp(logits, off, V, o);
  const order = Array.from(w.ids, (_, i) => i).sort((a, b) => w.probs[b] - w.probs[a] || w.ids[a] - w.ids[b]);
  return { ids: order.map((i) => w.ids[i]), probs: order.map((i) => w.probs[i]) };
}

/** The next token from logits[off, off + V). */
export function sampleToken(logits: ArrayLike<number>, off: number, V: number, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === 0) return argmax(logits, off, V);
  const { ids, probs } = warp(logits, off, V, o);
  const u = rng.uniform();
  let cum = 0;
  for (let i = 0; i < ids.length; i++) {
    cum += probs[i];
    if (u < cum) return ids[i];
  }
  return ids[ids.length - 1]; // (u within rounding of 1)
}
