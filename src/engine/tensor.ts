// GPU tensors: a typed, shaped view of a byte range of a GPUBuffer, handed out by a pool.
//
// A Tensor never owns more than a view: `buffer` + `offset` (bytes) + `shape`. Buffers come from
// TensorPool, which keeps freed buffers by size so that a training step, after its first run,
// allocates nothing. Reusing a buffer on the same queue is safe: WebGPU runs commands in
// submission order. The one hazard, queue.writeBuffer overtaking recorded-but-unsubmitted
// commands, is avoided by flushing the recorder before every upload (see Gpu.upload).
import './webgpu.js';
import { userError } from '../errors.js';
import type { Gpu } from './gpu.js';

/** What makes a batch's tensors smaller, by each command's flags (a buffer too large, the GPU's memory spent). */
export const FEWER_TOKENS = 'fewer tokens at a time fit (--micro-batch-size, --max-length; ' +
  'srk generate: --batch-size, --max-prompt-length; srk bench: --pairs, --seq, --micro-batch)';

export type DType = 'f32' | 'f16' | 'u32' | 'i32';
export const DTYPE_BYTES: Record<DType, number> = { f32: 4, f16: 2, u32: 4, i32: 4 };

export class Tensor {
  constructor(
    readonly buffer: GPUBuffer,
    /** Byte offset of element 0 inside `buffer`. */
    readonly offset: number,
    readonly shape: readonly number[],
    readonly dtype: DType = 'f32',
    /** The pooled allocation this view belongs to (undefined for views). */
    readonly owner?: PooledBuffer,
  ) {}

  get numel(): number { return this.shape.reduce((a, b) => a * b, 1); }
  get bytes(): number { return this.numel * DTYPE_BYTES[this.dtype]; }
  get elemBytes(): number { return DTYPE_BYTES[this.dtype]; }

  /** A view of `shape` starting `elemOffset` elements into this tensor (no copy). */
  view(shape: readonly number[], elemOffset = 0, dtype: DType = this.dtype): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const start = this.offset + elemOffset * this.elemBytes;
    if (start + n * DTYPE_BYTES[dtype] > this.offset + this.bytes) {
      throw new RangeError(`view [${shape}] at +${elemOffset} exceeds tensor [${this.shape}]`);
    }
    return new Tensor(this.buffer, start, shape, dtype);
  }

  /** Rows r0..r1 of a tensor whose first dimension is rows. */
  rows(r0: number, r1: number): Tensor {
    const rowLen = this.numel / this.shape[0];
    return this.view([r1 - r0, ...this.shape.slice(1)], r0 * rowLen);
  }

  toString(): string { return `Tensor<${this.dtype}>[${this.shape.join(', ')}]`; }
}

/** A pool's buffer; `id` orders its size class's free list (creation order); `released`: when it was last freed (a tick). */
export interface PooledBuffer { buffer: GPUBuffer; size: number; free: boolean; id: number; released: number }

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Size classes: multiples of 256 bytes up to 64 KiB, then 1/8 steps of the power of two. */
function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

/** A request takes a free buffer up to this many times its size class before a new one is made. */
const MAX_SLACK = 2;

/**
 * Buffers by size class, reused.
 * - A request for a size the pool holds no buffer of (a token count not seen before) takes the
 *   smallest free buffer up to MAX_SLACK times larger: micro-batches of varied lengths (real data,
 *   longest first) reuse the longer ones' buffers. With one class per length, a long run over lengths
 *   up to 512 held 7-12 times its peak in free buffers.
 * - trimExcess, between steps, destroys the least recently used free buffers past twice the most ever
 *   in use at once.
 * - A free list hands out its lowest-id buffer (not the last released), so which buffer an acquire
 *   gets depends only on which are free, not on the order earlier steps released them: after a few
 *   steps of the same shapes, each step's acquires get the same buffers, its dispatches bind the same
 *   ranges, and the kernel cache's bind groups (kernel.ts bindGroup) are found instead of created anew
 *   (LIFO lists came back permuted each step: ~1 in 3 dispatches created a bind group).
 */
export class TensorPool {
  private free = new Map<number, PooledBuffer[]>();
  /** The sizes with a non-empty free list, ascending (for the smallest fitting one). */
  private freeSizes: number[] = [];
  private all = new Set<PooledBuffer>();
  /** Buffers of each size, free or in use. */
  private perSize = new Map<number, number>();
  private nextId = 0;
  private tick = 0;
  /**
   * Bytes held in GPU buffers (free or in use); bytes of the buffers in use (the GPU memory the live
   * tensors occupy: a reused buffer may be larger than a tensor's size class), the most since a
   * benchmark last set it to inUseBytes, and the most ever (what trimExcess keeps room for).
   */
  allocatedBytes = 0;
  inUseBytes = 0;
  peakInUseBytes = 0;
  private maxInUseBytes = 0;

  constructor(private gpu: Gpu) {}

  /**
   * A tensor of `shape` in a free buffer of its size class, else a new one. `exact`: a buffer of just
   * its size (to 256 bytes), for long-lived large tensors (engine/arena.ts), where a size class's up to
   * 1/8 of slack would be memory held for nothing.
   */
  acquire(shape: readonly number[], dtype: DType = 'f32', label?: string, exact = false): Tensor {
    const bytes = Math.max(4, shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]);
    const size = exact ? Math.ceil(bytes / 256) * 256 : sizeClass(bytes);
    if (size > this.gpu.limits.maxBufferSize) {
      // Most often a batch's activations (tokens x width): said with the flags that make them smaller.
      throw userError(`tensor ${label ?? ''}[${shape}] ${dtype} needs ${size} bytes, over this ` +
        `adapter's maxBufferSize ${this.gpu.limits.maxBufferSize}: ${FEWER_TOKENS}`);
    }
    // A larger buffer only for a size the pool has none of (a length not seen before): sizes it has keep
    // to their own buffers, so a step of fixed shapes gets the same buffers every time (bind groups).
    let pb = this.takeFree(size, exact || this.perSize.get(size) ? size : MAX_SLACK * size);
    if (!pb) {
      const buffer = this.gpu.device.createBuffer({ size, usage: USAGE, label });
      pb = { buffer, size, free: false, id: this.nextId++, released: 0 };
      this.all.add(pb);
      this.perSize.set(size, (this.perSize.get(size) ?? 0) + 1);
      this.allocatedBytes += size;
    }
    pb.free = false;
    this.inUseBytes += pb.size;
    this.peakInUseBytes = Math.max(this.peakInUseBytes, this.inUseBytes);
    this.maxInUseBytes = Math.max(this.maxInUseBytes, this.inUseBytes);
    return new Tensor(pb.buffer, 0, [...shape], dtype, pb);
  }

  release(...tensors: (Tensor | undefined)[]): void {
    for (const t of tensors) {
      if (!t) continue;
      const pb = t.owner;
      if (!pb) throw new Error(`release of ${t}: not a pooled tensor (a view?)`);
      if (pb.free) throw new Error(`double release of ${t}`);
      pb.free = true;
      pb.released = ++this.tick;
      this.inUseBytes -= pb.size;
      let list = this.free.get(pb.size);
      if (!list) this.free.set(pb.size, (list = []));
      if (list.length === 0) this.freeSizes.splice(lowerBound(this.freeSizes, pb.size), 0, pb.size);
      // Kept in descending id order, so pop() gives the lowest id.
      let at = list.length;
      while (at > 0 && list[at - 1].id < pb.id) at--;
      list.splice(at, 0, pb);
    }
  }

  /** The lowest-id free buffer of the smallest size in [min, max], taken off its list. */
  private takeFree(min: number, max: number): PooledBuffer | undefined {
    const at = lowerBound(this.freeSizes, min);
    if (at >= this.freeSizes.length || this.freeSizes[at] > max) return undefined;
    const size = this.freeSizes[at];
    const list = this.free.get(size)!;
    const pb = list.pop()!;
    if (list.length === 0) this.freeSizes.splice(at, 1);
    return pb;
  }

  /** Destroys the free buffers (after a phase that will not come back, e.g. the reference pass). */
  trim(): void {
    for (const [, list] of this.free) for (const pb of list) this.drop(pb);
    this.free.clear();
    this.freeSizes = [];
  }

  /**
   * Where the buffers held exceed `factor` times the most ever in use at once, destroys free
   * buffers, the longest unused first, down to that (a step's own buffers, released last, stay: the
   * next step finds them, and their bind groups, again). Only between steps, with nothing recorded or in flight that
   * uses a free buffer (a destroyed buffer in a later submit is an error): trainStep calls it after
   * its readback.
   */
  trimExcess(factor = MAX_SLACK): void {
    const budget = factor * this.maxInUseBytes;
    if (this.allocatedBytes <= budget) return;
    const idle = [...this.free.values()].flat().sort((a, b) => a.released - b.released);
    for (const pb of idle) {
      if (this.allocatedBytes <= budget) break;
      const list = this.free.get(pb.size)!;
      list.splice(list.indexOf(pb), 1);
      if (list.length === 0) this.freeSizes.splice(lowerBound(this.freeSizes, pb.size), 1);
      this.drop(pb);
    }
  }

  destroyAll(): void {
    for (const pb of this.all) pb.buffer.destroy();
    this.all.clear();
    this.perSize.clear();
    this.free.clear();
    this.freeSizes = [];
    this.allocatedBytes = this.inUseBytes = 0;
  }

  private drop(pb: PooledBuffer): void {
    pb.buffer.destroy();
    this.all.delete(pb);
    this.perSize.set(pb.size, this.perSize.get(pb.size)! - 1);
    this.allocatedBytes -= pb.size;
  }
}

/** The first index of sorted `xs` whose value is >= x. */
function lowerBound(xs: readonly number[], x: number): number {
  let lo = 0; let hi = xs.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid + 1; else hi = mid; }
  return lo;
}
