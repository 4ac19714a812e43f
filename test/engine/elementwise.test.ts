import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { addInto, axpy, copy, copyScaled, fill, scale, zero } from '../../src/kernels/elementwise.js';
import { axpyRef, fillRef, scaleRef } from '../../src/kernels/elementwise.ref.js';

/**
 * Largest |got - want| over the largest input magnitude: f32 sums of f32-rounded inputs are exact to
 * a few ulps of their terms, not of a result that cancels (a single element of 1.5 x - 2 y near 0).
 */
function errVsInputs(got: Float32Array, want: ArrayLike<number>, ...inputs: ArrayLike<number>[]): number {
  let d = 0;
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  let m = 1e-30;
  for (const a of inputs) for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return d / m;
}

describe('elementwise ops', () => {
  const rng = makeRng();
  it(`fill, scale, copy, axpy, add on awkward sizes and offsets (seed ${rng.seed})`, async () => {
    const gpu = await getGpu();
    for (const n of [1, 17, 1000, 70_001]) {
      const x = rng.array(n); const y = rng.array(n);
      const tx = gpu.tensor([n], Float32Array.from(x));
      const ty = gpu.tensor([n], Float32Array.from(y));
      axpy(gpu, 0.5, tx, -2, ty);
      expect(errVsInputs(await gpu.readF32(ty), axpyRef(0.5, x, -2, y), x, y)).toBeLessThan(1e-6);
      addInto(gpu, tx, ty);
      expect(errVsInputs(await gpu.readF32(ty), axpyRef(1, x, 1, axpyRef(0.5, x, -2, y)), x, y)).toBeLessThan(1e-6);
      scale(gpu, tx, 3);
      expect(relErr(await gpu.readF32(tx), scaleRef(x, 3))).toBeLessThan(1e-6);
      fill(gpu, ty, 1.25);
      expect(relErr(await gpu.readF32(ty), fillRef(n, 1.25))).toBe(0);
      copy(gpu, tx, ty);
      expect(relErr(await gpu.readF32(ty), scaleRef(x, 3))).toBeLessThan(1e-6);
      zero(gpu, ty);
      expect([...(await gpu.readF32(ty))].every((v) => v === 0)).toBe(true);
      gpu.pool.release(tx, ty);
    }
    // A view at an element offset that is not binding-aligned.
    const big = gpu.tensor([103], Float32Array.from(rng.array(103)));
    const v = big.view([50], 3);
    fill(gpu, v, 7);
    const back = await gpu.readF32(big);
    expect(back[2]).not.toBe(7); expect(back[3]).toBe(7); expect(back[52]).toBe(7); expect(back[53]).not.toBe(7);
    gpu.pool.release(big);
  });

  it('ops that overwrite y (fill, copy, copyScaled, axpy with b = 0) give exact values over a buffer holding NaN and Inf', async () => {
    // A pooled buffer's leftovers: 0 * NaN is NaN where the compiler keeps IEEE semantics (lavapipe
    // folds such a product away; a GPU's compiler need not), so these must not read y at all.
    const gpu = await getGpu();
    const n = 1031;
    const junk = Float32Array.from({ length: n }, (_, i) => [NaN, Infinity, -Infinity, 1][i % 4]);
    const x = rng.array(n); const tx = gpu.tensor([n], Float32Array.from(x));
    const ty = gpu.tensor([n], junk);
    fill(gpu, ty, 2.5);
    expect([...(await gpu.readF32(ty))].every((v) => v === 2.5)).toBe(true);
    for (const [name, run, want] of [
      ['copy', () => copy(gpu, tx, ty), x.map((v) => Math.fround(v))],
      ['copyScaled', () => copyScaled(gpu, tx, ty, -3), x.map((v) => Math.fround(-3 * Math.fround(v)))],
      ['axpy(a, 0)', () => axpy(gpu, 0.5, tx, 0, ty), x.map((v) => Math.fround(0.5 * Math.fround(v)))],
    ] as const) {
      gpu.upload(ty, junk);
      run();
      expect([...(await gpu.readF32(ty))], name).toEqual([...want]);
    }
    gpu.pool.release(tx, ty);
  });

  it(`tensors past the binding limit run in windows (seed ${rng.seed})`, async () => {
    const gpu = await getGpu();
    const n = 5003; // windows of 1024 floats, a short last one
    const x = rng.array(n); const y = rng.array(n);
    const tx = gpu.tensor([n], Float32Array.from(x)); const ty = gpu.tensor([n], Float32Array.from(y));
    await withBindingLimit(gpu, 4096, async () => {
      axpy(gpu, 0.5, tx, -2, ty);
      expect(errVsInputs(await gpu.readF32(ty), axpyRef(0.5, x, -2, y), x, y)).toBeLessThan(1e-6);
      copyScaled(gpu, tx, ty, 2);
      expect(relErr(await gpu.readF32(ty), scaleRef(x, 2))).toBeLessThan(1e-6);
      fill(gpu, ty, 4);
      expect(relErr(await gpu.readF32(ty), fillRef(n, 4))).toBe(0);
    });
    gpu.pool.release(tx, ty);
  });
});
