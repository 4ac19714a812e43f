// Moving whole token rows between a tensor and a subset of its rows, in the model's planned buffers:
// the scored tokens for the output layer and the last block's tail (block-tail.ts), the compact token
// order of a shared prefix (shared-prefix.ts). Gathers run embedding.ts's gather (rows of any [M, w]
// tensor by index), spreads row-scatter.ts's scatter into zeros.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { embeddingForward } from '../kernels/embedding.js';
import { fill } from '../kernels/elementwise.js';
import { scatterRows } from '../kernels/row-scatter.js';

/** The shape of m rows of `width` ([m] for a single column: per-token values such as log-probs). */
const rowsShape = (m: number, width: number) => (width === 1 ? [m] : [m, width]);

/**
 * out[i] = x[rows[i]] for i < n (x [M, width], rows u32 [n] in [0, M)). `out`: a tensor to write, or
 * the name of a new [n, width] one from the pool; returned.
 */
export function gatherRows(gpu: Gpu, x: Tensor, rows: Tensor, n: number, M: number, width: number, out: Tensor | string): Tensor {
  const o = typeof out === 'string' ? gpu.pool.acquire(rowsShape(Math.max(1, n), width), 'f32', out) : out;
  embeddingForward(gpu, { table: x, ids: rows, out: o, N: n, V: M, D: width });
  return o;
}

/** A new [M, width] tensor holding x [n, width]'s row i at rows[i] (distinct) and zeros elsewhere. */
export function spreadRows(gpu: Gpu, x: Tensor, rows: Tensor, n: number, M: number, width: number, name: string): Tensor {
  const out = gpu.pool.acquire(rowsShape(M, width), 'f32', name);
  fill(gpu, out, 0);
  scatterRows(gpu, { x, rows, out, n, M, D: width });
  return out;
}
