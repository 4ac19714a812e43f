import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import {
  embeddingBackward, embeddingForward, groupIds, prepareEmbeddingGrad, releaseEmbeddingGradPlan,
} from '../../src/kernels/embedding.js';
import { embeddingBackward as embBackRef, embeddingForward as embRef } from '../../src/kernels/embedding.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);


describe(`embedding (seed ${rng.seed})`, () => {
  it('groupIds: ascending unique ids, token order within a group, padding left out', () => {
    const g = groupIds([5, 2, 5, 7, 2, 2, 0], { paddingIdx: 7 });
    expect(Array.from(g.unique)).toEqual([0, 2, 5]);
    expect(Array.from(g.offsets)).toEqual([0, 1, 4, 6]);
    expect(Array.from(g.order)).toEqual([6, 1, 4, 5, 0, 2]);
    const h = groupIds([5, 2, 5, 7, 2, 2, 0], { first: 2, end: 6 });
    expect(Array.from(h.unique)).toEqual([2, 5, 7]);
    expect(Array.from(h.order)).toEqual([2, 3, 0, 1]);
    // Random ids against a plain grouping: through the numeric-key sort, and (ids of 2^31 and more)
    // through the comparator sort.
    for (const big of [0, 2 ** 31]) {
      const ids = Array.from({ length: 3000 }, () => big + rng.int(40));
      const first = 17; const end = 2900; const pad = big + 3;
      const g = groupIds(ids, { first, end, paddingIdx: pad });
      const want = new Map<number, number[]>();
      for (let n = first; n < end; n++) if (ids[n] !== pad) want.set(ids[n], [...(want.get(ids[n]) ?? []), n - first]);
      const keys = [...want.keys()].sort((a, b) => a - b);
      expect(Array.from(g.unique)).toEqual(keys);
      expect(Array.from(g.order)).toEqual(keys.flatMap((k) => want.get(k)!));
      expect(Array.from(g.offsets)).toEqual([0, ...keys.map((_, i) => keys.slice(0, i + 1).reduce((s, k) => s + want.get(k)!.length, 0))]);
    }
  });

  for (const [N, V, D, limit] of [[7, 20, 1030, 0], [33, 50, 13, 0], [100, 64, 100, 4096]] as const) {
    it(`N=${N} V=${V} D=${D}${limit ? ` (binding limit ${limit} B: table, token and dy chunks)` : ''}: gather, scatter-add, padding`, async () => {
      const gpu = await getGpu();
      const table = f32(rng.array(V * D));
      // Repeated ids (a small id range) so groups have several tokens; include the first and last rows.
      const ids = Int32Array.from({ length: N }, () => rng.int(Math.min(V, 12)) * Math.floor(V / 12));
      ids[0] = V - 1; ids[N - 1] = 0;
      const dy = f32(rng.array(N * D)); const d0 = f32(rng.array(V * D));
      const t = { table: gpu.tensor([V, D], table), ids: gpu.tensor([N], ids, 'i32'), out: gpu.tensor([N, D]),
        dy: gpu.tensor([N, D], dy), dTable: gpu.tensor([V, D], d0) };
      const pad = ids[1];
      const run = async () => {
        embeddingForward(gpu, { ...t, N, V, D });
        embeddingBackward(gpu, { dy: t.dy, dTable: t.dTable, ids, N, V, D });
        const plan = prepareEmbeddingGrad(gpu, ids, D, pad);
        embeddingBackward(gpu, { dy: t.dy, dTable: t.dTable, plan, N, V, D });
        releaseEmbeddingGradPlan(gpu, plan);
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      expect(await gpu.readF32(t.out)).toEqual(f32(embRef(table, ids, V, D)));
      const g1 = embBackRef(dy, ids, V, D); const g2 = embBackRef(dy, ids, V, D, pad);
      expect(relErr(await gpu.readF32(t.dTable), Float64Array.from(d0, (v, i) => v + g1[i] + g2[i]))).toBeLessThan(1e-6);
      gpu.pool.release(...Object.values(t));
    });
  }

  for (const limit of [0, 4096]) {
    it(`a scale (Gemma's sqrt(hidden)) on the gathered rows and on their gradient${limit ? ` (binding limit ${limit} B)` : ''}`, async () => {
      const gpu = await getGpu();
      const N = 40; const V = 30; const D = 48; const scale = Math.fround(Math.sqrt(D));
      const table = f32(rng.array(V * D));
      const ids = Int32Array.from({ length: N }, () => rng.int(V)); ids[0] = V - 1; ids[1] = ids[2];
      const dy = f32(rng.array(N * D));
      const t = { table: gpu.tensor([V, D], table), ids: gpu.tensor([N], ids, 'i32'), out: gpu.tensor([N, D]),
        dy: gpu.tensor([N, D], dy), dTable: gpu.tensor([V, D], new Float32Array(V * D)) };
      const run = async () => {
        embeddingForward(gpu, { ...t, N, V, D, scale });
        embeddingBackward(gpu, { dy: t.dy, dTable: t.dTable, ids, N, V, D, paddingIdx: ids[3], scale });
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      // Each gathered value is one f32 product: exactly the reference's rounded to f32.
      expect(await gpu.readF32(t.out)).toEqual(f32(embRef(table, ids, V, D, scale)));
      expect(relErr(await gpu.readF32(t.dTable), embBackRef(dy, ids, V, D, ids[3], scale))).toBeLessThan(1e-6);
      gpu.pool.release(...Object.values(t));
    });
  }

  it('a table over maxStorageBufferBindingSize: gather from the first, last and boundary rows; backward', async () => {
    const gpu = await getGpu();
    const D = 1024;
    const V = Math.floor(gpu.maxBinding / (4 * D)) + 8; // just over one binding (128 MiB + 32 KiB on lavapipe)
    expect(V * D * 4).toBeGreaterThan(gpu.maxBinding);
    // Fill with a seeded xorshift (33M normals from the test rng would take seconds).
    const table = new Float32Array(V * D);
    let s = (rng.seed | 1) >>> 0;
    for (let i = 0; i < table.length; i++) { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; table[i] = s / 2 ** 31 - 1; }
    const boundary = Math.floor((gpu.maxBinding - gpu.bindingAlign) / 4 / D); // first row of the second chunk
    const ids = Int32Array.from([0, V - 1, boundary - 1, boundary, 1, V - 2, V - 1, 0, rng.int(V)]);
    const N = ids.length;
    const tt = gpu.tensor([V, D], table); const ti = gpu.tensor([N], ids, 'i32'); const to = gpu.tensor([N, D]);
    embeddingForward(gpu, { table: tt, ids: ti, out: to, N, V, D });
    expect(await gpu.readF32(to)).toEqual(f32(embRef(table, ids, V, D)));
    gpu.pool.release(tt);
    // Backward into a zeroed table-sized gradient: only the touched rows change.
    const dTable = gpu.tensor([V, D]);
    gpu.recorder.clear({ buffer: dTable.buffer, offset: dTable.offset, size: dTable.bytes });
    const dy = f32(rng.array(N * D)); const tdy = gpu.tensor([N, D], dy);
    embeddingBackward(gpu, { dy: tdy, dTable, ids, N, V, D });
    const want = embBackRef(dy, ids, V, D);
    for (const r of [0, 1, boundary - 1, boundary, V - 2, V - 1, 2, boundary + 1]) {
      const got = await gpu.readF32(dTable.view([D], r * D));
      expect(relErr(got, want.subarray(r * D, (r + 1) * D)), `row ${r}`).toBeLessThan(1e-6);
    }
    gpu.pool.release(ti, to, dTable, tdy);
  });
});
