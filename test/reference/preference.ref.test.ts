import { describe, expect, it } from 'vitest';
import { makeRng, type Rng } from '../helpers/random.js';
import { centralDiff, maxRelErr, relErr1 } from './losses-fd.js';
import {
  augmentedDeltaRef, logratioDiffRef, logSigmoid, PREFERENCE_LOSS_TYPES, preferenceLossRef, preferenceMetricsRef,
  preferencePairRef, sigmoid, softplus, type PreferenceLogps,
} from '../../src/losses/preference.ref.js';
import { outputLogprobBackwardRef, outputLogprobRef } from '../../src/kernels/output-logprob.ref.js';
import { segmentSumBackwardRef, segmentSumRef } from '../../src/kernels/segment-sum.ref.js';

interface RandomLogps extends PreferenceLogps {
  policyChosen: Float64Array; policyRejected: Float64Array; refChosen: Float64Array; refRejected: Float64Array;
}

function randomLogps(rng: Rng, P: number, aug = true): RandomLogps {
  const lp = (): Float64Array => Float64Array.from({ length: P }, () => -5 - 30 * rng.uniform());
  const pc = lp(), pr = lp();
  // Reference near the policy so that beta*h is O(1) and both sigmoid branches are exercised.
  const near = (a: Float64Array): Float64Array => a.map((v) => v + 8 * rng.normal());
  const out: RandomLogps = { policyChosen: pc, policyRejected: pr, refChosen: near(pc), refRejected: near(pr) };
  if (aug) {
    out.policyChosenAug = near(pc); out.policyRejectedAug = near(pr);
    out.refChosenAug = near(pc); out.refRejectedAug = near(pr);
  }
  return out;
}

describe('scalar helpers', () => {
  it('softplus / logSigmoid / sigmoid are stable and correct', () => {
    expect(softplus(0)).toBeCloseTo(Math.log(2), 15);
    expect(logSigmoid(0)).toBeCloseTo(-Math.log(2), 15);
    expect(logSigmoid(-1000)).toBe(-1000);
    expect(logSigmoid(1000)).toBe(-0);
    expect(logSigmoid(40)).toBeCloseTo(-Math.exp(-40), 30);
    expect(relErr1(logSigmoid(40), -Math.exp(-40))).toBeLessThan(1e-12);
    for (const x of [-7.5, -0.3, 0.2, 3.1]) {
      expect(relErr1(logSigmoid(x), Math.log(1 / (1 + Math.exp(-x))))).toBeLessThan(1e-13);
      expect(relErr1(sigmoid(x), 1 / (1 + Math.exp(-x)))).toBeLessThan(1e-14);
    }
    expect(sigmoid(-1000)).toBe(0);
    expect(sigmoid(1000)).toBe(1);
    expect(sigmoid(-745)).toBeGreaterThan(0);
  });
});

describe('preference losses reference', () => {
  it('matches the hand values in ../shared/notes/losses.md (beta 0.1, h 2, lambda 0.5, Delta 0.1)', () => {
    const o = { beta: 0.1, lambda: 0.5 };
    expect(preferencePairRef('dpo', 2, 0.1, o).loss).toBeCloseTo(0.5981389, 7);
    expect(preferencePairRef('sr-dpo', 2, 0.1, o).loss).toBeCloseTo(0.6209570, 7);
    expect(preferencePairRef('ipo', 2, 0.1, o).loss).toBeCloseTo(9.0, 12);
    expect(preferencePairRef('sr-ipo', 2, 0.1, o).loss).toBeCloseTo(9.3025, 12);
    // Closed-form gradients.
    expect(preferencePairRef('dpo', 2, 0.1, o).dLdh).toBeCloseTo(-0.1 * sigmoid(-0.2), 15);
    expect(preferencePairRef('sr-dpo', 2, 0.1, o).dLdh).toBeCloseTo(-0.1 * sigmoid(0.05 - 0.2), 15);
    expect(preferencePairRef('ipo', 2, 0.1, o).dLdh).toBeCloseTo(2 * (2 - 5), 12);
    expect(preferencePairRef('sr-ipo', 2, 0.1, o).dLdh).toBeCloseTo(2 * (2 - 0.05 - 5), 12);
  });

  it('h, delta, metrics on a small hand case', () => {
    const logps: PreferenceLogps = {
      policyChosen: [-10, -20], policyRejected: [-12, -15], refChosen: [-11, -19], refRejected: [-11, -16],
      policyChosenAug: [-9, -20], policyRejectedAug: [-12, -14], refChosenAug: [-10, -20], refRejectedAug: [-12, -16],
    };
    const h = logratioDiffRef(logps.policyChosen, logps.policyRejected, logps.refChosen, logps.refRejected);
    expect(Array.from(h)).toEqual([2, -2]);
    const delta = augmentedDeltaRef(logps, 0.5)!;
    expect(Array.from(delta)).toEqual([0.5 * 1, 0.5 * -2]);
    const m = preferenceMetricsRef(logps, 0.5);
    expect(Array.from(m.rewardsChosen)).toEqual([0.5, -0.5]);
    expect(Array.from(m.rewardsRejected)).toEqual([-0.5, 0.5]);
    expect(m.rewardsChosenMean).toBe(0);
    expect(m.margin).toBe(0);
    expect(m.accuracy).toBe(0.5);
    expect(m.augAccuracy).toBe(0.5);
    expect(m.logpsChosenMean).toBe(-15);
    expect(m.logpsRejectedMean).toBe(-13.5);
    expect(preferenceMetricsRef({ ...logps, policyChosenAug: undefined }, 0.5).augAccuracy).toBeNull();
    // Ties count as wrong (strict >).
    expect(preferenceMetricsRef({ policyChosen: [0], policyRejected: [0], refChosen: [0], refRejected: [0] }, 0.1).accuracy).toBe(0);
  });

  it('sr losses need lambda and the augmented log-probs', () => {
    const rng = makeRng();
    const l = randomLogps(rng, 3, false);
    expect(() => preferenceLossRef('sr-dpo', l, { beta: 0.1, lambda: 0.5 })).toThrow(/sr-dpo needs the augmented log-probs/);
    expect(() => preferenceLossRef('sr-ipo', randomLogps(rng, 3), { beta: 0.1 })).toThrow(/sr-ipo needs lambda/);
    expect(preferenceLossRef('dpo', l, { beta: 0.1 }).delta).toBeNull();
  });

  for (const type of PREFERENCE_LOSS_TYPES) {
    it(`${type}: d(mean loss)/d(policy logps) matches finite differences; delta is constant`, () => {
      const rng = makeRng();
      const P = 7;
      const logps = randomLogps(rng, P);
      const opts = { beta: 0.1 + 0.4 * rng.uniform(), lambda: 0.5 };
      const r = preferenceLossRef(type, logps, opts);
      const f = (): number => preferenceLossRef(type, logps, opts).loss;
      const msg = `seed ${rng.seed}`;
      expect(maxRelErr(r.dPolicyChosen, centralDiff(f, logps.policyChosen)), msg).toBeLessThan(1e-6);
      expect(maxRelErr(r.dPolicyRejected, centralDiff(f, logps.policyRejected)), msg).toBeLessThan(1e-6);
      // Mean loss and the per-pair relation.
      expect(relErr1(r.loss, r.perPair.reduce((a, b) => a + b, 0) / P)).toBeLessThan(1e-15);
      for (let i = 0; i < P; i++) {
        expect(r.dPolicyChosen[i]).toBe(r.dLdh[i] / P);
        expect(r.dPolicyRejected[i]).toBe(-r.dLdh[i] / P);
      }
      // The reference enters with the opposite sign (a check of h's definition).
      const fdRef = centralDiff(f, logps.refChosen);
      expect(maxRelErr(fdRef, r.dPolicyChosen.map((v) => -v)), msg).toBeLessThan(1e-6);
    });
  }

  it('label smoothing (cDPO) gradient matches finite differences', () => {
    const rng = makeRng();
    const logps = randomLogps(rng, 5);
    for (const type of ['dpo', 'sr-dpo'] as const) {
      const opts = { beta: 0.2, lambda: 0.5, labelSmoothing: 0.15 };
      const r = preferenceLossRef(type, logps, opts);
      const f = (): number => preferenceLossRef(type, logps, opts).loss;
      expect(maxRelErr(r.dPolicyChosen, centralDiff(f, logps.policyChosen)), `seed ${rng.seed}`).toBeLessThan(1e-6);
      const z = 0.2 * r.h[0] - (type === 'sr-dpo' ? 0.5 * r.delta![0] : 0);
      expect(relErr1(r.perPair[0], -0.85 * Math.log(sigmoid(z)) - 0.15 * Math.log(sigmoid(-z)))).toBeLessThan(1e-12);
    }
  });

  it('extreme margins stay finite', () => {
    for (const type of PREFERENCE_LOSS_TYPES) {
      const l: PreferenceLogps = {
        policyChosen: [0, -1e4], policyRejected: [-1e4, 0], refChosen: [0, 0], refRejected: [0, 0],
        policyChosenAug: [0, 0], policyRejectedAug: [0, 0], refChosenAug: [0, 0], refRejectedAug: [0, 0],
      };
      const r = preferenceLossRef(type, l, { beta: 0.5, lambda: 0.5 });
      for (const v of [...r.perPair, ...r.dPolicyChosen, ...r.dPolicyRejected]) expect(Number.isFinite(v)).toBe(true);
      if (type === 'dpo') {
        expect(r.perPair[1]).toBeCloseTo(5000, 9);
        expect(r.perPair[0]).toBe(0);
        expect(r.dLdh[1]).toBeCloseTo(-0.5, 15);
      }
    }
  });

  it('end to end: output layer -> segment sums -> sr-dpo loss; backward chain matches FD w.r.t. H and W', () => {
    // Two pairs: 4 sequences (chosen0, chosen1, rejected0, rejected1) flattened into N token rows; policy
    // log-probs come from H, W; reference and augmented log-probs are constants.
    const rng = makeRng();
    const N = 14, d = 4, V = 9, S = 4, P = 2;
    const H = rng.array(N * d), W = rng.array(V * d);
    const targets = Int32Array.from({ length: N }, (_, n) => (n % 5 === 0 ? -1 : rng.int(V)));
    const segmentId = Int32Array.from({ length: N }, (_, n) => (targets[n] < 0 ? -1 : Math.floor(n / 3.5)));
    const consts = randomLogps(rng, P);
    const opts = { beta: 0.3, lambda: 0.5 };
    const forward = (): { loss: number; dPolicyChosen: Float64Array; dPolicyRejected: Float64Array } => {
      const logp = outputLogprobRef({ H, W, targets, N, d, V }).logp;
      const { sums } = segmentSumRef(logp, segmentId, S);
      return preferenceLossRef('sr-dpo', { ...consts, policyChosen: sums.subarray(0, P), policyRejected: sums.subarray(P, 2 * P) }, opts);
    };
    const r = forward();
    const dsum = new Float64Array(S);
    dsum.set(r.dPolicyChosen, 0); dsum.set(r.dPolicyRejected, P);
    const g = segmentSumBackwardRef(dsum, segmentId);
    const { dH, dW } = outputLogprobBackwardRef({ H, W, targets, N, d, V }, g);
    const f = (): number => forward().loss;
    expect(maxRelErr(dH, centralDiff(f, H)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(maxRelErr(dW, centralDiff(f, W)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });
});
