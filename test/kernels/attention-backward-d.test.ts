// Attention's backward with f16 operands takes D = rowsum(dO * O) from dO as the passes round it (PREP's roundG),
// so that dS = P (dP - D) cancels exactly what every key's value shares. The case: every key has the same value
// row c (integers, exact in f16), out = c, and dO = 1 + 2^-13 everywhere (1 in f16). Then dP_ij = D_i and
// dS = 0, so dQ = dK = 0 exactly; with D from the unrounded dO, D - dP = 2^-13 sum(c) ~ 1.5 and dQ, dK were O(1).
// (A value bias shared by the keys did the same to real gradients: ~2x the error of f16 rounding alone, measured
// against float64 on random inputs with a common V component 100x the keys' spread.)
import { afterAll, describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { attentionBackward, attentionForward, setAttentionTiling } from '../../src/kernels/attention.js';

const rng = makeRng();
let emulateBefore: boolean | undefined;
afterAll(async () => { setAttentionTiling(undefined); if (emulateBefore !== undefined) (await getGpu()).emulateSmx = emulateBefore; });

describe(`attention backward in f16: D from the rounded dO (seed ${rng.seed})`, () => {
  // T 13: the unfused path's T x T products are below the matmul's f16 size (16 x 16) and keep f32 operands; T 37 rounds them.
  // dO 1 + 3 2^-11: a tie at f16's precision, to even (1 + 2^-9), as the products round it.
  const TIE = 1 + 3 * 2 ** -11;
  for (const [mode, T, g] of [['unfused', 13, 1 + 2 ** -13], ['unfused', 37, 1 + 2 ** -13], ['unfused', 37, TIE], ['tensor cores', 13, 1 + 2 ** -13], ['tensor cores', 13, TIE]] as const) {
    it(`${mode}, T ${T}, dO ${g}: keys sharing one value row give dQ = dK = 0 exactly, and dV its sum`, async (ctx) => {
      const gpu = await getGpu();
      emulateBefore ??= gpu.emulateSmx;
      gpu.emulateSmx = mode === 'tensor cores' && !gpu.smxF16;
      if (mode === 'tensor cores' && !gpu.smxMode) ctx.skip(); // (an adapter without f16 and subgroups runs neither)
      setAttentionTiling(mode === 'unfused' ? { unfused: true } : { tensorCores: true });
      const B = 2; const Hq = 4; const Hkv = 1; const Dh = 16;
      const c = Array.from({ length: Dh }, () => 500 + rng.int(500));
      const q = Float32Array.from({ length: B * T * Hq * Dh }, () => rng.normal());
      const k = Float32Array.from({ length: B * T * Hkv * Dh }, () => rng.normal());
      const v = Float32Array.from({ length: B * T * Hkv * Dh }, (_, i) => c[i % Dh]);
      const ops = { q: { tensor: gpu.tensor([B * T, Hq, Dh], q) }, k: { tensor: gpu.tensor([B * T, Hkv, Dh], k) }, v: { tensor: gpu.tensor([B * T, Hkv, Dh], v) } };
      const args = { B, T, Hq, Hkv, Dh, ...ops, precision: 'f16' as const };
      const lse = gpu.tensor([B, Hq, T]); const fwd = gpu.tensor([B * T, Hq, Dh]);
      attentionForward(gpu, { ...args, out: { tensor: fwd }, lse });
      const out = gpu.tensor([B * T, Hq, Dh], Float32Array.from({ length: B * T * Hq * Dh }, (_, i) => c[i % Dh]));
      const dout = gpu.tensor([B * T, Hq, Dh], new Float32Array(B * T * Hq * Dh).fill(g));
      const dq = gpu.tensor([B * T, Hq, Dh]); const dk = gpu.tensor([B * T, Hkv, Dh]); const dv = gpu.tensor([B * T, Hkv, Dh]);
      attentionBackward(gpu, { ...args, out: { tensor: out }, lse, dout: { tensor: dout }, dq: { tensor: dq }, dk: { tensor: dk }, dv: { tensor: dv } });
      const [gq, gk, gv] = [await gpu.readF32(dq), await gpu.readF32(dk), await gpu.readF32(dv)];
      expect(Math.max(...gq.map(Math.abs)), 'dQ').toBe(0);
      expect(Math.max(...gk.map(Math.abs)), 'dK').toBe(0);
      // dV_j = sum over the queries that see key j of P_ij dO: with one value row, the columns of a key are equal and
      // sum(P) over everything is B Hq T (each query's weights sum to 1), times dO as rounded (1).
      let total = 0;
      for (let r = 0; r < B * T; r++) {
        for (let d = 1; d < Dh; d++) expect(gv[r * Dh + d]).toBeCloseTo(gv[r * Dh], 4);
        total += gv[r * Dh];
      }
      expect(total / (B * Hq * T) / Math.fround(g === TIE ? 1 + 2 ** -9 : 1)).toBeCloseTo(1, 2);
    });
  }

  it('in f32 (the flash kernels) D stays the exact dO\'s: dQ and dK near 0, not the rounding\'s O(1)', async () => {
    const gpu = await getGpu();
    emulateBefore ??= gpu.emulateSmx;
    setAttentionTiling({ tensorCores: false });
    const B = 1; const T = 21; const Hq = 2; const Hkv = 1; const Dh = 16;
    const c = Array.from({ length: Dh }, () => 500 + rng.int(500));
    const t = (shape: number[], x?: Float32Array) => gpu.tensor(shape, x);
    const ops = { q: { tensor: t([B * T, Hq, Dh], Float32Array.from({ length: B * T * Hq * Dh }, () => rng.normal())) },
      k: { tensor: t([B * T, Hkv, Dh], Float32Array.from({ length: B * T * Hkv * Dh }, () => rng.normal())) },
      v: { tensor: t([B * T, Hkv, Dh], Float32Array.from({ length: B * T * Hkv * Dh }, (_, i) => c[i % Dh])) } };
    const args = { B, T, Hq, Hkv, Dh, ...ops, precision: 'f32' as const };
    const lse = t([B, Hq, T]);
    attentionForward(gpu, { ...args, out: { tensor: t([B * T, Hq, Dh]) }, lse });
    const out = t([B * T, Hq, Dh], Float32Array.from({ length: B * T * Hq * Dh }, (_, i) => c[i % Dh]));
    const dq = t([B * T, Hq, Dh]); const dk = t([B * T, Hkv, Dh]); const dv = t([B * T, Hkv, Dh]);
    attentionBackward(gpu, { ...args, out: { tensor: out }, lse, dout: { tensor: t([B * T, Hq, Dh], new Float32Array(B * T * Hq * Dh).fill(1 + 2 ** -13)) },
      dq: { tensor: dq }, dk: { tensor: dk }, dv: { tensor: dv } });
    // (f32 sums of ~1e4 leave ~1e-3; a D from the rounded dO would leave 2^-13 sum(c), ~1.5, times P.)
    expect(Math.max(...(await gpu.readF32(dq)).map(Math.abs))).toBeLessThan(2e-2);
    expect(Math.max(...(await gpu.readF32(dk)).map(Math.abs))).toBeLessThan(2e-2);
  });
});
