import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { centralDiff, maxRelErr } from './losses-fd.js';
import { segmentSumBackwardRef, segmentSumRef } from '../../src/kernels/segment-sum.ref.js';

describe('segment sum reference', () => {
  it('sums and counts by segment, skipping -1; empty segments are 0', () => {
    const tok = Float64Array.from([-1, -2, -3, -4, -5, -6, -7]);
    const seg = Int32Array.from([-1, 0, 0, 2, -1, 2, 0]);
    const { sums, counts } = segmentSumRef(tok, seg, 4);
    expect(Array.from(sums)).toEqual([-2 - 3 - 7, 0, -4 - 6, 0]);
    expect(Array.from(counts)).toEqual([3, 0, 2, 0]);
    expect(Array.from(segmentSumBackwardRef(Float64Array.from([10, 20, 30, 40]), seg))).toEqual([0, 10, 10, 30, 0, 30, 10]);
  });

  it('rejects out-of-range segment ids and length mismatch', () => {
    expect(() => segmentSumRef(new Float64Array(2), Int32Array.from([0, 2]), 2)).toThrow(/segmentId 2 at 1 out of range \[0, 2\)/);
    expect(() => segmentSumRef(new Float64Array(2), Int32Array.from([0]), 2)).toThrow(/tokenLogp length 2 vs segmentId length 1/);
    expect(() => segmentSumBackwardRef(new Float64Array(1), Int32Array.from([1]))).toThrow(/segmentId 1 at 0 out of range \[0, 1\)/);
  });

  it('backward matches finite differences (N=37, S=5)', () => {
    const rng = makeRng();
    const N = 37, S = 5;
    const tok = rng.array(N, 3);
    const seg = Int32Array.from({ length: N }, () => rng.int(S + 1) - 1);
    const r = rng.array(S);
    const f = (): number => { const s = segmentSumRef(tok, seg, S).sums; let t = 0; for (let i = 0; i < S; i++) t += r[i] * s[i]; return t; };
    expect(maxRelErr(segmentSumBackwardRef(r, seg), centralDiff(f, tok)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });
});
