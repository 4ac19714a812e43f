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

/** Index of the first largest value of logits[off, off + V); NaN logits are an error naming the row. */
export function argmax(logits: ArrayLike<number>, off: number, V: number): number {
  let best = 0; let bv = -Infinity;
  for (let j = 0; j < V; j++) {
    const x = logits[off + j];
    if (Number.isNaN(x)) throw new RangeError(`logit of token ${j} is NaN (the model's weights or activations are not finite)`);
    if (x > bv) { bv = x; best = j; }
  }
  return best;
}

/**
 * The tokens a draw chooses from, in token order, and their probabilities (renormalized): the warpers
 * above applied to logits[off, off + V). Ties at the top-k or top-p boundary are all kept. Sorts typed
 * arrays only (a 50k vocabulary each token).
 */
function warp(logits: ArrayLike<number>, off: number, V: number, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const scaled = new Float64Array(V);
  let m = -Infinity;
  for (let j = 0; j < V; j++) {
    const x = logits[off + j];
    if (Number.isNaN(x)) throw new RangeError(`logit of token ${j} is NaN (the model's weights or activations are not finite)`);
    scaled[j] = x / o.temperature;
    if (scaled[j] > m) m = scaled[j];
  }
  // Top-k: the k-th largest value is the threshold.
  let floor = -Infinity;
  if (o.topK > 0 && o.topK < V) floor = Float64Array.from(scaled).sort()[V - o.topK];
  const ids: number[] = []; let probs: number[] = [];
  let z = 0;
  for (let j = 0; j < V; j++) {
    if (scaled[j] < floor) continue;
    const e = Math.exp(scaled[j] - m);
    ids.push(j); probs.push(e); z += e;
  }
  probs = probs.map((e) => e / z);
  if (o.topP < 1) {
    // transformers drops the tokens whose cumulative probability, counted from the least likely, is at
    // most 1 - p: what stays is the most likely tokens up to and including the one that reaches p.
    const sorted = Float64Array.from(probs).sort();
    let cum = 0; let cut = sorted[sorted.length - 1];
    for (let i = sorted.length - 1; i >= 0 && cum < o.topP; i--) { cum += sorted[i]; cut = sorted[i]; }
    const keep = ids.map((_, i) => i).filter((i) => probs[i] >= cut);
    const s = keep.reduce((a, i) => a + probs[i], 0);
    return { ids: keep.map((i) => ids[i]), probs: keep.map((i) => probs[i] / s) };
  }
  return { ids, probs };
}

/** The candidates of a draw (warp), most likely first: for tests and inspection. */
export function candidates(logits: ArrayLike<number>, off: number, V: number, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const w = warp(logits, off, V, o);
  const order = w.ids.map((_, i) => i).sort((a, b) => w.probs[b] - w.probs[a] || w.ids[a] - w.ids[b]);
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
