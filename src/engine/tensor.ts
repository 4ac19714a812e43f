// GPU tensors: a typed, shaped view of a byte range of a GPUBuffer, handed out by a pool.
//
// A Tensor never owns more than a view: `buffer` + `offset` (bytes) + `shape`. Buffers come from
// TensorPool, which keeps freed buffers by size so that a training step, after its first run,
// allocates nothing. Reusing a buffer on the same queue is safe: WebGPU runs commands in
// submission order. The one hazard, queue.writeBuffer overtaking recorded-but-unsubmitted
// commands, is avoided by flushing the recorder before every upload (see Gpu.upload).
import './webgpu.js';
import type { Gpu } from './gpu.js';

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

/** A pool's buffer; `id` orders its size class's free list (creation order). */
export interface PooledBuffer { buffer: GPUBuffer; size: number; free: boolean; id: number }

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Size classes: multiples of 256 bytes up to 64 KiB, then 1/8 steps of the power of two. */
function sizeClass(bytes: number): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 65536) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 8;
  return Math.ceil(b / step) * step;
}

/**
 * Buffers by size class, reused. A free list hands out its lowest-id buffer (not the last released),
 * so which buffer an acquire gets depends only on which are free, not on the order earlier steps
 * released them: a training step's acquires get the same buffers every step, its dispatches bind the
 * same ranges, and the kernel cache's bind groups (kernel.ts bindGroup) are found instead of created
 * anew (LIFO lists came back permuted each step: ~1 in 3 dispatches created a bind group).
 */
export class TensorPool {
  private free = new Map<number, PooledBuffer[]>();
  private all = new Set<PooledBuffer>();
  private nextId = 0;
  /** Bytes currently held in GPU buffers (free or in use) and the most ever in use. */
  allocatedBytes = 0;
  inUseBytes = 0;
  peakInUseBytes = 0;

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
      throw new RangeError(`tensor ${label ?? ''}[${shape}] ${dtype} needs ${size} bytes, over this ` +
        `adapter's maxBufferSize ${this.gpu.limits.maxBufferSize}`);
    }
    let pb = this.free.get(size)?.pop();
    if (!pb) {
      const buffer = this.gpu.device.createBuffer({ size, usage: USAGE, label });
      pb = { buffer, size, free: false, id: this.nextId++ };
      this.all.add(pb);
      this.allocatedBytes += size;
    }
    pb.free = false;
    this.inUseBytes += size;
    this.peakInUseBytes = Math.max(this.peakInUseBytes, this.inUseBytes);
    return new Tensor(pb.buffer, 0, [...shape], dtype, pb);
  }

  release(...tensors: (Tensor | undefined)[]): void {
    for (const t of tensors) {
      if (!t) continue;
      const pb = t.owner;
      if (!pb) throw new Error(`release of ${t}: not a pooled tensor (a view?)`);
      if (pb.free) throw new Error(`double release of ${t}`);
      pb.free = true;
      this.inUseBytes -= pb.size;
      let list = this.free.get(pb.size);
      if (!list) this.free.set(pb.size, (list = []));
      // Kept in descending id order, so pop() gives the lowest id.
      let at = list.length;
      while (at > 0 && list[at - 1].id < pb.id) at--;
      list.splice(at, 0, pb);
    }
  }

  /** Destroys the free buffers (after a phase that will not come back, e.g. the reference pass). */
  trim(): void {
    for (const [, list] of this.free) for (const pb of list) this.drop(pb);
    this.free.clear();
  }

  destroyAll(): void {
    for (const pb of this.all) pb.buffer.destroy();
    this.all.clear();
    this.free.clear();
    this.allocatedBytes = this.inUseBytes = 0;
  }

  private drop(pb: PooledBuffer): void {
    pb.buffer.destroy();
    this.all.delete(pb);
    this.allocatedBytes -= pb.size;
  }
}
