import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { centralDiff, maxRelErr } from './losses-fd.js';
import { sftLossRef, sftMaskFromTargets } from '../../src/losses/sft.ref.js';
import { outputLogprobBackwardRef, outputLogprobRef } from '../../src/kernels/output-logprob.ref.js';

describe('SFT loss reference', () => {
  it('token-weighted mean NLL over masked tokens', () => {
    const r = sftLossRef([-1, -2, -3, -6], [1, 0, 1, 1]);
    expect(r.count).toBe(3);
    expect(r.loss).toBeCloseTo(10 / 3, 15);
    expect(Array.from(r.dTokenLogp)).toEqual([-1 / 3, 0, -1 / 3, -1 / 3]);
    expect(sftLossRef([-1, -3]).loss).toBe(2);
    const empty = sftLossRef([-1], [0]);
    expect(empty.count).toBe(0);
    expect(Number.isNaN(empty.loss)).toBe(true);
    expect(empty.dTokenLogp[0]).toBe(0);
    expect(Array.from(sftMaskFromTargets(Int32Array.from([3, -1, 0])))).toEqual([1, 0, 1]);
  });

  it('gradient through the output layer matches finite differences (N=9, d=7, V=23)', () => {
    const rng = makeRng();
    const N = 9, d = 7, V = 23;
    const H = rng.array(N * d), W = rng.array(V * d, 0.6);
    const targets = Int32Array.from({ length: N }, (_, n) => (n < 2 || n === 6 ? -1 : rng.int(V)));
    const mask = sftMaskFromTargets(targets);
    const args = { H, W, targets, N, d, V };
    const f = (): number => sftLossRef(outputLogprobRef(args).logp, mask).loss;
    const { dTokenLogp } = sftLossRef(outputLogprobRef(args).logp, mask);
    const fdLogp = centralDiff(() => sftLossRef(outputLogprobRef(args).logp, mask).loss, H);
    const { dH, dW } = outputLogprobBackwardRef(args, dTokenLogp);
    expect(maxRelErr(dH, fdLogp), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(maxRelErr(dW, centralDiff(f, W)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    // Direct FD on the token log-probs.
    const lp = rng.array(N);
    expect(maxRelErr(sftLossRef(lp, mask).dTokenLogp, centralDiff(() => sftLossRef(lp, mask).loss, lp))).toBeLessThan(1e-6);
  });
});
