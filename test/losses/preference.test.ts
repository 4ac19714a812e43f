import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { PREFERENCE_STATS, preferenceLoss, preferenceStats } from '../../src/losses/preference.js';
import {
  PREFERENCE_LOSS_TYPES, preferenceLossRef, preferenceMetricsRef, type PreferenceLogps, type PreferenceLossType,
} from '../../src/losses/preference.ref.js';

const rng = makeRng();
const FIXTURES = ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied'];
const ROWS = ['policy_chosen', 'policy_rejected', 'ref_chosen', 'ref_rejected',
  'policy_chosen_aug', 'policy_rejected_aug', 'ref_chosen_aug', 'ref_rejected_aug'];

interface Expected {
  beta: number; lambda: number;
  logps: Record<string, number[]>;
  per_pair: Record<PreferenceLossType, number[]>;
  losses_mean: Record<PreferenceLossType, number>;
}

function asLogps(rows: ArrayLike<number>[]): PreferenceLogps {
  return {
    policyChosen: rows[0], policyRejected: rows[1], refChosen: rows[2], refRejected: rows[3],
    policyChosenAug: rows[4], policyRejectedAug: rows[5], refChosenAug: rows[6], refRejectedAug: rows[7],
  };
}

/** Runs the GPU loss; returns perPair, grad [2P], stats. */
async function runGpu(type: PreferenceLossType, rows: Float32Array[], beta: number, lambda: number,
  opts: { labelSmoothing?: number; gradScale?: number; aug?: boolean } = {}) {
  const gpu = await getGpu();
  const P = rows[0].length;
  const R = opts.aug === false ? 4 : 8;
  const packed = new Float32Array(R * P);
  for (let r = 0; r < R; r++) packed.set(rows[r], r * P);
  const tl = gpu.tensor([R, P], packed); const tg = gpu.tensor([2, P]);
  const ts = gpu.tensor([PREFERENCE_STATS.length]); const tp = gpu.tensor([P]);
  preferenceLoss(gpu, { type, beta, lambda, P, logps: tl, grad: tg, stats: ts, perPair: tp, ...opts });
  const out = { perPair: await gpu.readF32(tp), grad: await gpu.readF32(tg), stats: await gpu.readF32(ts) };
  gpu.pool.release(tl, tg, ts, tp);
  return out;
}

describe(`preference losses on the GPU (seed ${rng.seed})`, () => {
  for (const name of FIXTURES) {
    it(`${name}: per-pair losses, mean, gradients and metrics match the fixture and the float64 reference`, async () => {
      const ex = JSON.parse(readFileSync(new URL(`../fixtures/hf/${name}/expected.json`, import.meta.url), 'utf8')) as Expected;
      const rows = ROWS.map((k) => Float32Array.from(ex.logps[k]));
      const P = rows[0].length;
      const opts = { beta: ex.beta, lambda: ex.lambda };
      for (const type of PREFERENCE_LOSS_TYPES) {
        const got = await runGpu(type, rows, ex.beta, ex.lambda);
        // float64 evaluated at the f32-rounded log-probs the GPU sees: 1e-6.
        const ref = preferenceLossRef(type, asLogps(rows), opts);
        expect(relErr(got.perPair, ref.perPair)).toBeLessThan(1e-6);
        expect(Math.abs(got.stats[0] - ref.loss) / Math.abs(ref.loss)).toBeLessThan(1e-6);
        expect(relErr(got.grad, [...ref.dPolicyChosen, ...ref.dPolicyRejected])).toBeLessThan(1e-6);
        // The fixture's float64 log-probs (|logp| ~ 300) lose ~1.5e-5 each in f32: h moves by up to ~6e-5.
        expect(relErr(got.perPair, ex.per_pair[type])).toBeLessThan(2e-5);
        expect(Math.abs(got.stats[0] - ex.losses_mean[type]) / ex.losses_mean[type]).toBeLessThan(2e-5);
        const m = preferenceMetricsRef(asLogps(rows), ex.beta);
        const s = preferenceStats(got.stats);
        const want = [ref.loss, m.rewardsChosenMean, m.rewardsRejectedMean, m.margin, m.accuracy, m.augAccuracy!,
          m.logpsChosenMean, m.logpsRejectedMean, ref.delta!.reduce((a, b) => a + b, 0) / P];
        PREFERENCE_STATS.forEach((k, i) => {
          expect(Math.abs(s[k] - want[i]), `${type} ${k}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(want[i])));
        });
      }
    });
  }

  it('random pairs (P=300 > one workgroup): label smoothing, gradScale, no augmented rows, large |z|', async () => {
    const P = 300;
    const rows = Array.from({ length: 8 }, () => Float32Array.from(rng.array(P, 40), (v) => v - 150));
    rows[1][0] = rows[0][0] + 2000; // z far negative: softplus ~ |z|
    rows[1][1] = rows[0][1] - 2000; // z far positive: loss e^-z underflows to 0 (as in f32 anywhere)
    rows[1][2] = rows[0][2] - rows[2][2] + rows[3][2] - 300; // h ~ 300: with beta 0.1, loss ~ e^-30
    for (const type of PREFERENCE_LOSS_TYPES) {
      for (const ls of [0, 0.1]) {
        const beta = 0.05 + rng.uniform() * 0.5; const lambda = rng.uniform();
        const labelSmoothing = type.endsWith('dpo') ? ls : 0;
        const got = await runGpu(type, rows, beta, lambda, { labelSmoothing, gradScale: 0.25 });
        const ref = preferenceLossRef(type, asLogps(rows), { beta, lambda, labelSmoothing });
        expect(relErr(got.perPair, ref.perPair), `${type} ls=${ls}`).toBeLessThan(1e-6);
        // gradScale replaces 1/P: grad = 0.25 * dl/dh. Bound: h is formed in f32 from log-probs near
        // 150 (|dh| ~ 1e-5, a few roundings at ulp 7.6e-6), and the DPO-family gradients move by up to
        // beta^2 / 4 per unit of h, against a largest gradient near beta: relative ~ beta * 1e-5 / 4,
        // 1.4e-6 at beta 0.55 (the seed 1244639913 draws 1.02e-6). 1e-6 as before up to beta 0.2.
        // The Sr losses' argument also holds lambda Delta = lambda beta h_aug, whose h_aug is formed the
        // same way: up to (1 + lambda) times the error (the seed 1349339809 draws 1.96e-6 for Sr-DPO at
        // beta 0.32, over the plain bound of 1.61e-6).
        const gradTol = Math.max(1e-6, 5e-6 * beta * (type.startsWith('sr') ? 1 + lambda : 1));
        expect(relErr(got.grad, [...ref.dLdh.map((v) => 0.25 * v), ...ref.dLdh.map((v) => -0.25 * v)]), `${type} ls=${ls} beta=${beta} lambda=${lambda} grad`).toBeLessThan(gradTol);
        expect(Math.abs(got.stats[0] - ref.loss) / Math.abs(ref.loss)).toBeLessThan(1e-6);
      }
    }
    // Tiny losses keep their relative accuracy (log1p, not log(1 + x)).
    const beta = 0.1;
    const got = await runGpu('dpo', rows, beta, 0, { aug: false });
    const ref = preferenceLossRef('dpo', asLogps(rows.slice(0, 4)), { beta });
    expect(ref.perPair[2]).toBeLessThan(1e-12);
    expect(Math.abs(got.perPair[2] - ref.perPair[2]) / ref.perPair[2]).toBeLessThan(1e-5);
    const m = preferenceMetricsRef(asLogps(rows.slice(0, 4)), beta);
    expect(Math.abs(got.stats[4] - m.accuracy)).toBeLessThan(1e-6);
    expect(got.stats[5]).toBe(0);
    expect(preferenceStats(got.stats, false).augAccuracy).toBeNaN();
  });

  // A pair the policy already separates has a loss log(1 + e^-z) far below 1: it keeps its relative accuracy
  // all the way down (a log of 1 + x, accurate near 1 only to 2^-21 absolute, gave 4e-3 off at a loss of 1e-5).
  it('small losses, e^-z from 0.5 down to 1e-9, within 1e-6 relative of float64 (DPO, cDPO, Sr-DPO)', async () => {
    const zs = [0.7, 2, 4.6, 7, 9.2, 11.5, 13.8, 16.1, 18.4, 20.7];
    const P = zs.length;
    const beta = 0.1;
    // h = policyChosen - policyRejected (references 0) = z / beta; augmented rows make Delta 0.
    const rows = Array.from({ length: 8 }, () => new Float32Array(P));
    zs.forEach((z, i) => { rows[0][i] = -10; rows[1][i] = Math.fround(-10 - z / beta); });
    for (const [type, ls] of [['dpo', 0], ['dpo', 0.1], ['sr-dpo', 0]] as const) {
      const got = await runGpu(type, rows, beta, 0.5, { labelSmoothing: ls });
      const ref = preferenceLossRef(type, asLogps(rows), { beta, lambda: 0.5, labelSmoothing: ls });
      const worst = Math.max(...ref.perPair.map((r, i) => Math.abs(got.perPair[i] - r) / r));
      expect(worst, `${type} ls=${ls}`).toBeLessThan(1e-6);
    }
  });

  it('sr losses without augmented rows are refused', async () => {
    const gpu = await getGpu();
    const t = gpu.tensor([4, 3]); const g = gpu.tensor([2, 3]); const s = gpu.tensor([PREFERENCE_STATS.length]);
    expect(() => preferenceLoss(gpu, { type: 'sr-dpo', beta: 0.1, lambda: 0.5, P: 3, logps: t, grad: g, stats: s })).toThrow(/augmented/);
    gpu.pool.release(t, g, s);
  });
});
