import { describe, expect, it } from 'vitest';
import { makeRng, type Rng } from '../helpers/random.js';
import {
  EMPTY_ROW_LSE, attentionBackward, attentionForward, attentionVisible, packedPairMask,
  type AttentionDims, type AttentionMaskRef,
} from '../../src/kernels/attention.ref.js';
import { dot, fdGrad, maxAbsDiff, relErr } from './fd.js';

const inputs = (rng: Rng, d: AttentionDims) => ({
  q: rng.array(d.B * d.T * d.Hq * d.Dh), k: rng.array(d.B * d.T * d.Hkv * d.Dh), v: rng.array(d.B * d.T * d.Hkv * d.Dh),
  r: rng.array(d.B * d.T * d.Hq * d.Dh),
});

/** Tokens idx of batch row 0 of x [1, T, H, Dh] -> [1, idx.length, H, Dh]. */
function take(x: Float64Array, HD: number, idx: number[]): Float64Array {
  const out = new Float64Array(idx.length * HD);
  idx.forEach((t, n) => out.set(x.subarray(t * HD, (t + 1) * HD), n * HD));
  return out;
}
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

/** FD check of dq, dk, dv for L = sum(out * r). */
function checkGrads(rng: Rng, d: AttentionDims, mask: AttentionMaskRef) {
  const { q, k, v, r } = inputs(rng, d);
  const { out, lse } = attentionForward(q, k, v, d, mask);
  const g = attentionBackward(r, q, k, v, out, lse, d, mask);
  const loss = () => dot(attentionForward(q, k, v, d, mask).out, r);
  for (const [name, a, x] of [['dq', g.dq, q], ['dk', g.dk, k], ['dv', g.dv, v]] as const) {
    expect(relErr(a, fdGrad(loss, x)), `${name}, seed ${rng.seed}`).toBeLessThan(1e-6);
  }
}

describe('attention reference: gradients', () => {
  it('FD check: B=2, T=11, Hq=4, Hkv=2, Dh=6, window 4, row 1 padded to length 8', () => {
    const rng = makeRng();
    checkGrads(rng, { B: 2, T: 11, Hq: 4, Hkv: 2, Dh: 6 }, { lengths: Int32Array.of(11, 8), window: 4 });
  });

  it('FD check: packed [prompt, chosen, rejected] rows (one padded), Hq=3, Hkv=1, with and without window', () => {
    const rng = makeRng(); const T = 11;
    const a = packedPairMask(3, 4, 4), b = packedPairMask(2, 3, 4); // b has 9 tokens, padded to 11
    const positions = new Int32Array(2 * T), segments = new Int32Array(2 * T);
    positions.set(a.positions, 0); segments.set(a.segments, 0);
    positions.set(b.positions, T); segments.set(b.segments, T);
    for (const window of [0, 3]) {
      checkGrads(rng, { B: 2, T, Hq: 3, Hkv: 1, Dh: 5 }, { positions, segments, lengths: Int32Array.of(11, 9), window });
    }
  });
});

describe('attention reference: soft-capping (Gemma 2)', () => {
  // Scores of order 1-3 (scale 1.5 / sqrt(Dh) on unit normals) against a cap of 0.7: tanh far from linear.
  const d = { B: 2, T: 9, Hq: 4, Hkv: 2, Dh: 6 }; const scale = 1.5 / Math.sqrt(d.Dh); const cap = 0.7;
  const mask = { lengths: Int32Array.of(9, 7), window: 5 };

  it('FD check of the backward against the capped forward; the cap changes the result clearly', () => {
    const rng = makeRng();
    const { q, k, v, r } = inputs(rng, d);
    const f = attentionForward(q, k, v, d, mask, scale, cap);
    const g = attentionBackward(r, q, k, v, f.out, f.lse, d, mask, scale, cap);
    const loss = () => dot(attentionForward(q, k, v, d, mask, scale, cap).out, r);
    for (const [name, a, x] of [['dq', g.dq, q], ['dk', g.dk, k], ['dv', g.dv, v]] as const) {
      expect(relErr(a, fdGrad(loss, x)), `${name}, seed ${rng.seed}`).toBeLessThan(1e-6);
    }
    const plain = attentionForward(q, k, v, d, mask, scale);
    const gp = attentionBackward(r, q, k, v, plain.out, plain.lse, d, mask, scale);
    expect(maxAbsDiff(f.out, plain.out), `seed ${rng.seed}`).toBeGreaterThan(0.05);
    expect(relErr(g.dq, gp.dq), `seed ${rng.seed}`).toBeGreaterThan(0.1);
    // A cap far above every score is no cap.
    const wide = attentionForward(q, k, v, d, mask, scale, 1e6);
    expect(maxAbsDiff(wide.out, plain.out)).toBeLessThan(1e-9);
  });

  it('lse is the logsumexp of cap tanh(s / cap) over the visible keys (independent loop)', () => {
    const rng = makeRng(); const d1 = { B: 1, T: 6, Hq: 1, Hkv: 1, Dh: 4 };
    const { q, k, v } = inputs(rng, d1);
    const { lse } = attentionForward(q, k, v, d1, {}, 1.5, cap);
    for (let i = 0; i < 6; i++) {
      const s = range(0, i + 1).map((j) => cap * Math.tanh(1.5 * range(0, 4).reduce((a, c) => a + q[i * 4 + c] * k[j * 4 + c], 0) / cap));
      expect(Math.abs(lse[i] - Math.log(s.reduce((a, x) => a + Math.exp(x), 0))), `seed ${rng.seed}`).toBeLessThan(1e-13);
    }
  });

  it('softcap negative, NaN or infinite is refused, naming softcap; 0 is none', () => {
    const rng = makeRng(); const { q, k, v, r } = inputs(rng, d);
    for (const bad of [-1, NaN, Infinity]) {
      expect(() => attentionForward(q, k, v, d, mask, scale, bad)).toThrow(/softcap/);
      expect(() => attentionBackward(r, q, k, v, q, new Float64Array(2 * 4 * 9), d, mask, scale, bad)).toThrow(/softcap/);
    }
    expect(Array.from(attentionForward(q, k, v, d, mask, scale, 0).out)).toEqual(Array.from(attentionForward(q, k, v, d, mask, scale).out));
  });
});

describe('attention reference: properties', () => {
  it('lse is the logsumexp of the scaled scores over visible keys (independent loop), scale is honored', () => {
    const rng = makeRng(); const d = { B: 1, T: 6, Hq: 2, Hkv: 1, Dh: 4 };
    const { q, k, v } = inputs(rng, d);
    const { out, lse } = attentionForward(q, k, v, d);
    for (let h = 0; h < 2; h++) for (let i = 0; i < 6; i++) {
      const s = range(0, i + 1).map((j) => range(0, 4).reduce((a, c) => a + q[(i * 2 + h) * 4 + c] * k[j * 4 + c], 0) / 2);
      const l = Math.log(s.reduce((a, x) => a + Math.exp(x), 0));
      expect(Math.abs(lse[h * 6 + i] - l), `seed ${rng.seed}`).toBeLessThan(1e-13);
      for (let c = 0; c < 4; c++) {
        const o = s.reduce((a, x, j) => a + Math.exp(x - l) * v[j * 4 + c], 0);
        expect(Math.abs(out[(i * 2 + h) * 4 + c] - o)).toBeLessThan(1e-13);
      }
    }
    const alt = attentionForward(q, k, v, d, {}, 0.37).out;
    expect(maxAbsDiff(alt, attentionForward(q.map((x) => x * 0.37 * 2), k, v, d).out)).toBeLessThan(1e-13);
  });

  it('a window >= T (in positions) equals no window, forward and backward, bit for bit', () => {
    const rng = makeRng(); const d = { B: 2, T: 9, Hq: 2, Hkv: 2, Dh: 3 };
    const { q, k, v, r } = inputs(rng, d);
    const base = { lengths: Int32Array.of(9, 6) };
    const f0 = attentionForward(q, k, v, d, base), g0 = attentionBackward(r, q, k, v, f0.out, f0.lse, d, base);
    for (const window of [9, 10, 1000]) {
      const m = { ...base, window };
      const f = attentionForward(q, k, v, d, m), g = attentionBackward(r, q, k, v, f.out, f.lse, d, m);
      expect(Array.from(f.out)).toEqual(Array.from(f0.out)); expect(Array.from(f.lse)).toEqual(Array.from(f0.lse));
      expect(Array.from(g.dq)).toEqual(Array.from(g0.dq)); expect(Array.from(g.dk)).toEqual(Array.from(g0.dk));
      expect(Array.from(g.dv)).toEqual(Array.from(g0.dv));
    }
    const f8 = attentionForward(q, k, v, d, { ...base, window: 8 }); // the last query loses key 0
    expect(maxAbsDiff(f8.out, f0.out)).toBeGreaterThan(1e-6);
  });

  it('window W is HF sliding window: query i equals plain causal attention over tokens i-W+1..i', () => {
    const rng = makeRng(); const T = 11, W = 4, d = { B: 1, T, Hq: 2, Hkv: 1, Dh: 5 };
    const { q, k, v } = inputs(rng, d);
    const { out } = attentionForward(q, k, v, d, { window: W });
    for (let i = 0; i < T; i++) {
      const idx = range(Math.max(0, i - W + 1), i + 1), n = idx.length;
      const sub = attentionForward(take(q, 10, idx), take(k, 5, idx), take(v, 5, idx), { ...d, T: n }).out;
      expect(maxAbsDiff(sub.subarray((n - 1) * 10), out.subarray(i * 10, (i + 1) * 10)), `i=${i} seed ${rng.seed}`).toBeLessThan(1e-14);
      for (let j = 0; j < T; j++) expect(attentionVisible({ window: W }, T, 0, i, j)).toBe(i - W < j && j <= i);
    }
  });

  it('GQA equals MHA with repeated kv heads (forward; dk/dv summed over each group)', () => {
    const rng = makeRng(); const B = 2, T = 7, Hq = 6, Hkv = 2, Dh = 4, rep = Hq / Hkv;
    const d = { B, T, Hq, Hkv, Dh }, dm = { ...d, Hkv: Hq };
    const { q, k, v, r } = inputs(rng, d);
    const repeat = (x: Float64Array) => {
      const y = new Float64Array(B * T * Hq * Dh);
      for (let bt = 0; bt < B * T; bt++) for (let h = 0; h < Hq; h++) for (let c = 0; c < Dh; c++) {
        y[(bt * Hq + h) * Dh + c] = x[(bt * Hkv + Math.floor(h / rep)) * Dh + c];
      }
      return y;
    };
    const mask = { lengths: Int32Array.of(7, 5), window: 3 };
    const g = attentionForward(q, k, v, d, mask), m = attentionForward(q, repeat(k), repeat(v), dm, mask);
    expect(maxAbsDiff(g.out, m.out), `seed ${rng.seed}`).toBeLessThan(1e-14);
    expect(maxAbsDiff(g.lse, m.lse)).toBeLessThan(1e-14);
    const gg = attentionBackward(r, q, k, v, g.out, g.lse, d, mask);
    const gm = attentionBackward(r, q, repeat(k), repeat(v), m.out, m.lse, dm, mask);
    expect(maxAbsDiff(gg.dq, gm.dq)).toBeLessThan(1e-13);
    for (const [a, bm] of [[gg.dk, gm.dk], [gg.dv, gm.dv]]) {
      const summed = new Float64Array(a.length);
      for (let bt = 0; bt < B * T; bt++) for (let h = 0; h < Hq; h++) for (let c = 0; c < Dh; c++) {
        summed[(bt * Hkv + Math.floor(h / rep)) * Dh + c] += bm[(bt * Hq + h) * Dh + c];
      }
      expect(maxAbsDiff(a, summed), `seed ${rng.seed}`).toBeLessThan(1e-13);
    }
  });

  it('padded rows are exact zeros with a finite lse, get zero gradients, and padding content is ignored', () => {
    const rng = makeRng(); const d = { B: 3, T: 8, Hq: 2, Hkv: 1, Dh: 3 };
    const mask = { lengths: Int32Array.of(8, 5, 0) };
    const { q, k, v, r } = inputs(rng, d);
    const f = attentionForward(q, k, v, d, mask), g = attentionBackward(r, q, k, v, f.out, f.lse, d, mask);
    const pad = (b: number, t: number) => t >= mask.lengths[b];
    for (let b = 0; b < 3; b++) for (let t = 0; t < 8; t++) {
      const oq = (b * 8 + t) * 6, ok = (b * 8 + t) * 3;
      for (const x of [...f.out.subarray(oq, oq + 6), ...g.dq.subarray(oq, oq + 6), ...g.dk.subarray(ok, ok + 3), ...g.dv.subarray(ok, ok + 3)]) {
        expect(Number.isFinite(x)).toBe(true);
        if (pad(b, t)) expect(x).toBe(0);
      }
      for (let h = 0; h < 2; h++) {
        const l = f.lse[(b * 2 + h) * 8 + t];
        expect(Number.isFinite(l)).toBe(true);
        if (pad(b, t)) expect(l).toBe(EMPTY_ROW_LSE);
      }
    }
    // Garbage (even huge values) in padded tokens must not change anything in the valid ones.
    const [q2, k2, v2] = [q, k, v].map((x) => Float64Array.from(x));
    for (let b = 1; b < 3; b++) for (let t = mask.lengths[b]; t < 8; t++) {
      for (let c = 0; c < 6; c++) q2[(b * 8 + t) * 6 + c] = 1e6;
      for (let c = 0; c < 3; c++) { k2[(b * 8 + t) * 3 + c] = -1e6; v2[(b * 8 + t) * 3 + c] = 1e6; }
    }
    const f2 = attentionForward(q2, k2, v2, d, mask), g2 = attentionBackward(r, q2, k2, v2, f2.out, f2.lse, d, mask);
    expect(Array.from(f2.out)).toEqual(Array.from(f.out)); expect(Array.from(f2.lse)).toEqual(Array.from(f.lse));
    expect(Array.from(g2.dq)).toEqual(Array.from(g.dq)); expect(Array.from(g2.dk)).toEqual(Array.from(g.dk));
    expect(Array.from(g2.dv)).toEqual(Array.from(g.dv));
  });
});

describe('attention reference: packed preference pairs', () => {
  it('packedPairMask builds segments 0/1/2 with rejected positions restarting after the prompt', () => {
    const m = packedPairMask(2, 3, 2);
    expect(m.T).toBe(7);
    expect(Array.from(m.segments)).toEqual([0, 0, 1, 1, 1, 2, 2]);
    expect(Array.from(m.positions)).toEqual([0, 1, 2, 3, 4, 2, 3]);
    for (let i = 5; i < 7; i++) for (let j = 2; j < 5; j++) expect(attentionVisible(m, 7, 0, i, j)).toBe(false);
  });

  for (const window of [0, 3]) {
    it(`chosen / rejected in one packed row equal separate [prompt, chosen] and [prompt, rejected] rows (window ${window})`, () => {
      const rng = makeRng(); const P = 3, C = 4, R = 5, Hq = 4, Hkv = 2, Dh = 5;
      const m = packedPairMask(P, C, R), T = m.T, HQ = Hq * Dh, HK = Hkv * Dh;
      const d = { B: 1, T, Hq, Hkv, Dh };
      const { q, k, v, r } = inputs(rng, d);
      const f = attentionForward(q, k, v, d, { ...m, window });
      const g = attentionBackward(r, q, k, v, f.out, f.lse, d, { ...m, window });
      const sepIdx = { c: [...range(0, P), ...range(P, P + C)], r: [...range(0, P), ...range(P + C, T)] };
      const sep = Object.fromEntries(Object.entries(sepIdx).map(([key, idx]) => {
        const ds = { ...d, T: idx.length };
        const rr = take(r, HQ, idx);
        if (key === 'r') rr.fill(0, 0, P * HQ); // prompt queries' upstream gradient counted once (in the chosen row)
        const fs = attentionForward(take(q, HQ, idx), take(k, HK, idx), take(v, HK, idx), ds, { window });
        const gs = attentionBackward(rr, take(q, HQ, idx), take(k, HK, idx), take(v, HK, idx), fs.out, fs.lse, ds, { window });
        return [key, { ...fs, ...gs }];
      }));
      const tol = 1e-14;
      // Forward: prompt and chosen tokens match the chosen row, rejected tokens match the rejected row.
      expect(maxAbsDiff(take(f.out, HQ, sepIdx.c), sep.c.out), `seed ${rng.seed}`).toBeLessThan(tol);
      expect(maxAbsDiff(take(f.out, HQ, range(P + C, T)), sep.r.out.subarray(P * HQ)), `seed ${rng.seed}`).toBeLessThan(tol);
      expect(maxAbsDiff(take(f.out, HQ, range(0, P)), sep.r.out.subarray(0, P * HQ))).toBeLessThan(tol);
      // Backward: responses' gradients match their own row; the prompt's dk/dv are the sum of both rows.
      expect(maxAbsDiff(take(g.dq, HQ, sepIdx.c), sep.c.dq)).toBeLessThan(tol);
      expect(maxAbsDiff(take(g.dq, HQ, range(P + C, T)), sep.r.dq.subarray(P * HQ))).toBeLessThan(tol);
      for (const key of ['dk', 'dv'] as const) {
        expect(maxAbsDiff(take(g[key], HK, range(P, P + C)), sep.c[key].subarray(P * HK)), key).toBeLessThan(tol);
        expect(maxAbsDiff(take(g[key], HK, range(P + C, T)), sep.r[key].subarray(P * HK)), key).toBeLessThan(tol);
        const promptSum = sep.c[key].subarray(0, P * HK).map((x: number, i: number) => x + sep.r[key][i]);
        expect(maxAbsDiff(take(g[key], HK, range(0, P)), promptSum), key).toBeLessThan(1e-13);
      }
      // And the chosen tokens do leak into the rejected ones without the segments (the mask matters).
      const leak = attentionForward(q, k, v, d, { positions: m.positions, window }).out;
      expect(maxAbsDiff(take(leak, HQ, range(P + C, T)), sep.r.out.subarray(P * HQ))).toBeGreaterThan(1e-6);
    });
  }
});
