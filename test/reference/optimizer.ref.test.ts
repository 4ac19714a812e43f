import { describe, expect, it } from 'vitest';
import { makeRng, type Rng } from '../helpers/random.js';
import { maxRelErr, relErr1 } from './losses-fd.js';
import {
  adamwInit, adamwStepRef, clipGradNormRef, globalGradNormRef, rmspropInit, rmspropStepRef,
  type AdamWOptions, type RmspropOptions,
} from '../../src/kernels/optimizer.ref.js';
import { warmupFactor } from '../../src/train/lr-schedule.js';

describe('first steps, by hand', () => {
  it('RMSprop defaults: v = 0.01 g^2, p -= lr g / (sqrt(v) + eps)', () => {
    const p = [Float64Array.from([1, -3])];
    const st = rmspropInit(p);
    rmspropStepRef(p, [Float64Array.from([2, -0.5])], st, { lr: 0.01 });
    expect(p[0][0]).toBe(1 - 0.01 * (2 / (0.2 + 1e-8)));
    expect(relErr1(p[0][0], 1 - 0.02 / 0.20000001)).toBeLessThan(1e-15);
    expect(relErr1(p[0][1], -3 + 0.005 / 0.05000001)).toBeLessThan(1e-15);
    expect(relErr1(st.squareAvg[0][0], 0.04)).toBeLessThan(1e-15);
    expect(st.step).toBe(1);
    expect(st.gradAvg).toBeNull();
    expect(st.momentumBuffer).toBeNull();
    // Second step with g = 2 again: v = 0.99 * 0.04 + 0.01 * 4 = 0.0796.
    rmspropStepRef(p, [Float64Array.from([2, -0.5])], st, { lr: 0.01 });
    expect(relErr1(st.squareAvg[0][0], 0.0796)).toBeLessThan(1e-14);
    expect(relErr1(p[0][0], 1 - 0.02 / 0.20000001 - 0.02 / (Math.sqrt(0.0796) + 1e-8))).toBeLessThan(1e-14);
  });

  it('RMSprop default lr is torch\'s 1e-2', () => {
    const p = [Float64Array.from([0])];
    rmspropStepRef(p, [Float64Array.from([1])], rmspropInit(p));
    expect(relErr1(p[0][0], -0.01 / (0.1 + 1e-8))).toBeLessThan(1e-15);
  });

  it('AdamW defaults: first step p(1 - lr wd) - lr g / (|g| + eps)', () => {
    const p = [Float64Array.from([1, 2]), Float64Array.from([-4])];
    const g = [Float64Array.from([0.5, -1e-3]), Float64Array.from([3])];
    const st = adamwInit(p);
    adamwStepRef(p, g, st);
    const lr = 1e-3, wd = 1e-2;
    expect(relErr1(p[0][0], 1 * (1 - lr * wd) - lr * 0.5 / (0.5 + 1e-8))).toBeLessThan(1e-15);
    expect(relErr1(p[0][1], 2 * (1 - lr * wd) + lr * 1e-3 / (1e-3 + 1e-8))).toBeLessThan(1e-15);
    expect(relErr1(p[1][0], -4 * (1 - lr * wd) - lr * 3 / (3 + 1e-8))).toBeLessThan(1e-15);
    expect(relErr1(st.expAvg[0][0], 0.05)).toBeLessThan(1e-15);
    expect(relErr1(st.expAvgSq[1][0], 0.009)).toBeLessThan(1e-12);
    expect(st.step).toBe(1);
  });

  it('global grad norm and clip_grad_norm_', () => {
    const g = [Float64Array.from([3, 4]), Float64Array.from([12])];
    expect(globalGradNormRef(g)).toBe(13);
    const r = clipGradNormRef(g, 6.5);
    expect(r.totalNorm).toBe(13);
    expect(r.scale).toBe(6.5 / (13 + 1e-6));
    expect(relErr1(g[0][0], 3 * 6.5 / (13 + 1e-6))).toBeLessThan(1e-15);
    const h = [Float64Array.from([3, 4])];
    const r2 = clipGradNormRef(h, 100);
    expect(r2.scale).toBe(1);
    expect(Array.from(h[0])).toEqual([3, 4]);
    // Norm exactly at max_norm is still scaled by max/(max + 1e-6) < 1, as torch does.
    const k = [Float64Array.from([5])];
    expect(clipGradNormRef(k, 5).scale).toBeLessThan(1);
    expect(globalGradNormRef([])).toBe(0);
  });
});

// ------------------------------------------------------------------------------------------------
// Independent transcription of the torch update formulas: one element at a time over all steps,
// scalar state, plain mul/add (no lerp), global norm from a flat copy.

interface Problem { sizes: number[]; p0: Float64Array[]; target: Float64Array[]; scale: number }

function makeProblem(rng: Rng): Problem {
  const sizes = [5, 1, 8];
  return {
    sizes,
    p0: sizes.map((n) => rng.array(n)),
    target: sizes.map((n) => rng.array(n)),
    scale: 3,
  };
}

/** Gradient of 0.5 * scale * sum (p - target)^2 * (1 + i) over a flat index i, plus a step-dependent kick. */
function gradsAt(prob: Problem, p: ArrayLike<number>[], step: number): Float64Array[] {
  let flat = 0;
  return p.map((pk, k) => Float64Array.from(pk, (v, i) => prob.scale * (1 + flat++ % 4) * (v - prob.target[k][i]) + (step % 3 === 0 ? 2 : -0.5)));
}

function runRef(
  prob: Problem, steps: number, maxNorm: number, warmup: number, kind: 'rmsprop' | 'adamw', opts: RmspropOptions & AdamWOptions,
): { params: Float64Array[]; norms: number[] } {
  const params = prob.p0.map((a) => Float64Array.from(a));
  const rms = rmspropInit(params, opts), adam = adamwInit(params, opts);
  const norms: number[] = [];
  for (let s = 0; s < steps; s++) {
    const g = gradsAt(prob, params, s);
    norms.push(clipGradNormRef(g, maxNorm).totalNorm);
    const lr = (opts.lr ?? 0) * warmupFactor(s, warmup);
    if (kind === 'rmsprop') rmspropStepRef(params, g, rms, { ...opts, lr });
    else adamwStepRef(params, g, adam, { ...opts, lr });
  }
  return { params, norms };
}

function runTranscription(
  prob: Problem, steps: number, maxNorm: number, warmup: number, kind: 'rmsprop' | 'adamw', opts: RmspropOptions & AdamWOptions,
): { params: Float64Array[]; norms: number[] } {
  const flatP = Float64Array.from(prob.p0.flatMap((a) => Array.from(a)));
  const n = flatP.length;
  const s1 = new Float64Array(n), s2 = new Float64Array(n), s3 = new Float64Array(n), s4 = new Float64Array(n);
  const norms: number[] = [];
  const split = (): Float64Array[] => { let o = 0; return prob.sizes.map((m) => { const a = flatP.slice(o, o + m); o += m; return a; }); };
  for (let s = 0; s < steps; s++) {
    const g = Float64Array.from(gradsAt(prob, split(), s).flatMap((a) => Array.from(a)));
    let sq = 0;
    for (let i = 0; i < n; i++) sq += g[i] ** 2;
    const norm = Math.sqrt(sq);
    norms.push(norm);
    const c = Math.min(1, maxNorm / (norm + 1e-6));
    const lr = (opts.lr as number) * Math.min(1, (s + 1) / (warmup + 1));
    for (let i = 0; i < n; i++) {
      let gi = g[i] * c;
      if (kind === 'rmsprop') {
        const a = opts.alpha ?? 0.99, eps = opts.eps ?? 1e-8, mom = opts.momentum ?? 0, wd = opts.weightDecay ?? 0;
        gi = gi + wd * flatP[i];
        s1[i] = a * s1[i] + (1 - a) * gi * gi;               // square_avg
        let avg = s1[i];
        if (opts.centered) { s2[i] = a * s2[i] + (1 - a) * gi; avg = s1[i] - s2[i] * s2[i]; }
        const den = Math.sqrt(avg) + eps;
        if (mom > 0) { s3[i] = mom * s3[i] + gi / den; flatP[i] -= lr * s3[i]; } else flatP[i] -= lr * gi / den;
      } else {
        const [b1, b2] = opts.betas ?? [0.9, 0.999], eps = opts.eps ?? 1e-8, wd = opts.weightDecay ?? 0.01;
        const t = s + 1;
        flatP[i] = flatP[i] - lr * wd * flatP[i];
        s1[i] = b1 * s1[i] + (1 - b1) * gi;
        s2[i] = b2 * s2[i] + (1 - b2) * gi * gi;
        s4[i] = Math.max(s4[i], s2[i]);
        const vhat = (opts.amsgrad ? s4[i] : s2[i]) / (1 - b2 ** t);
        const mhat = s1[i] / (1 - b1 ** t);
        flatP[i] -= lr * mhat / (Math.sqrt(vhat) + eps); // textbook form of torch's sqrt(v)/sqrt(bc2) + eps
      }
    }
  }
  return { params: split(), norms };
}

describe('several steps with clipping and warm-up vs. a transcription of the torch formulas', () => {
  const cases: Array<[string, 'rmsprop' | 'adamw', RmspropOptions & AdamWOptions]> = [
    ['RMSprop defaults', 'rmsprop', { lr: 0.05 }],
    ['RMSprop momentum + centered + weight decay', 'rmsprop', { lr: 0.02, momentum: 0.9, centered: true, weightDecay: 0.1, alpha: 0.9 }],
    ['AdamW defaults', 'adamw', { lr: 0.05 }],
    ['AdamW amsgrad, custom betas', 'adamw', { lr: 0.03, betas: [0.8, 0.95], weightDecay: 0.1, amsgrad: true, eps: 1e-6 }],
  ];
  for (const [label, kind, opts] of cases) {
    it(label, () => {
      const rng = makeRng();
      const prob = makeProblem(rng);
      const steps = 12, warmup = 4;
      // A max norm that clips some steps but not all.
      const free = runRef(prob, steps, Infinity, warmup, kind, opts);
      const sorted = [...free.norms].sort((a, b) => a - b);
      const maxNorm = sorted[Math.floor(steps / 2)];
      const a = runRef(prob, steps, maxNorm, warmup, kind, opts);
      const b = runTranscription(prob, steps, maxNorm, warmup, kind, opts);
      const msg = `seed ${rng.seed}`;
      expect(a.norms.some((x) => x > maxNorm) && a.norms.some((x) => x < maxNorm), msg).toBe(true);
      for (let s = 0; s < steps; s++) expect(relErr1(a.norms[s], b.norms[s]), msg).toBeLessThan(1e-12);
      for (let k = 0; k < prob.sizes.length; k++) expect(maxRelErr(a.params[k], b.params[k], 1e-6), msg).toBeLessThan(1e-10);
      // And the parameters actually moved.
      expect(maxRelErr(a.params[0], prob.p0[0])).toBeGreaterThan(1e-3);
    });
  }
});
