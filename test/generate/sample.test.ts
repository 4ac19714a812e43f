// The sampler against a plain statement of transformers' warpers (temperature, TopK, TopP on sorted
// probabilities), and its draws against the probabilities they come from.
import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { Rng } from '../../src/init/prng.js';
import { argmax, candidates, checkSampling, sampleToken, type SamplingOptions } from '../../src/generate/sample.js';

const rng = makeRng();

/** transformers' warpers, written out: sort descending, cut at k, softmax, cut where the cumulative reaches p. */
function warpRef(logits: number[], o: SamplingOptions): Map<number, number> {
  const order = logits.map((x, j) => [x / o.temperature, j] as [number, number]).sort((a, b) => b[0] - a[0]);
  const kept = o.topK > 0 ? order.slice(0, o.topK) : order;
  const m = kept[0][0];
  const z = kept.reduce((s, [x]) => s + Math.exp(x - m), 0);
  let probs = kept.map(([x, j]) => [Math.exp(x - m) / z, j] as [number, number]);
  if (o.topP < 1) {
    // Remove where the cumulative from the least likely is <= 1 - p.
    const asc = [...probs].reverse();
    let cum = 0; const removed = new Set<number>();
    for (const [p, j] of asc) { cum += p; if (cum <= 1 - o.topP) removed.add(j); }
    probs = probs.filter(([, j]) => !removed.has(j));
    if (probs.length === 0) probs = [kept.map(([x, j]) => [Math.exp(x - m) / z, j] as [number, number])[0]];
    const s = probs.reduce((a, [p]) => a + p, 0);
    probs = probs.map(([p, j]) => [p / s, j]);
  }
  return new Map(probs.map(([p, j]) => [j, p]));
}

describe(`sampling (seed ${rng.seed})`, () => {
  it('greedy is the first largest logit; NaN, +Inf and a row of -Inf are errors (as in sampling), a single -Inf is not', () => {
    expect(argmax([1, 3, 2, 3], 0, 4)).toBe(1);
    expect(argmax([9, 1, 3, 2, 3], 1, 4)).toBe(1);
    expect(sampleToken([0, 5, 5, 1], 0, 4, { temperature: 0, topK: 0, topP: 1 }, new Rng(1))).toBe(1);
    expect(() => argmax([0, NaN], 0, 2)).toThrow(/NaN/);
    expect(() => argmax([0, Infinity, 1], 0, 3)).toThrow(/logit of token 1 is Infinity/);
    expect(() => argmax([-Infinity, -Infinity], 0, 2)).toThrow(/largest logit is -Infinity/);
    expect(argmax([-Infinity, -3, -Infinity], 0, 3)).toBe(1);
    for (const logits of [[0, Infinity, 1], [-Infinity, -Infinity]]) {
      expect(() => sampleToken(logits, 0, logits.length, { temperature: 1, topK: 0, topP: 1 }, new Rng(1))).toThrow(/largest logit is/);
    }
  });

  it('options are checked', () => {
    expect(() => checkSampling({ temperature: -1, topK: 0, topP: 1 })).toThrow(/temperature/);
    expect(() => checkSampling({ temperature: 1, topK: 1.5, topP: 1 })).toThrow(/top-k/);
    expect(() => checkSampling({ temperature: 1, topK: 0, topP: 0 })).toThrow(/top-p/);
    expect(() => checkSampling({ temperature: 1, topK: 0, topP: 1.1 })).toThrow(/top-p/);
  });

  // V 3000 at a small logit scale: a flat distribution, whose nucleus holds most of the vocabulary.
  for (const [temperature, topK, topP, V, scale] of [[1, 0, 1, 37, 2], [0.7, 5, 1, 37, 2], [1.3, 0, 0.9, 37, 2], [0.5, 20, 0.3, 37, 2], [1, 50, 1, 37, 2],
    [2, 0, 1e-6, 37, 2], [1, 0, 0.97, 3000, 0.1], [0.9, 700, 0.8, 3000, 0.5]] as const) {
    it(`temperature ${temperature}, top-k ${topK}, top-p ${topP}, V ${V}: the candidates of transformers' warpers`, () => {
      const o = { temperature, topK, topP };
      const logits = Array.from(Float32Array.from(rng.array(V, scale))); // (the same f32 values to both)
      const want = warpRef(logits, o);
      const got = candidates(Float32Array.from(logits), 0, V, o);
      expect(new Set(got.ids)).toEqual(new Set(want.keys()));
      got.ids.forEach((j, i) => expect(got.probs[i]).toBeCloseTo(want.get(j)!, 5));
      for (let i = 1; i < got.probs.length; i++) expect(got.probs[i]).toBeLessThanOrEqual(got.probs[i - 1]);
    });
  }

  it('a tiny temperature is greedy, not an overflow', () => {
    const logits = Float32Array.from([0.5, 2, -1, 1.999]);
    const c = candidates(logits, 0, 4, { temperature: 1e-300, topK: 0, topP: 1 });
    expect(c.ids[0]).toBe(1);
    expect(c.probs).toEqual([1, 0, 0, 0]); // (every other token kept at probability 0, as transformers keeps them)
    expect(sampleToken(logits, 0, 4, { temperature: 1e-300, topK: 2, topP: 0.5 }, new Rng(3))).toBe(1);
    expect(() => candidates(Float32Array.from([0, Infinity]), 0, 2, { temperature: 1, topK: 0, topP: 1 })).toThrow(/not finite/);
  });

  it('top-k keeps every token tied with the k-th largest', () => {
    const got = candidates(Float32Array.from([1, 3, 2, 2, 0, 2]), 0, 6, { temperature: 1, topK: 2, topP: 1 });
    expect(got.ids).toEqual([1, 2, 3, 5]);
  });

  it('draws follow the candidates\' probabilities, with an offset into a longer row', () => {
    const V = 11;
    const o = { temperature: 0.8, topK: 6, topP: 0.95 };
    const row = Float32Array.from(rng.array(V));
    const logits = new Float32Array(3 * V); logits.set(row, V);
    const { ids, probs } = candidates(row, 0, V, o);
    const r = new Rng(rng.int(1e9));
    const n = 20000;
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) { const t = sampleToken(logits, V, V, o, r); counts.set(t, (counts.get(t) ?? 0) + 1); }
    for (const t of counts.keys()) expect(ids).toContain(t);
    ids.forEach((j, i) => {
      const f = (counts.get(j) ?? 0) / n;
      const sd = Math.sqrt(probs[i] * (1 - probs[i]) / n);
      expect(Math.abs(f - probs[i]), `token ${j}: ${f} vs ${probs[i]}`).toBeLessThan(5 * sd + 1e-9);
    });
  });
});
