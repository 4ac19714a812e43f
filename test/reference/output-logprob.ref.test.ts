import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { centralDiff, maxRelErr } from './losses-fd.js';
import {
  logSoftmaxGather, logSoftmaxGatherBackward, logSoftmaxGatherWithLse, logSumExpRowsRef,
  outputLogitsRef, outputLogprobBackwardRef, outputLogprobRef,
} from '../../src/kernels/output-logprob.ref.js';

describe('output layer log-prob reference', () => {
  it('log-softmax gather: hand-checked values, -1 targets, large logits', () => {
    // Row 0: logits [0, ln 2, ln 3]  -> lse = ln 6; target 2 -> ln 3 - ln 6 = -ln 2.
    // Row 1: target -1 -> 0.  Row 2: huge logits, stable.
    const logits = Float64Array.from([0, Math.log(2), Math.log(3), 1, 2, 3, 1000, 1000, 999]);
    const targets = Int32Array.from([2, -1, 2]);
    const { logp, lse } = logSoftmaxGatherWithLse(logits, targets);
    expect(logp[0]).toBeCloseTo(-Math.log(2), 14);
    expect(lse[0]).toBeCloseTo(Math.log(6), 14);
    expect(logp[1]).toBe(0);
    expect(lse[1]).toBeCloseTo(3 + Math.log(1 + Math.exp(-1) + Math.exp(-2)), 13);
    expect(logp[2]).toBeCloseTo(-1 - Math.log(2 + Math.exp(-1)), 12);
    expect(logSoftmaxGather(logits, targets, 3)).toEqual(logp);
  });

  it('rejects out-of-range targets', () => {
    expect(() => logSoftmaxGather(new Float64Array(6), Int32Array.from([0, 3]))).toThrow(/target 3 at row 1 out of range \[0, 3\)/);
  });

  it('gather backward matches finite differences (N=5, V=11)', () => {
    const rng = makeRng();
    const N = 5, V = 11;
    const logits = rng.array(N * V, 3);
    const targets = Int32Array.from([3, -1, 0, 10, 7]);
    const g = rng.array(N);
    const an = logSoftmaxGatherBackward(logits, targets, g, V);
    const f = (): number => { const lp = logSoftmaxGather(logits, targets, V); let s = 0; for (let n = 0; n < N; n++) s += g[n] * lp[n]; return s; };
    const fd = centralDiff(f, logits);
    expect(maxRelErr(an, fd), `seed ${rng.seed}`).toBeLessThan(1e-6);
    // Rows with no target have zero gradient; each targeted row sums to 0.
    for (let v = 0; v < V; v++) expect(an[1 * V + v]).toBe(0);
    for (const n of [0, 2, 3, 4]) { let s = 0; for (let v = 0; v < V; v++) s += an[n * V + v]; expect(Math.abs(s)).toBeLessThan(1e-14); }
  });

  it('forward matches an independent computation (log of normalized softmax)', () => {
    const rng = makeRng();
    const N = 4, d = 3, V = 6;
    const H = rng.array(N * d), W = rng.array(V * d);
    const targets = Int32Array.from([5, 0, -1, 2]);
    const r = outputLogprobRef({ H, W, targets, N, d, V });
    for (let n = 0; n < N; n++) {
      const z: number[] = [];
      for (let v = 0; v < V; v++) { let s = 0; for (let k = 0; k < d; k++) s += H[n * d + k] * W[v * d + k]; z.push(s); }
      expect(Math.abs(r.logits[n * V + 2] - z[2])).toBeLessThan(1e-14);
      const p = z.map(Math.exp); const tot = p.reduce((a, b) => a + b, 0);
      const want = targets[n] < 0 ? 0 : Math.log(p[targets[n]] / tot);
      expect(Math.abs(r.logp[n] - want), `seed ${rng.seed}`).toBeLessThan(1e-12);
      expect(Math.abs(r.lse[n] - Math.log(tot))).toBeLessThan(1e-12);
    }
    expect(logSumExpRowsRef(r.logits, N, V)).toEqual(r.lse);
    expect(outputLogitsRef(H, W, N, d, V)).toEqual(r.logits);
  });

  it('backward dH, dW, dlogits match finite differences at N=9, d=7, V=23 with -1 targets', () => {
    const rng = makeRng();
    const N = 9, d = 7, V = 23;
    const H = rng.array(N * d), W = rng.array(V * d, 0.7);
    const targets = Int32Array.from({ length: N }, (_, n) => (n === 0 || n === 4 || n === 8 ? -1 : rng.int(V)));
    const g = rng.array(N);
    g[4] = 0; // a prompt row with an explicit zero weight too
    const args = { H, W, targets, N, d, V };
    const f = (): number => { const lp = outputLogprobRef(args).logp; let s = 0; for (let n = 0; n < N; n++) s += g[n] * lp[n]; return s; };
    const an = outputLogprobBackwardRef(args, g);
    const msg = `seed ${rng.seed}`;
    expect(maxRelErr(an.dH, centralDiff(f, H)), msg).toBeLessThan(1e-6);
    expect(maxRelErr(an.dW, centralDiff(f, W)), msg).toBeLessThan(1e-6);
    const logits = outputLogitsRef(H, W, N, d, V);
    const fl = (): number => { const lp = logSoftmaxGather(logits, targets, V); let s = 0; for (let n = 0; n < N; n++) s += g[n] * lp[n]; return s; };
    expect(maxRelErr(an.dlogits, centralDiff(fl, logits)), msg).toBeLessThan(1e-6);
    for (const n of [0, 4, 8]) for (let k = 0; k < d; k++) expect(an.dH[n * d + k]).toBe(0);
  });

  it('tied weights: W used as both input and output gives dW = output part (caller adds embedding part)', () => {
    // Same matrix passed as H-source and W: check that the output-layer dW alone is what FD on W gives
    // when H is held fixed (H a copy of some embedding rows).
    const rng = makeRng();
    const V = 8, d = 5, N = 3;
    const W = rng.array(V * d);
    const ids = [1, 4, 6];
    const H = new Float64Array(N * d);
    ids.forEach((id, n) => H.set(W.subarray(id * d, id * d + d), n * d));
    const targets = Int32Array.from([4, 6, -1]);
    const g = Float64Array.from([1, 1, 0]);
    // Full tied loss: logits computed from embedding rows of W (both uses vary together).
    const f = (): number => {
      const Hx = new Float64Array(N * d);
      ids.forEach((id, n) => Hx.set(W.subarray(id * d, id * d + d), n * d));
      const lp = outputLogprobRef({ H: Hx, W, targets, N, d, V }).logp; return g[0] * lp[0] + g[1] * lp[1] + g[2] * lp[2];
    };
    const { dH, dW } = outputLogprobBackwardRef({ H, W, targets, N, d, V }, g);
    const total = Float64Array.from(dW);
    ids.forEach((id, n) => { for (let k = 0; k < d; k++) total[id * d + k] += dH[n * d + k]; });
    expect(maxRelErr(total, centralDiff(f, W)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });
});
