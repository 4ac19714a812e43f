// Correlation statistics for evaluation (CPU, float64): Pearson, Spearman (average ranks for ties),
// Kendall tau-b (ties handled, O(n^2)). They match scipy.stats pearsonr / spearmanr / kendalltau
// (variant 'b'). Each returns NaN when it is undefined (n < 2, or a constant input).

function checkPair(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length !== y.length) throw new Error(`length ${x.length} vs ${y.length}`);
  return x.length;
}

/** Pearson correlation of x [n] and y [n]. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = checkPair(x, y);
  // A constant input by its values, as scipy tests it: [0.1, 0.1, 0.1]'s float mean leaves deviations
  // of 1e-17 that would otherwise give a correlation.
  if (n < 2 || isConstant(x) || isConstant(y)) return NaN;
  let mx = 0, my = 0;
  for (let i = 0; i < n; i++) { mx += x[i]; my += y[i]; }
  mx /= n; my /= n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = x[i] - mx, dy = y[i] - my;
    sxy += dx * dy; sxx += dx * dx; syy += dy * dy;
  }
  if (sxx === 0 || syy === 0) return NaN;
  const r = sxy / Math.sqrt(sxx * syy);
  return Math.max(-1, Math.min(1, r));
}

/** Ranks 1..n of x [n], tied values getting the average of their ranks (scipy rankdata 'average'). */
export function averageRanks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[a] - x[b]);
  const r = new Float64Array(n);
  let i = 0;
  while (i < n) {
    let j = i;
    while (j + 1 < n && x[idx[j + 1]] === x[idx[i]]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[idx[k]] = avg;
    i = j + 1;
  }
  return r;
}

/** Spearman rank correlation of x [n] and y [n] (Pearson of average ranks); NaN in either gives NaN, as scipy. */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkPair(x, y);
  if (hasNaN(x) || hasNaN(y)) return NaN; // NaN has no rank (a sort would place it anywhere)
  return pearson(averageRanks(x), averageRanks(y));
}

/**
 * Why the correlations of x and y are undefined (what they return NaN for), in words naming `xName` and
 * `yName`; undefined where they are defined.
 */
export function whyUncorrelated(x: ArrayLike<number>, y: ArrayLike<number>, xName: string, yName: string): string | undefined {
  if (checkPair(x, y) < 2) return `${x.length} pair${x.length === 1 ? '' : 's'}: it takes 2 or more`;
  if (isConstant(x)) return `the ${xName} are all equal`;
  if (isConstant(y)) return `the ${yName} are all equal`;
  return undefined;
}

function isConstant(x: ArrayLike<number>): boolean {
  for (let i = 1; i < x.length; i++) if (!(x[i] === x[0])) return false;
  return true;
}

function hasNaN(x: ArrayLike<number>): boolean {
  for (let i = 0; i < x.length; i++) if (Number.isNaN(x[i])) return true;
  return false;
}

/** Kendall tau-b of x [n] and y [n]: (C - D) / sqrt((n0 - n1)(n0 - n2)). */
export function kendallTauB(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = checkPair(x, y);
  if (n < 2) return NaN;
  // Over all pairs: C - D, and pairs not tied in x (n0 - n1) and not tied in y (n0 - n2).
  let s = 0, notTiedX = 0, notTiedY = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const sx = Math.sign(x[j] - x[i]), sy = Math.sign(y[j] - y[i]);
      if (sx !== 0) notTiedX++;
      if (sy !== 0) notTiedY++;
      s += sx * sy;
    }
  }
  if (notTiedX === 0 || notTiedY === 0) return NaN;
  const t = s / Math.sqrt(notTiedX * notTiedY);
  return Math.max(-1, Math.min(1, t));
}
