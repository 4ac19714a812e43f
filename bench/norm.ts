// LayerNorm (GPT-NeoX) and RMSNorm (Llama) forward and backward (src/kernels/layernorm.ts) on
// [N, D] activations. These kernels are memory bound, so the result is bytes per second and its
// share of the adapter's copy bandwidth. Minimum traffic, f32 (4 bytes an element):
//   forward:  read x, write y (2 N D), read w (and b) (D each), write rstd (and mean) (N each);
//   backward: read dy and x, write dx (3 N D), read w, rstd (and mean), read and write dw (and db).
// The backward's weight-gradient partials (2 * ceil(N/32) * D floats, written then read) are
// counted too, since they are part of the kernels' real traffic. Also the column sums of the linear
// layers' bias gradients (src/kernels/column-sum.ts, db = sum of dy over tokens): read dy (N D),
// write and read the partial rows (ceil(N/64) D each way), read and write db.
import type { Gpu } from '../src/engine/gpu.js';
import { normBackward, normForward } from '../src/kernels/layernorm.js';
import { COLUMN_SUM_ROWS, columnSum } from '../src/kernels/column-sum.js';
import { timeIt, type Timing } from './harness.js';
import { fillUniform } from './random.js';

export interface NormCase { name: string; rms: boolean; N: number; D: number }
interface Measured { timing: Timing; bytes: number; gbPerS: number; pctOfCopy: number }
export interface NormResult extends NormCase { forward: Measured; backward: Measured }

function measured(timing: Timing, bytes: number, copyGBs: number): Measured {
  const gbPerS = bytes / (timing.ms * 1e6);
  return { timing, bytes, gbPerS, pctOfCopy: (100 * gbPerS) / copyGBs };
}

export async function benchNorm(gpu: Gpu, c: NormCase, copyGBs: number, warmup: number, repeats: number): Promise<NormResult> {
  const { N, D, rms } = c;
  const x = gpu.pool.acquire([N, D]); const y = gpu.pool.acquire([N, D]);
  const dy = gpu.pool.acquire([N, D]); const dx = gpu.pool.acquire([N, D]);
  const w = gpu.pool.acquire([D]); const b = gpu.pool.acquire([D]);
  const dw = gpu.pool.acquire([D]); const db = gpu.pool.acquire([D]);
  const mean = gpu.pool.acquire([N]); const rstd = gpu.pool.acquire([N]);
  fillUniform(gpu, x, 2, 31); fillUniform(gpu, dy, 1, 32); fillUniform(gpu, w, 1, 33); fillUniform(gpu, b, 1, 34);
  fillUniform(gpu, dw, 0, 0); fillUniform(gpu, db, 0, 0);
  const fwdT = await timeIt(gpu, () => normForward(gpu, rms, { x, w, b: rms ? undefined : b, y, mean: rms ? undefined : mean, rstd, N, D, eps: 1e-5 }),
    warmup, repeats);
  const bwdT = await timeIt(gpu, () => normBackward(gpu, rms, { dy, x, w, rstd, dx, N, D, dw, mean: rms ? undefined : mean, db: rms ? undefined : db }),
    warmup, repeats);
  gpu.pool.release(x, y, dy, dx, w, b, dw, db, mean, rstd);
  const k = rms ? 1 : 2; // weight-like vectors (w, b) and row statistics (rstd, mean)
  const fwdBytes = 4 * (2 * N * D + k * D + k * N);
  const partial = k * Math.ceil(N / 32) * D;
  const bwdBytes = 4 * (3 * N * D + D + k * N + 2 * k * D + 2 * partial);
  return { ...c, forward: measured(fwdT, fwdBytes, copyGBs), backward: measured(bwdT, bwdBytes, copyGBs) };
}

export function normCases(tokens: number): NormCase[] {
  return [false, true].flatMap((rms) => [768, 1024].map((D) => ({ name: `${rms ? 'rmsnorm' : 'layernorm'} D ${D}`, rms, N: tokens, D })));
}

export interface ColumnSumResult extends Measured { name: string; N: number; D: number }

export async function benchColumnSum(gpu: Gpu, N: number, D: number, copyGBs: number, warmup: number, repeats: number): Promise<ColumnSumResult> {
  const dy = gpu.pool.acquire([N, D]); const db = gpu.pool.acquire([D]);
  fillUniform(gpu, dy, 1, 35); fillUniform(gpu, db, 0, 0);
  const t = await timeIt(gpu, () => columnSum(gpu, { x: dy, out: db, N, D, accumulate: true }), warmup, repeats);
  gpu.pool.release(dy, db);
  const bytes = 4 * (N * D + 2 * Math.ceil(N / COLUMN_SUM_ROWS) * D + 2 * D);
  return { name: `bias gradient D ${D}`, N, D, ...measured(t, bytes, copyGBs) };
}
