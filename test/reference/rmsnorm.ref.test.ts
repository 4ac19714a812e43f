import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { rmsNormBackward, rmsNormForward } from '../../src/kernels/rmsnorm.ref.js';
import { dot, fdGrad, maxAbsDiff, relErr } from './fd.js';

describe('rmsNorm reference', () => {
  it('backward matches central finite differences (N=7, D=13)', () => {
    const rng = makeRng(); const N = 7, D = 13, eps = 1e-6;
    const x = rng.array(N * D, 2), w = rng.array(D), r = rng.array(N * D);
    const loss = () => dot(rmsNormForward(x, w, N, D, eps).y, r);
    const { rstd } = rmsNormForward(x, w, N, D, eps);
    const g = rmsNormBackward(r, x, w, rstd, N, D);
    expect(relErr(g.dx, fdGrad(loss, x)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(relErr(g.dw, fdGrad(loss, w)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });

  it('unit weight gives unit mean square per row; no mean subtraction; weight multiplies after', () => {
    const rng = makeRng(); const N = 4, D = 9;
    const x = rng.array(N * D).map((v) => v + 5); // a large mean must survive (unlike LayerNorm)
    const one = new Float64Array(D).fill(1);
    const { y, rstd } = rmsNormForward(x, one, N, D, 0);
    for (let n = 0; n < N; n++) {
      const row = y.subarray(n * D, (n + 1) * D);
      expect(Math.abs(row.reduce((s, v) => s + v * v, 0) / D - 1), `seed ${rng.seed}`).toBeLessThan(1e-12);
      expect(row.reduce((s, v) => s + v, 0) / D).toBeGreaterThan(0.5);
      const ms = x.subarray(n * D, (n + 1) * D).reduce((s, v) => s + v * v, 0) / D;
      expect(rstd[n]).toBeCloseTo(1 / Math.sqrt(ms), 12);
    }
    const w = rng.array(D);
    expect(maxAbsDiff(rmsNormForward(x, w, N, D, 0).y, y.map((v, i) => v * w[i % D]))).toBeLessThan(1e-13);
  });

  it('eps enters as rsqrt(mean(x^2) + eps) and the output is scale invariant without it', () => {
    const x = Float64Array.from([3, 4]); const w = Float64Array.from([1, 1]);
    // mean(x^2) = 12.5; with eps = 0.5: rstd = 1/sqrt(13).
    expect(rmsNormForward(x, w, 1, 2, 0.5).rstd[0]).toBeCloseTo(1 / Math.sqrt(13), 15);
    const a = rmsNormForward(x, w, 1, 2, 0).y, b = rmsNormForward(x.map((v) => v * 7.25), w, 1, 2, 0).y;
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-15);
  });
});
