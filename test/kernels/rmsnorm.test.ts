import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { rmsNorm, rmsNormBackward } from '../../src/kernels/rmsnorm.js';
import { normForward } from '../../src/kernels/layernorm.js';
import { rmsNormForward as rmsRef, rmsNormBackward as rmsBackRef } from '../../src/kernels/rmsnorm.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);
const add = (a: ArrayLike<number>, b: ArrayLike<number>) => Float64Array.from(a, (v, i) => v + b[i]);


describe(`rmsNorm (seed ${rng.seed})`, () => {
  for (const [N, D, limit] of [[7, 13, 0], [33, 100, 0], [5, 1030, 0], [70, 100, 4096]] as const) {
    it(`N=${N} D=${D}${limit ? ` (binding limit ${limit} B: row chunks)` : ''}: forward, backward, accumulation`, async () => {
      const gpu = await getGpu();
      const eps = 1e-6;
      const x = f32(rng.array(N * D)); const w = f32(rng.array(D));
      const dy = f32(rng.array(N * D)); const dw0 = f32(rng.array(D)); const dx0 = f32(rng.array(N * D));
      const t = {
        x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), y: gpu.tensor([N, D]), rstd: gpu.tensor([N]),
        dy: gpu.tensor([N, D], dy), dx: gpu.tensor([N, D], dx0), dw: gpu.tensor([D], dw0),
      };
      const run = async () => {
        rmsNorm(gpu, { ...t, N, D, eps });
        rmsNormBackward(gpu, { ...t, N, D, accumulateDx: true });
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const ref = rmsRef(x, w, N, D, eps);
      expect(relErr(await gpu.readF32(t.y), ref.y)).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t.rstd), ref.rstd)).toBeLessThan(1e-5);
      const g = rmsBackRef(dy, x, w, ref.rstd, N, D);
      expect(relErr(await gpu.readF32(t.dx), add(dx0, g.dx))).toBeLessThan(1e-5);
      expect(relErr(await gpu.readF32(t.dw), add(dw0, g.dw))).toBeLessThan(1e-5);
      rmsNormBackward(gpu, { dy: t.dy, x: t.x, w: t.w, rstd: t.rstd, dx: t.dx, N, D });
      expect(relErr(await gpu.readF32(t.dx), g.dx)).toBeLessThan(1e-5);
      gpu.pool.release(...Object.values(t));
    });
  }

  it('Gemma\'s gain 1 + w (wOffset 1): forward, backward with a residual, against the reference and the plain kernel given 1 + w', async () => {
    const gpu = await getGpu();
    const N = 9; const D = 37; const eps = 1e-6;
    // w near 0 as Gemma stores it (the gain is 1 + w): a kernel that dropped the offset would give ~0.
    const x = f32(rng.array(N * D)); const w = f32(rng.array(D).map((v) => 0.3 * v));
    const dy = f32(rng.array(N * D)); const res = f32(rng.array(N * D));
    const t = { x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), y: gpu.tensor([N, D]), rstd: gpu.tensor([N]),
      dy: gpu.tensor([N, D], dy), dx: gpu.tensor([N, D]), dw: gpu.tensor([D], new Float32Array(D)), residual: gpu.tensor([N, D], res) };
    rmsNorm(gpu, { ...t, N, D, eps, wOffset: 1 });
    rmsNormBackward(gpu, { ...t, N, D, wOffset: 1 });
    const ref = rmsRef(x, w, N, D, eps, 1);
    const plain = rmsRef(x, Float64Array.from(w, (v) => v + 1), N, D, eps);
    expect(relErr(ref.y, plain.y)).toBeLessThan(1e-15);
    expect(relErr(await gpu.readF32(t.y), ref.y)).toBeLessThan(1e-5);
    const g = rmsBackRef(dy, x, w, ref.rstd, N, D, 1);
    expect(relErr(await gpu.readF32(t.dx), add(res, g.dx))).toBeLessThan(1e-5);
    expect(relErr(await gpu.readF32(t.dw), g.dw)).toBeLessThan(1e-5);
    // The same numbers as the plain kernel given the gains 1 + w (rounded to f32 as the kernel adds them).
    const w1 = gpu.tensor([D], f32(Array.from(w, (v) => Math.fround(v + 1)))); const y1 = gpu.tensor([N, D]);
    rmsNorm(gpu, { x: t.x, w: w1, y: y1, rstd: t.rstd, N, D, eps });
    expect(Array.from(await gpu.readF32(y1))).toEqual(Array.from(await gpu.readF32(t.y)));
    // accumulate: y += the norm's output (Gemma 3's post-norms add into the residual stream), with the same rstd.
    const y0 = f32(rng.array(N * D)); const ya = gpu.tensor([N, D], y0); const ra = gpu.tensor([N]);
    rmsNorm(gpu, { x: t.x, w: t.w, y: ya, rstd: ra, N, D, eps, wOffset: 1, accumulate: true });
    expect(relErr(await gpu.readF32(ya), add(y0, ref.y))).toBeLessThan(1e-6);
    expect(relErr(await gpu.readF32(ra), ref.rstd)).toBeLessThan(1e-6);
    expect(() => normForward(gpu, true, { x: t.x, w: t.w, y: ya, rstd: ra, N, D, eps, accumulate: true, absmax: ra })).toThrow(/accumulate and absmax exclude each other/);
    gpu.pool.release(...Object.values(t), w1, y1, ya, ra);
  });

  it('more than 65535 rows (2-D workgroup grid): N=66000, D=3', async () => {
    const gpu = await getGpu();
    const N = 66000; const D = 3; const eps = 1e-6;
    const x = f32(rng.array(N * D)); const w = f32(rng.array(D)); const dy = f32(rng.array(N * D));
    const t = { x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), y: gpu.tensor([N, D]), rstd: gpu.tensor([N]),
      dy: gpu.tensor([N, D], dy), dx: gpu.tensor([N, D]), dw: gpu.tensor([D], new Float32Array(D)) };
    rmsNorm(gpu, { ...t, N, D, eps });
    rmsNormBackward(gpu, { ...t, N, D });
    const ref = rmsRef(x, w, N, D, eps); const g = rmsBackRef(dy, x, w, ref.rstd, N, D);
    expect(relErr(await gpu.readF32(t.y), ref.y)).toBeLessThan(1e-5);
    expect(relErr(await gpu.readF32(t.dx), g.dx)).toBeLessThan(1e-5);
    // dw sums 66000 random-signed rows in f32: each column's error is relative to the size such a sum has, sqrt(N) times a
    // term's (sum |dy xhat| / sqrt(N)), not to the value a seed's cancellation may leave (seed 409002783: a column 4x under it).
    const dw = await gpu.readF32(t.dw);
    for (let d = 0; d < D; d++) {
      let absSum = 0;
      for (let n = 0; n < N; n++) absSum += Math.abs(dy[n * D + d] * x[n * D + d] * ref.rstd[n]);
      expect(Math.abs(dw[d] - g.dw[d]) / Math.max(Math.abs(g.dw[d]), absSum / Math.sqrt(N)), `dw[${d}]`).toBeLessThan(1e-5);
    }
    gpu.pool.release(...Object.values(t));
  });

  for (const wOffset of [0, 1] as const) it(`backward matches a finite difference of the GPU forward (tiny size${wOffset ? ', Gemma\'s gain 1 + w' : ''})`, async () => {
    const gpu = await getGpu();
    const N = 3; const D = 5; const eps = 1e-6; const h = 2e-2;
    const x = rng.array(N * D); const w = f32(rng.array(D)); const r = f32(rng.array(N * D));
    const v = { x: rng.array(N * D), w: rng.array(D) };
    const t = { w: gpu.tensor([D], w), y: gpu.tensor([N, D]), rstd: gpu.tensor([N]), x: gpu.tensor([N, D]) };
    const loss = async (s: number) => {
      gpu.upload(t.x, f32(Array.from(x, (xi, i) => xi + s * v.x[i])));
      gpu.upload(t.w, f32(Array.from(w, (wi, i) => wi + s * v.w[i])));
      rmsNorm(gpu, { ...t, N, D, eps, wOffset });
      const y = await gpu.readF32(t.y);
      return y.reduce((acc, yi, i) => acc + yi * r[i], 0);
    };
    // Central differences at h and h/2, Richardson-extrapolated (error O(h^4); f32 noise ~1e-4).
    const c1 = ((await loss(h)) - (await loss(-h))) / (2 * h);
    const c2 = ((await loss(h / 2)) - (await loss(-h / 2))) / h;
    const fd = (4 * c2 - c1) / 3;
    await loss(0);
    const g = { dy: gpu.tensor([N, D], r), dx: gpu.tensor([N, D]), dw: gpu.tensor([D], new Float32Array(D)) };
    rmsNormBackward(gpu, { ...t, ...g, N, D, wOffset });
    const [dx, dw] = [await gpu.readF32(g.dx), await gpu.readF32(g.dw)];
    let an = 0;
    for (let i = 0; i < N * D; i++) an += dx[i] * v.x[i];
    for (let i = 0; i < D; i++) an += dw[i] * v.w[i];
    expect(Math.abs(an - fd) / Math.max(1, Math.abs(fd))).toBeLessThan(2e-3);
    gpu.pool.release(...Object.values(t), ...Object.values(g));
  });
});
