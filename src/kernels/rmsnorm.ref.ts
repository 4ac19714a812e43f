// Float64 reference for RMSNorm as in Hugging Face Llama/Mistral (LlamaRMSNorm):
// y = w * (x * rsqrt(mean(x^2) + eps)); no mean subtraction, no bias. HF normalizes in float32
// and multiplies by the weight after casting back; here everything is float64. Gemma's RMSNorm stores
// gain - 1: wOffset 1 gives y = (1 + w) * (x * rstd) (GemmaRMSNorm), and the same dw.

/** x [N, D], w [D] -> y [N, D], rstd [N] (rstd = 1 / sqrt(mean(x^2) + eps)). */
export function rmsNormForward(
  x: ArrayLike<number>, w: ArrayLike<number>, N: number, D: number, eps: number, wOffset = 0,
): { y: Float64Array; rstd: Float64Array } {
  const y = new Float64Array(N * D), rstd = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    const o = n * D;
    let s = 0;
    for (let d = 0; d < D; d++) s += x[o + d] * x[o + d];
    const r = 1 / Math.sqrt(s / D + eps);
    rstd[n] = r;
    for (let d = 0; d < D; d++) y[o + d] = (w[d] + wOffset) * (x[o + d] * r);
  }
  return { y, rstd };
}

/**
 * dy [N, D], x [N, D], w [D], rstd [N] (from the forward) -> dx [N, D], dw [D].
 * With xhat = x * rstd and g = dy * w: dx = rstd * (g - xhat * mean(g * xhat)); dw = sum_rows dy * xhat.
 */
export function rmsNormBackward(
  dy: ArrayLike<number>, x: ArrayLike<number>, w: ArrayLike<number>, rstd: ArrayLike<number>, N: number, D: number, wOffset = 0,
): { dx: Float64Array; dw: Float64Array } {
  const dx = new Float64Array(N * D), dw = new Float64Array(D);
  for (let n = 0; n < N; n++) {
    const o = n * D, r = rstd[n];
    let sgx = 0;
    for (let d = 0; d < D; d++) {
      const xh = x[o + d] * r;
      sgx += dy[o + d] * (w[d] + wOffset) * xh;
      dw[d] += dy[o + d] * xh;
    }
    const mgx = sgx / D;
    for (let d = 0; d < D; d++) dx[o + d] = r * (dy[o + d] * (w[d] + wOffset) - x[o + d] * r * mgx);
  }
  return { dx, dw };
}
