// Float64 reference for LayerNorm (torch nn.LayerNorm over the last dim, biased variance),
// as used by GPT-NeoX: y = (x - mean) * rsqrt(var + eps) * w + b.

/** x [N, D], w [D], b [D] -> y [N, D], mean [N], rstd [N] (rstd = 1 / sqrt(var + eps)). */
export function layerNormForward(
  x: ArrayLike<number>, w: ArrayLike<number>, b: ArrayLike<number>, N: number, D: number, eps: number,
): { y: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(N * D), mean = new Float64Array(N), rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const o = n * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += x[o + d];
    const mu = s / D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[o + d] - mu) ** 2;
    const r = 1 / Math.sqrt(v / D + eps);
    mean[n] = mu; rstd[n] = r;
    for (let d = 0; d < D; d++) y[o + d] = (x[o + d] - mu) * r * w[d] + b[d];
  }
  return { y, mean, rstd };
}

/**
 * dy [N, D], x [N, D], w [D], mean [N], rstd [N] (from the forward) ->
 * dx [N, D], dw [D] (sum over rows of dy * xhat), db [D] (sum over rows of dy).
 * With xhat = (x - mean) * rstd and g = dy * w: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
 */
export function layerNormBackward(
  dy: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>,
  mean: ArrayLike<number>, rstd: ArrayLike<number>, N: number, D: number,
): { dx: Float64Array; dw: Float64Array; db: Float64Array } {
  const dx = new Float64Array(N * D), dw = new Float64Array(D), db = new Float64Array(D);
  for (let n = 0; n < N; n++) {
    const o = n * D, mu = mean[n], r = rstd[n];
    let sg = 0, sgx = 0;
    for (let d = 0; d < D; d++) {
      const xh = (x[o + d] - mu) * r, g = dy[o + d] * w[d];
      sg += g; sgx += g * xh;
      dw[d] += dy[o + d] * xh; db[d] += dy[o + d];
    }
    const mg = sg / D, mgx = sgx / D;
    for (let d = 0; d < D; d++) {
      const xh = (x[o + d] - mu) * r;
      dx[o + d] = r * (dy[o + d] * w[d] - mg - xh * mgx);
    }
  }
  return { dx, dw, db };
}
