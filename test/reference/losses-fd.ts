// Finite-difference helpers for the output-layer / loss / optimizer reference tests (not a test file).
import { expect } from 'vitest';

/** Central differences of a scalar f at x [n], step h * max(1, |x_i|) (x perturbed in place, restored). */
export function centralDiff(f: () => number, x: Float64Array, h = 1e-5): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    const step = h * Math.max(1, Math.abs(x0));
    x[i] = x0 + step; const fp = f();
    x[i] = x0 - step; const fm = f();
    x[i] = x0;
    out[i] = (fp - fm) / (2 * step);
  }
  return out;
}

/**
 * Element-wise relative error max_i |a_i - b_i| / max(|b_i|, floor), floor = floorFrac * max|b|, so
 * near-zero entries are judged on the vector's scale. NaN counts as infinitely wrong.
 */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>, floorFrac = 1e-3): number {
  expect(a.length).toBe(b.length);
  let mb = 0;
  for (let i = 0; i < b.length; i++) mb = Math.max(mb, Math.abs(b[i]));
  const floor = Math.max(mb * floorFrac, 1e-300);
  let e = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor);
    e = Number.isNaN(d) ? Infinity : Math.max(e, d);
  }
  return e;
}

/** Scalar relative error |a - b| / max(|b|, tiny). */
export function relErr1(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(b), 1e-300);
}
