// Per-kernel GPU time from timestamp queries. When enabled, the recorder puts each dispatch in a
// compute pass of its own with begin/end timestamp writes; `collect()` resolves them and sums the
// nanoseconds per kernel name. Profiling changes scheduling (one pass per dispatch), so it is for
// `srk bench`, not for training.
import './webgpu.js';

export interface KernelTime { name: string; calls: number; ns: number }

const CAPACITY = 4096; // queries (2 per dispatch)

export class Profiler {
  /** While false the recorder records as without a profiler (one pass for many dispatches). */
  enabled = true;
  private querySet: GPUQuerySet;
  private resolveBuf: GPUBuffer;
  private names: string[] = [];
  private pending: { staging: GPUBuffer; names: string[] }[] = [];
  private totals = new Map<string, KernelTime>();
  /** Every dispatch's time since the last reset, per kernel name (for medians in benchmarks). */
  readonly samples = new Map<string, number[]>();

  constructor(private device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: CAPACITY, label: 'profiler' });
    this.resolveBuf = device.createBuffer({
      size: CAPACITY * 8, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC, label: 'profiler-resolve',
    });
  }

  get full(): boolean { return this.names.length * 2 >= CAPACITY; }

  /** Timestamp writes for the next dispatch's pass. */
  next(name: string): GPUComputePassTimestampWrites {
    const i = this.names.length;
    this.names.push(name);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Called by the recorder before it finishes an encoder that holds timed passes. */
  resolve(encoder: GPUCommandEncoder): void {
    const n = this.names.length;
    if (n === 0) return;
    encoder.resolveQuerySet(this.querySet, 0, 2 * n, this.resolveBuf, 0);
    const staging = this.device.createBuffer({
      size: 2 * n * 8, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST, label: 'profiler-staging',
    });
    encoder.copyBufferToBuffer(this.resolveBuf, 0, staging, 0, 2 * n * 8);
    this.pending.push({ staging, names: this.names });
    this.names = [];
  }

  /** Waits for resolved timestamps and returns the totals since the last reset. */
  async collect(): Promise<KernelTime[]> {
    for (const { staging, names } of this.pending.splice(0)) {
      await staging.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(staging.getMappedRange().slice(0));
      staging.unmap();
      staging.destroy();
      names.forEach((name, i) => {
        const dt = Number(ts[2 * i + 1] - ts[2 * i]);
        const t = this.totals.get(name) ?? { name, calls: 0, ns: 0 };
        t.calls++;
        t.ns += dt > 0 ? dt : 0;
        this.totals.set(name, t);
        let list = this.samples.get(name);
        if (!list) this.samples.set(name, (list = []));
        list.push(dt > 0 ? dt : 0);
      });
    }
    return [...this.totals.values()].sort((a, b) => b.ns - a.ns);
  }

  reset(): void { this.totals.clear(); this.samples.clear(); }
}
