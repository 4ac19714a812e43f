// The WebGPU device: adapter choice, features, limits, error handling and clean shutdown.
//
// One Gpu object owns one GPUDevice. Everything else (tensors, kernels, the command recorder)
// hangs off it. Dawn's Node binding keeps the process alive (and its event pump running: webgpu.ts)
// until the device is destroyed, so every command must end with `await gpu.destroy()`.
import { existsSync } from 'node:fs';
import { create, dawnPackageVersion, paceDawnEvents } from './webgpu.js';
import { Recorder } from './recorder.js';
import { FEWER_TOKENS, TensorPool, Tensor, type DType } from './tensor.js';
import { KernelCache } from './kernel.js';
import { Profiler } from './profiler.js';
import { Tuner, tuningWanted } from './tuner.js';
import { userError } from '../errors.js';
import { checkEnvironment } from './env.js';


export interface GpuOptions {
  /** Substring of the adapter's name (Dawn's `adapter=` option); also read from SRK_ADAPTER. */
  adapter?: string;
  /** Dawn's instance toggle for experimental features (subgroup matrix). Default on. */
  allowUnsafeApis?: boolean;
  /** Lift Dawn's NVIDIA shader-f16 block (toggle vulkan_enable_f16_on_nvidia). Default on. */
  enableF16OnNvidia?: boolean;
  /** Skip robustness clamping and workgroup zero-init (faster; our kernels bound-check themselves). */
  fast?: boolean;
  /** Extra Dawn toggles to enable. */
  toggles?: string[];
  /** Record per-kernel GPU time with timestamp queries (when the adapter has them). */
  profile?: boolean;
  /** Choose between equivalent kernels by timing the first steps (tuner.ts); default tuningWanted(). */
  tune?: boolean;
}

export interface SubgroupMatrixConfig {
  componentType: string; resultComponentType: string; M: number; N: number; K: number;
}

export interface GpuFeatures {
  shaderF16: boolean;
  subgroups: boolean;
  subgroupMatrix: boolean;
  timestampQuery: boolean;
  subgroupMatrixConfigs: SubgroupMatrixConfig[];
}

export const INSTALL_HINT =
  'No WebGPU adapter found. srk needs a Vulkan driver: a GPU driver, or Mesa lavapipe on a CPU-only ' +
  'machine. On Debian/Ubuntu run `bash scripts/setup-vulkan.sh` (installs libvulkan1 and ' +
  'mesa-vulkan-drivers, from bookworm-backports on Debian 12), and make sure XDG_RUNTIME_DIR is set.';

// Keep the `create()` results in module scope, one per argument list: Dawn keeps the process alive
// while one is reachable from globalThis, and releasing it explicitly can crash (engines.md section 4).
const instances = new Map<string, GPU>();

export class GpuError extends Error {}

/** An out-of-memory error of the device (GPUOutOfMemoryError), by class or, across bindings, by name. */
function isOutOfMemory(e: GPUError): boolean {
  return (typeof GPUOutOfMemoryError === 'function' && e instanceof GPUOutOfMemoryError) || e.constructor?.name === 'GPUOutOfMemoryError';
}

/**
 * SRK_DAWN_TOGGLES: Dawn toggles to enable, comma-separated, or with a leading '-' to disable (a
 * diagnostic switch: e.g. use_vulkan_memory_model, which scripts/gpu-check.sh tries when the
 * tensor-core attention fails, or -enable_integer_range_analysis_in_robustness to time without it).
 */
export function dawnTogglesEnv(): { enable: string[]; disable: string[] } {
  const raw = process.env.SRK_DAWN_TOGGLES;
  if (!raw) return { enable: [], disable: [] };
  const names = raw.split(',').map((x) => x.trim()).filter(Boolean);
  const bad = names.filter((x) => !/^-?[a-z0-9_]+$/.test(x));
  if (bad.length) {
    throw userError(`SRK_DAWN_TOGGLES=${raw}: ${bad.join(', ')} is not a Dawn toggle name (lower case, digits, _; ` +
      'a leading - disables it)');
  }
  return { enable: names.filter((x) => !x.startsWith('-')), disable: names.filter((x) => x.startsWith('-')).map((x) => x.slice(1)) };
}

/**
 * What the adapter says of itself (GPUAdapterInfo's fields that it fills), numbers and the fallback flag
 * as such (srk info --json, bench reports), and the Vulkan/default backend Dawn runs it on.
 */
export interface AdapterInfo {
  vendor?: string; architecture?: string; device?: string; description?: string;
  subgroupMinSize?: number; subgroupMaxSize?: number; isFallbackAdapter?: boolean;
  backend: string;
}

/** A software adapter (lavapipe, SwiftShader), from its info (adapterInfoRecord). */
export function isCpuAdapterInfo(a: AdapterInfo): boolean {
  return a.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(`${a.device} ${a.description} ${a.architecture}`);
}

/**
 * Dawn's instance arguments for `opts` and SRK_DAWN_TOGGLES: the toggles srk enables (and the
 * environment adds), and those it disables (the environment's '-name' ones win over srk's).
 * `cpu`: for a software adapter (Gpu.create asks for the adapter with the hardware arguments first).
 */
export function dawnFeatureArgs(opts: GpuOptions, cpu: boolean): string[] {
  const env = dawnTogglesEnv();
  const enable = [
    ...(opts.allowUnsafeApis !== false ? ['allow_unsafe_apis'] : []),
    ...(opts.enableF16OnNvidia !== false ? ['vulkan_enable_f16_on_nvidia'] : []),
    // The robustness transform clamps every runtime index; its integer range analysis (Dawn's
    // default) leaves out the clamps it proves needless, e.g. all of the f32 register matmul's
    // (4 per 64 FMAs of its inner loop otherwise). Asked for on GPUs, turned off on CPU adapters:
    // lavapipe gains nothing and compiles the unclamped kernels ~1.5x slower (the test suite).
    ...(cpu ? [] : [RANGE_ANALYSIS]),
    ...(opts.fast ? ['disable_robustness', 'disable_workgroup_init', 'skip_validation'] : []),
    ...(opts.toggles ?? []),
    ...env.enable,
  ].filter((x) => !env.disable.includes(x));
  // Full timestamp resolution for the profiler and the tuner (quantization is a browser privacy
  // measure; it rounds the times of short dispatches away).
  const disable = ['timestamp_quantization', ...(cpu && !env.enable.includes(RANGE_ANALYSIS) ? [RANGE_ANALYSIS] : []), ...env.disable];
  const args = [`enable-dawn-features=${enable.join(',')}`];
  if (disable.length) args.push(`disable-dawn-features=${disable.join(',')}`);
  return args;
}

export class Gpu {
  readonly features: GpuFeatures;
  readonly limits: Record<string, number>;
  readonly pool: TensorPool;
  readonly kernels: KernelCache;
  readonly recorder: Recorder;
  readonly profiler: Profiler | undefined;
  /**
   * Times the first steps' candidate kernels and keeps the fastest (tuner.ts); undefined: the
   * built-in rules. Tests may attach one to a shared device (`new Tuner(gpu.device)`).
   */
  tuner: Tuner | undefined;
  /**
   * Operand precision of every matmul that does not ask for one: 'f32', or 'f16' (operands rounded
   * to f16, products accumulated in f32; tensor cores through subgroup-matrix where the adapter has
   * an f16 config, else the f32 kernels with rounded operands). Set through setPrecision()
   * (src/engine/precision.ts), which falls back to f32 where the adapter lacks the feature.
   */
  matmulPrecision: 'f32' | 'f16' = 'f32';
  /**
   * Run the tensor-core kernels with their subgroup matrices emulated in plain WGSL
   * (src/kernels/smx-wgsl.ts) where the adapter has no f16 subgroup-matrix config: for tests on any
   * adapter with f16 and subgroups, and SRK_MIXED=emulate-tc. Never faster.
   */
  emulateSmx = false;
  /**
   * Tests: emulated tensor-core kernels laid out for this subgroup size instead of the adapter's (the
   * emulation holds whole matrices per invocation and takes subgroup index and lane from the local
   * index, so e.g. an H100's 32 runs on lavapipe's 8; kernels that shuffle across lanes cannot).
   */
  simulatedSubgroupSize: number | undefined;
  private errors: string[] = [];
  /** The first out-of-memory error since the last check() (the errors after it are mostly its consequences),
   *  how many errors came before it, and how many more out-of-memory errors followed. */
  private outOfMemory: { message: string; before: number; more: number } | undefined;
  private lostReason: string | undefined;
  private destroyed = false;

  private constructor(
    readonly adapter: GPUAdapter,
    readonly device: GPUDevice,
    readonly adapterInfo: AdapterInfo,
    features: GpuFeatures,
    opts: GpuOptions,
    /**
     * The Dawn build and the toggles this device was made with: a kernel choice timed (tuning.json)
     * under other settings may not even build under these (a robustness transform, a new compiler).
     */
    readonly dawnSettings = '',
  ) {
    this.features = features;
    const limits: Record<string, number> = {};
    for (const k in device.limits) limits[k] = (device.limits as unknown as Record<string, number>)[k];
    this.limits = limits;
    device.onuncapturederror = (ev: GPUUncapturedErrorEvent) => {
      // Reported by check(), with what ran: not also printed by Dawn (its default for an event not
      // prevented), which put a raw copy of each above srk's own message.
      ev.preventDefault();
      if (!isOutOfMemory(ev.error)) this.errors.push(ev.error.message);
      else if (this.outOfMemory) this.outOfMemory.more++;
      else this.outOfMemory = { message: ev.error.message, before: this.errors.length, more: 0 };
    };
    void device.lost.then((info) => {
      if (!this.destroyed) this.lostReason = `${info.reason}: ${info.message}`;
    });
    this.profiler = opts.profile && features.timestampQuery ? new Profiler(device) : undefined;
    const tune = opts.tune ?? tuningWanted(this.isCpuAdapter, features.timestampQuery);
    this.tuner = tune && features.timestampQuery ? new Tuner(device) : undefined;
    this.pool = new TensorPool(this);
    this.kernels = new KernelCache(this);
    this.recorder = new Recorder(this);
  }

  static async create(opts: GpuOptions = {}): Promise<Gpu> {
    const adapterName = opts.adapter ?? process.env.SRK_ADAPTER;
    // A malformed SRK_* switch fails here, before there is a device to release (env.ts; the toggles
    // first, for their own message).
    dawnTogglesEnv();
    for (const w of checkEnvironment()) console.warn(`srk: ${w}`);
    // Unset, or naming a directory that is not there (a login without logind): the Vulkan loader wants one.
    if (!process.env.XDG_RUNTIME_DIR || !existsSync(process.env.XDG_RUNTIME_DIR)) process.env.XDG_RUNTIME_DIR = '/tmp';
    const argsFor = (cpu: boolean) => [...dawnFeatureArgs(opts, cpu), ...(adapterName ? [`adapter=${adapterName}`] : [])];
    let adapter = await requestAdapter(argsFor(false), adapterName);
    // A software adapter: once more through an instance with the CPU toggles (so the path with two
    // instances is the one every lavapipe run takes, and a GPU takes one).
    const cpu = isCpuAdapterInfo(adapterInfoRecord(adapter));
    if (cpu) adapter = await requestAdapter(argsFor(true), adapterName);
    // The busy event pump paced on CPU adapters, where it would take a core from the adapter (webgpu.ts).
    paceDawnEvents(cpu ? 1 : 0);
    const has = (f: string) => adapter!.features.has(f);
    const wanted = ['shader-f16', 'subgroups', 'timestamp-query', 'chromium-experimental-subgroup-matrix']
      .filter(has);
    // Ask for the adapter's maximum of every limit: the defaults (128 MiB bindings, 16 KiB
    // workgroup memory, 8 storage buffers) are far below what real adapters offer.
    const requiredLimits: Record<string, number> = {};
    for (const k in adapter.limits) {
      const v = (adapter.limits as unknown as Record<string, number>)[k];
      // Dynamic-offset limits are not needed and Dawn warns when they are requested at maximum.
      if (typeof v === 'number' && !k.startsWith('maxDynamic')) requiredLimits[k] = v;
    }
    let device: GPUDevice;
    try {
      device = await withTimeout(adapter.requestDevice({ requiredFeatures: wanted as GPUFeatureName[], requiredLimits }),
        REQUEST_WAIT_MS, 'requestDevice');
    } catch (e) {
      const name = adapterInfoRecord(adapter).description;
      throw new GpuError(`the adapter${name ? ` ${name}` : ''} gave no device: ${(e as Error).message}`);
    }
    const info = adapterInfoRecord(adapter);
    const configs = readSubgroupMatrixConfigs(adapter);
    const features: GpuFeatures = {
      shaderF16: device.features.has('shader-f16'),
      subgroups: device.features.has('subgroups'),
      subgroupMatrix: device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName),
      timestampQuery: device.features.has('timestamp-query'),
      subgroupMatrixConfigs: configs,
    };
    const dawnSettings = [`webgpu ${dawnPackageVersion()}`, ...dawnFeatureArgs(opts, cpu)].join('; ');
    return new Gpu(adapter, device, info, features, opts, dawnSettings);
  }

  /**
   * The subgroup-matrix configuration srk's tensor-core matmul uses: f16 operands, f32 results,
   * 16x16x16 (NVIDIA exposes it once vulkan_enable_f16_on_nvidia is on), or undefined.
   */
  get smxF16(): SubgroupMatrixConfig | undefined {
    if (!this.features.subgroupMatrix || !this.features.shaderF16 || !this.features.subgroups) return undefined;
    if (!this.fixedSubgroupSize) return undefined;
    return this.features.subgroupMatrixConfigs.find((c) => /f16/i.test(c.componentType) &&
      /f32/i.test(c.resultComponentType) && c.M === 16 && c.N === 16 && c.K === 16);
  }

  /**
   * The adapter's one subgroup size, or 0 where it has a range (or reports none): the tensor-core
   * kernels lay their subgroups out for one known size (matmul-smx.ts, attention-smx.ts).
   */
  get fixedSubgroupSize(): number {
    if (this.simulatedSubgroupSize && this.emulateSmx && !this.features.subgroupMatrix) return this.simulatedSubgroupSize;
    const { subgroupMinSize: lo, subgroupMaxSize: hi } = this.adapterInfo;
    return lo && lo === hi ? lo : 0;
  }

  /**
   * How the tensor-core kernels run here: 'native' (smxF16), 'emulated' (emulateSmx on an adapter
   * with f16, subgroups and one subgroup size), or undefined (they cannot).
   */
  get smxMode(): 'native' | 'emulated' | undefined {
    if (this.smxF16) return 'native';
    if (!this.emulateSmx || !this.features.shaderF16 || !this.features.subgroups) return undefined;
    return this.fixedSubgroupSize ? 'emulated' : undefined;
  }

  /** A software adapter (lavapipe, SwiftShader): kernels pick CPU-friendly shapes, benchmarks shrink. */
  get isCpuAdapter(): boolean { return isCpuAdapterInfo(this.adapterInfo); }

  /** Largest byte range one storage binding may cover. */
  get maxBinding(): number { return this.limits.maxStorageBufferBindingSize; }
  get bindingAlign(): number { return this.limits.minStorageBufferOffsetAlignment; }

  /** Throws if the device reported an error or was lost. `context` names what ran last. */
  check(context = ''): void {
    if (this.lostReason) throw new GpuError(`GPU device lost (${this.lostReason})${context ? ` during ${context}` : ''}`);
    if (this.outOfMemory !== undefined) {
      // A buffer the driver could not allocate: the work that used it then fails validation too. Said as
      // what it is, with how much srk had asked for and what makes the run smaller; errors from before it
      // are listed, those after it counted.
      const { message, before, more } = this.outOfMemory;
      const errors = this.errors.splice(0);
      this.outOfMemory = undefined;
      const after = errors.length - before + more;
      const gib = (b: number) => (b / 2 ** 30).toFixed(2);
      throw new GpuError(`the GPU ran out of memory${context ? ` during ${context}` : ''} (${message.split('\n')[0].trim()}) with ` +
        `${gib(this.pool.allocatedBytes)} GiB of buffers asked for (the one refused included): ${FEWER_TOKENS}, or a smaller model` +
        `${after ? ` (${after} error${after === 1 ? '' : 's'} after it not shown)` : ''}` +
        `${before ? `; before it: ${errors.slice(0, before).join('\n---\n')}` : ''}`);
    }
    if (this.errors.length) {
      const msgs = this.errors.splice(0);
      throw new GpuError(`WebGPU error${context ? ` during ${context}` : ''}: ${msgs.join('\n---\n')}`);
    }
  }

  /** Submits recorded work and waits for the GPU to finish it. */
  async sync(): Promise<void> {
    this.recorder.flush();
    await this.device.queue.onSubmittedWorkDone();
    this.recorder.idle();
    this.check('sync');
  }

  private placeholders: Tensor[] = [];
  /**
   * A small zeroed f32 tensor to bind where a kernel's optional operand is absent (every declared
   * binding needs a buffer). Distinct `slot`s give distinct buffers, for kernels that bind several
   * absent writable operands at once.
   */
  placeholder(slot = 0): Tensor {
    while (this.placeholders.length <= slot) this.placeholders.push(this.tensor([4], new Float32Array(4), 'f32', 'placeholder'));
    return this.placeholders[slot];
  }

  /** A pooled tensor, optionally filled with `data`. */
  tensor(shape: readonly number[], data?: ArrayLike<number> | ArrayBufferView, dtype: DType = 'f32', label?: string): Tensor {
    const t = this.pool.acquire(shape, dtype, label);
    if (data) this.upload(t, data);
    return t;
  }

  /** Writes host data into a tensor (flushes recorded work first so the write cannot overtake it). */
  upload(t: Tensor, data: ArrayLike<number> | ArrayBufferView): void {
    this.recorder.flush();
    let bytes: ArrayBufferView;
    if (ArrayBuffer.isView(data) && !(data instanceof DataView) &&
        ((t.dtype === 'f32' && data instanceof Float32Array) || (t.dtype === 'u32' && data instanceof Uint32Array) ||
         (t.dtype === 'i32' && data instanceof Int32Array) || (t.dtype === 'f16' && data instanceof Uint16Array))) {
      bytes = data;
    } else {
      const src = data as ArrayLike<number>;
      bytes = t.dtype === 'f32' ? Float32Array.from(src) : t.dtype === 'u32' ? Uint32Array.from(src)
        : t.dtype === 'i32' ? Int32Array.from(src) : Uint16Array.from(src);
    }
    if (bytes.byteLength !== t.bytes) {
      throw new RangeError(`upload to ${t}: ${bytes.byteLength} bytes given, ${t.bytes} expected`);
    }
    // writeBuffer needs a multiple of 4 bytes; an odd f16 count is padded with one zero.
    const len = Math.ceil(bytes.byteLength / 4) * 4;
    const src = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const padded = len === bytes.byteLength ? src : (() => { const p = new Uint8Array(len); p.set(src); return p; })();
    this.device.queue.writeBuffer(t.buffer, t.offset, padded, 0, len);
  }

  /**
   * Copies tensors into one staging buffer, submits everything recorded and waits for it: one round
   * trip however many tensors (a step's end reads its gradient norm and each micro-batch's loss
   * statistics; separate readbacks would each wait with the GPU idle). Each tensor's bytes start at
   * its `at` (a copy moves whole 4-byte words: an odd f16 count reads its neighbour's half too).
   */
  private async readRaw(ts: readonly Tensor[], what: string): Promise<{ data: ArrayBuffer; at: number[] }> {
    let len = 0;
    const at = ts.map((t) => { const o = len; len += Math.ceil(t.bytes / 4) * 4; return o; });
    if (len === 0) { await this.sync(); return { data: new ArrayBuffer(0), at }; } // still a wait for what is recorded
    const staging = this.device.createBuffer({ size: len, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    ts.forEach((t, i) => {
      const size = Math.ceil(t.bytes / 4) * 4;
      if (size) this.recorder.copy({ buffer: t.buffer, offset: t.offset, size }, { buffer: staging, offset: at[i], size });
    });
    this.recorder.flush();
    const context = `${what} (last kernel ${this.recorder.lastKernel})`;
    try {
      await staging.mapAsync(GPUMapMode.READ);
    } catch (e) {
      this.check(context);
      throw e;
    }
    // Everything submitted before the copies has run: the GPU waits for the next submit.
    this.recorder.idle();
    const data = staging.getMappedRange().slice(0);
    staging.unmap();
    staging.destroy();
    this.check(context);
    return { data, at };
  }

  /** Reads a tensor back to the host (submits pending work and waits for it). */
  async read(t: Tensor): Promise<Float32Array | Uint32Array | Int32Array | Uint16Array> {
    const { data } = await this.readRaw([t], `read of ${t}`);
    const copy = data.slice(0, t.bytes);
    switch (t.dtype) {
      case 'f32': return new Float32Array(copy);
      case 'u32': return new Uint32Array(copy);
      case 'i32': return new Int32Array(copy);
      case 'f16': return new Uint16Array(copy);
    }
  }

  /** Reads an f32 tensor. */
  async readF32(t: Tensor): Promise<Float32Array> {
    if (t.dtype !== 'f32') throw new TypeError(`readF32 of ${t}`);
    return (await this.read(t)) as Float32Array;
  }

  /** Reads several f32 tensors in one round trip (readRaw). */
  async readManyF32(ts: readonly Tensor[]): Promise<Float32Array[]> {
    for (const t of ts) if (t.dtype !== 'f32') throw new TypeError(`readManyF32 of ${t}`);
    const { data, at } = await this.readRaw(ts, `read of ${ts.length} tensors`);
    return ts.map((t, i) => new Float32Array(data, at[i], t.numel));
  }

  /**
   * Drops what is recorded but not submitted, waits for the queue (at most `waitMs`: a GPU that never
   * finishes, a hung driver, must not keep the process from exiting) and releases the device. Nothing
   * recorded after the last readback has a reader, and after an error it may name buffers its command has
   * freed on the way out: submitted, it raised Dawn's "used in submit while destroyed" above the real error.
   */
  async destroy(waitMs = DESTROY_WAIT_MS): Promise<void> {
    if (this.destroyed) return;
    try {
      this.recorder.discard = true;
      this.recorder.flush();
      await withTimeout(this.device.queue.onSubmittedWorkDone(), waitMs, 'the queue');
    } catch { /* lost, or past the wait */ }
    this.destroyed = true;
    this.pool.destroyAll();
    this.device.destroy();
  }
}

const RANGE_ANALYSIS = 'enable_integer_range_analysis_in_robustness';
/** How long an adapter or a device may take to come (a driver that never answers is an error, not a hang). */
const REQUEST_WAIT_MS = 30_000;
/** How long destroy() waits for submitted work before releasing the device anyway. */
const DESTROY_WAIT_MS = 60_000;

/** The adapter of the Dawn instance made with `args` (kept in module scope, see `instances`). */
async function requestAdapter(args: string[], adapterName: string | undefined): Promise<GPUAdapter> {
  const key = args.join(' ');
  let instance = instances.get(key);
  if (!instance) instances.set(key, (instance = create(args)));
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await withTimeout(instance.requestAdapter({ powerPreference: 'high-performance' }), REQUEST_WAIT_MS, 'requestAdapter');
  } catch (e) {
    const msg = (e as Error).message;
    // Dawn refuses a name filter that nothing matches, listing what it did find: then no driver is missing.
    if (adapterName && /Available adapters:\s*\n\s*\*/.test(msg)) {
      throw new GpuError(`No WebGPU adapter matches "${adapterName}" (--adapter / SRK_ADAPTER); leave it out, or give part of one of these names\n(${msg})`);
    }
    throw new GpuError(`${INSTALL_HINT}\n(${msg})`);
  }
  if (!adapter) {
    throw new GpuError(adapterName
      ? `No WebGPU adapter matches "${adapterName}" (--adapter / SRK_ADAPTER). ${INSTALL_HINT}`
      : INSTALL_HINT);
  }
  return adapter;
}

function adapterInfoRecord(adapter: GPUAdapter): AdapterInfo {
  const info = adapter.info as unknown as Record<string, unknown>;
  const text = (k: string) => (typeof info[k] === 'string' && info[k] !== '' ? { [k]: info[k] as string } : {});
  const count = (k: string) => (typeof info[k] === 'number' ? { [k]: info[k] as number } : {});
  return {
    ...text('vendor'), ...text('architecture'), ...text('device'), ...text('description'),
    ...count('subgroupMinSize'), ...count('subgroupMaxSize'),
    ...(typeof info.isFallbackAdapter === 'boolean' ? { isFallbackAdapter: info.isFallbackAdapter } : {}),
    // Dawn's Node binding does not report the backend; it is its platform default unless overridden.
    backend: process.env.DAWNNODE_BACKEND ?? (process.platform === 'linux' ? 'vulkan' : 'default'),
  };
}

function readSubgroupMatrixConfigs(adapter: GPUAdapter): SubgroupMatrixConfig[] {
  const raw = (adapter.info as unknown as { subgroupMatrixConfigs?: unknown[] }).subgroupMatrixConfigs ?? [];
  return raw.map((c) => {
    const r = c as Record<string, unknown>;
    return {
      componentType: String(r.componentType), resultComponentType: String(r.resultComponentType),
      M: Number(r.M), N: Number(r.N), K: Number(r.K),
    };
  });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e) => { clearTimeout(t); reject(e); });
  });
}
