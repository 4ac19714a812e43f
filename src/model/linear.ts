// Linear layers as Hugging Face stores them: W [out, in], optional b [out]; y = x W^T + b.
// Forward and backward are three matmuls; the bias gradient is a column sum of dy
// (column-sum.ts: deterministic, no atomics). With the f16 precision every product scales its A
// operand (x, dy) per tensor before rounding (matmul scaleA): gradients are small and would lose
// their low bits in f16's subnormals; activations of trained models can reach thousands in a few
// channels (the input of Llama's down projection), and f16 ends at 65504. The weight gradient
// dW = dy^T x takes x as B: it is scaled as such (scaleB), so an x the forward took is taken here
// too. The weights are rounded as they are (trained weights lie far inside f16's range).
//
// f16 copies (half.ts): in the f16 precision the products may read their operands as f16 copies
// made just before them (x and dy with their scales, W and the saved x as they are) instead of
// rounding f32 as they stage them: the same values reach the products (bit-identical results), at
// half the bytes per operand read (a tensor-core product reads each operand from L2 once per tile of
// the other), for one extra pass over each operand. Whether that pays depends on the adapter and the
// shape, so with a tuner (real GPUs) both ways are timed as a whole, per direction and shape bucket,
// and the faster kept (half.ts f16CopiesPick); SRK_F16_COPIES=1 forces copies, 0 never.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { halfOctave } from '../engine/tuner.js';
import { envSwitch } from '../engine/env.js';
import { matmul, type MatmulArgs } from '../kernels/matmul.js';
import { columnSum } from '../kernels/column-sum.js';
import { ABSMAX_PARTS, absmaxOf } from '../kernels/absmax.js';
import { f16CopiesEnv, f16CopiesPick, halfOf } from '../kernels/half.js';

/**
 * The per-tensor scale of an operand several products take (absmax.ts partial maxima; release it
 * after them), or undefined when matmuls are f32 and need none.
 */
export function operandScale(gpu: Gpu, t: Tensor, n: number): Tensor | undefined {
  return gpu.matmulPrecision === 'f16' ? absmaxOf(gpu, t, n) : undefined;
}

/**
 * Where the kernel that makes a linear layer's input can write its partial maxima in the same pass
 * (LayerNorm, RMSNorm, GELU and its backward: their `absmax` argument): a tensor for them when
 * matmuls are f16, else undefined. Pass it on as xScale / dyScale and release it after.
 * SRK_FUSED_ABSMAX=0: undefined (the linear layers then find the scale in a pass of their own).
 */
export function producedScale(gpu: Gpu): Tensor | undefined {
  if (gpu.matmulPrecision !== 'f16' || envSwitch('SRK_FUSED_ABSMAX') === '0') return undefined;
  return gpu.pool.acquire([ABSMAX_PARTS], 'f32', 'absmax parts');
}

/**
 * The f16-copies choice (half.ts) for one direction of a linear layer of this shape. A product under
 * 16 rows or columns multiplies f32 operands when staged (matmul.ts): such layers never take copies,
 * which would round them (SRK_F16_COPIES is still checked).
 */
function copiesPick(gpu: Gpu, dir: 'fwd' | 'bwd', N: number, inF: number, outF: number): { copies: boolean; timing?: string } {
  if (Math.min(N, inF, outF) < 16) { f16CopiesEnv(); return { copies: false }; }
  const b = halfOctave;
  return f16CopiesPick(gpu, `linear ${dir} 2^(${b(N)},${b(inF)},${b(outF)})`);
}

/**
 * y [N, out] = x [N, in] W^T (+ b) (+ y if accumulate). `xScale`: operandScale(x) when x feeds
 * several layers (Llama's q, k, v); otherwise x's scale is found here. `act`: y = act(x W^T + b),
 * fused into the product where it can be (matmul.ts MatmulArgs.act; no accumulate).
 */
export function linearForward(gpu: Gpu, x: Tensor, w: Tensor, b: Tensor | undefined, y: Tensor,
  N: number, inF: number, outF: number, accumulate = false, xScale?: Tensor, act?: MatmulArgs['act']): void {
  const { copies, timing } = copiesPick(gpu, 'fwd', N, inF, outF);
  // (The arguments written out in full: properties added after an object spread are slow stores in
  // V8, ~1 us each, matmul.ts problem().)
  if (!copies) { matmul(gpu, { a: x, b: w, c: y, M: N, N: outF, K: inF, transB: true, bias: b, accumulate, timing, scaleA: xScale ?? true, act }); return; }
  const parts = xScale ?? absmaxOf(gpu, x, N * inF);
  const xh = halfOf(gpu, x, N * inF, parts, timing);
  const wh = halfOf(gpu, w, outF * inF, undefined, timing);
  matmul(gpu, { a: xh, b: wh, c: y, M: N, N: outF, K: inF, transB: true, bias: b, accumulate, timing, scaleA: parts, act });
  gpu.pool.release(xh, wh);
  if (!xScale) gpu.pool.release(parts);
}

export interface LinearGrads {
  /** dL/dx [N, in]: written, or added when accumulateDx. Omit to skip (first layer inputs). */
  dx?: Tensor; accumulateDx?: boolean;
  /**
   * The backward of the activation that made x, applied to dx as it is stored (matmul.ts
   * MatmulArgs.act, op ..._bwd, pre = the activation's input): dx then holds the gradient of that
   * input (GPT-NeoX's MLP: dL/dh from the output layer's dy). No accumulateDx.
   */
  dxAct?: MatmulArgs['act'];
  /** dL/dW [out, in] and dL/db [out]: always added (gradients accumulate over micro-batches). */
  dw: Tensor; db?: Tensor;
}

/**
 * Backward of y = x W^T + b given dy [N, out]. `dyScale`: operandScale(dy) when dy feeds several
 * layers' backward (GPT-NeoX's parallel residual: the attention output and MLP output layers);
 * otherwise dy's scale is found here. `xScale`: operandScale(x) when x is several layers' input
 * (Llama's q, k, v and gate, up); otherwise x's scale (B of the weight gradient) is found here.
 */
export function linearBackward(gpu: Gpu, dy: Tensor, x: Tensor, w: Tensor, g: LinearGrads,
  N: number, inF: number, outF: number, dyScale?: Tensor, xScaleIn?: Tensor): void {
  const { copies, timing } = copiesPick(gpu, 'bwd', N, inF, outF);
  // f16 precision: one max |dy| for both products that take dy; with a bias, found by the pass that
  // sums its gradient (one read of dy for both), else by a pass of its own.
  let scale = dyScale;
  let own = false; // (found here: released here)
  if (!scale && g.db) { scale = producedScale(gpu); own = !!scale; }
  // db [out] += column sums of dy [N, out]
  if (g.db) columnSum(gpu, { x: dy, out: g.db, N, D: outF, accumulate: true, absmax: own ? scale : undefined });
  if (!scale) { scale = operandScale(gpu, dy, N * outF); own = !!scale; }
  // x's own scale as B of the weight gradient (a power of two: no rounding changes where x is in range).
  const xScale = xScaleIn ?? operandScale(gpu, x, N * inF);
  // The operands as the products read them: f32, or f16 copies (dy and x with their scales).
  const dyIn = copies ? halfOf(gpu, dy, N * outF, scale, timing) : dy;
  const xIn = copies ? halfOf(gpu, x, N * inF, xScale, timing) : x;
  // dW [out, in] += dy^T [out, N] x [N, in]
  matmul(gpu, { a: dyIn, b: xIn, c: g.dw, M: outF, N: inF, K: N, transA: true, accumulate: true, scaleA: scale, scaleB: xScale, timing });
  if (xScale && !xScaleIn) gpu.pool.release(xScale);
  // dx [N, in] = dy [N, out] W [out, in]
  if (g.dx) {
    const wIn = copies ? halfOf(gpu, w, outF * inF, undefined, timing) : w;
    matmul(gpu, { a: dyIn, b: wIn, c: g.dx, M: N, N: inF, K: outF, accumulate: g.accumulateDx ?? false, scaleA: scale, timing, act: g.dxAct });
    if (copies) gpu.pool.release(wIn);
  }
  if (copies) gpu.pool.release(dyIn, xIn);
  if (own) gpu.pool.release(scale!);
}
