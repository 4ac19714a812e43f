// Attention through the matmul kernels as a GPU runs it: the register-tiled products (on a CPU adapter
// the rule picks the simple kernel, so attention-unfused.test.ts never reaches them), with score rows
// whose width is not a multiple of 4, which the products read and write as vec4 through the rows'
// pad (matmul padA / padC), causally (matmul causal). Against the float64 reference, forward and backward, f32 and f16.
import { describe, expect, it } from 'vitest';
import { F16_GRAD_BOUND, dispatchedKernels, getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { attentionBackward, attentionForward, setAttentionTiling } from '../../src/kernels/attention.js';
import { packMaskHost } from '../../src/kernels/attention-mask.js';
import { attentionBackward as backwardRef, attentionForward as forwardRef, packedPairMask } from '../../src/kernels/attention.ref.js';

const rng = makeRng();

describe(`attention through the register-tiled matmul (seed ${rng.seed})`, () => {
  it('packed pairs at T = 37 (rows 37 wide, 48 apart): vec4 products through the pad, as exact as the flash kernels', async () => {
    const real = await getGpu();
    // The GPU rule (matmul.ts chooseTile: register tiles) on this adapter.
    const gpu = Object.create(real, { isCpuAdapter: { value: false }, tuner: { value: undefined } }) as Gpu;
    const P = 9; const C = 13; const R = 12; const T = P + C + R + 3; const B = 2; const Hq = 2; const Dh = 16;
    expect(T % 4).not.toBe(0);
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); }
    const lengths = Int32Array.from([T, T - 5]);
    const n = (k: number) => Float32Array.from(rng.array(k));
    const x = { q: n(B * T * Hq * Dh), k: n(B * T * Hq * Dh), v: n(B * T * Hq * Dh), dout: n(B * T * Hq * Dh) };
    const dims = { B, T, Hq, Hkv: Hq, Dh };
    const maskRef = { positions, segments, lengths, window: 0 };
    const exact = forwardRef(x.q, x.k, x.v, dims, maskRef);
    const g = backwardRef(x.dout, x.q, x.k, x.v, exact.out, exact.lse, dims, maskRef);
    const run = async () => {
      for (const precision of ['f32', 'f16'] as const) {
        const t = (d: Float32Array) => real.tensor([d.length], d);
        const tq = t(x.q); const tk = t(x.k); const tv = t(x.v); const tg = t(x.dout);
        const to = real.tensor([B * T * Hq * Dh]); const tl = real.tensor([B * Hq * T]);
        const dq = real.tensor([B * T * Hq * Dh]); const dk = real.tensor([B * T * Hq * Dh]); const dv = real.tensor([B * T * Hq * Dh]);
        const mask = packMaskHost(real, B, T, { positions, segments, lengths });
        const args = { B, T, Hq, Hkv: Hq, Dh, q: { tensor: tq }, k: { tensor: tk }, v: { tensor: tv }, mask, precision };
        setAttentionTiling({ unfused: true });
        attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
        attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, dq: { tensor: dq }, dk: { tensor: dk }, dv: { tensor: dv } });
        const got = { out: await real.readF32(to), lse: await real.readF32(tl), dq: await real.readF32(dq), dk: await real.readF32(dk), dv: await real.readF32(dv) };
        expect(relErr(got.lse, exact.lse), `${precision} lse`).toBeLessThan(precision === 'f32' ? 1e-5 : 3e-3);
        const bound = precision === 'f32' ? 1e-5 : F16_GRAD_BOUND;
        expect(relErr(got.out, exact.out), `${precision} out`).toBeLessThan(precision === 'f32' ? 1e-5 : 3e-3);
        for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(got[k], g[k]), `${precision} ${k}`).toBeLessThan(bound);
        real.pool.release(tq, tk, tv, tg, to, tl, dq, dk, dv, mask.packed);
      }
    };
    let names: string[];
    try {
      ({ names } = await dispatchedKernels(real, run));
    } finally {
      setAttentionTiling(undefined);
    }
    // The products (A or C the 37-wide score rows, causal) ran on register tiles in vec4.
    const products = [...new Set(names)].filter((s) => s.startsWith('matmul_'));
    expect(products.length).toBeGreaterThan(0);
    for (const s of products) expect(s).toMatch(/^matmul_(reg|smx)_.*_l[ca]$/);
    for (const s of products.filter((s) => s.startsWith('matmul_reg'))) expect(s).toMatch(/_vvv(_|$)/);
  }, 300_000);
});
