// Model parameters on the GPU, one tensor per Hugging Face tensor name, plus their gradients.
// Names are the checkpoint's, so the model code reads like a weight map
// (`p.get('gpt_neox.layers.0.attention.dense.weight')`). Both lie back to back in a few buffers
// (engine/arena.ts, in spec order), so the optimizer, the gradient norm and zeroing the gradients
// take a buffer per dispatch rather than a tensor.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { acquireLike, allocateArenas } from '../engine/arena.js';
import { zero } from '../kernels/elementwise.js';

export interface ParamSpec { name: string; shape: number[] }

export class Params {
  readonly tensors = new Map<string, Tensor>();
  grads: Map<string, Tensor> | undefined;
  /** The buffers the parameters and the gradients are views of. */
  private arenas: Tensor[] = [];
  private gradArenas: Tensor[] = [];

  constructor(readonly gpu: Gpu, readonly specs: ParamSpec[]) {}

  /** Allocates every parameter (uninitialized). */
  allocate(): this {
    const { views, arenas } = allocateArenas(this.gpu, this.specs.map((s) => s.shape), 'params');
    this.specs.forEach((s, i) => this.tensors.set(s.name, views[i]));
    this.arenas = arenas;
    return this;
  }

  get(name: string): Tensor {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`model parameter ${name} is missing`);
    return t;
  }

  has(name: string): boolean { return this.tensors.has(name); }

  /** A parameter the config may leave out (a bias), or undefined. */
  getOptional(name: string): Tensor | undefined { return this.tensors.get(name); }

  /** The gradient of a parameter the config may leave out, or undefined. */
  gradOptional(name: string): Tensor | undefined { return this.has(name) ? this.grad(name) : undefined; }

  /** Gradient tensor of a parameter (allocated by allocateGrads). */
  grad(name: string): Tensor {
    const g = this.grads?.get(name);
    if (!g) throw new Error(`gradient of ${name} requested but gradients are not allocated`);
    return g;
  }

  /** Zeroed gradients, laid out as the parameters are. */
  allocateGrads(): void {
    if (this.grads) return;
    const { views, arenas } = acquireLike(this.gpu, this.specs.map((s) => this.get(s.name)), 'grads');
    this.grads = new Map(this.specs.map((s, i) => [s.name, views[i]]));
    this.gradArenas = arenas;
  }

  zeroGrads(): void {
    for (const a of this.gradArenas) zero(this.gpu, a);
  }

  freeGrads(): void {
    if (!this.grads) return;
    this.gpu.pool.release(...this.gradArenas);
    this.gradArenas = [];
    this.grads = undefined;
  }

  free(): void {
    this.freeGrads();
    this.gpu.pool.release(...this.arenas);
    this.arenas = [];
    this.tensors.clear();
  }

  get count(): number { return this.specs.reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0); }
}
