// One optimizer step (src/kernels/optimizer.ts: global gradient norm, then the clipped update of
// every parameter) over a model's parameter list (Pythia-160m's tensor shapes on a GPU). Memory
// bound: the result is bytes per second and its share of the copy bandwidth. Minimum traffic per
// parameter element, f32:
//   grad norm: read g                                       4 bytes
//   RMSprop:   read p, g, v; write p, v                    20 bytes   (24 with the norm)
//   AdamW:     read p, g, m, v; write p, m, v              28 bytes   (32 with the norm)
import type { Gpu } from '../src/engine/gpu.js';
import type { Tensor } from '../src/engine/tensor.js';
import { Optimizer, type OptimizerConfig } from '../src/kernels/optimizer.js';
import { presetConfig } from '../src/init/presets.js';
import { expectedParameters } from '../src/model/tensor-names.js';
import { timeIt, type Timing } from './harness.js';
import { fillUniform } from './random.js';

export interface OptimizerResult {
  name: string; shapes: string; tensors: number; elements: number; bytesPerElement: number; bytes: number;
  timing: Timing; gbPerS: number; pctOfCopy: number;
}

export async function benchOptimizers(gpu: Gpu, shapes: 'pythia-160m' | 'small', copyGBs: number, warmup: number, repeats: number): Promise<OptimizerResult[]> {
  const specs = expectedParameters(presetConfig('gpt-neox', shapes));
  const params: Tensor[] = specs.map((s) => gpu.pool.acquire(s.shape, 'f32', s.name));
  const grads: Tensor[] = specs.map((s) => gpu.pool.acquire(s.shape, 'f32', `grad:${s.name}`));
  params.forEach((p, i) => fillUniform(gpu, p, 0.03, 100 + i));
  grads.forEach((g, i) => fillUniform(gpu, g, 1e-3, 5000 + i));
  const elements = params.reduce((s, p) => s + p.numel, 0);
  const out: OptimizerResult[] = [];
  const cases: [string, OptimizerConfig, number][] = [['rmsprop', { type: 'rmsprop' }, 24], ['adamw', { type: 'adamw' }, 32]];
  for (const [name, cfg, bpe] of cases) {
    const opt = new Optimizer(gpu, cfg, params, { maxGradNorm: 1 });
    opt.setStep(1e-6, 1);
    const timing = await timeIt(gpu, () => opt.step(grads), warmup, repeats);
    opt.release();
    const bytes = bpe * elements;
    const gbPerS = bytes / (timing.ms * 1e6);
    out.push({ name: `${name} + clip`, shapes, tensors: params.length, elements, bytesPerElement: bpe, bytes, timing, gbPerS, pctOfCopy: (100 * gbPerS) / copyGBs });
  }
  gpu.pool.release(...params, ...grads);
  return out;
}
