import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { embeddingBackward, embeddingForward } from '../../src/kernels/embedding.ref.js';
import { dot, fdGrad, relErr } from './fd.js';

describe('embedding reference', () => {
  it('gathers rows, and the backward (scatter-add with repeated ids) matches finite differences', () => {
    const rng = makeRng(); const V = 11, D = 13, N = 7;
    const table = rng.array(V * D), r = rng.array(N * D);
    const ids = Int32Array.from([3, 0, 10, 3, 7, 3, 0]); // repeats, first and last row
    const y = embeddingForward(table, ids, V, D);
    for (let n = 0; n < N; n++) expect(Array.from(y.subarray(n * D, (n + 1) * D))).toEqual(Array.from(table.subarray(ids[n] * D, (ids[n] + 1) * D)));
    const dT = embeddingBackward(r, ids, V, D);
    expect(relErr(dT, fdGrad(() => dot(embeddingForward(table, ids, V, D), r), table)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    for (const unused of [1, 2, 4, 5, 6, 8, 9]) expect(dT.subarray(unused * D, (unused + 1) * D).every((v) => v === 0)).toBe(true);
    expect(dT[3 * D + 2]).toBeCloseTo(r[0 * D + 2] + r[3 * D + 2] + r[5 * D + 2], 14);
  });

  it('paddingIdx rows get no gradient; out-of-range ids throw', () => {
    const V = 4, D = 2; const dy = Float64Array.from([1, 2, 3, 4, 5, 6]);
    const dT = embeddingBackward(dy, Int32Array.of(1, 0, 1), V, D, 1);
    expect(Array.from(dT)).toEqual([3, 4, 0, 0, 0, 0, 0, 0]);
    expect(() => embeddingForward(new Float64Array(V * D), Int32Array.of(4), V, D)).toThrow(RangeError);
    expect(() => embeddingForward(new Float64Array(V * D), Int32Array.of(-1), V, D)).toThrow(RangeError);
    expect(() => embeddingBackward(new Float64Array(D), Int32Array.of(9), V, D)).toThrow(RangeError);
  });
});
