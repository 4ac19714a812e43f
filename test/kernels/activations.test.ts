import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { gelu, geluBackward, swiglu, swigluBackward, type GeluKind } from '../../src/kernels/activations.js';
import {
  gatedBackward, gatedForward, geluErfBackward, geluErfForward, geluTanhBackward, geluTanhForward, swigluBackward as swigluBackRef,
  swigluForward as swigluRef,
} from '../../src/kernels/activations.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);


/** Largest |a - b| / max(|b|, floor): elementwise relative error with an absolute floor. */
function elemErr(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(Math.abs(b[i]), floor));
  return Number.isNaN(m) ? Infinity : m;
}

describe(`activations (seed ${rng.seed})`, () => {
  // Inputs: normals at scale 3, a dense sweep over [-12, 12] (every branch of the erf fit, the
  // tails, the switch points |x| = sqrt 2), and exact extremes.
  const inputs = (n: number) => {
    const x = rng.array(n, 3);
    for (let i = 0; i < n; i += 3) x[i] = -12 + (24 * i) / n;
    const special = [0, -0, 1e-30, -1e-30, Math.SQRT2, -Math.SQRT2, 40, -40, 1e20, -1e20];
    for (let i = 0; i < special.length && i < n; i++) x[(i * 7 + 1) % n] = special[i];
    return f32(x);
  };

  for (const kind of ['erf', 'tanh'] as GeluKind[]) {
    const fwdRef = kind === 'erf' ? geluErfForward : geluTanhForward;
    const bwdRef = kind === 'erf' ? geluErfBackward : geluTanhBackward;
    it(`gelu (${kind}) forward and backward, out of place and in place, N x D = 7x13, 33x100, 3x1030`, async () => {
      const gpu = await getGpu();
      for (const n of [7 * 13, 33 * 100, 3 * 1030]) {
        const x = inputs(n); const dy = f32(rng.array(n));
        const tx = gpu.tensor([n], x); const ty = gpu.tensor([n]); const tdy = gpu.tensor([n], dy); const tdx = gpu.tensor([n]);
        gelu(gpu, tx, ty, kind);
        geluBackward(gpu, tx, tdy, tdx, kind);
        const y = await gpu.readF32(ty); const dx = await gpu.readF32(tdx);
        const yRef = fwdRef(x); const dxRef = bwdRef(x, dy);
        // Max-normalized over the ordinary range (as the other kernels; +-1e20 would swamp it), and
        // elementwise: y within 1e-5 relative (floor 1e-6: the far tail is 0.5 x erfc, relative ~2e-6);
        // dx within 1e-5 relative plus 1e-7 |dy| (gelu' crosses 0 at x ~ -0.75, where Phi(x) + x phi(x)
        // cancels and only an absolute accuracy of ~1 ulp of Phi is meaningful).
        const ok = (i: number) => Math.abs(x[i]) <= 40;
        const sub = (a: ArrayLike<number>) => Float64Array.from(Array.from(a).filter((_, i) => ok(i)));
        expect(relErr(sub(y), sub(yRef))).toBeLessThan(1e-6);
        expect(relErr(sub(dx), sub(dxRef))).toBeLessThan(1e-6);
        expect(elemErr(y, yRef, 1e-6)).toBeLessThan(1e-5);
        for (let i = 0; i < n; i++) {
          if (!(Math.abs(dx[i] - dxRef[i]) <= 1e-5 * Math.abs(dxRef[i]) + 1e-7 * Math.abs(dy[i]))) {
            throw new Error(`gelu ${kind} backward at x=${x[i]} dy=${dy[i]}: ${dx[i]} vs ${dxRef[i]}`);
          }
        }
        // In place: y over x, dx over dy.
        gelu(gpu, tx, tx, kind);
        geluBackward(gpu, ty, tdy, tdy, kind);
        expect(await gpu.readF32(tx)).toEqual(y);
        expect(relErr(await gpu.readF32(tdy), bwdRef(y, dy))).toBeLessThan(1e-6);
        gpu.pool.release(tx, ty, tdy, tdx);
      }
    });
  }

  it('gelu over a lowered binding limit (element chunks)', async () => {
    const gpu = await getGpu();
    const n = 5000; const x = inputs(n);
    const tx = gpu.tensor([n], x); const ty = gpu.tensor([n]);
    await withBindingLimit(gpu, 4096, async () => gelu(gpu, tx, ty.view([n]), 'erf'));
    expect(relErr(await gpu.readF32(ty), geluErfForward(x))).toBeLessThan(1e-6);
    gpu.pool.release(tx, ty);
  });

  it('swiglu with separate gate/up tensors (N=7, I=13)', async () => {
    const gpu = await getGpu();
    const N = 7; const I = 13;
    const g = f32(rng.array(N * I, 3)); const u = f32(rng.array(N * I)); const dy = f32(rng.array(N * I));
    g[0] = 100; g[1] = -100; g[2] = 0;
    const t = { gate: gpu.tensor([N, I], g), up: gpu.tensor([N, I], u), y: gpu.tensor([N, I]), dy: gpu.tensor([N, I], dy),
      dgate: gpu.tensor([N, I]), dup: gpu.tensor([N, I]) };
    swiglu(gpu, { ...t, N, I });
    swigluBackward(gpu, { ...t, N, I });
    expect(relErr(await gpu.readF32(t.y), swigluRef(g, u))).toBeLessThan(1e-6);
    const ref = swigluBackRef(dy, g, u);
    expect(relErr(await gpu.readF32(t.dgate), ref.dgate)).toBeLessThan(1e-6);
    expect(relErr(await gpu.readF32(t.dup), ref.dup)).toBeLessThan(1e-6);
    gpu.pool.release(...Object.values(t));
  });

  for (const act of ['gelu_tanh', 'gelu'] as const) {
    it(`GeGLU (${act}: Gemma's gated MLP) with separate tensors and on a fused gate_up (N=9, I=21)`, async () => {
      const gpu = await getGpu();
      const N = 9; const I = 21;
      const g = f32(rng.array(N * I, 4)); const u = f32(rng.array(N * I)); const dy = f32(rng.array(N * I));
      g[0] = 30; g[1] = -30; g[2] = 0;
      const t = { gate: gpu.tensor([N, I], g), up: gpu.tensor([N, I], u), y: gpu.tensor([N, I]), dy: gpu.tensor([N, I], dy),
        dgate: gpu.tensor([N, I]), dup: gpu.tensor([N, I]) };
      swiglu(gpu, { ...t, N, I, act });
      swigluBackward(gpu, { ...t, N, I, act });
      const want = gatedForward(g, u, act);
      // The other GELU form is ~5e-5 away (relative L2): well outside the kernel's 1e-6, so a swapped form fails.
      expect(relErr(gatedForward(g, u, act === 'gelu' ? 'gelu_tanh' : 'gelu'), want)).toBeGreaterThan(1e-5);
      expect(relErr(await gpu.readF32(t.y), want)).toBeLessThan(1e-6);
      const ref = gatedBackward(dy, g, u, act);
      expect(relErr(await gpu.readF32(t.dgate), ref.dgate)).toBeLessThan(1e-6);
      expect(relErr(await gpu.readF32(t.dup), ref.dup)).toBeLessThan(1e-6);
      // The references' derivative against a central difference of their forward (float64).
      const h = 1e-6; const k = 5;
      const fd = (gatedForward([g[k] + h], [u[k]], act)[0] - gatedForward([g[k] - h], [u[k]], act)[0]) / (2 * h) * dy[k];
      expect(Math.abs(ref.dgate[k] - fd)).toBeLessThan(1e-7 * Math.max(1, Math.abs(fd)));
      // Fused [N, 2I] operands and gradient: the same numbers.
      const gu = new Float32Array(N * 2 * I);
      for (let n = 0; n < N; n++) for (let j = 0; j < I; j++) { gu[n * 2 * I + j] = g[n * I + j]; gu[n * 2 * I + I + j] = u[n * I + j]; }
      const f = { gu: gpu.tensor([N, 2 * I], gu), y: gpu.tensor([N, I]), dgu: gpu.tensor([N, 2 * I]) };
      const lay = { gateLayout: { offset: 0, stride: 2 * I }, upLayout: { offset: I, stride: 2 * I } };
      swiglu(gpu, { gate: f.gu, up: f.gu, y: f.y, N, I, act, ...lay });
      swigluBackward(gpu, { dy: t.dy, gate: f.gu, up: f.gu, dgate: f.dgu, dup: f.dgu, N, I, act, ...lay,
        dgateLayout: { offset: 0, stride: 2 * I }, dupLayout: { offset: I, stride: 2 * I } });
      expect(Array.from(await gpu.readF32(f.y))).toEqual(Array.from(await gpu.readF32(t.y)));
      const dgu = await gpu.readF32(f.dgu); const dg = await gpu.readF32(t.dgate); const du = await gpu.readF32(t.dup);
      for (let n = 0; n < N; n++) for (let j = 0; j < I; j++) {
        expect(dgu[n * 2 * I + j]).toBe(dg[n * I + j]); expect(dgu[n * 2 * I + I + j]).toBe(du[n * I + j]);
      }
      gpu.pool.release(...Object.values(t), ...Object.values(f));
    });
  }

  for (const [N, I, limit] of [[33, 100, 0], [3, 1030, 0], [50, 37, 2048]] as const) {
    it(`swiglu on a fused gate_up [N, 2I] and a fused gradient (N=${N}, I=${I}${limit ? `, binding limit ${limit} B` : ''})`, async () => {
      const gpu = await getGpu();
      const gu = f32(rng.array(N * 2 * I, 2)); const dy = f32(rng.array(N * I));
      // y written with a padded row stride into a bigger buffer, to check the output layout too.
      const yStride = I + 3;
      const t = { gu: gpu.tensor([N, 2 * I], gu), y: gpu.tensor([N * yStride]), dy: gpu.tensor([N, I], dy), dgu: gpu.tensor([N, 2 * I]) };
      const gate = Float64Array.from({ length: N * I }, (_, i) => gu[Math.floor(i / I) * 2 * I + (i % I)]);
      const up = Float64Array.from({ length: N * I }, (_, i) => gu[Math.floor(i / I) * 2 * I + I + (i % I)]);
      const run = async () => {
        swiglu(gpu, { gate: t.gu, up: t.gu, y: t.y, N, I, gateLayout: { offset: 0, stride: 2 * I },
          upLayout: { offset: I, stride: 2 * I }, yLayout: { stride: yStride } });
        swigluBackward(gpu, { dy: t.dy, gate: t.gu, up: t.gu, dgate: t.dgu, dup: t.dgu, N, I,
          gateLayout: { offset: 0, stride: 2 * I }, upLayout: { offset: I, stride: 2 * I },
          dgateLayout: { offset: 0, stride: 2 * I }, dupLayout: { offset: I, stride: 2 * I } });
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const yAll = await gpu.readF32(t.y);
      const y = Float32Array.from({ length: N * I }, (_, i) => yAll[Math.floor(i / I) * yStride + (i % I)]);
      expect(relErr(y, swigluRef(gate, up))).toBeLessThan(1e-6);
      const ref = swigluBackRef(dy, gate, up);
      const want = new Float64Array(N * 2 * I);
      for (let n = 0; n < N; n++) for (let j = 0; j < I; j++) {
        want[n * 2 * I + j] = ref.dgate[n * I + j]; want[n * 2 * I + I + j] = ref.dup[n * I + j];
      }
      expect(relErr(await gpu.readF32(t.dgu), want)).toBeLessThan(1e-6);
      gpu.pool.release(...Object.values(t));
    });
  }
});
