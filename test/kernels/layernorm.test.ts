import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { layerNorm, layerNormBackward, normBackward, normForward } from '../../src/kernels/layernorm.js';
import { copy } from '../../src/kernels/elementwise.js';
import { layerNormForward as lnRef, layerNormBackward as lnBackRef } from '../../src/kernels/layernorm.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const add = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);


describe(`layerNorm (seed ${rng.seed})`, () => {
  for (const [N, D, limit] of [[7, 13, 0], [33, 100, 0], [5, 1030, 0], [70, 100, 4096]] as const) {
    it(`N=${N} D=${D}${limit ? ` (binding limit ${limit} B: row chunks)` : ''}: forward, backward, accumulation`, async () => {
      const gpu = await getGpu();
      const eps = 1e-5;
      // A mean offset makes the variance computation matter (x = 3 + noise).
      const x = f32(rng.array(N * D).map((v) => 3 + v)); const w = f32(rng.array(D)); const b = f32(rng.array(D));
      const dy = f32(rng.array(N * D)); const dw0 = f32(rng.array(D)); const db0 = f32(rng.array(D)); const dx0 = f32(rng.array(N * D));
      const t = {
        x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), b: gpu.tensor([D], b), y: gpu.tensor([N, D]),
        mean: gpu.tensor([N]), rstd: gpu.tensor([N]), dy: gpu.tensor([N, D], dy), dx: gpu.tensor([N, D], dx0),
        dw: gpu.tensor([D], dw0), db: gpu.tensor([D], db0),
      };
      const run = async () => {
        layerNorm(gpu, { ...t, N, D, eps });
        layerNormBackward(gpu, { ...t, N, D, accumulateDx: true });
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const ref = lnRef(x, w, b, N, D, eps);
      expect(relErr(await gpu.readF32(t.y), ref.y)).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t.mean), ref.mean)).toBeLessThan(1e-6);
      expect(relErr(await gpu.readF32(t.rstd), ref.rstd)).toBeLessThan(1e-5);
      const g = lnBackRef(dy, x, w, ref.mean, ref.rstd, N, D);
      expect(relErr(await gpu.readF32(t.dx), add(dx0, g.dx))).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t.dw), add(dw0, g.dw))).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t.db), add(db0, g.db))).toBeLessThan(1e-5);
      // dx overwritten (no accumulate), weight gradients optional.
      layerNormBackward(gpu, { dy: t.dy, x: t.x, w: t.w, mean: t.mean, rstd: t.rstd, dx: t.dx, N, D });
      expect(relErr(await gpu.readF32(t.dx), g.dx)).toBeLessThan(1e-5);
      gpu.pool.release(...Object.values(t));
    });
  }

  for (const [N, D, limit] of [[37, 100, 0], [70, 100, 4096]] as const) {
    it(`N=${N} D=${D}${limit ? ' (row chunks)' : ''}: dw and db side by side (as in a model's gradients) take one stage-2 sum`, async () => {
      const gpu = await getGpu();
      const eps = 1e-5;
      const x = f32(rng.array(N * D).map((v) => 3 + v)); const w = f32(rng.array(D)); const b = f32(rng.array(D));
      const dy = f32(rng.array(N * D)); const dwdb0 = f32(rng.array(2 * D));
      const t = {
        x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), b: gpu.tensor([D], b), y: gpu.tensor([N, D]),
        mean: gpu.tensor([N]), rstd: gpu.tensor([N]), dy: gpu.tensor([N, D], dy), dx: gpu.tensor([N, D]),
        dwdb: gpu.tensor([2 * D], dwdb0),
      };
      const dw = t.dwdb.view([D], 0); const db = t.dwdb.view([D], D);
      const apart = { dw: gpu.tensor([D], dwdb0.slice(0, D)), db: gpu.tensor([D], dwdb0.slice(D)) };
      const dispatches = (f: () => void) => { const n0 = gpu.recorder.totalDispatches; f(); return gpu.recorder.totalDispatches - n0; };
      let merged = 0; let separate = 0;
      const run = async () => {
        layerNorm(gpu, { ...t, N, D, eps });
        merged = dispatches(() => layerNormBackward(gpu, { ...t, dw, db, N, D }));
        separate = dispatches(() => layerNormBackward(gpu, { ...t, ...apart, N, D }));
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const chunks = limit ? Math.ceil(N / Math.floor(limit / 4 / D)) : 1;
      expect(separate - merged).toBe(chunks); // one stage-2 dispatch fewer per row chunk
      const ref = lnRef(x, w, b, N, D, eps);
      const g = lnBackRef(dy, x, w, ref.mean, ref.rstd, N, D);
      const want = add(dwdb0, [...g.dw, ...g.db]);
      expect(relErr(await gpu.readF32(t.dwdb), want)).toBeLessThan(1e-5);
      expect(relErr([...(await gpu.readF32(apart.dw)), ...(await gpu.readF32(apart.db))], want)).toBeLessThan(1e-5);
      gpu.pool.release(...Object.values(t), apart.dw, apart.db);
    });
  }

  for (const rms of [false, true]) {
    it(`${rms ? 'RMSNorm' : 'LayerNorm'} backward with a residual: dx = residual + the gradient, the bits of copying then accumulating`, async () => {
      const gpu = await getGpu();
      const N = 29; const D = 70;
      const x = f32(rng.array(N * D).map((v) => 3 + v)); const w = f32(rng.array(D)); const b = f32(rng.array(D));
      const t = {
        x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), b: gpu.tensor([D], b), y: gpu.tensor([N, D]), mean: gpu.tensor([N]), rstd: gpu.tensor([N]),
        dy: gpu.tensor([N, D], f32(rng.array(N * D))), res: gpu.tensor([N, D], f32(rng.array(N * D))),
        dxA: gpu.tensor([N, D]), dxB: gpu.tensor([N, D], f32(rng.array(N * D))),
      };
      const common = { x: t.x, w: t.w, rstd: t.rstd, N, D, ...(rms ? {} : { mean: t.mean }) };
      normForward(gpu, rms, { ...common, y: t.y, eps: 1e-5, ...(rms ? {} : { b: t.b }) });
      copy(gpu, t.res, t.dxA);
      normBackward(gpu, rms, { ...common, dy: t.dy, dx: t.dxA, accumulateDx: true });
      normBackward(gpu, rms, { ...common, dy: t.dy, dx: t.dxB, residual: t.res });
      expect([...(await gpu.readF32(t.dxB))]).toEqual([...(await gpu.readF32(t.dxA))]);
      expect(() => normBackward(gpu, rms, { ...common, dy: t.dy, dx: t.dxB, residual: t.res, accumulateDx: true })).toThrow(/exclude/);
      gpu.pool.release(...Object.values(t));
    });
  }

  it('backward matches a finite difference of the GPU forward (tiny size)', async () => {
    const gpu = await getGpu();
    const N = 3; const D = 5; const eps = 1e-5; const h = 2e-2;
    const x = rng.array(N * D); const w = f32(rng.array(D)); const b = f32(rng.array(D)); const r = f32(rng.array(N * D));
    const v = { x: rng.array(N * D), w: rng.array(D), b: rng.array(D) };
    const t = { w: gpu.tensor([D], w), b: gpu.tensor([D], b), y: gpu.tensor([N, D]), mean: gpu.tensor([N]), rstd: gpu.tensor([N]), x: gpu.tensor([N, D]) };
    // loss = sum(y * r); directional derivative along v = (vx, vw, vb)
    const loss = async (s: number) => {
      gpu.upload(t.x, f32(Array.from(x, (xi, i) => xi + s * v.x[i])));
      gpu.upload(t.w, f32(Array.from(w, (wi, i) => wi + s * v.w[i])));
      gpu.upload(t.b, f32(Array.from(b, (bi, i) => bi + s * v.b[i])));
      layerNorm(gpu, { ...t, N, D, eps });
      const y = await gpu.readF32(t.y);
      return y.reduce((acc, yi, i) => acc + yi * r[i], 0);
    };
    // Central differences at h and h/2, Richardson-extrapolated (error O(h^4); f32 noise ~1e-4).
    const c1 = ((await loss(h)) - (await loss(-h))) / (2 * h);
    const c2 = ((await loss(h / 2)) - (await loss(-h / 2))) / h;
    const fd = (4 * c2 - c1) / 3;
    await loss(0);
    const g = { dy: gpu.tensor([N, D], r), dx: gpu.tensor([N, D]), dw: gpu.tensor([D]), db: gpu.tensor([D]) };
    gpu.recorder.clear({ buffer: g.dw.buffer, offset: 0, size: g.dw.bytes });
    gpu.recorder.clear({ buffer: g.db.buffer, offset: 0, size: g.db.bytes });
    layerNormBackward(gpu, { ...t, ...g, N, D });
    const [dx, dw, db] = [await gpu.readF32(g.dx), await gpu.readF32(g.dw), await gpu.readF32(g.db)];
    let an = 0;
    for (let i = 0; i < N * D; i++) an += dx[i] * v.x[i];
    for (let i = 0; i < D; i++) an += dw[i] * v.w[i] + db[i] * v.b[i];
    expect(Math.abs(an - fd) / Math.max(1, Math.abs(fd))).toBeLessThan(2e-3);
    gpu.pool.release(...Object.values(t), ...Object.values(g));
  });
});
