// When the recorder submits: early after the GPU went idle (a readback or sync), then in chunks
// doubling up to submitEvery, so a step's first kernels start while the host records the rest.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { fill } from '../../src/kernels/elementwise.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';

/** The dispatch counts (1-based) at which a submit happened, over `n` one-dispatch fills. */
function submitsOver(gpu: Gpu, t: Tensor, n: number, first = 0): number[] {
  const at: number[] = [];
  let submits = gpu.recorder.totalSubmits;
  for (let i = 1; i <= n; i++) {
    fill(gpu, t, first + i);
    if (gpu.recorder.totalSubmits > submits) { at.push(i); submits = gpu.recorder.totalSubmits; }
  }
  return at;
}

describe('recorder submits', () => {
  it('after a sync or a readback: at 8 dispatches, then 16, 32 and every submitEvery (64)', async () => {
    const gpu = await getGpu();
    expect(gpu.recorder.submitEvery).toBe(64);
    const t = gpu.tensor([16]);
    await gpu.sync();
    expect(submitsOver(gpu, t, 250)).toEqual([8, 24, 56, 120, 184, 248]);
    // The readback submits the rest and waits for it; its values are the last fill's.
    expect((await gpu.readF32(t))[0]).toBe(250);
    expect(submitsOver(gpu, t, 30, 250)).toEqual([8, 24]);
    expect((await gpu.readF32(t))[15]).toBe(280);
    gpu.pool.release(t);
  });
});
