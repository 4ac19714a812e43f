import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { copy, fill, zero } from '../../src/kernels/elementwise.js';
import { fillRef } from '../../src/kernels/elementwise.ref.js';

describe('elementwise ops', () => {
  const rng = makeRng();
  it(`fill, copy, zero on awkward sizes and offsets (seed ${rng.seed})`, async () => {
    const gpu = await getGpu();
    for (const n of [1, 17, 1000, 70_001]) {
      const x = rng.array(n); const y = rng.array(n);
      const tx = gpu.tensor([n], Float32Array.from(x));
      const ty = gpu.tensor([n], Float32Array.from(y));
      fill(gpu, ty, 1.25);
      expect(relErr(await gpu.readF32(ty), fillRef(n, 1.25))).toBe(0);
      copy(gpu, tx, ty);
      expect([...(await gpu.readF32(ty))]).toEqual([...Float32Array.from(x)]);
      zero(gpu, ty);
      expect([...(await gpu.readF32(ty))].every((v) => v === 0)).toBe(true);
      gpu.pool.release(tx, ty);
    }
    // Views at element offsets that are not binding-aligned: fill, and copy between two such views.
    const big = gpu.tensor([103], Float32Array.from(rng.array(103)));
    const v = big.view([50], 3);
    fill(gpu, v, 7);
    const back = await gpu.readF32(big);
    expect(back[2]).not.toBe(7); expect(back[3]).toBe(7); expect(back[52]).toBe(7); expect(back[53]).not.toBe(7);
    const src = Float32Array.from(rng.array(90));
    const other = gpu.tensor([90], src);
    copy(gpu, other.view([20], 61), big.view([20], 5));
    const moved = await gpu.readF32(big);
    expect([...moved.subarray(5, 25)]).toEqual([...src.subarray(61, 81)]);
    expect(moved[4]).toBe(back[4]); expect(moved[25]).toBe(back[25]);
    gpu.pool.release(big, other);
  });

  it('ops that overwrite y (fill, copy) give exact values over a buffer holding NaN and Inf', async () => {
    // A pooled buffer's leftovers: 0 * NaN is NaN where the compiler keeps IEEE semantics (lavapipe
    // folds such a product away; a GPU's compiler need not), so these must not read y at all.
    const gpu = await getGpu();
    const n = 1031;
    const junk = Float32Array.from({ length: n }, (_, i) => [NaN, Infinity, -Infinity, 1][i % 4]);
    const x = rng.array(n); const tx = gpu.tensor([n], Float32Array.from(x));
    const ty = gpu.tensor([n], junk);
    fill(gpu, ty, 2.5);
    expect([...(await gpu.readF32(ty))].every((v) => v === 2.5)).toBe(true);
    gpu.upload(ty, junk);
    copy(gpu, tx, ty);
    expect([...(await gpu.readF32(ty))]).toEqual([...Float32Array.from(x)]);
    gpu.pool.release(tx, ty);
  });

  it(`tensors past the binding limit run in windows (seed ${rng.seed})`, async () => {
    const gpu = await getGpu();
    const n = 5003; // windows of 1024 floats, a short last one
    const x = rng.array(n); const y = rng.array(n);
    const tx = gpu.tensor([n], Float32Array.from(x)); const ty = gpu.tensor([n], Float32Array.from(y));
    await withBindingLimit(gpu, 4096, async () => {
      copy(gpu, tx, ty);
      expect([...(await gpu.readF32(ty))]).toEqual([...Float32Array.from(x)]);
      fill(gpu, ty, 4);
      expect(relErr(await gpu.readF32(ty), fillRef(n, 4))).toBe(0);
    });
    gpu.pool.release(tx, ty);
  });
});
