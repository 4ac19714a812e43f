// Linear layers as Hugging Face stores them: W [out, in], optional b [out]; y = x W^T + b.
// Forward and backward are three matmuls; the bias gradient is a column sum of dy
// (column-sum.ts: deterministic, no atomics). With the f16 precision every product scales its A
// operand (x, dy) per tensor before rounding (matmul scaleA): gradients are small and would lose
// their low bits in f16's subnormals; activations of trained models can reach thousands in a few
// channels (the input of Llama's down projection), and f16 ends at 65504.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { matmul } from '../kernels/matmul.js';
import { columnSum } from '../kernels/column-sum.js';
import { absmaxOf } from '../kernels/absmax.js';

/**
 * The per-tensor scale of an operand several products take (absmax.ts partial maxima; release it
 * after them), or undefined when matmuls are f32 and need none.
 */
export function operandScale(gpu: Gpu, t: Tensor, n: number): Tensor | undefined {
  return gpu.matmulPrecision === 'f16' ? absmaxOf(gpu, t, n) : undefined;
}

/**
 * y [N, out] = x [N, in] W^T (+ b) (+ y if accumulate). `xScale`: operandScale(x) when x feeds
 * several layers (Llama's q, k, v); otherwise x's scale is found here.
 */
export function linearForward(gpu: Gpu, x: Tensor, w: Tensor, b: Tensor | undefined, y: Tensor,
  N: number, inF: number, outF: number, accumulate = false, xScale?: Tensor): void {
  matmul(gpu, { a: x, b: w, c: y, M: N, N: outF, K: inF, transB: true, bias: b, accumulate, scaleA: xScale ?? true });
}

export interface LinearGrads {
  /** dL/dx [N, in]: written, or added when accumulateDx. Omit to skip (first layer inputs). */
  dx?: Tensor; accumulateDx?: boolean;
  /** dL/dW [out, in] and dL/db [out]: always added (gradients accumulate over micro-batches). */
  dw: Tensor; db?: Tensor;
}

/** Backward of y = x W^T + b given dy [N, out]. */
export function linearBackward(gpu: Gpu, dy: Tensor, x: Tensor, w: Tensor, g: LinearGrads,
  N: number, inF: number, outF: number): void {
  // f16 precision: one max |dy| for both products that take dy.
  const scale = operandScale(gpu, dy, N * outF);
  // dW [out, in] += dy^T [out, N] x [N, in]
  matmul(gpu, { a: dy, b: x, c: g.dw, M: outF, N: inF, K: N, transA: true, accumulate: true, scaleA: scale });
  // db [out] += column sums of dy [N, out]
  if (g.db) columnSum(gpu, { x: dy, out: g.db, N, D: outF, accumulate: true });
  // dx [N, in] = dy [N, out] W [out, in]
  if (g.dx) matmul(gpu, { a: dy, b: w, c: g.dx, M: N, N: inF, K: outF, accumulate: g.accumulateDx ?? false, scaleA: scale });
  if (scale) gpu.pool.release(scale);
}
