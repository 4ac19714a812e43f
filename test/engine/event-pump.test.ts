// Dawn's event pump paced on CPU adapters (src/engine/webgpu.ts paceDawnEvents): the global
// setImmediate waits a timer's millisecond for anonymous native callbacks (the pump's ticks, made by
// N-API) and stays the real one for JavaScript callbacks; a lavapipe device turns it on, so the pump
// no longer spins a core beside the adapter's own threads.
import { afterAll, describe, expect, it } from 'vitest';
import { isNApiCallback, paceDawnEvents } from '../../src/engine/webgpu.js';
import { getGpu } from '../helpers/gpu.js';

const real = globalThis.setImmediate;
afterAll(() => paceDawnEvents(0));

/** An anonymous native function, as N-API makes them (Function.prototype is one). */
const nativeAnon = Function.prototype as unknown as () => void;

describe('Dawn event pump', () => {
  it('tells N-API callbacks from JavaScript ones', () => {
    expect(isNApiCallback(nativeAnon)).toBe(true);
    expect(isNApiCallback(() => 0)).toBe(false);
    expect(isNApiCallback(function () { return 0; })).toBe(false);
    expect(isNApiCallback((() => 0).bind(null))).toBe(false); // native, but named 'bound ...'
    expect(isNApiCallback(Math.max)).toBe(false); // native, named
    expect(isNApiCallback('x')).toBe(false);
  });

  it('paced: native anonymous callbacks through a timer, the rest immediately; 0 restores the real setImmediate', async () => {
    paceDawnEvents(1);
    expect(globalThis.setImmediate).not.toBe(real);
    const t = globalThis.setImmediate(nativeAnon);
    expect(t.constructor.name).toBe('Timeout');
    const order: string[] = [];
    await new Promise<void>((done) => {
      globalThis.setImmediate(() => { order.push('js'); done(); });
    });
    expect(order).toEqual(['js']);
    const i = globalThis.setImmediate(() => undefined);
    expect(i.constructor.name).toBe('Immediate');
    paceDawnEvents(1); // idempotent: the real one is kept underneath
    paceDawnEvents(0);
    expect(globalThis.setImmediate).toBe(real);
  });

  it('a CPU adapter paces the pump, and readbacks still arrive', async () => {
    const gpu = await getGpu();
    expect(globalThis.setImmediate !== real).toBe(gpu.isCpuAdapter);
    const t = gpu.tensor([5], Float32Array.from([1, 2, 3, 4, 5]));
    expect(Array.from(await gpu.readF32(t))).toEqual([1, 2, 3, 4, 5]);
    gpu.pool.release(t);
  });
});
