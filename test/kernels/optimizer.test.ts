import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { gradNorm } from '../../src/kernels/grad-norm.js';
import { Optimizer, optimizerHyper, type OptimizerConfig } from '../../src/kernels/optimizer.js';
import {
  adamwInit, adamwStepRef, clipGradNormRef, globalGradNormRef, rmspropInit, rmspropStepRef,
} from '../../src/kernels/optimizer.ref.js';

const rng = makeRng();


const SIZES = [1, 4099, 70001];
const TOTAL = SIZES.reduce((a, b) => a + b, 0);
const OFFSETS = SIZES.map((_, i) => SIZES.slice(0, i).reduce((a, b) => a + b, 0));

interface Case { cfg: OptimizerConfig; ref: Record<string, unknown>; lr: number; limit?: number }

const CASES: Case[] = [
  { cfg: { type: 'rmsprop' }, ref: {}, lr: 1e-2 },
  { cfg: { type: 'rmsprop', alpha: 0.9, weightDecay: 0.1, momentum: 0.9, centered: true },
    ref: { alpha: 0.9, weightDecay: 0.1, momentum: 0.9, centered: true }, lr: 3e-3, limit: 65536 },
  { cfg: { type: 'adamw' }, ref: {}, lr: 1e-3, limit: 65536 },
  { cfg: { type: 'adamw', betas: [0.4, 0.99], eps: 1e-6, weightDecay: 0.05, amsgrad: true },
    ref: { betas: [0.4, 0.99], eps: 1e-6, weightDecay: 0.05, amsgrad: true }, lr: 2e-3 },
];

describe(`optimizers (seed ${rng.seed})`, () => {
  for (const c of CASES) {
    const label = `${JSON.stringify(c.cfg)}${c.limit ? ` with ${c.limit}-byte bindings (chunked)` : ''}`;
    it(`${label}: 5 steps, lr changing, clipping in steps 1, 3, 5`, async () => {
      const gpu = await getGpu();
      await withBindingLimit(gpu, c.limit, async () => {
        // Parameters and gradients are views into flat buffers at unaligned offsets (1, 4100).
        // Small parameters, so that f32 rounding of p stays well below the size of one update.
        const p0 = Float32Array.from(rng.array(TOTAL, 0.1));
        const flatP = gpu.tensor([TOTAL], p0); const flatG = gpu.tensor([TOTAL]);
        const params = SIZES.map((n, i) => flatP.view([n], OFFSETS[i]));
        const grads = SIZES.map((n, i) => flatG.view([n], OFFSETS[i]));
        const refP = SIZES.map((n, i) => Float64Array.from(p0.subarray(OFFSETS[i], OFFSETS[i] + n)));
        const maxNorm = Math.sqrt(TOTAL); // about the norm of N(0, 1) gradients
        const opt = new Optimizer(gpu, c.cfg, params, { maxGradNorm: maxNorm });
        const rms = c.cfg.type === 'rmsprop';
        const state = rms ? rmspropInit(refP, c.ref) : adamwInit(refP, c.ref);
        const scales = [2, 0.5, 1.5, 0.3, 4];
        // RMSprop's weight decay forms g' = g + wd p before normalizing by sqrt(v): where g and wd p
        // nearly cancel, g' has no correct f32 digits and its update (about lr / sqrt(1 - alpha) in
        // the sign of g') is decided by rounding. Such elements (|g'| < 1e-4, a few per run) are
        // left out of the comparison from then on; every other element must match.
        // Errors are measured over all three tensors together (max |got - want| / max |want|): the
        // 1-element tensor's value alone can be a near-cancellation (momentum or Adam's average of
        // random-sign gradients going through zero), where f32 keeps the absolute but not the
        // relative precision; per tensor, that failed for about a third of the seeds.
        const wd = rms ? (c.ref as { weightDecay?: number }).weightDecay ?? 0 : 0;
        const cat = (xs: ArrayLike<number>[]) => Float64Array.from(xs.flatMap((x) => Array.from(x)));
        const excluded = SIZES.map(() => new Set<number>());
        const masked = (a: ArrayLike<number>, b: ArrayLike<number>, i: number) =>
          excluded[i].size ? Float64Array.from(a, (v, j) => (excluded[i].has(j) ? b[j] : v)) : a;
        for (let t = 1; t <= 5; t++) {
          const g = Float32Array.from(rng.array(TOTAL, scales[t - 1]));
          gpu.upload(flatG, g);
          const lr = c.lr * (0.5 + rng.uniform());
          opt.setStep(lr, t);
          opt.step(grads);
          const refG = SIZES.map((n, i) => Float64Array.from(g.subarray(OFFSETS[i], OFFSETS[i] + n)));
          const norm = globalGradNormRef(refG);
          const { scale } = clipGradNormRef(refG, maxNorm);
          expect(scale < 1).toBe(t % 2 === 1);
          if (wd) {
            // refG is already clipped in place by clipGradNormRef.
            refG.forEach((g1, i) => g1.forEach((v, j) => { if (Math.abs(v + wd * refP[i][j]) < 1e-4) excluded[i].add(j); }));
          }
          if (rms) rmspropStepRef(refP, refG, state as ReturnType<typeof rmspropInit>, { ...c.ref, lr });
          else adamwStepRef(refP, refG, state as ReturnType<typeof adamwInit>, { ...c.ref, lr });
          const gotNorm = await gpu.readF32(opt.norm);
          expect(Math.abs(gotNorm[0] - norm) / norm).toBeLessThan(1e-5);
          const got = await gpu.readF32(flatP);
          const gotP = SIZES.map((n, i) => masked(got.subarray(OFFSETS[i], OFFSETS[i] + n), refP[i], i));
          const p0s = SIZES.map((n, i) => p0.subarray(OFFSETS[i], OFFSETS[i] + n));
          expect(relErr(cat(gotP), cat(refP)), `step ${t} params`).toBeLessThan(1e-5);
          // The update itself (p_t - p_0), on its own scale.
          const upd = (ps: ArrayLike<number>[]) => cat(ps.map((q, i) => Array.from(q, (v, j) => v - p0s[i][j])));
          expect(relErr(upd(gotP), upd(refP)), `step ${t} update`).toBeLessThan(2e-4);
          for (let i = 0; i < SIZES.length; i++) expect(excluded[i].size).toBeLessThan(SIZES[i] / 200 + 5); // about 1e-3 of the elements per step
          // Optimizer state.
          const refState = rms
            ? [(state as ReturnType<typeof rmspropInit>).squareAvg, (state as ReturnType<typeof rmspropInit>).gradAvg,
              (state as ReturnType<typeof rmspropInit>).momentumBuffer]
            : [(state as ReturnType<typeof adamwInit>).expAvg, (state as ReturnType<typeof adamwInit>).expAvgSq,
              (state as ReturnType<typeof adamwInit>).maxExpAvgSq];
          const used = refState.filter((s): s is Float64Array[] => s !== null);
          for (let i = 0; i < SIZES.length; i++) expect(opt.state[i].length).toBe(used.length);
          for (let s = 0; s < used.length; s++) {
            const gotS = await Promise.all(SIZES.map(async (_, i) => masked(await gpu.readF32(opt.state[i][s]), used[s][i], i)));
            expect(relErr(cat(gotS), cat(used[s])), `step ${t} state ${s}`).toBeLessThan(1e-5);
          }
        }
        opt.release();
        gpu.pool.release(flatP, flatG);
      });
    });
  }

  it('gradNorm: many tensors, blocks and binding windows; deterministic; norm and square', async () => {
    const gpu = await getGpu();
    const sizes = [3, 4096, 4097, 50000, 1];
    const data = sizes.map((n) => Float32Array.from(rng.array(n, 0.1 + rng.uniform())));
    const ts = data.map((d) => gpu.tensor([d.length], d));
    const out = gpu.tensor([2]);
    const want = globalGradNormRef(data);
    for (const limit of [undefined, 20000]) {
      await withBindingLimit(gpu, limit, async () => {
        gradNorm(gpu, ts, out);
        const got = await gpu.readF32(out);
        expect(Math.abs(got[0] - want) / want).toBeLessThan(1e-6);
        expect(Math.abs(got[1] - want * want) / (want * want)).toBeLessThan(2e-6);
        gradNorm(gpu, ts, out);
        expect([...(await gpu.readF32(out))]).toEqual([...got]);
      });
    }
    gpu.pool.release(...ts, out);
  });

  // A NaN gradient makes the norm NaN; the clipping factor must stay NaN (WGSL's min(NaN, 1) may be 1),
  // not apply an unclipped step to every other weight. (The trainer stops at a NaN norm; nothing saves it.)
  it('clipping with a NaN gradient norm: every weight NaN, no unclipped step', async () => {
    const gpu = await getGpu();
    const n = 257;
    const p = gpu.tensor([n], new Float32Array(n).fill(1)); const g = gpu.tensor([n], Float32Array.from({ length: n }, (_, i) => (i === 7 ? NaN : 100)));
    const opt = new Optimizer(gpu, { type: 'rmsprop' }, [p], { maxGradNorm: 1 });
    opt.setStep(1e-2, 1);
    opt.step([g]);
    const got = await gpu.readF32(p);
    expect((await gpu.readF32(opt.norm))[0]).toBeNaN();
    expect(got.filter((v) => !Number.isNaN(v))).toEqual(new Float32Array());
    opt.release(); gpu.pool.release(p, g);
  });

  it('optimizerHyper: bias corrections in float64', () => {
    const h = optimizerHyper({ type: 'adamw' }, 1e-3, 1);
    expect(h[1]).toBe(Math.fround(1e-3 / (1 - 0.9)));
    expect(h[2]).toBe(Math.fround(Math.sqrt(1 - 0.999)));
    expect(h[3]).toBe(Math.fround(1 - 1e-5));
    expect(() => optimizerHyper({ type: 'rmsprop' }, 1e-3, 0)).toThrow(/step 0 must be >= 1/);
  });
});
