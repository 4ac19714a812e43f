import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import {
  erf, erfc, geluErfBackward, geluErfForward, geluTanhBackward, geluTanhForward, sigmoid, swigluBackward, swigluForward,
} from '../../src/kernels/activations.ref.js';
import { dot, fdGrad, maxAbsDiff, relErr } from './fd.js';

// Reference values computed independently (CPython math.erf / math.erfc, float64).
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

describe('erf / erfc', () => {
  it('match known float64 values to ~1e-15 relative, including the tails', () => {
    expect(erf(0)).toBe(0);
    expect(rel(erf(0.5), 0.5204998778130465)).toBeLessThan(2e-15);
    expect(rel(erf(1), 0.8427007929497149)).toBeLessThan(2e-15);
    expect(rel(erf(-1), -0.8427007929497149)).toBeLessThan(2e-15);
    expect(rel(erfc(3), 2.2090496998585438e-05)).toBeLessThan(5e-15);
    expect(rel(erfc(5), 1.5374597944280351e-12)).toBeLessThan(5e-15);
    expect(rel(erfc(-2.5), 1.999593047982555)).toBeLessThan(2e-15);
    expect(erf(40)).toBe(1); expect(erf(-40)).toBe(-1); expect(erfc(40)).toBe(0);
  });

  it('is continuous where the series hands over to the continued fraction and has derivative 2/sqrt(pi) exp(-z^2)', () => {
    expect(Math.abs(erf(2 - 1e-12) - erf(2 + 1e-12))).toBeLessThan(1e-13); // slope 0.02 times 2e-12 plus rounding
    expect(Math.abs(erfc(2 - 1e-12) / erfc(2 + 1e-12) - 1)).toBeLessThan(2e-11); // log-slope -4.4 times 2e-12
    for (const z of [-3, -1.2, 0.3, 1.9, 2.1, 3.5]) {
      const a = Math.abs(z), h = 1e-5, d = -(erfc(a + h) - erfc(a - h)) / (2 * h); // erf' is even; erfc keeps the tail precise
      expect(rel(d, (2 / Math.sqrt(Math.PI)) * Math.exp(-z * z))).toBeLessThan(1e-8);
    }
  });
});

describe('GELU references', () => {
  it('erf GELU and tanh GELU match known values; tanh approximates erf within 1e-3', () => {
    const g = geluErfForward([1, -1, 0, -10, 40]);
    expect(rel(g[0], 0.8413447460685429)).toBeLessThan(2e-15);
    expect(rel(g[1], -0.15865525393145707)).toBeLessThan(2e-15);
    expect(g[2]).toBe(0);
    expect(rel(g[3], -7.619853024160593e-23)).toBeLessThan(1e-13); // no cancellation in the far tail
    expect(g[4]).toBe(40);
    const t = geluTanhForward([1, -1]);
    expect(rel(t[0], 0.8411919906082768)).toBeLessThan(2e-15);
    expect(rel(t[1], -0.15880800939172324)).toBeLessThan(2e-15);
    const xs = Float64Array.from({ length: 201 }, (_, i) => -8 + i * 0.08);
    expect(maxAbsDiff(geluTanhForward(xs), geluErfForward(xs))).toBeLessThan(1e-3);
    expect(maxAbsDiff(geluTanhForward(xs), geluErfForward(xs))).toBeGreaterThan(1e-5); // they are different functions
  });

  for (const [name, fwd, bwd] of [
    ['geluErf', geluErfForward, geluErfBackward], ['geluTanh', geluTanhForward, geluTanhBackward],
  ] as const) {
    it(`${name} backward matches central finite differences (n=91, wide range)`, () => {
      const rng = makeRng(); const n = 91;
      const x = rng.array(n, 3), r = rng.array(n);
      x[0] = 0; x[1] = -7; x[2] = 6.5;
      const dx = bwd(x, r);
      expect(relErr(dx, fdGrad(() => dot(fwd(x), r), x)), `seed ${rng.seed}`).toBeLessThan(1e-6);
      expect(dx.every(Number.isFinite)).toBe(true);
      expect(bwd([-60, 60], [1, 1]).every(Number.isFinite)).toBe(true);
    });
  }
});

describe('SwiGLU reference', () => {
  it('y = silu(gate) * up with a stable sigmoid', () => {
    const y = swigluForward([0, 1, -2, 800, -800], [5, 2, 3, 1, 1]);
    expect(y[0]).toBe(0);
    expect(rel(y[1], (2 * 1) / (1 + Math.exp(-1)))).toBeLessThan(1e-15);
    expect(rel(y[2], (3 * -2) / (1 + Math.exp(2)))).toBeLessThan(1e-15);
    expect(y[3]).toBe(800);
    expect(Object.is(y[4], -0) || y[4] === 0).toBe(true);
    expect(sigmoid(-800)).toBe(0); expect(sigmoid(800)).toBe(1);
  });

  it('backward matches central finite differences for gate and up (n=77)', () => {
    const rng = makeRng(); const n = 77;
    const gate = rng.array(n, 3), up = rng.array(n), r = rng.array(n);
    const loss = () => dot(swigluForward(gate, up), r);
    const { dgate, dup } = swigluBackward(r, gate, up);
    expect(relErr(dgate, fdGrad(loss, gate)), `seed ${rng.seed}`).toBeLessThan(1e-6);
    expect(relErr(dup, fdGrad(loss, up)), `seed ${rng.seed}`).toBeLessThan(1e-6);
  });
});
