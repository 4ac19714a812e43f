// Tensor-core attention (src/kernels/attention-smx.ts: f16 Q, K, V, P, dS and scaled dO; f32 softmax,
// elementwise work and sums): the forward against the float64 reference on f16-rounded inputs,
// the backward against the exact gradients. Natively where the adapter
// has an f16 subgroup-matrix config, else with emulated subgroup matrices (smx-wgsl.ts: same
// kernel, same tiling, plain WGSL matrix ops), so lavapipe checks the kernel's staging, masks,
// online softmax and output. Bounds: S is exact up to f32 sums of f16 products (lse within 1e-5);
// P is rounded to f16 (relative 2^-11), so out is within ~1e-3 of the rounded-input reference.
import { afterAll, describe, expect, it } from 'vitest';
import { F16_GRAD_BOUND, dispatchedKernels, expectNanLikeReference, getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { attentionBackward, attentionForward, setAttentionTiling, type HeadOperand } from '../../src/kernels/attention.js';
import { packMaskHost } from '../../src/kernels/attention-mask.js';
import { attentionBackward as backwardRef, attentionForward as forwardRef, packedPairMask } from '../../src/kernels/attention.ref.js';
import { roundF16 } from '../../src/kernels/absmax.ref.js';
import { Tuner } from '../../src/engine/tuner.js';
import { resetTcChecks, tcCheckState } from '../../src/kernels/attention-selfcheck.js';

// lavapipe compiles the emulated tensor-core kernels (huge private arrays) about twice as fast
// without LLVM's optimization passes; set before this file's GPU device (its own process) loads
// the driver. No effect on other adapters.
process.env.GALLIVM_PERF ??= 'nopt';
const rng = makeRng();

interface Case {
  B: number; T: number; Hq: number; Hkv: number; Dh: number; window?: number;
  positions?: Int32Array; segments?: Int32Array; lengths?: Int32Array;
  /** GPT-NeoX's fused [B*T, H, 3, Dh] layout for q, k, v (Hq = Hkv). */
  fused?: boolean;
  /** Multiplies V (large values test the backward's dO scale against f16 overflow of dS). */
  vScale?: number;
  /** Gemma 2's soft-cap of the scaled scores; check() doubles the queries then (scores of order 1-3). */
  softcap?: number;
}

const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

/** Tensor-core (or emulated) gpu, or undefined when this adapter can run neither. */
async function tcGpu(): Promise<Gpu | undefined> {
  const gpu = await getGpu();
  gpu.emulateSmx = !gpu.smxF16;
  return gpu.smxMode ? gpu : undefined;
}
afterAll(async () => { setAttentionTiling(undefined); (await getGpu()).emulateSmx = false; });

/** Forward and backward on the GPU with tensor cores on or off (undefined: as the tuner picks). */
async function run(gpu: Gpu, c: Case, q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, tensorCores: boolean | undefined) {
  const { B, T, Hq, Hkv, Dh } = c;
  setAttentionTiling(tensorCores === undefined ? undefined : { tensorCores });
  const pool: ReturnType<Gpu['tensor']>[] = [];
  const t = (shape: number[], x?: Float32Array) => { const r = gpu.tensor(shape, x); pool.push(r); return r; };
  let ops: { q: HeadOperand; k: HeadOperand; v: HeadOperand };
  if (c.fused) {
    const qkv = new Float32Array(B * T * Hq * 3 * Dh);
    for (let r = 0; r < B * T; r++) for (let h = 0; h < Hq; h++) for (let d = 0; d < Dh; d++) {
      const s = (r * Hq + h) * Dh + d; const base = (r * Hq + h) * 3 * Dh + d;
      qkv[base] = q[s]; qkv[base + Dh] = k[s]; qkv[base + 2 * Dh] = v[s];
    }
    const tq = t([B * T, Hq, 3, Dh], qkv);
    const o = (off: number) => ({ tensor: tq, offset: off, tokenStride: 3 * Hq * Dh, headStride: 3 * Dh });
    ops = { q: o(0), k: o(Dh), v: o(2 * Dh) };
  } else {
    ops = { q: { tensor: t([B * T, Hq, Dh], q) }, k: { tensor: t([B * T, Hkv, Dh], k) }, v: { tensor: t([B * T, Hkv, Dh], v) } };
  }
  const mask = c.positions || c.segments || c.lengths ? packMaskHost(gpu, B, T, c) : undefined;
  const to = t([B * T, Hq, Dh]); const tl = t([B, Hq, T]);
  const args = { B, T, Hq, Hkv, Dh, ...ops, mask, window: c.window, softcap: c.softcap, precision: 'f16' as const };
  attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
  const tg = t([B * T, Hq, Dh], dout);
  let grads: { dq: Float32Array; dk: Float32Array; dv: Float32Array };
  if (c.fused) {
    // Gradients into one fused dQKV buffer, as GPT-NeoX's backward asks (dk and dv share a binding).
    const td = t([B * T, Hq, 3, Dh]);
    const o = (off: number) => ({ tensor: td, offset: off, tokenStride: 3 * Hq * Dh, headStride: 3 * Dh });
    attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, dq: o(0), dk: o(Dh), dv: o(2 * Dh) });
    const all = await gpu.readF32(td);
    const split = (w: number) => Float32Array.from({ length: B * T * Hq * Dh }, (_, i) => all[Math.floor(i / Dh) * 3 * Dh + w * Dh + (i % Dh)]);
    grads = { dq: split(0), dk: split(1), dv: split(2) };
  } else {
    const tdq = t([B * T, Hq, Dh]); const tdk = t([B * T, Hkv, Dh]); const tdv = t([B * T, Hkv, Dh]);
    attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, dq: { tensor: tdq }, dk: { tensor: tdk }, dv: { tensor: tdv } });
    grads = { dq: await gpu.readF32(tdq), dk: await gpu.readF32(tdk), dv: await gpu.readF32(tdv) };
  }
  const r = { out: await gpu.readF32(to), lse: await gpu.readF32(tl), ...grads };
  gpu.pool.release(...pool);
  if (mask) gpu.pool.release(mask.packed);
  setAttentionTiling(undefined);
  return r;
}

async function check(c: Case): Promise<{ out: Float32Array; lse: Float32Array }> {
  const gpu = await tcGpu();
  if (!gpu) return { out: new Float32Array(), lse: new Float32Array() };
  const { B, T, Hq, Hkv, Dh } = c;
  const q = f32(rng.array(B * T * Hq * Dh, c.softcap ? 2 : 1)); const k = f32(rng.array(B * T * Hkv * Dh));
  const v = f32(rng.array(B * T * Hkv * Dh).map((x) => x * (c.vScale ?? 1))); const dout = f32(rng.array(B * T * Hq * Dh));
  const dims = { B, T, Hq, Hkv, Dh };
  const mask = { positions: c.positions, segments: c.segments, lengths: c.lengths, window: c.window ?? 0 };
  const r16 = (x: Float32Array) => Float64Array.from(x, roundF16);
  const rounded = forwardRef(r16(q), r16(k), r16(v), dims, mask, undefined, c.softcap);
  const exact = forwardRef(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), dims, mask, undefined, c.softcap);
  const tc = await run(gpu, c, q, k, v, dout, true);
  const simt = await run(gpu, c, q, k, v, dout, false);
  const what = JSON.stringify({ B, T, Hq, Hkv, Dh, window: c.window, fused: c.fused, masked: !!(c.segments || c.lengths), softcap: c.softcap, seed: rng.seed });
  expect(relErr(tc.lse, rounded.lse), `lse ${what}`).toBeLessThan(1e-5);
  expect(relErr(tc.out, rounded.out), `out ${what}`).toBeLessThan(2e-3);
  expect(relErr(tc.out, exact.out), `out vs exact ${what}`).toBeLessThan(5e-3);
  // Rounding happened: this is not the f32 kernel.
  expect(relErr(tc.out, simt.out), `tc vs f32 ${what}`).toBeGreaterThan(1e-5);
  expect(tc.out.every(Number.isFinite) && tc.lse.every(Number.isFinite)).toBe(true);
  // The backward on tensor cores too (f16 Q, K, V, scaled dO, P and dS; f32 sums): within
  // mixed-precision error of the exact gradients, and not the f32 kernels' result.
  const g = backwardRef(Float64Array.from(dout), Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), exact.out, exact.lse, dims, mask, undefined, c.softcap);
  for (const key of ['dq', 'dk', 'dv'] as const) {
    expect(relErr(tc[key], g[key]), `${key} ${what}`).toBeLessThan(F16_GRAD_BOUND);
    if (c.softcap) expect(relErr(simt[key], g[key]), `${key} f32 kernels ${what}`).toBeLessThan(1e-5);
    expect(relErr(tc[key], simt[key]), `${key} tc vs f32 ${what}`).toBeGreaterThan(1e-6);
    expect(tc[key].every(Number.isFinite), `${key} finite`).toBe(true);
  }
  return tc;
}

describe(`attention forward on tensor cores (or emulated) (seed ${rng.seed})`, () => {
  it('plain causal, GQA with Dh padded to 32, sliding window', async (ctx) => {
    if (!(await tcGpu())) { ctx.skip(); return; }
    await check({ B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 32 });
    await check({ B: 1, T: 45, Hq: 4, Hkv: 2, Dh: 20 });
    await check({ B: 2, T: 70, Hq: 2, Hkv: 2, Dh: 32, window: 9 });
  }, 300_000);

  it('padding rows write exactly 0 (out and lse); GPT-NeoX fused QKV operands and fused dQKV gradients', async (ctx) => {
    if (!(await tcGpu())) { ctx.skip(); return; }
    const T = 40; const Hq = 2; const Dh = 24;
    const r = await check({ B: 2, T, Hq, Hkv: 2, Dh, lengths: Int32Array.from([T, T - 13]) });
    for (let t = T - 13; t < T; t++) {
      for (let n = 0; n < Hq * Dh; n++) expect(r.out[(T + t) * Hq * Dh + n]).toBe(0);
      for (let h = 0; h < Hq; h++) expect(r.lse[(Hq + h) * T + t]).toBe(0);
    }
    await check({ B: 1, T: 33, Hq: 2, Hkv: 2, Dh: 32, fused: true });
  });

  it('large values of V: dO\'s scale keeps dP and dS inside f16\'s range', async (ctx) => {
    if (!(await tcGpu())) { ctx.skip(); return; }
    // |v| up to 5000: with dO put at 2^6 alone, dP - D = (dO V^T)_j - D reaches ~1e6 and dS overflows f16.
    await check({ B: 1, T: 30, Hq: 2, Hkv: 2, Dh: 32, vScale: 5000 });
  });

  it('packed pairs across several key tiles (whole tiles hidden by the segments are skipped)', async (ctx) => {
    if (!(await tcGpu())) { ctx.skip(); return; }
    // [prompt 40, chosen 90, rejected 100]: rejected query tiles x chosen key tiles see nothing.
    const P = 40; const C = 90; const R = 100; const T = P + C + R + 3; const B = 2;
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T); const lengths = new Int32Array(B);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); lengths[b] = P + C + R - 7 * b; }
    await check({ B, T, Hq: 1, Hkv: 1, Dh: 32, positions, segments, lengths });
  });

  // The H100 runs these kernels with subgroups of 32 (lavapipe has 8): the emulation, which takes the
  // subgroup index and lane from the local index, can lay them out for 32 here, in the form without
  // cross-lane shuffles (one lane per softmax row, SRK_SMX_SOFTMAX=row; the shuffles need real
  // subgroups of 32). Run 6 saw this form fail natively; here its logic at 32 is checked.
  it('subgroups of 32 (the H100\'s) simulated: the one-lane-per-row form', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu || gpu.smxMode !== 'emulated') { ctx.skip(); return; }
    const saved = process.env.SRK_SMX_SOFTMAX;
    gpu.simulatedSubgroupSize = 32;
    process.env.SRK_SMX_SOFTMAX = 'row';
    try {
      expect(gpu.fixedSubgroupSize).toBe(32);
      await check({ B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 32 });
    } finally {
      gpu.simulatedSubgroupSize = undefined;
      if (saved === undefined) delete process.env.SRK_SMX_SOFTMAX; else process.env.SRK_SMX_SOFTMAX = saved;
    }
  }, 300_000);

  // Q, K and V are staged times powers of two from their maxima: keys and values past f16's range
  // (|x| ~ 1e5 > 65504) with tiny queries keep the forward within the f16 bounds (unscaled, a key at
  // Inf scored -Inf and was dropped; a query at 1e-5 fell into f16's subnormals). Dh 32: the same pipelines.
  it('forward with keys and values past f16\'s range and tiny queries: within the f16 bounds of the exact result', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu) { ctx.skip(); return; }
    const c: Case = { B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 32 };
    const { B, T, Hq, Hkv, Dh } = c;
    const q = f32(rng.array(B * T * Hq * Dh, 1e-5)); const k = f32(rng.array(B * T * Hkv * Dh, 1e5));
    const v = f32(rng.array(B * T * Hkv * Dh, 1e5)); const dout = f32(rng.array(B * T * Hq * Dh));
    const exact = forwardRef(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), { B, T, Hq, Hkv, Dh }, {});
    const got = await run(gpu, c, q, k, v, dout, true);
    expect(relErr(got.lse, exact.lse), `lse seed ${rng.seed}`).toBeLessThan(1e-3);
    expect(relErr(got.out, exact.out), `out seed ${rng.seed}`).toBeLessThan(5e-3);
  }, 300_000);

  // A NaN score gives NaN in out and lse of exactly the rows that see it (an f16 overflow upstream
  // must not come out as a finite, wrong row). Dh 32, as above: the same pipelines.
  it('NaN in one key and one query reaches exactly the rows that see them', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu) { ctx.skip(); return; }
    const c: Case = { B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 32 };
    const { B, T, Hq, Hkv, Dh } = c;
    const q = f32(rng.array(B * T * Hq * Dh)); const k = f32(rng.array(B * T * Hkv * Dh));
    const v = f32(rng.array(B * T * Hkv * Dh)); const dout = f32(rng.array(B * T * Hq * Dh));
    k[(30 * Hkv + 0) * Dh + 7] = NaN;        // batch row 0, key 30, head 0: queries 30..36 see it
    q[((T + 5) * Hq + 2) * Dh + 11] = NaN;   // batch row 1, query 5, head 2
    const r16 = (x: Float32Array) => Float64Array.from(x, roundF16);
    const want = forwardRef(r16(q), r16(k), r16(v), { B, T, Hq, Hkv, Dh }, {});
    const got = await run(gpu, c, q, k, v, dout, true);
    expect(expectNanLikeReference(got.out, want.out, 2e-3, `out seed ${rng.seed}`)).toBe(8 * Dh);
    expect(expectNanLikeReference(got.lse, want.lse, 1e-5, `lse seed ${rng.seed}`)).toBe(8);
  }, 300_000);

  // Gemma 2's soft-capping: the kernels' softcap variants (and the f32 kernels' beside them) against the
  // capped reference, a cap of 0.8 against scores of order 1-3 (far from tanh's linear range). Dh 32 as
  // above (each new emulated pipeline costs lavapipe 10-30 s).
  it('soft-capping (Gemma 2): GQA, window, packed pairs with padding', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu) { ctx.skip(); return; }
    const P = 9; const C = 14; const R = 11; const T = P + C + R + 3; const B = 2;
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); }
    const { names } = await dispatchedKernels(gpu, () => check({ B, T, Hq: 4, Hkv: 2, Dh: 32, window: 6, positions, segments,
      lengths: Int32Array.from([P + C + R, P + C + R - 6]), softcap: 0.8 }));
    const tc = [...new Set(names.filter((n) => n.includes('_smx_')))].sort();
    expect(tc.length).toBe(3);
    for (const n of tc) expect(n).toMatch(/_softcap$/);
  }, 300_000);

  // Emulated, each padded head size is three pipelines that lavapipe compiles in 10-30 s each, so
  // the cases above share one: Dh 20 to 32 (two 16-column fragments, padding columns); natively also
  // the models' 64 and 128.
  it('Dh 64 and 128 (the models\' head sizes; natively only)', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu || gpu.smxMode !== 'native') { ctx.skip(); return; }
    await check({ B: 1, T: 40, Hq: 2, Hkv: 1, Dh: 64 });
    await check({ B: 1, T: 20, Hq: 1, Hkv: 1, Dh: 128 });
  }, 300_000);

  // Last: reuses the Dh 32 pipelines compiled above (emulated, each costs lavapipe 10-30 s).
  it('with the tuner: the kernels check themselves on this adapter first, then join the tuner\'s candidates', async (ctx) => {
    const gpu = await tcGpu();
    if (!gpu) { ctx.skip(); return; }
    const tuner = new Tuner(gpu.device, 2, 1); // one sample per candidate: emulated calls are slow
    gpu.tuner = tuner;
    resetTcChecks(gpu);
    try {
      const c: Case = { B: 1, T: 40, Hq: 2, Hkv: 1, Dh: 32 };
      const { B, T, Hq, Hkv, Dh } = c;
      const q = f32(rng.array(B * T * Hq * Dh)); const k = f32(rng.array(B * T * Hkv * Dh));
      const v = f32(rng.array(B * T * Hkv * Dh)); const dout = f32(rng.array(B * T * Hq * Dh));
      const dims = { B, T, Hq, Hkv, Dh };
      const exact = forwardRef(Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), dims, {});
      const g = backwardRef(Float64Array.from(dout), Float64Array.from(q), Float64Array.from(k), Float64Array.from(v), exact.out, exact.lse, dims, {});
      // Every call, whichever kernels it ran: within the tensor-core bounds of the exact result.
      const expectGood = (r: Awaited<ReturnType<typeof run>>) => {
        expect(relErr(r.out, exact.out)).toBeLessThan(5e-3);
        for (const key of ['dq', 'dk', 'dv'] as const) expect(relErr(r[key], g[key]), key).toBeLessThan(F16_GRAD_BOUND);
      };
      expectGood(await run(gpu, c, q, k, v, dout, undefined)); // records the check beside this work
      expect(tcCheckState(gpu, Dh)).toBe('pending (tc)');
      await tuner.settle();
      expect(tcCheckState(gpu, Dh)).toBe('ok (tc)');
      // Steps of 4 calls (a sample of up to 4 candidates) until all is chosen: a step whose candidate
      // kernels were still compiling (kernel.ts checked()) does not count, and a key stays open until
      // each of its candidates had a turn (at most 6 steps: tuner.ts).
      for (let step = 0; step < 8 && tuner.open; step++) {
        for (let i = 0; i < 4; i++) expectGood(await run(gpu, c, q, k, v, dout, undefined));
        await tuner.settle();
      }
      expect(tuner.open).toBe(false);
      const withTc = tuner.table.decisions().filter((d) => d.candidates.includes('tc'));
      expect(withTc.map((d) => d.key.split(' ')[1]).sort()).toEqual(['dkdv', 'dq', 'fwd']);
      for (const d of withTc) expect(d.medianMs.every((m) => m !== null && m > 0), d.key).toBe(true);
    } finally {
      gpu.tuner = undefined;
      resetTcChecks(gpu);
    }
  }, 300_000);
});
