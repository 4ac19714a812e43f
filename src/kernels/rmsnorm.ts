// RMSNorm, f32, as Hugging Face Llama/Mistral (LlamaRMSNorm): y = w * (x * rsqrt(mean(x^2) + eps)).
//
// Shapes: x, y, dy, dx [N, D] row-major, contiguous; w, dw [D]; rstd [N] saved for the backward.
//   backward: xhat = x * rstd, g = dy * w, dx = rstd * (g - xhat * mean(g * xhat)), dw += sum_rows dy * xhat.
// HF normalizes in float32 and multiplies by the weight after casting back to the input dtype; in
// f32 training both orders are the same computation. The kernels are the LayerNorm templates
// without the mean (layernorm.ts): one workgroup per row, a deterministic two-stage column sum for
// dw (accumulated, +=), row chunks over the binding limit. Reference: rmsnorm.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { normBackward, normForward } from './layernorm.js';

export interface RmsNormArgs {
  /** [N, D] input, [D] weight, [N, D] output, [N] saved 1/sqrt(mean(x^2) + eps). */
  x: Tensor; w: Tensor; y: Tensor; rstd: Tensor;
  N: number; D: number; eps: number;
  /** 1: Gemma's RMSNorm, y = (1 + w) * (x * rstd) (its weights are stored as gain - 1). */
  wOffset?: 0 | 1;
  /** y += the output instead of y = (a residual sum). */
  accumulate?: boolean;
}

/** y = w * (x * rstd) per row of x [N, D]; writes rstd [N]. */
export function rmsNorm(gpu: Gpu, a: RmsNormArgs): void {
  normForward(gpu, true, a);
}

export interface RmsNormBackwardArgs {
  dy: Tensor; x: Tensor; w: Tensor; rstd: Tensor;
  /** [N, D]: written, or added to when accumulateDx. */
  dx: Tensor;
  /** [D], accumulated (+=); omitted: not computed. */
  dw?: Tensor;
  N: number; D: number;
  accumulateDx?: boolean;
  /** The forward's wOffset. */
  wOffset?: 0 | 1;
}

/** RMSNorm backward: dx (= or +=) and dw += sum dy * x * rstd (deterministic). */
export function rmsNormBackward(gpu: Gpu, a: RmsNormBackwardArgs): void {
  normBackward(gpu, true, a);
}
