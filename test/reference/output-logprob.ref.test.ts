import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { centralDiff, maxRelErr } from './losses-fd.js';
import {
  logSoftmaxGather, logSoftmaxGatherBackward, logSoftmaxGatherWithLse, logSumExpRowsRef,
  outputLogitsRef, outputLogprobBackwardRef, outputLogprobRef, softcapRef,
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

  // Gemma 2's final logit soft-capping: cap 1.5 against logits of order 1-4, so tanh is far from
  // linear (the cap's derivative 1 - tanh^2 well under 1 for most logits).
  it('softcap: backward dH, dW, dlogits match finite differences (N=9, d=7, V=23, cap 1.5); the cap changes logp', () => {
    const rng = makeRng();
    const N = 9, d = 7, V = 23, softcap = 1.5;
    const H = rng.array(N * d), W = rng.array(V * d, 0.7);
    const targets = Int32Array.from({ length: N }, (_, n) => (n === 0 || n === 5 ? -1 : rng.int(V)));
    const g = rng.array(N);
    const args = { H, W, targets, N, d, V, softcap };
    const msg = `seed ${rng.seed}`;
    const fwd = outputLogprobRef(args);
    const plain = outputLogprobRef({ ...args, softcap: undefined });
    expect(fwd.logits).toEqual(plain.logits); // the raw logits either way
    // Strongly nonlinear: a mean derivative of the cap well under 1, and logits past the cap.
    let meanDeriv = 0; let big = 0;
    for (const x of fwd.logits) { meanDeriv += (1 - Math.tanh(x / softcap) ** 2) / fwd.logits.length; big = Math.max(big, Math.abs(x)); }
    expect(meanDeriv, msg).toBeLessThan(0.75);
    expect(big, msg).toBeGreaterThan(2 * softcap);
    // Capped log-probs clearly differ from the uncapped ones (0 on rows without a target either way).
    let diff = 0;
    for (let n = 0; n < N; n++) diff = Math.max(diff, Math.abs(fwd.logp[n] - plain.logp[n]));
    expect(diff, msg).toBeGreaterThan(0.3);
    expect(fwd.logp[0]).toBe(0); expect(fwd.logp[5]).toBe(0);
    // logp and lse are those of the capped logits, computed independently.
    const capped = softcapRef(fwd.logits, softcap);
    for (let n = 0; n < N; n++) {
      let s = 0; for (let v = 0; v < V; v++) s += Math.exp(capped[n * V + v]);
      expect(Math.abs(fwd.lse[n] - Math.log(s)), msg).toBeLessThan(1e-12);
      if (targets[n] >= 0) expect(Math.abs(fwd.logp[n] - (capped[n * V + targets[n]] - Math.log(s))), msg).toBeLessThan(1e-12);
      expect(Math.abs(capped[n * V] - softcap * Math.tanh(fwd.logits[n * V] / softcap))).toBe(0);
    }
    const f = (): number => { const lp = outputLogprobRef(args).logp; let s = 0; for (let n = 0; n < N; n++) s += g[n] * lp[n]; return s; };
    const an = outputLogprobBackwardRef(args, g);
    expect(maxRelErr(an.dH, centralDiff(f, H)), msg).toBeLessThan(1e-6);
    expect(maxRelErr(an.dW, centralDiff(f, W)), msg).toBeLessThan(1e-6);
    const logits = outputLogitsRef(H, W, N, d, V);
    const fl = (): number => { const lp = logSoftmaxGather(logits, targets, V, softcap); let s = 0; for (let n = 0; n < N; n++) s += g[n] * lp[n]; return s; };
    expect(maxRelErr(an.dlogits, centralDiff(fl, logits)), msg).toBeLessThan(1e-6);
    // lse passed in (the capped logits', as logSoftmaxGatherWithLse gives it) changes nothing.
    const { lse } = logSoftmaxGatherWithLse(logits, targets, V, softcap);
    expect(logSoftmaxGatherBackward(logits, targets, g, V, lse, softcap)).toEqual(an.dlogits);
    // Differs clearly from the uncapped gradient.
    expect(maxRelErr(an.dH, outputLogprobBackwardRef({ ...args, softcap: 0 }, g).dH), msg).toBeGreaterThan(0.1);
    for (const n of [0, 5]) for (let k = 0; k < d; k++) expect(an.dH[n * d + k]).toBe(0);
  });

  it('softcap: absent or 0 is none; negative, NaN or infinite refused', () => {
    const logits = Float64Array.from([0.5, -2, 3, 1, 0, -1]);
    const targets = Int32Array.from([2, 0]);
    expect(logSoftmaxGather(logits, targets, 3, 0)).toEqual(logSoftmaxGather(logits, targets, 3));
    expect(softcapRef(logits, 0)).toEqual(logits);
    for (const bad of [-1, NaN, Infinity]) {
      expect(() => logSoftmaxGather(logits, targets, 3, bad)).toThrow(RangeError);
      expect(() => logSoftmaxGatherBackward(logits, targets, [1, 1], 3, undefined, bad)).toThrow(/softcap/);
      expect(() => outputLogprobRef({ H: [1], W: [1, 2, 3], targets: [0], N: 1, d: 1, V: 3, softcap: bad })).toThrow(/softcap = .* finite and > 0/);
    }
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
