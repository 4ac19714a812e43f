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

  it('readManyF32: several tensors (views at offsets, odd sizes) in one readback, each its own values', async () => {
    const gpu = await getGpu();
    const a = gpu.tensor([7], Float32Array.from({ length: 7 }, (_, i) => i + 0.5));
    const b = gpu.tensor([40], Float32Array.from({ length: 40 }, (_, i) => -i));
    const bView = b.view([3], 5); // elements 5, 6, 7
    const c = gpu.tensor([1], Float32Array.of(42));
    fill(gpu, c, 43); // recorded work before the read is seen by it
    const submits = gpu.recorder.totalSubmits;
    const [va, vb, vc] = await gpu.readManyF32([a, bView, c]);
    expect(gpu.recorder.totalSubmits).toBe(submits + 1);
    expect([...va]).toEqual([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5]);
    expect([...vb]).toEqual([-5, -6, -7]);
    expect([...vc]).toEqual([43]);
    const ints = gpu.tensor([2], undefined, 'i32');
    await expect(gpu.readManyF32([a, ints])).rejects.toThrow(/readManyF32 of/);
    gpu.pool.release(a, b, c, ints);
  });
});
