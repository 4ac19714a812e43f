// Model parameters on the GPU, one tensor per Hugging Face tensor name, plus their gradients.
// Names are the checkpoint's, so the model code reads like a weight map
// (`p.get('gpt_neox.layers.0.attention.dense.weight')`).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { zero } from '../kernels/elementwise.js';

export interface ParamSpec { name: string; shape: number[] }

export class Params {
  readonly tensors = new Map<string, Tensor>();
  grads: Map<string, Tensor> | undefined;

  constructor(readonly gpu: Gpu, readonly specs: ParamSpec[]) {}

  /** Allocates every parameter (uninitialized). */
  allocate(): this {
    for (const s of this.specs) this.tensors.set(s.name, this.gpu.pool.acquire(s.shape, 'f32', s.name));
    return this;
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`model parameter ${name} is missing`);
    return t;
  }

  has(name: string): boolean { return this.tensors.has(name); }

  /** Gradient tensor of a parameter (allocated by allocateGrads). */
  grad(name: string): Tensor {
    const g = this.grads?.get(name);
    if (!g) throw new Error(`gradient of ${name} requested but gradients are not allocated`);
    return g;
  }

  allocateGrads(): void {
    if (this.grads) return;
    this.grads = new Map();
    for (const s of this.specs) this.grads.set(s.name, this.gpu.pool.acquire(s.shape, 'f32', `grad:${s.name}`));
    this.zeroGrads();
  }

  zeroGrads(): void {
    for (const g of this.grads?.values() ?? []) zero(this.gpu, g);
  }

  freeGrads(): void {
    if (!this.grads) return;
    this.gpu.pool.release(...this.grads.values());
    this.grads = undefined;
  }

  free(): void {
    this.freeGrads();
    this.gpu.pool.release(...this.tensors.values());
    this.tensors.clear();
  }

  get count(): number { return this.specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0); }
}
