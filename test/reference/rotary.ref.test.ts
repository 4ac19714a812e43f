import { describe, expect, it } from 'vitest';
import { makeRng, type Rng } from '../helpers/random.js';
import { rotaryBackward, rotaryForward, rotaryInvFreq } from '../../src/kernels/rotary.ref.js';
import { dot, fdGrad, maxAbsDiff, relErr } from './fd.js';

const positionsOf = (rng: Rng, T: number, max = 60) => Int32Array.from({ length: T }, () => rng.int(max));

// Independent transcription of HF: emb = cat(freqs, freqs); x * cos(emb) + rotate_half(x) * sin(emb)
// on the first rotaryDim channels, rotate_half(x) = cat(-x2, x1); the rest concatenated back.
function hfRotary(x: Float64Array, pos: Int32Array, T: number, H: number, hd: number, rd: number, theta: number) {
  const out = new Float64Array(x.length);
  for (let t = 0; t < T; t++) {
    const freqs = Array.from({ length: rd / 2 }, (_, i) => pos[t] * (1 / theta ** ((2 * i) / rd)));
    const emb = [...freqs, ...freqs];
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * hd;
      const xr = Array.from(x.subarray(o, o + rd));
      const rh = [...xr.slice(rd / 2).map((v) => -v), ...xr.slice(0, rd / 2)];
      for (let c = 0; c < rd; c++) out[o + c] = xr[c] * Math.cos(emb[c]) + rh[c] * Math.sin(emb[c]);
      for (let c = rd; c < hd; c++) out[o + c] = x[o + c];
    }
  }
  return out;
}

describe('rotary reference', () => {
  for (const [T, H, hd, rd] of [[7, 3, 10, 6], [5, 2, 8, 8], [4, 3, 13, 2]]) {
    it(`matches the HF formula and its backward matches finite differences (T=${T}, H=${H}, headDim=${hd}, rotaryDim=${rd})`, () => {
      const rng = makeRng(); const theta = 10000;
      const x = rng.array(T * H * hd), r = rng.array(T * H * hd), pos = positionsOf(rng, T);
      const y = rotaryForward(x, pos, T, H, hd, rd, theta);
      expect(maxAbsDiff(y, hfRotary(x, pos, T, H, hd, rd, theta)), `seed ${rng.seed}`).toBeLessThan(1e-14);
      const dx = rotaryBackward(r, pos, T, H, hd, rd, theta);
      const fd = fdGrad(() => dot(rotaryForward(x, pos, T, H, hd, rd, theta), r), x);
      expect(relErr(dx, fd), `seed ${rng.seed}`).toBeLessThan(1e-6);
    });
  }

  it('preserves pair norms, passes channels >= rotaryDim through exactly, and is identity at position 0', () => {
    const rng = makeRng(); const T = 6, H = 2, hd = 12, rd = 8, half = rd / 2;
    const x = rng.array(T * H * hd), pos = positionsOf(rng, T, 5000); pos[0] = 0;
    const y = rotaryForward(x, pos, T, H, hd, rd, 10000);
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = (t * H + h) * hd;
      for (let j = 0; j < half; j++) {
        const n0 = Math.hypot(x[o + j], x[o + j + half]), n1 = Math.hypot(y[o + j], y[o + j + half]);
        expect(Math.abs(n1 - n0), `seed ${rng.seed}`).toBeLessThan(1e-13);
      }
      for (let c = rd; c < hd; c++) expect(y[o + c]).toBe(x[o + c]);
    }
    expect(Array.from(y.subarray(0, H * hd))).toEqual(Array.from(x.subarray(0, H * hd))); // position 0
    // Channel 0 has inv_freq 1, so it must actually rotate at position 1 (catches a no-op).
    const y1 = rotaryForward(x.subarray(0, H * hd), Int32Array.of(1), 1, H, hd, rd, 10000);
    expect(y1[0]).toBeCloseTo(x[0] * Math.cos(1) - x[half] * Math.sin(1), 14);
    expect(y1[half]).toBeCloseTo(x[half] * Math.cos(1) + x[0] * Math.sin(1), 14);
  });

  it('backward is the inverse rotation, and scores depend only on relative position', () => {
    const rng = makeRng(); const hd = 16, rd = 16;
    const x = rng.array(3 * hd), pos = Int32Array.of(3, 700, 12345);
    const back = rotaryBackward(rotaryForward(x, pos, 3, 1, hd, rd, 10000), pos, 3, 1, hd, rd, 10000);
    expect(maxAbsDiff(back, x), `seed ${rng.seed}`).toBeLessThan(1e-12);
    const q = rng.array(hd), k = rng.array(hd);
    const score = (m: number, n: number) =>
      dot(rotaryForward(q, Int32Array.of(m), 1, 1, hd, rd, 10000), rotaryForward(k, Int32Array.of(n), 1, 1, hd, rd, 10000));
    expect(Math.abs(score(10, 7) - score(103, 100)), `seed ${rng.seed}`).toBeLessThan(1e-12);
    expect(Math.abs(score(10, 7) - score(10, 8))).toBeGreaterThan(1e-6);
  });

  it('inv_freq follows theta^(-2j/rotaryDim); an explicit invFreq overrides theta (linear scaling)', () => {
    const inv = rotaryInvFreq(8, 10000);
    expect(Array.from(inv)).toEqual([1, 10000 ** -0.25, 10000 ** -0.5, 10000 ** -0.75]);
    const rng = makeRng(); const hd = 8, x = rng.array(2 * hd);
    const scaled = rotaryForward(x, Int32Array.of(8, 20), 2, 1, hd, 8, 10000, inv.map((v) => v / 4));
    const byPos = rotaryForward(x, Int32Array.of(2, 5), 2, 1, hd, 8, 10000);
    expect(maxAbsDiff(scaled, byPos)).toBeLessThan(1e-14);
    expect(() => rotaryInvFreq(7, 10000)).toThrow(RangeError);
    expect(() => rotaryForward(x, Int32Array.of(1, 2), 2, 1, hd, 10, 10000)).toThrow(RangeError);
  });
});
