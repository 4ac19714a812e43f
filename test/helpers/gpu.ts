// One GPU device per test file: created lazily, destroyed after the file's tests so Dawn's
// event pump stops and the worker can exit.
import { afterAll } from 'vitest';
import { Gpu } from '../../src/engine/gpu.js';

let gpu: Promise<Gpu> | undefined;

export function getGpu(): Promise<Gpu> {
  if (!gpu) {
    gpu = Gpu.create();
    afterAll(async () => { if (gpu) { const g = await gpu; gpu = undefined; await g.destroy(); } });
  }
  return gpu;
}

/**
 * relErr bound of attention gradients with f16 operands (tensor cores, or the f32 kernels rounding
 * them) against float64 on the unrounded inputs: P and dS are rounded to f16 inside, so ~1e-3 is
 * the floor; lavapipe's worst over many seeds was 1.9e-3 (the flash forward with the f16 backward).
 * Over twice that: another GPU's summation order passes; a gradient 1% off (a wrong scale) does not.
 */
export const F16_GRAD_BOUND = 5e-3;

/** Largest relative error max|a-b| / max(max|b|, tiny): a scale-aware comparison for f32 results. */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0; let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= num)) num = Number.isNaN(d) ? Infinity : d;
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

/**
 * Runs `fn` with the adapter's maxStorageBufferBindingSize lowered to `bytes` (undefined: unchanged),
 * so the chunking paths that lavapipe's 128 MiB or an H100's 2 GiB would need huge tensors to reach
 * run on small ones.
 */
export async function withBindingLimit<T>(gpu: Gpu, bytes: number | undefined, fn: () => Promise<T>): Promise<T> {
  const saved = gpu.limits.maxStorageBufferBindingSize;
  if (bytes) gpu.limits.maxStorageBufferBindingSize = bytes;
  try { return await fn(); } finally { gpu.limits.maxStorageBufferBindingSize = saved; }
}

/**
 * The names of the kernels dispatched while `fn` runs (in order, repeats kept), and its result: for
 * tests that check which kernels a call records (a fused pass instead of two, a product left out).
 */
export async function dispatchedKernels<T>(gpu: Gpu, fn: () => T | Promise<T>): Promise<{ names: string[]; result: T }> {
  const names: string[] = [];
  const recorder = gpu.recorder;
  const dispatch = recorder.dispatch;
  recorder.dispatch = function (kernel, ...rest) { names.push(kernel.def.name); return dispatch.call(this, kernel, ...rest); };
  try {
    return { names, result: await fn() };
  } finally {
    recorder.dispatch = dispatch;
  }
}

/**
 * Runs `fn` with the tensor-core matmul kernels available: natively on an f16 subgroup-matrix adapter,
 * else emulated in plain WGSL (Gpu.emulateSmx, turned off again after); `fn` learns which. Returns
 * undefined, without calling `fn`, where neither can run (no f16 or subgroups): the caller skips.
 */
export async function withTensorCores<T>(gpu: Gpu, fn: (emulated: boolean) => Promise<T>): Promise<{ result: T } | undefined> {
  const emulate = !gpu.smxF16;
  if (emulate) gpu.emulateSmx = true;
  try {
    if (!gpu.smxMode) return undefined;
    return { result: await fn(emulate) };
  } finally {
    if (emulate) gpu.emulateSmx = false;
  }
}

/**
 * A NaN in the inputs must reach exactly the outputs the float64 reference makes NaN (a kernel that
 * skips a NaN score returns a finite, wrong value there); elsewhere relErr below `tol`. Returns how
 * many NaN entries there were, so a test can check it set one up.
 */
export function expectNanLikeReference(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): number {
  if (got.length !== want.length) throw new Error(`${what}: length ${got.length} vs ${want.length}`);
  const finiteGot: number[] = []; const finiteWant: number[] = [];
  let nans = 0;
  for (let i = 0; i < want.length; i++) {
    if (Number.isNaN(want[i])) {
      nans++;
      if (!Number.isNaN(got[i])) throw new Error(`${what}[${i}]: ${got[i]} where the reference is NaN`);
    } else {
      finiteGot.push(got[i]); finiteWant.push(want[i]);
    }
  }
  const e = relErr(finiteGot, finiteWant);
  if (!(e < tol)) throw new Error(`${what}: relErr ${e} over the entries the reference keeps finite`);
  return nans;
}
