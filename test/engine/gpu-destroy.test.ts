// Gpu.destroy() must end even when the queue never reports its work done (a hung driver): the
// process would otherwise never exit (Dawn's event pump keeps Node alive).
import { describe, expect, it } from 'vitest';
import { Gpu } from '../../src/engine/gpu.js';

/** A Gpu over a fake device whose queue never finishes; records what destroy() released. */
function hungGpu(): { gpu: Gpu; released: string[] } {
  const released: string[] = [];
  const fake = {
    destroyed: false,
    recorder: { flush: () => released.push('flush') },
    pool: { destroyAll: () => released.push('pool') },
    device: {
      queue: { onSubmittedWorkDone: () => new Promise<void>(() => {}) },
      destroy: () => released.push('device'),
    },
  };
  return { gpu: Object.assign(Object.create(Gpu.prototype), fake) as Gpu, released };
}

describe('Gpu.destroy', () => {
  it('releases the device after its wait when the queue never finishes', async () => {
    const { gpu, released } = hungGpu();
    const t0 = performance.now();
    await gpu.destroy(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190);
    expect(released).toEqual(['flush', 'pool', 'device']);
    await gpu.destroy(200); // a second call does nothing
    expect(released).toEqual(['flush', 'pool', 'device']);
  }, 10_000);
});
