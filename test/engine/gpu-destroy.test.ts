// Gpu.destroy() must end even when the queue never reports its work done (a hung driver): the
// process would otherwise never exit (Dawn's event pump keeps Node alive). And it drops what is recorded
// but not submitted: after an error, that work may name buffers its command freed on the way out.
import { describe, expect, it } from 'vitest';
import { Gpu } from '../../src/engine/gpu.js';
import { getGpu } from '../helpers/gpu.js';

/** A Gpu over a fake device whose queue never finishes; records what destroy() released. */
function hungGpu(): { gpu: Gpu; released: string[] } {
  const released: string[] = [];
  const fake = {
    destroyed: false,
    recorder: { discard: false, flush(this: { discard: boolean }) { released.push(this.discard ? 'flush (discarded)' : 'flush (submitted)'); } },
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
    expect(released).toEqual(['flush (discarded)', 'pool', 'device']);
    await gpu.destroy(200); // a second call does nothing
    expect(released).toEqual(['flush (discarded)', 'pool', 'device']);
  }, 10_000);
});

describe('a tensor past the adapter\'s maxBufferSize', () => {
  it('is refused by name with the flags that make a batch smaller, before any allocation', async () => {
    const gpu = await getGpu();
    const elements = Math.ceil(gpu.limits.maxBufferSize / 4) + 1;
    expect(() => gpu.pool.acquire([elements], 'f32', 'mlp_act')).toThrow(
      /^tensor mlp_act\[\d+\] f32 needs \d+ bytes, over this adapter's maxBufferSize \d+: fewer tokens at a time fit \(--micro-batch-size, --max-length; srk generate: --batch-size/);
  });
});
