// Finite-difference and comparison helpers for the layer-op float64 reference tests (not a test file).

/** Central-difference gradient of loss() with respect to every entry of x (perturbed in place, restored). */
export function fdGrad(loss: () => number, x: Float64Array, h = 1e-6): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h; const lp = loss();
    x[i] = x0 - h; const lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

/** sum(y * r): the random scalar objective whose upstream gradient is r. */
export function dot(y: ArrayLike<number>, r: ArrayLike<number>): number {
  if (y.length !== r.length) throw new Error(`dot: length ${y.length} vs ${r.length}`);
  let s = 0;
  for (let i = 0; i < y.length; i++) s += y[i] * r[i];
  return s;
}

/** max |a - b| / max |b| (NaN counts as infinitely wrong). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    num = Number.isNaN(d) ? Infinity : Math.max(num, d);
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-300);
}

/** max |a - b| (NaN counts as infinitely wrong). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`maxAbsDiff: length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    m = Number.isNaN(d) ? Infinity : Math.max(m, d);
  }
  return m;
}
