// Compute kernels: WGSL source -> cached pipeline; buffer windows; uniform parameters.
//
// A kernel is declared once (name, WGSL, the kind of each storage binding). Its uniform
// parameters, if any, are the binding after the storage bindings, all in @group(0).
// Parameters are scalar u32/i32/f32 fields packed in order (ParamWriter), and uniform buffers are
// cached by content: the same shapes in the next training step reuse the same uniform buffer and
// bind group, and a cached uniform is never rewritten, so no queue.writeBuffer can race a
// recorded command. Values that change every step (learning rate, step count) are passed as
// storage data instead.
import './webgpu.js';
import type { Gpu } from './gpu.js';
import { DTYPE_BYTES, type Tensor } from './tensor.js';

export type BindingKind = 'read' | 'rw';

export interface KernelDef {
  /** Label used in error messages and in the profiler. */
  name: string;
  code: string;
  entryPoint?: string;
  /** Storage bindings, in @binding order, starting at 0. */
  bindings: BindingKind[];
  /** Whether a uniform `params` binding follows the storage bindings. */
  uniform?: boolean;
}

export interface Kernel {
  def: KernelDef;
  pipeline: GPUComputePipeline;
  layout: GPUBindGroupLayout;
  id: number;
}

/** A byte range of a buffer to bind. */
export interface BufferRange { buffer: GPUBuffer; offset: number; size: number }

/** A binding window over part of a tensor, plus the element index where that part begins. */
export interface Window { range: BufferRange; base: number }

export class ParamWriter {
  private view: DataView;
  private n = 0;
  constructor(capacity = 64) { this.view = new DataView(new ArrayBuffer(capacity * 4)); }
  u32(...vs: number[]): this {
    for (const v of vs) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`u32 param out of range: ${v}`);
      this.view.setUint32(4 * this.n++, v, true);
    }
    return this;
  }
  i32(...vs: number[]): this { for (const v of vs) this.view.setInt32(4 * this.n++, v, true); return this; }
  f32(...vs: number[]): this { for (const v of vs) this.view.setFloat32(4 * this.n++, v, true); return this; }
  /** The packed bytes, padded to 16 (uniform struct size rule). */
  bytes(): Uint8Array {
    const len = Math.max(16, Math.ceil((this.n * 4) / 16) * 16);
    return new Uint8Array(this.view.buffer, 0, len);
  }
}

const bufferIds = new WeakMap<GPUBuffer, number>();
let nextBufferId = 1;
function bufferId(b: GPUBuffer): number {
  let id = bufferIds.get(b);
  if (id === undefined) bufferIds.set(b, (id = nextBufferId++));
  return id;
}

// A buffer's size, remembered: GPUBuffer.size is a call into Dawn (~0.1 us), and windowOf() runs for
// every binding of every dispatch.
const bufferSizes = new WeakMap<GPUBuffer, number>();
function bufferSize(b: GPUBuffer): number {
  let n = bufferSizes.get(b);
  if (n === undefined) bufferSizes.set(b, (n = b.size));
  return n;
}

const MAX_CACHED = 20_000;

interface BindGroupEntry { key: number[]; bg: GPUBindGroup }

/** One step of a 32-bit hash over whole numbers (offsets and sizes past 2^32 mix in their high part). */
function mixHash(h: number, x: number): number {
  h = Math.imul(h ^ (x >>> 0), 0x85ebca6b);
  if (x > 0xffffffff) h = Math.imul(h ^ Math.floor(x / 0x100000000), 0x27d4eb2f);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** The bucket of a bind-group key: 30 bits, so the Map key is a small integer (a larger one is a boxed double). */
export function bindKeyHash(key: readonly number[]): number {
  let h = 0x9e3779b1;
  for (let i = 0; i < key.length; i++) h = mixHash(h, key[i]);
  return h & 0x3fffffff;
}

function sameKey(a: number[], b: number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A checked() kernel not ready to dispatch: its creation under way, or refused by the adapter. */
export type KernelCheck = { pending: Promise<void> } | { failed: string };

function kernelKey(def: KernelDef): string {
  return `${def.name}\u0000${def.entryPoint ?? 'main'}\u0000${def.code}`;
}

export class KernelCache {
  private pipelines = new Map<string, Kernel>();
  /** Fast path: definitions seen before (constants and memoDef results) by identity. */
  private byDef = new WeakMap<KernelDef, Kernel>();
  /** checked() creations under way or refused, by kernelKey. */
  private checks = new Map<string, KernelCheck>();
  private uniforms = new Map<string, GPUBuffer>();
  /** Bind groups by a hash of (kernel, ranges); each entry keeps its key to compare (bindGroup()). */
  private bindGroups = new Map<number, BindGroupEntry[]>();
  private bindGroupCount = 0;
  /** The bucket function of bindGroup() (a test makes every key share one bucket). */
  bindKeyHash: (key: readonly number[]) => number = bindKeyHash;
  /** Bind groups and uniform buffers created so far: in a training step's steady state none are
   *  (the pool hands out the same buffers every step: tensor.ts TensorPool), `bench step` reports it. */
  bindGroupsCreated = 0;
  uniformsCreated = 0;
  private nextId = 1;

  constructor(private gpu: Gpu) {}

  get(def: KernelDef): Kernel {
    let k = this.byDef.get(def);
    if (k) return k;
    const key = kernelKey(def);
    k = this.pipelines.get(key);
    if (k) { this.byDef.set(def, k); return k; }
    const { layout, pipelineLayout } = this.layouts(def);
    const module = this.gpu.device.createShaderModule({ label: def.name, code: def.code });
    const pipeline = this.gpu.device.createComputePipeline({
      label: def.name, layout: pipelineLayout, compute: { module, entryPoint: def.entryPoint ?? 'main' },
    });
    return this.keep(def, key, pipeline, layout);
  }

  /**
   * The kernel once the adapter has compiled it without error, for alternatives that may not build
   * on every adapter (the tuner's candidate tilings): get() creates pipelines synchronously, so a
   * kernel the driver refuses turns into an error of the whole step. The first call starts an
   * asynchronous creation and returns `{ pending }`, a promise that resolves once the outcome is
   * known (the caller runs something else meanwhile); a refused kernel is `{ failed: message }`
   * from then on, with no error reported to the device.
   */
  checked(def: KernelDef): Kernel | KernelCheck {
    const k = this.byDef.get(def);
    if (k) return k;
    const key = kernelKey(def);
    const done = this.pipelines.get(key);
    if (done) { this.byDef.set(def, done); return done; }
    const state = this.checks.get(key);
    if (state) return state;
    const device = this.gpu.device;
    const { layout, pipelineLayout } = this.layouts(def);
    // The module's own errors (WGSL the compiler refuses) go to these scopes, not to the step.
    device.pushErrorScope('internal');
    device.pushErrorScope('validation');
    const module = device.createShaderModule({ label: def.name, code: def.code });
    const creation = device.createComputePipelineAsync({
      label: def.name, layout: pipelineLayout, compute: { module, entryPoint: def.entryPoint ?? 'main' },
    });
    const scopes = [device.popErrorScope(), device.popErrorScope()];
    const pending = Promise.all([creation, ...scopes]).then(
      ([pipeline, ...errors]) => {
        const error = errors.find((e) => e);
        if (error) this.checks.set(key, { failed: error.message });
        else { this.checks.delete(key); this.keep(def, key, pipeline as GPUComputePipeline, layout); }
      },
      (e: unknown) => { this.checks.set(key, { failed: e instanceof Error ? e.message : String(e) }); },
    );
    const st = { pending };
    this.checks.set(key, st);
    return st;
  }

  private layouts(def: KernelDef): { layout: GPUBindGroupLayout; pipelineLayout: GPUPipelineLayout } {
    const device = this.gpu.device;
    const entries: GPUBindGroupLayoutEntry[] = def.bindings.map((kind, i) => ({
      binding: i, visibility: GPUShaderStage.COMPUTE,
      buffer: { type: kind === 'read' ? 'read-only-storage' : 'storage' },
    }));
    if (def.uniform) {
      entries.push({ binding: def.bindings.length, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } });
    }
    const layout = device.createBindGroupLayout({ label: def.name, entries });
    return { layout, pipelineLayout: device.createPipelineLayout({ label: def.name, bindGroupLayouts: [layout] }) };
  }

  private keep(def: KernelDef, key: string, pipeline: GPUComputePipeline, layout: GPUBindGroupLayout): Kernel {
    const k = { def, pipeline, layout, id: this.nextId++ };
    this.pipelines.set(key, k);
    this.byDef.set(def, k);
    return k;
  }

  uniform(bytes: Uint8Array): BufferRange {
    // The bytes as the key, two to a UTF-16 unit, in one call (ParamWriter's bytes are aligned and a
    // multiple of 16 long; anything else is copied first).
    const even = bytes.byteOffset % 2 === 0 && bytes.length % 2 === 0 ? bytes : Uint8Array.from({ length: bytes.length + (bytes.length % 2) }, (_, i) => bytes[i] ?? 0);
    const key = String.fromCharCode.apply(null, new Uint16Array(even.buffer, even.byteOffset, even.length / 2) as unknown as number[]);
    let buf = this.uniforms.get(key);
    if (!buf) {
      if (this.uniforms.size >= MAX_CACHED) this.forget();
      this.uniformsCreated++;
      buf = this.gpu.device.createBuffer({
        size: bytes.length, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true, label: 'params',
      });
      new Uint8Array(buf.getMappedRange()).set(bytes);
      buf.unmap();
      this.uniforms.set(key, buf);
    }
    return { buffer: buf, offset: 0, size: bytes.length };
  }

  bindGroup(kernel: Kernel, ranges: BufferRange[]): GPUBindGroup {
    // Keyed by numbers, not a string: building and hashing a string of every range took ~9% of a
    // step's host time. The key is [kernel id, then buffer id, offset, size per range]; its hash picks
    // a bucket and the key itself is compared, so a hash collision costs a comparison, never a wrong group.
    const key = new Array<number>(1 + 3 * ranges.length);
    key[0] = kernel.id;
    for (let i = 0, j = 1; i < ranges.length; i++, j += 3) {
      const r = ranges[i];
      key[j] = bufferId(r.buffer); key[j + 1] = r.offset; key[j + 2] = r.size;
    }
    const h = this.bindKeyHash(key);
    let bucket = this.bindGroups.get(h);
    if (bucket) for (const e of bucket) if (sameKey(e.key, key)) return e.bg;
    if (this.bindGroupCount >= MAX_CACHED) { this.bindGroups.clear(); this.bindGroupCount = 0; bucket = undefined; }
    this.bindGroupsCreated++;
    const bg = this.gpu.device.createBindGroup({
      label: kernel.def.name, layout: kernel.layout,
      entries: ranges.map((r, i) => ({ binding: i, resource: { buffer: r.buffer, offset: r.offset, size: r.size } })),
    });
    if (bucket) bucket.push({ key, bg });
    else this.bindGroups.set(h, [{ key, bg }]);
    this.bindGroupCount++;
    return bg;
  }

  /** Drops cached uniforms and bind groups (they stay alive for work already recorded). */
  forget(): void {
    this.bindGroups.clear();
    this.bindGroupCount = 0;
    this.uniforms.clear();
  }
}

/**
 * A binding window covering elements [first, end) of tensor `t`. The window starts at the
 * nearest aligned byte at or before element `first`; `base` is the index of element `first`
 * inside the window, which the kernel adds to its own indices. Throws when the range is over the
 * binding limit: the caller must chunk (see chunkRanges).
 */
export function windowOf(gpu: Gpu, t: Tensor, first = 0, end = t.numel): Window {
  const eb = DTYPE_BYTES[t.dtype];
  const align = gpu.bindingAlign;
  const start = t.offset + first * eb;
  const alignedStart = Math.floor(start / align) * align;
  let size = Math.max(4, Math.ceil((t.offset + end * eb - alignedStart) / 4) * 4);
  size = Math.min(size, bufferSize(t.buffer) - alignedStart);
  if (size > gpu.maxBinding) {
    throw new RangeError(`binding of ${t} elements [${first}, ${end}) is ${size} bytes, over this adapter's ` +
      `maxStorageBufferBindingSize ${gpu.maxBinding}; the kernel must chunk it`);
  }
  return { range: { buffer: t.buffer, offset: alignedStart, size }, base: (start - alignedStart) / eb };
}

/** Largest number of elements of dtype size `eb` that one binding window can always hold. */
export function maxWindowElems(gpu: Gpu, eb = 4): number {
  return Math.floor((gpu.maxBinding - gpu.bindingAlign) / eb);
}

/** Splits [0, n) into chunks of at most `chunk` (elements, rows...). */
export function* chunkRanges(n: number, chunk: number): Generator<[number, number]> {
  if (n === 0) return;
  for (let s = 0; s < n; s += chunk) yield [s, Math.min(n, s + chunk)];
}

/** Workgroup counts for `n` workgroups in a 2-D grid under the 65535-per-dimension limit.
 *  Kernels recover the linear index as wg.x + wg.y * num_workgroups.x and bound-check it. */
export function grid(n: number, maxPerDim = 65535): [number, number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1, 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y, 1];
}

/**
 * Memoizes a kernel-definition generator by its arguments (JSON), so a variant's WGSL is generated
 * once and KernelCache.get() finds its pipeline by identity: generating and hashing tens of KB of
 * unrolled WGSL for every dispatch cost more host time than the GPU spent on many kernels.
 */
export function memoDef<A extends unknown[]>(gen: (...args: A) => KernelDef): (...args: A) => KernelDef {
  const cache = new Map<string, KernelDef>();
  return (...args: A): KernelDef => {
    const key = JSON.stringify(args);
    let d = cache.get(key);
    if (!d) cache.set(key, (d = gen(...args)));
    return d;
  };
}
