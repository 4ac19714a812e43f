import { describe, expect, it } from 'vitest';
import { Tensor } from '../../src/engine/tensor.js';
import { dispatchedKernels, getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { columnSum } from '../../src/kernels/column-sum.js';
import { ABSMAX_PARTS } from '../../src/kernels/absmax.js';
import { columnSumRef } from '../../src/kernels/column-sum.ref.js';

const rng = makeRng();

describe(`column sums (bias gradients) (seed ${rng.seed})`, () => {
  it('awkward shapes, = and +=, against float64', async () => {
    const gpu = await getGpu();
    for (const [N, D] of [[1, 1], [63, 65], [64, 64], [130, 7], [1000, 129], [0, 5]]) {
      // f32 values, as uploaded: with one row, out0 + x can cancel, and the reference must add what the GPU adds.
      const x = Float64Array.from(Float32Array.from(rng.array(N * D))); const out0 = rng.array(D);
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

  // A linear layer's dy in f16 precision: its bias gradient and its partial maxima in one pass. The sums
  // are the plain pass's to the bit; the maxima's max is max |x| (NaN kept); row chunks fold their maxima.
  for (const limit of [0, 8192]) {
    it(`absmax: the partial maxima in the same pass, the same sums${limit ? ' (row chunks)' : ''}`, async () => {
      const gpu = await getGpu();
      for (const [N, D] of [[300, 50], [1, 3], [129, 200]] as const) {
        const x = Float32Array.from(rng.array(N * D));
        x[rng.int(D)] = -7.5; // the largest magnitude, negative, in the first row (the first chunk)
        const tx = gpu.tensor([N * D], x); const plain = gpu.tensor([D]); const fused = gpu.tensor([D]);
        const parts = gpu.tensor([ABSMAX_PARTS], new Float32Array(ABSMAX_PARTS).fill(123)); // stale values must go
        const run = async () => {
          columnSum(gpu, { x: tx, out: plain, N, D });
          const { names } = await dispatchedKernels(gpu, () => columnSum(gpu, { x: tx, out: fused, N, D, absmax: parts }));
          await gpu.sync();
          return names;
        };
        const names = limit ? await withBindingLimit(gpu, limit, run) : await run();
        const what = `N ${N} D ${D} limit ${limit}`;
        expect(names.filter((n) => n.startsWith('absmax')), what).toEqual([]);
        expect(names[0], what).toBe('colsum_partial_absmax');
        expect(Array.from(await gpu.readF32(fused)), what).toEqual(Array.from(await gpu.readF32(plain)));
        expect(relErr(await gpu.readF32(fused), columnSumRef(Float64Array.from(x), N, D)), what).toBeLessThan(1e-5);
        expect(Math.max(...(await gpu.readF32(parts))), what).toBe(7.5);
        gpu.pool.release(tx, plain, fused, parts);
      }
    });
  }

  // As a model's gradients lie (arena.ts): the two outputs side by side in one buffer, D not a multiple
  // of the binding alignment, so their binding windows overlap.
  it('also: the two outputs adjacent in one buffer', async () => {
    const gpu = await getGpu();
    const N = 130; const D = 37;
    const x = rng.array(N * D); const o = rng.array(2 * D + 3);
    const tx = gpu.tensor([N * D], Float32Array.from(x)); const tb = gpu.tensor([2 * D + 3], Float32Array.from(o));
    // (also before out in the buffer: the window spans from the lower one)
    const also = new Tensor(tb.buffer, tb.offset + 4, [D]); const out = new Tensor(tb.buffer, tb.offset + 4 * (D + 1), [D]);
    const { names } = await dispatchedKernels(gpu, () => columnSum(gpu, { x: tx, out, also, N, D, accumulate: true }));
    expect(names).toEqual(['colsum_partial', 'colsum_total_also_shared']);
    const got = await gpu.readF32(tb);
    const want = Float64Array.from(o);
    const sums = columnSumRef(x, N, D);
    for (let d = 0; d < D; d++) { want[1 + d] += sums[d]; want[D + 1 + d] += sums[d]; }
    expect(relErr(got, want)).toBeLessThan(1e-5);
    expect([got[0], got[2 * D + 1], got[2 * D + 2]]).toEqual([o[0], o[2 * D + 1], o[2 * D + 2]].map(Math.fround));
    gpu.pool.release(tx, tb);
  });
});
