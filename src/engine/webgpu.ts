// Installs Dawn's WebGPU globals (GPUBufferUsage, GPUMapMode, ...) before any module uses them.
// Every engine module that touches a WebGPU constant imports this first.
import { create, globals } from 'webgpu';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

Object.assign(globalThis, globals);

export { create };

/** The `webgpu` package's version (its Dawn build), or "unknown" where its package.json cannot be read. */
export function dawnPackageVersion(): string {
  try {
    const file = createRequire(import.meta.url).resolve('webgpu/package.json');
    return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

/**
 * Paces Dawn's event pump on CPU adapters. While any asynchronous WebGPU work is pending (and a
 * device's lost-promise keeps that true for the device's life), dawn.node calls
 * wgpuInstanceProcessEvents from a setImmediate loop (its AsyncRunner, which looks the global
 * setImmediate up on every tick): one core spinning. On a CPU adapter that core is taken from the
 * "GPU" itself: lavapipe on this project's two-core machines ran a training step 1.56x slower
 * (bench step --shape small, 23.6 s against 15.2 s paced). So the global setImmediate, for the
 * pump's callbacks only (anonymous native functions: what N-API creates; JavaScript callbacks and
 * bound functions keep the real one), waits `ms` (a timer's 1 ms) per tick instead: events are seen
 * within a millisecond, and the core is free. Not on GPUs, where a spare core costs nothing and a
 * millisecond per readback would. Idempotent; `ms` 0 restores the busy pump.
 */
export function paceDawnEvents(ms: number): void {
  const g = globalThis as { setImmediate: typeof setImmediate; [realKey]?: typeof setImmediate };
  if (!g[realKey]) g[realKey] = g.setImmediate;
  const real = g[realKey]!;
  if (ms <= 0) { g.setImmediate = real; return; }
  const paced = (fn: (...a: unknown[]) => void, ...args: unknown[]) =>
    isNApiCallback(fn) ? setTimeout(fn, ms, ...args) : real(fn, ...args);
  g.setImmediate = paced as unknown as typeof setImmediate;
}
const realKey = Symbol.for('srk.realSetImmediate');

/** An anonymous native function (N-API's Napi::Function::New without a name): Dawn's pump tick. */
export function isNApiCallback(fn: unknown): boolean {
  return typeof fn === 'function' && fn.name === '' && Function.prototype.toString.call(fn).includes('[native code]');
}
