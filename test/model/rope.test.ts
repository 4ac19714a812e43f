// Scaled rotary frequencies (model/rope.ts) against the rope types' definitions in float64, and the
// bands of Llama 3.1's table worked out by hand.
import { describe, expect, it } from 'vitest';
import { modelInvFreq, scaledInvFreq, type RopeScaling } from '../../src/model/rope.js';
import { rotaryInvFreqF32 } from '../../src/kernels/rotary.js';

/** transformers' formulas in float64. */
function definition(R: number, theta: number, s: RopeScaling): number[] {
  const inv = Array.from({ length: R / 2 }, (_, j) => theta ** (-(2 * j) / R));
  if (s.type === 'dynamic') return inv;
  if (s.type === 'linear') return inv.map((x) => x / s.factor);
  if (s.type === 'longrope') return inv.map((x, j) => x / s.shortFactor[j]!);
  return inv.map((x) => {
    const wavelen = (2 * Math.PI) / x;
    if (wavelen < s.originalMaxPositions / s.highFreqFactor) return x;
    if (wavelen > s.originalMaxPositions / s.lowFreqFactor) return x / s.factor;
    const sm = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return ((1 - sm) * x) / s.factor + sm * x;
  });
}

const LLAMA31: RopeScaling = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };

describe('scaled rotary frequencies', () => {
  it('Llama 3.1 (head_dim 128, theta 5e5): 29 frequencies kept, 6 blended, 29 divided by 8', () => {
    // wavelength 2 pi 5e5^(j/64) < 8192/4 for j <= 28 (j < 28.22) and > 8192/1 for j >= 35 (j > 34.98).
    const got = scaledInvFreq(128, 5e5, LLAMA31)!;
    const inv = rotaryInvFreqF32(128, 5e5);
    expect(got.length).toBe(64);
    for (let j = 0; j <= 28; j++) expect(got[j]).toBe(inv[j]);
    for (let j = 35; j < 64; j++) expect(got[j]).toBe(Math.fround(inv[j] / 8));
    for (let j = 29; j <= 34; j++) {
      expect(got[j]).toBeLessThan(inv[j]);
      expect(got[j]).toBeGreaterThan(inv[j] / 8);
    }
    // Still falling with j: the blend meets both neighbours' bands.
    for (let j = 1; j < 64; j++) expect(got[j]).toBeLessThan(got[j - 1]);
  });

  const cases: [string, number, number, RopeScaling][] = [
    ['llama3, Llama 3.2 (factor 32)', 64, 5e5, { ...LLAMA31, factor: 32 } as RopeScaling],
    ['llama3, a short original context', 12, 5e5, { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 64 }],
    ['llama3, odd factors', 96, 1e4, { type: 'llama3', factor: 3.5, lowFreqFactor: 0.5, highFreqFactor: 2.5, originalMaxPositions: 1000 }],
    ['linear', 16, 1e4, { type: 'linear', factor: 4 }],
    ['linear, GPT-NeoX partial rotary', 4, 1e4, { type: 'linear', factor: 2.5 }],
    ['longrope (Phi-3.5-mini style short factors)', 12, 1e4,
      { type: 'longrope', shortFactor: [1, 1.118, 1.25, 1.4, 2.7, 9.5], longFactor: [1, 2, 3, 4, 5, 6], originalMaxPositions: 4096, attentionFactor: 1.19 }],
  ];
  for (const [name, R, theta, s] of cases) {
    it(`${name}: each frequency as its definition computes it in float64, to f32 rounding`, () => {
      const got = scaledInvFreq(R, theta, s)!;
      const want = definition(R, theta, s);
      expect(got.length).toBe(R / 2);
      for (let j = 0; j < R / 2; j++) expect(Math.abs(got[j] - want[j]) / want[j], `j=${j}`).toBeLessThan(1e-6);
      // It changed something (the cases reach past the kept band).
      const plain = rotaryInvFreqF32(R, theta);
      expect(Array.from(got).some((x, j) => Math.abs(x - plain[j]) > 1e-3 * plain[j])).toBe(true);
    });
  }

  it('the default and dynamic scaling (below max_position_embeddings) keep the built-in table', () => {
    expect(scaledInvFreq(16, 1e4, null)).toBeUndefined();
    expect(scaledInvFreq(16, 1e4, { type: 'dynamic', factor: 2 })).toBeUndefined();
  });

  it("a model's table is made once per config: the same array each call", () => {
    const cfg = { rotaryDim: 12, ropeTheta: 5e5, ropeScaling: LLAMA31 };
    const a = modelInvFreq(cfg);
    expect(a).toBeInstanceOf(Float32Array);
    expect(modelInvFreq(cfg)).toBe(a);
    expect(modelInvFreq({ rotaryDim: 12, ropeTheta: 5e5, ropeScaling: null })).toBeUndefined();
  });
});
