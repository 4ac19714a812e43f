import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { layerNormBackward, layerNormForward } from '../../src/kernels/layernorm.ref.js';
import { dot, fdGrad, maxAbsDiff, relErr } from './fd.js';

describe('layerNorm reference', () => {
  it('backward matches central finite differences (N=7, D=13)', () => {
    const rng = makeRng(); const N = 7, D = 13, eps = 1e-5;
    const x = rng.array(N * D, 2), w = rng.array(D), b = rng.array(D), r = rng.array(N * D);
    const loss = () => dot(layerNormForward(x, w, b, N, D, eps).y, r);
    const { mean, rstd } = layerNormForward(x, w, b, N, D, eps);
    const g = layerNormBackward(r, x, w, mean, rstd, N, D);
    expect(relErr(g.dx, fdGrad(loss, x)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(relErr(g.dw, fdGrad(loss, w)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(relErr(g.db, fdGrad(loss, b)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });

  it('normalizes each row to zero mean and unit (biased) variance before the affine', () => {
    const rng = makeRng(); const N = 5, D = 17;
    const x = rng.array(N * D, 3).map((v, i) => v + (i % D === 0 ? 10 : 0) + 4);
    const one = new Float64Array(D).fill(1), zero = new Float64Array(D);
    const { y, mean, rstd } = layerNormForward(x, one, zero, N, D, 0);
    for (let n = 0; n < N; n++) {
      const row = y.subarray(n * D, (n + 1) * D);
      const m = row.reduce((s, v) => s + v, 0) / D;
      const v = row.reduce((s, t) => s + (t - m) ** 2, 0) / D;
      expect(Math.abs(m), `seed ${rng.seed}`).toBeLessThan(1e-12);
      expect(Math.abs(v - 1), `seed ${rng.seed}`).toBeLessThan(1e-12);
      const xr = x.subarray(n * D, (n + 1) * D);
      const mx = xr.reduce((s, t) => s + t, 0) / D;
      expect(mean[n]).toBeCloseTo(mx, 12);
      expect(rstd[n]).toBeCloseTo(1 / Math.sqrt(xr.reduce((s, t) => s + (t - mx) ** 2, 0) / D), 10);
    }
    // The affine is applied per channel: y = xhat * w + b.
    const w = rng.array(D), b = rng.array(D);
    const ya = layerNormForward(x, w, b, N, D, 0).y;
    expect(maxAbsDiff(ya, y.map((v, i) => v * w[i % D] + b[i % D]))).toBeLessThan(1e-13);
  });

  it('a constant row gives y = b (eps keeps it finite)', () => {
    const D = 6; const x = new Float64Array(D).fill(3.5);
    const w = Float64Array.from([1, 2, 3, 4, 5, 6]), b = Float64Array.from([0.5, -1, 2, 0, 1, 7]);
    const { y } = layerNormForward(x, w, b, 1, D, 1e-5);
    expect(Array.from(y)).toEqual(Array.from(b));
  });
});
