// Records dispatches and copies into one command encoder and submits them together.
//
// Work accumulates until flush() or until `submitEvery` dispatches are recorded: a training step
// goes to the GPU in a few dozen submits, so the GPU starts on the first layers while the host is
// still recording the rest (recording ~1000 dispatches takes the host tens of milliseconds, which
// would otherwise be added to the step). Nothing waits: a submit is not a readback. Readbacks and
// uploads flush first, so they see (and do not overtake) everything recorded.
//
// After a readback (or sync) the GPU has nothing left to do: the next submit goes at 8 dispatches and
// each following one takes twice as many, up to submitEvery, so the GPU starts on a step after ~8
// dispatches of recording instead of 64 (at ~50 us a dispatch on run 7's host, ~3 ms sooner each step).
import './webgpu.js';
import type { Gpu } from './gpu.js';
import type { BufferRange, Kernel } from './kernel.js';
import { envCount } from './env.js';

/** Default dispatches per submit; SRK_SUBMIT_EVERY overrides it (for measuring the effect). */
const SUBMIT_EVERY = 64;
/** Dispatches in the first submit after the GPU went idle (see the file comment). */
const FIRST_AFTER_IDLE = 8;

export class Recorder {
  private encoder: GPUCommandEncoder | undefined;
  private pass: GPUComputePassEncoder | undefined;
  private count = 0;
  /** Name of the last kernel recorded, for error messages. */
  lastKernel = '';
  /** Dispatches recorded since creation (for tests and bench statistics). */
  totalDispatches = 0;
  totalSubmits = 0;
  /** Dispatches per submit (see the file comment). */
  submitEvery: number;
  /** Dispatches that make the next submit: FIRST_AFTER_IDLE after idle(), doubling to submitEvery. */
  private limit: number;
  /**
   * Record but never submit (bench step's host-only steps: the host's own cost of recording a step,
   * with no GPU work competing for the CPU, as on a 2-core machine with lavapipe; and Gpu.destroy, which
   * drops what no readback will read). Nothing recorded meanwhile runs, so results read back are stale.
   */
  discard = false;

  constructor(private gpu: Gpu) {
    this.submitEvery = envCount('SRK_SUBMIT_EVERY') ?? SUBMIT_EVERY;
    this.limit = Math.min(FIRST_AFTER_IDLE, this.submitEvery);
  }

  /** The GPU has finished all submitted work (Gpu.read, Gpu.sync): submit the next work early. */
  idle(): void { this.limit = Math.min(FIRST_AFTER_IDLE, this.submitEvery); }

  private enc(): GPUCommandEncoder {
    if (!this.encoder) this.encoder = this.gpu.device.createCommandEncoder({ label: 'srk' });
    return this.encoder;
  }

  private endPass(): void {
    if (this.pass) { this.pass.end(); this.pass = undefined; }
  }

  /**
   * Records one dispatch. `storage` are the storage bindings in order; `params` the packed
   * uniform bytes when the kernel has a uniform binding. `tuning`: a name the tuner times this
   * dispatch under (tuner.ts), when it is one of the candidates being measured. `label`: the
   * profiler's name for it (default the kernel's), e.g. attention's products filed under attention.
   */
  dispatch(kernel: Kernel, storage: BufferRange[], params: Uint8Array | undefined,
    groups: readonly [number, number?, number?], tuning?: string, label?: string): void {
    const [x, y = 1, z = 1] = groups;
    if (x === 0 || y === 0 || z === 0) return;
    const max = this.gpu.limits.maxComputeWorkgroupsPerDimension;
    if (x > max || y > max || z > max) {
      throw new RangeError(`${kernel.def.name}: dispatch [${x}, ${y}, ${z}] over the ${max} workgroups per dimension limit`);
    }
    if (storage.length !== kernel.def.bindings.length) {
      throw new Error(`${kernel.def.name}: expected ${kernel.def.bindings.length} storage bindings, got ${storage.length}`);
    }
    const ranges = kernel.def.uniform
      ? [...storage, this.gpu.kernels.uniform(params ?? new Uint8Array(16))]
      : storage;
    const bg = this.gpu.kernels.bindGroup(kernel, ranges);
    // A pass of its own with begin/end timestamps: for the profiler (every dispatch) or the tuner.
    const prof = this.gpu.profiler?.enabled ? this.gpu.profiler
      : tuning !== undefined ? this.gpu.tuner?.profiler : undefined;
    let pass: GPUComputePassEncoder;
    if (prof) {
      if (prof.full) this.flush();
      this.endPass();
      const name = prof === this.gpu.profiler ? label ?? kernel.def.name : tuning!;
      pass = this.enc().beginComputePass({ label: kernel.def.name, timestampWrites: prof.next(name) });
    } else {
      if (!this.pass) this.pass = this.enc().beginComputePass({ label: 'srk' });
      pass = this.pass;
    }
    pass.setPipeline(kernel.pipeline);
    pass.setBindGroup(0, bg);
    pass.dispatchWorkgroups(x, y, z);
    if (prof) pass.end();
    this.lastKernel = kernel.def.name;
    this.totalDispatches++;
    if (++this.count >= this.limit) {
      this.flush();
      this.limit = Math.min(2 * this.limit, this.submitEvery);
    }
  }

  copy(src: BufferRange, dst: BufferRange): void {
    if (src.size !== dst.size) throw new Error(`copy: size mismatch ${src.size} vs ${dst.size}`);
    if (src.size === 0) return;
    this.endPass();
    this.enc().copyBufferToBuffer(src.buffer, src.offset, dst.buffer, dst.offset, src.size);
  }

  /** Records clearing a byte range to zero (multiple of 4 bytes). */
  clear(r: BufferRange): void {
    if (r.size === 0) return;
    this.endPass();
    this.enc().clearBuffer(r.buffer, r.offset, r.size);
  }

  /** Submits what was recorded (no wait). */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    this.gpu.profiler?.resolve(this.encoder);
    this.gpu.tuner?.profiler.resolve(this.encoder);
    const cb = this.encoder.finish();
    this.encoder = undefined;
    this.count = 0;
    if (this.discard) return;
    this.gpu.device.queue.submit([cb]);
    this.totalSubmits++;
  }

  get pending(): boolean { return this.encoder !== undefined; }
}
