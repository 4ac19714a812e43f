import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { columnSum } from '../../src/kernels/column-sum.js';
import { columnSumRef } from '../../src/kernels/column-sum.ref.js';

const rng = makeRng();

describe(`column sums (bias gradients) (seed ${rng.seed})`, () => {
  it('awkward shapes, = and +=, against float64', async () => {
    const gpu = await getGpu();
    for (const [N, D] of [[1, 1], [63, 65], [64, 64], [130, 7], [1000, 129], [0, 5]]) {
      const x = rng.array(N * D); const out0 = rng.array(D);
      const tx = gpu.tensor([Math.max(1, N * D)], N ? Float32Array.from(x) : new Float32Array(1)); const to = gpu.tensor([D], Float32Array.from(out0));
      columnSum(gpu, { x: tx, out: to, N, D, accumulate: true });
      expect(relErr(await gpu.readF32(to), columnSumRef(x, N, D, Float32Array.from(out0))), `${N}x${D} +=`).toBeLessThan(1e-5);
      columnSum(gpu, { x: tx, out: to, N, D });
      const want = columnSumRef(x, N, D);
      const got = await gpu.readF32(to);
      if (N === 0) expect([...got]).toEqual(new Array(D).fill(0));
      else expect(relErr(got, want), `${N}x${D} =`).toBeLessThan(1e-5);
      gpu.pool.release(tx, to);
    }
  });

  it('rows in chunks when x exceeds the binding limit', async () => {
    const gpu = await getGpu();
    const N = 300; const D = 50;
    const x = rng.array(N * D);
    const tx = gpu.tensor([N * D], Float32Array.from(x)); const to = gpu.tensor([D]);
    // 8 KiB bindings: 40 rows per chunk, 8 chunks.
    await withBindingLimit(gpu, 8192, async () => { columnSum(gpu, { x: tx, out: to, N, D }); await gpu.sync(); });
    expect(relErr(await gpu.readF32(to), columnSumRef(x, N, D))).toBeLessThan(1e-5);
    gpu.pool.release(tx, to);
  });

  for (const limit of [0, 8192]) {
    it(`also: a second output gets the same sums, each += its own, x read once${limit ? ' (row chunks)' : ''}`, async () => {
      const gpu = await getGpu();
      const N = 300; const D = 50;
      const x = rng.array(N * D); const o1 = rng.array(D); const o2 = rng.array(D);
      const tx = gpu.tensor([N * D], Float32Array.from(x)); const t1 = gpu.tensor([D], Float32Array.from(o1)); const t2 = gpu.tensor([D], Float32Array.from(o2));
      const run = async () => { columnSum(gpu, { x: tx, out: t1, also: t2, N, D, accumulate: true }); await gpu.sync(); };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      expect(relErr(await gpu.readF32(t1), columnSumRef(x, N, D, Float32Array.from(o1)))).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t2), columnSumRef(x, N, D, Float32Array.from(o2)))).toBeLessThan(1e-5);
      gpu.pool.release(tx, t1, t2);
    });
  }
});
