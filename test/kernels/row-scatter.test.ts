import { describe, expect, it } from 'vitest';
import { getGpu, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { scatterRows } from '../../src/kernels/row-scatter.js';
import { scatterRowsRef } from '../../src/kernels/row-scatter.ref.js';
import { embeddingForward } from '../../src/kernels/embedding.js';

const rng = makeRng();

/** n distinct rows of [0, M), shuffled. */
function distinctRows(n: number, M: number): Uint32Array {
  const all = Array.from({ length: M }, (_, i) => i);
  for (let i = M - 1; i > 0; i--) { const j = Math.floor(rng.uniform() * (i + 1)); [all[i], all[j]] = [all[j], all[i]]; }
  return Uint32Array.from(all.slice(0, n));
}

describe(`row scatter (seed ${rng.seed})`, () => {
  it('awkward shapes: named rows replaced exactly, the others untouched; gather then scatter restores them', async () => {
    const gpu = await getGpu();
    for (const [n, M, D] of [[1, 1, 1], [5, 9, 1], [37, 100, 33], [200, 257, 70]]) {
      const x = Float32Array.from(rng.array(n * D)); const out0 = Float32Array.from(rng.array(M * D));
      const rows = distinctRows(n, M);
      const tx = gpu.tensor([n * D], x); const tr = gpu.tensor([n], rows, 'u32'); const to = gpu.tensor([M * D], out0);
      scatterRows(gpu, { x: tx, rows: tr, out: to, n, M, D });
      expect(Array.from(await gpu.readF32(to)), `${n} ${M} ${D}`).toEqual(Array.from(scatterRowsRef(x, rows, out0, D)));
      // The embedding gather of the same rows reads back x.
      const back = gpu.tensor([n * D]);
      embeddingForward(gpu, { table: to, ids: tr, out: back, N: n, V: M, D });
      expect(Array.from(await gpu.readF32(back))).toEqual(Array.from(x));
      gpu.pool.release(tx, tr, to, back);
    }
  });

  it('out over the binding limit: one pass per row range', async () => {
    const gpu = await getGpu();
    const n = 50; const M = 120; const D = 40;
    const x = Float32Array.from(rng.array(n * D)); const out0 = Float32Array.from(rng.array(M * D));
    const rows = distinctRows(n, M);
    const tx = gpu.tensor([n * D], x); const tr = gpu.tensor([n], rows, 'u32'); const to = gpu.tensor([M * D], out0);
    await withBindingLimit(gpu, 4096, async () => { scatterRows(gpu, { x: tx, rows: tr, out: to, n, M, D }); await gpu.sync(); });
    expect(Array.from(await gpu.readF32(to))).toEqual(Array.from(scatterRowsRef(x, rows, out0, D)));
    gpu.pool.release(tx, tr, to);
  });
});
