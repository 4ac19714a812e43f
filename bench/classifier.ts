// The fused output layer (src/kernels/output-logprob.ts) at Pythia's vocabulary: forward
// (logits chunk by chunk + log-softmax gather) and backward (recomputed logits, dlogits in place,
// dh = dlogits W, dW += dlogits^T h).
// FLOP counts: 2 * N * V * d per matmul; the forward has one, the backward three. The row kernel
// (softmax) is not counted.
import type { Gpu } from '../src/engine/gpu.js';
import { outputChunkRows, outputLogprob, outputLogprobBackward } from '../src/kernels/output-logprob.js';
import { timeIt, type Timing } from './harness.js';
import { fillUniform, randomInts } from './random.js';

export interface ClassifierCase { name: string; N: number; V: number; d: number }
export interface ClassifierResult extends ClassifierCase {
  chunkRows: number;
  forward: { timing: Timing; gflops: number };
  backward: { timing: Timing; gflops: number };
}

export async function benchClassifier(gpu: Gpu, c: ClassifierCase, warmup: number, repeats: number): Promise<ClassifierResult> {
  const { N, V, d } = c;
  const h = gpu.pool.acquire([N, d]); const w = gpu.pool.acquire([V, d]);
  const dh = gpu.pool.acquire([N, d]); const dw = gpu.pool.acquire([V, d]);
  const logp = gpu.pool.acquire([N]); const weights = gpu.pool.acquire([N]);
  fillUniform(gpu, h, 1, 21); fillUniform(gpu, w, 0.05, 22); fillUniform(gpu, weights, 1, 23); fillUniform(gpu, dw, 0, 24);
  const targets = gpu.tensor([N], randomInts(N, V, 25), 'i32', 'targets');
  const args = { h, w, targets, N, d, V };
  const fwdT = await timeIt(gpu, () => outputLogprob(gpu, { ...args, logp }), warmup, repeats);
  // dW accumulates across repeats; with these magnitudes it stays finite and timing is unaffected.
  const bwdT = await timeIt(gpu, () => outputLogprobBackward(gpu, { ...args, weights, dh, dw }), warmup, repeats);
  gpu.pool.release(h, w, dh, dw, logp, weights, targets);
  const mm = 2 * N * V * d;
  return {
    ...c, chunkRows: outputChunkRows(gpu, N, V),
    forward: { timing: fwdT, gflops: mm / (fwdT.ms * 1e6) },
    backward: { timing: bwdT, gflops: (3 * mm) / (bwdT.ms * 1e6) },
  };
}

export function classifierCases(tokens: number, V = 50304): ClassifierCase[] {
  return [768, 1024].map((d) => ({ name: d === 768 ? 'pythia-160m' : 'pythia-410m', N: tokens, V, d }));
}
