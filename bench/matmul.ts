// Matmul throughput on square problems and on the products of a Pythia training step.
// Each result carries GFLOP/s and, to compare machines, the fraction of the adapter's measured
// copy bandwidth that the minimum traffic (read A and B, write C once) would need.
import type { Gpu } from '../src/engine/gpu.js';
import { matmul, matmulKernels, type MatmulArgs, type MatmulTile } from '../src/kernels/matmul.js';
import { absmaxOf } from '../src/kernels/absmax.js';
import { timeIt, tuneFirst, type Timing } from './harness.js';

export interface MatmulCase {
  name: string; M: number; N: number; K: number; transA?: boolean; transB?: boolean; tile?: MatmulTile;
  /** Operand precision (matmul.ts); 'f16' cases with scaleA (and, for dW, scaleB: the layer input as B) time
   *  the gradient products as training runs them (linear.ts). */
  precision?: 'f32' | 'f16'; scaleA?: boolean; scaleB?: boolean;
}
export interface MatmulResult extends MatmulCase {
  timing: Timing; gflops: number; minTrafficPctOfCopy?: number;
  /** Without a fixed tile where the tuner is on: the kernels of its choice (what was timed). */
  tunedKernels?: string[];
}

/** Pythia shapes (hidden d, MLP 4d, vocab 50304) for `tokens` tokens: forward, dX and dW products. */
export function pythiaCases(model: 'pythia-160m' | 'pythia-410m', tokens: number): MatmulCase[] {
  const d = model === 'pythia-160m' ? 768 : 1024;
  const out: MatmulCase[] = [];
  const lin = (what: string, inF: number, outF: number) => {
    out.push({ name: `${model} ${what} fwd`, M: tokens, N: outF, K: inF, transB: true });      // y = x W^T
    out.push({ name: `${model} ${what} dx`, M: tokens, N: inF, K: outF });                     // dx = dy W
    out.push({ name: `${model} ${what} dW`, M: outF, N: inF, K: tokens, transA: true });       // dW = dy^T x
  };
  lin('qkv', d, 3 * d);
  lin('attn-out', d, d);
  lin('mlp-up', d, 4 * d);
  lin('mlp-down', 4 * d, d);
  // The output layer runs in row chunks; one 1024-row chunk against the 50304-row vocabulary.
  out.push({ name: `${model} logits chunk fwd`, M: Math.min(1024, tokens), N: 50304, K: d, transB: true });
  return out;
}

export async function benchMatmul(gpu: Gpu, c: MatmulCase, copyGBs?: number, warmup = 2, repeats = 7): Promise<MatmulResult> {
  const sa = c.M * c.K; const sb = c.K * c.N; const sc = c.M * c.N;
  const a = gpu.pool.acquire([sa]); const b = gpu.pool.acquire([sb]); const out = gpu.pool.acquire([sc]);
  // Small random-ish values so nothing overflows; contents do not affect timing.
  const fillA = new Float32Array(sa); for (let i = 0; i < sa; i++) fillA[i] = ((i * 7919) % 13) / 13 - 0.5;
  gpu.upload(a, fillA);
  const fillB = new Float32Array(sb); for (let i = 0; i < sb; i++) fillB[i] = ((i * 104729) % 11) / 11 - 0.5;
  gpu.upload(b, fillB);
  // B's partial maxima, found once (training finds them per call, a pass of its own: not timed here).
  const partsB = c.scaleB && c.precision === 'f16' ? absmaxOf(gpu, b, sb) : undefined;
  const args: MatmulArgs = { a, b, c: out, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, tile: c.tile,
    precision: c.precision ?? 'f32', scaleA: c.scaleA, scaleB: partsB };
  // With the tuner on (engine/tuner.ts) an untiled case is timed as training runs it: the tuner's
  // choice, made the way the first training steps make it (candidates timed in turn, two settles).
  const tunedKernels = !c.tile && await tuneFirst(gpu, () => matmul(gpu, args)) ? matmulKernels(gpu, args) : undefined;
  const timing = await timeIt(gpu, () => matmul(gpu, args), warmup, repeats);
  gpu.pool.release(a, b, out);
  if (partsB) gpu.pool.release(partsB);
  const flops = 2 * c.M * c.N * c.K;
  const gflops = flops / (timing.ms * 1e6);
  const r: MatmulResult = { ...c, timing, gflops, tunedKernels };
  if (copyGBs) r.minTrafficPctOfCopy = (100 * (4 * (sa + sb + sc)) / (timing.ms * 1e6)) / copyGBs;
  return r;
}
