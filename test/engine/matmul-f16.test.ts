// The f16 matmul precision: operands rounded to f16, f32 sums, A's dynamic power-of-two scale.
// On every adapter the f32 kernels' f16 staging is checked against the float64 reference with
// rounded operands; on adapters with an f16 subgroup-matrix config (tensor cores) the smx kernels
// are checked the same way (skipped elsewhere, e.g. lavapipe).
import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { matmul, matmulKernels, tileName, SMX_128, SMX_64, SMX_CANDIDATES, type MatmulTile } from '../../src/kernels/matmul.js';
import { f16ProductTolerance, matmulRef } from '../../src/kernels/matmul.ref.js';
import { absmaxOf, absmaxParts, ABSMAX_PARTS } from '../../src/kernels/absmax.js';
import { halfCopy } from '../../src/kernels/half.js';
import { absmaxRef, f16ScaleRef, roundF16 } from '../../src/kernels/absmax.ref.js';
import type { Gpu } from '../../src/engine/gpu.js';

// lavapipe compiles the emulated tensor-core kernels about twice as fast without LLVM's
// optimization passes (cold cache: this file 96 -> 65 s); set before this file's GPU device (its
// own process) loads the driver. No effect on other adapters.
process.env.GALLIVM_PERF ??= 'nopt';
const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

/** Largest ratio of |got - exact| to what f16 operands allow per element (f16ProductTolerance): at most 1 is within f16's precision. */
function f16Bound(got: ArrayLike<number>, exact: ArrayLike<number>, absProd: ArrayLike<number>, alpha: number,
  addends?: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - exact[i]) / f16ProductTolerance(Math.abs(alpha) * absProd[i], addends?.[i] ?? 0);
    worst = Number.isNaN(r) ? Infinity : Math.max(worst, r);
  }
  return worst;
}

/**
 * One f16 product through `tile` (operands at offsets inside larger tensors, epilogue with bias,
 * accumulate and alpha); A scaled by `aScale` (to test tiny gradients) and dynamically scaled when
 * `scaleA`. Returns the GPU result's error against the rounded-operand reference (ties-to-even
 * rounding: tiny where the adapter rounds so), against the exact f32-operand product, and the
 * per-element f16 bound (f16Bound).
 */
async function run(gpu: Gpu, tile: MatmulTile | undefined, M: number, N: number, K: number, transA: boolean, transB: boolean,
  o: { scaleA?: boolean; aScale?: number; scaleB?: boolean; bScale?: number; epilogue?: boolean; accumulate?: boolean; bias?: boolean } = {}): Promise<{ rounded: number; exact: number; bound: number; names: string[] }> {
  const offA = 3; const offB = 5; const offC = 7;
  const a = f32(rng.array(M * K).map((v) => v * (o.aScale ?? 1))); const b = f32(rng.array(K * N).map((v) => v * (o.bScale ?? 1))); const bias = f32(rng.array(N));
  const c0 = f32(rng.array(M * N));
  const pad = (off: number, x: Float32Array) => { const t = new Float32Array(off + x.length + 2); t.set(x, off); return t; };
  const ta = gpu.tensor([offA + a.length + 2], pad(offA, a)); const tb = gpu.tensor([offB + b.length + 2], pad(offB, b));
  const tc = gpu.tensor([offC + c0.length + 2], pad(offC, c0)); const tbias = gpu.tensor([N], bias);
  // epilogue: bias + accumulate + alpha (the tensor-core kernel's scratch epilogue); accumulate:
  // accumulate + alpha without a bias; bias: bias + alpha without accumulate (those two: its direct
  // stores on tiles inside C, from C / alpha or bias / alpha).
  const ep = o.epilogue ? { bias: tbias, accumulate: true, alpha: -0.5 } : o.accumulate ? { accumulate: true, alpha: -0.5 }
    : o.bias ? { bias: tbias, alpha: -0.5 } : {};
  const partsB = o.scaleB ? absmaxOf(gpu, tb, tb.numel) : undefined; // over the padded tensor: the same max
  const args = { a: ta, b: tb, c: tc, M, N, K, transA, transB, offA, offB, offC, tile, precision: 'f16' as const, scaleA: o.scaleA, scaleB: partsB, ...ep };
  const names = matmulKernels(gpu, args);
  matmul(gpu, args);
  if (partsB) gpu.pool.release(partsB);
  const got = (await gpu.readF32(tc)).subarray(offC, offC + M * N);
  const refArgs = { a, b, M, N, K, transA, transB,
    ...(o.epilogue ? { bias, c: c0, accumulate: true, alpha: -0.5 } : o.accumulate ? { c: c0, accumulate: true, alpha: -0.5 }
      : o.bias ? { bias, alpha: -0.5 } : {}) };
  gpu.pool.release(ta, tb, tc, tbias);
  const exact = matmulRef(refArgs);
  const absProd = matmulRef({ a: Array.from(a, Math.abs), b: Array.from(b, Math.abs), M, N, K, transA, transB });
  return {
    rounded: relErr(got, matmulRef({ ...refArgs, f16: true, scaleA: o.scaleA, scaleB: o.scaleB })),
    exact: relErr(got, exact),
    bound: f16Bound(got, exact, absProd, o.epilogue || o.accumulate || o.bias ? -0.5 : 1,
      o.epilogue ? Float64Array.from(c0, (v, i) => Math.abs(v) + Math.abs(bias[i % N]))
        : o.accumulate ? Float64Array.from(c0, Math.abs) : o.bias ? Float64Array.from(c0, (_, i) => Math.abs(bias[i % N])) : undefined),
    names,
  };
}

/**
 * The same f16 product twice, on the same inputs: staged from f32 (A scaled by its partial maxima)
 * and from f16 copies (half.ts; A's copy scaled by the same maxima), operands at offsets inside
 * larger tensors (odd by default: scalar loads; multiples of 4: vec4 where the kernel has them),
 * epilogue with bias, accumulate and alpha. The copies hold the values the staging
 * rounds to, so the results must agree bit for bit. Returns the count of differing elements and
 * both products' kernel names.
 */
async function copiesAgainstStaging(gpu: Gpu, tile: MatmulTile | undefined, M: number, N: number, K: number, transA: boolean,
  transB: boolean, [offA, offB, offC] = [3, 5, 7]): Promise<{ differ: number; staged: string[]; copies: string[] }> {
  const a = f32(rng.array(M * K, 1e-6)); const b = f32(rng.array(K * N)); const bias = f32(rng.array(N)); const c0 = f32(rng.array(M * N));
  const pad = (off: number, x: Float32Array) => { const t = new Float32Array(off + x.length + 2); t.set(x, off); return t; };
  const ta = gpu.tensor([offA + a.length + 2], pad(offA, a)); const tb = gpu.tensor([offB + b.length + 2], pad(offB, b));
  const tbias = gpu.tensor([N], bias);
  const c1 = gpu.tensor([offC + c0.length + 2], pad(offC, c0)); const c2 = gpu.tensor([offC + c0.length + 2], pad(offC, c0));
  const parts = absmaxOf(gpu, ta.view([a.length], offA), a.length);
  const ha = gpu.pool.acquire([offA + a.length], 'f16'); const hb = gpu.pool.acquire([offB + b.length], 'f16');
  halfCopy(gpu, { x: ta.view([a.length], offA), out: ha.view([a.length], offA), n: a.length, parts });
  halfCopy(gpu, { x: tb.view([b.length], offB), out: hb.view([b.length], offB), n: b.length });
  const common = { M, N, K, transA, transB, tile, precision: 'f16' as const, bias: tbias, accumulate: true, alpha: -0.5, scaleA: parts, offC };
  const staged = { ...common, a: ta, b: tb, c: c1, offA, offB };
  const copies = { ...common, a: ha, b: hb, c: c2, offA, offB };
  const names = { staged: matmulKernels(gpu, staged), copies: matmulKernels(gpu, copies) };
  matmul(gpu, staged); matmul(gpu, copies);
  const r1 = await gpu.readF32(c1); const r2 = await gpu.readF32(c2);
  let differ = 0;
  for (let i = 0; i < r1.length; i++) if (!Object.is(r1[i], r2[i])) differ++;
  gpu.pool.release(ta, tb, tbias, c1, c2, parts, ha, hb);
  return { differ, ...names };
}

describe(`f16 matmul precision (seed ${rng.seed})`, () => {
  it('roundF16 rounds to nearest even binary16, with subnormals and overflow', () => {
    expect(roundF16(1 / 3)).toBe(0.333251953125);
    expect(roundF16(65504)).toBe(65504);
    expect(roundF16(65519)).toBe(65504);
    expect(roundF16(65520)).toBe(Infinity);
    expect(roundF16(-(2 ** -24))).toBe(-(2 ** -24));
    expect(roundF16(2 ** -26)).toBe(0);            // below half the smallest subnormal
    expect(roundF16(3 * 2 ** -25)).toBe(2 ** -23); // tie between 1 and 2 subnormal steps: to even
    expect(roundF16(1 + 2 ** -11)).toBe(1);        // tie: to even
    expect(roundF16(1 + 3 * 2 ** -11)).toBe(1 + 2 ** -9);
  });

  it('f16ScaleRef: the largest power of two keeping max |A| at or below 2^14', () => {
    expect(f16ScaleRef(1)).toBe(2 ** 14);
    expect(f16ScaleRef(1.5)).toBe(2 ** 13);
    expect(f16ScaleRef(2 ** -20)).toBe(2 ** 34);
    expect(f16ScaleRef(0)).toBe(1);
    expect(f16ScaleRef(NaN)).toBe(1);
    expect(f16ScaleRef(2 ** -60)).toBe(2 ** 64); // clamped: near-zero tensors gain nothing from more
    for (let i = 0; i < 100; i++) {
      const m = Math.exp(rng.normal() * 10);
      const s = f16ScaleRef(m);
      expect(m * s).toBeLessThanOrEqual(16384);
      // The largest such power of two, except under 2^-50 or so, where the 2^64 clamp holds it
      // (exp(10 z) gets there for z < -3.5: about 2% of runs of 100 draws).
      if (s < 2 ** 64) expect(m * s * 2).toBeGreaterThan(16384);
    }
  });

  it('absmax partial maxima on awkward sizes and offsets (scalar and vec4 loads)', async () => {
    const gpu = await getGpu();
    for (const [n, off] of [[1, 13], [255, 13], [257, 13], [65537 + 19, 13], [300_001, 13], [4, 0], [1024, 0], [300_000, 0]]) {
      const x = f32(rng.array(n + off + 4));
      x[off + Math.floor(n / 2)] = -7.5; // the max magnitude, negative
      x[0] = 100; x[off + n] = 100;       // outside the range: must not count
      const tx = gpu.tensor([x.length], x); const parts = gpu.tensor([ABSMAX_PARTS + 5]);
      absmaxParts(gpu, tx, off, n, parts, 5);
      const got = (await gpu.readF32(parts)).subarray(5);
      expect(Math.max(...got), `n=${n}`).toBe(absmaxRef(x.subarray(off, off + n)));
      gpu.pool.release(tx, parts);
    }
  });

  it('absmaxOf over binding-limit chunks; a shared scale tensor gives the same products', async () => {
    const gpu = await getGpu();
    const n = 20000; const x = f32(rng.array(n)); x[17321] = -9.25;
    const tx = gpu.tensor([n], x);
    const parts = await withBindingLimit(gpu, 32768, async () => absmaxOf(gpu, tx, n)); // 3 windows of ~8k elements
    expect(Math.max(...await gpu.readF32(parts))).toBe(9.25);
    gpu.pool.release(parts);
    // dW-like (transA) and dx-like products with one absmaxOf(A), against per-call scaling.
    const M = 40; const K = 36; const N = 24;
    const a = f32(rng.array(M * K).map((v) => v * 1e-6)); const b = f32(rng.array(K * N));
    const ta = gpu.tensor([M * K], a); const tb = gpu.tensor([K * N], b); const c1 = gpu.tensor([M * N]); const c2 = gpu.tensor([M * N]);
    const shared = absmaxOf(gpu, ta, M * K);
    const tile: MatmulTile | undefined = gpu.smxF16 ? undefined : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
    matmul(gpu, { a: ta, b: tb, c: c1, M, N, K, precision: 'f16', scaleA: shared, tile });
    matmul(gpu, { a: ta, b: tb, c: c2, M, N, K, precision: 'f16', scaleA: true, tile });
    expect([...await gpu.readF32(c1)]).toEqual([...await gpu.readF32(c2)]);
    expect(relErr(await gpu.readF32(c1), matmulRef({ a, b, M, N, K }))).toBeLessThan(5e-3);
    gpu.pool.release(tx, ta, tb, c1, c2, shared);
  });

  // The f32 kernels' f16 staging (what runs where tensor cores are absent): simple and reg.
  const tiles: (MatmulTile | undefined)[] = [undefined, { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' }];
  for (const tile of tiles) {
    const label = tile ? tileName(tile) : 'default';
    it(`${label}: f16-rounded operands, f32 sums, all transposes, epilogue`, async (ctx) => {
      const gpu = await getGpu();
      if (!tile && gpu.smxF16) ctx.skip('the default is the tensor-core kernel on this adapter (tested below)');
      for (const [M, N, K, transA, transB] of [[17, 33, 65, false, true], [70, 40, 100, true, false], [64, 64, 32, true, true], [33, 16, 7, false, false]] as const) {
        const r = await run(gpu, tile, M, N, K, transA, transB, { epilogue: true });
        const what = `${label} ${M}x${N}x${K} tA=${transA} tB=${transB}`;
        expect(r.bound, what).toBeLessThanOrEqual(1); // within f16 operand precision...
        expect(r.exact, what).toBeGreaterThan(1e-5);  // ...and rounding happened
        expect(r.rounded, what).toBeLessThan(1e-5);   // the staging rounds ties to even, as the reference
        for (const n of r.names) expect(n, what).toMatch(/_h16$/);
      }
    });
  }

  it('scaleA keeps tiny gradients precise; without it they fall into f16 subnormals', async () => {
    const gpu = await getGpu();
    const tile: MatmulTile | undefined = gpu.smxF16 ? undefined : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
    for (const [transA, transB] of [[false, false], [true, false], [false, true]] as const) {
      const scaled = await run(gpu, tile, 48, 40, 96, transA, transB, { scaleA: true, aScale: 1e-7 });
      expect(scaled.bound).toBeLessThanOrEqual(1);
      for (const n of scaled.names) expect(n).toMatch(/_h16s/);
      const plain = await run(gpu, tile, 48, 40, 96, transA, transB, { aScale: 1e-7 });
      expect(plain.bound).toBeGreaterThan(10);
    }
  });

  it('scaleB keeps a tiny B precise (beside a scaled A, and split-K); without it B falls into f16 subnormals', async () => {
    const gpu = await getGpu();
    const tile: MatmulTile | undefined = gpu.smxF16 ? undefined : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
    // The layouts of attention's dV = P^T dO (A transposed) and of a forward product.
    for (const [transA, transB] of [[true, false], [false, true]] as const) {
      const scaled = await run(gpu, tile, 48, 40, 96, transA, transB, { scaleB: true, bScale: 1e-7, scaleA: transA, aScale: transA ? 1e-6 : 1 });
      expect(scaled.bound).toBeLessThanOrEqual(1);
      if (!gpu.smxF16) expect(scaled.rounded).toBeLessThan(1e-5);
      for (const n of scaled.names) expect(n).toMatch(/_sb/);
      const plain = await run(gpu, tile, 48, 40, 96, transA, transB, { bScale: 1e-7 });
      expect(plain.bound).toBeGreaterThan(10);
    }
    const split = await run(gpu, gpu.smxF16 ? { ...SMX_64, splitK: 4 } : { ...tile!, splitK: 4 }, 40, 36, 201, true, false, { scaleB: true, bScale: 1e-7, accumulate: true });
    expect(split.bound).toBeLessThanOrEqual(1);
  });

  it('split-K with scaleA (tiny and past-f16 operands): within the f16 bound, all layouts', async () => {
    const gpu = await getGpu();
    const tile: MatmulTile = gpu.smxF16 ? { ...SMX_64, splitK: 4 } : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, splitK: 4 };
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const o of [{ scaleA: true, aScale: 1e-7, accumulate: true }, { scaleA: true, aScale: 3e4, epilogue: true }]) {
        const r = await run(gpu, tile, 40, 36, 201, transA, transB, o);
        const what = `${tileName(tile)} tA=${transA} tB=${transB} ${JSON.stringify(o)}`;
        expect(r.bound, what).toBeLessThanOrEqual(1);
        // The f32 kernels round as the reference does (a power-of-two scale changes no rounding).
        if (!gpu.smxF16) expect(r.rounded, what).toBeLessThan(1e-5);
        expect(r.names.filter((n) => n === 'matmul_splitk_reduce'), what).toHaveLength(1);
      }
    }
  });

  it('scaleA also keeps operands past f16\'s range (65504) finite; without it they overflow', async () => {
    const gpu = await getGpu();
    const tile: MatmulTile | undefined = gpu.smxF16 ? undefined : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
    for (const [transA, transB] of [[false, true], [true, false]] as const) {
      const scaled = await run(gpu, tile, 40, 24, 48, transA, transB, { scaleA: true, aScale: 3e4 }); // |A| up to ~1e5
      expect(scaled.bound).toBeLessThanOrEqual(1);
      const plain = await run(gpu, tile, 40, 24, 48, transA, transB, { aScale: 3e4 });
      expect(plain.bound).toBeGreaterThan(10); // inf (or saturated) operands
    }
  });

  // f16 copies (half.ts) in every kernel family this adapter runs: the default (simple 64x64 on
  // lavapipe, tensor cores on an smx adapter) in the three layouts of a linear layer (y = x W^T,
  // dW += dy^T x, dx = dy W), the reg kernel (vec4 loads) in the
  // forward's, split-K in the weight gradient's (each reg pipeline costs lavapipe seconds to compile).
  it('f16 operand copies give the staged products bit for bit: linear layouts, reg, split-K', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.features.shaderF16) { ctx.skip(); return; }
    const all = [[false, true], [true, false], [false, false]] as const;
    const aligned: [number, number, number] = [4, 8, 4];
    const cases: [MatmulTile | undefined, number, number, number, readonly (readonly [boolean, boolean])[], [number, number, number]?][] = [
      [undefined, 37, 70, 50, all], [undefined, 64, 128, 96, [[false, true]], aligned],
      [{ BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' }, 64, 128, 96, [[false, true]], aligned],
      [gpu.smxF16 ? { ...SMX_64, splitK: 4 } : { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, splitK: 4 }, 40, 36, 201, [[true, false]]]];
    for (const [tile, M, N, K, layouts, offsets] of cases) {
      for (const [transA, transB] of layouts) {
        const r = await copiesAgainstStaging(gpu, tile, M, N, K, transA, transB, offsets);
        const what = `${tile ? tileName(tile) : 'default'} ${M}x${N}x${K} tA=${transA} tB=${transB}${offsets ? ' aligned' : ''}`;
        expect(r.differ, what).toBe(0);
        // Aligned operands: the reg and tensor-core kernels read the copies as vec4<f16>.
        if (offsets && (tile?.kind === 'reg' || gpu.smxF16)) expect(r.copies[0], what).toMatch(/_vv/);
        for (const n of r.copies.filter((x) => x !== 'matmul_splitk_reduce')) expect(n, what).toMatch(/_h16s_ha_hb/);
        for (const n of r.staged) expect(n, what).not.toMatch(/_ha|_hb/);
      }
    }
  });

  it('f16 operand copies: refused in the f32 precision, as C, and as an A without its scale', async () => {
    const gpu = await getGpu();
    const a = gpu.pool.acquire([64], 'f16'); const b = gpu.tensor([64]); const c = gpu.tensor([64]);
    const p = { M: 8, N: 8, K: 8 };
    expect(() => matmul(gpu, { ...p, a, b, c, precision: 'f32' })).toThrow(/need the f16 precision/);
    expect(() => matmul(gpu, { ...p, a, b, c, precision: 'f16', scaleA: true })).toThrow(/scaled when it is made/);
    expect(() => matmul(gpu, { ...p, a: b, b, c: a, precision: 'f16' })).toThrow(/C is .*expected f32/);
    gpu.pool.release(a, b, c);
  });

  it('products with M or N under 16 stay f32', async () => {
    const gpu = await getGpu();
    const r = await run(gpu, undefined, 1, 70, 50, false, false, { scaleA: true });
    expect(r.exact).toBeLessThan(1e-5);
    for (const n of r.names) expect(n).not.toMatch(/_h16/);
  });

  // Tensor cores (f16 subgroup-matrix adapters only): both stagings, direct stores (no bias: tiles
  // inside C, with and without accumulate) and the scratch epilogue (bias; edge tiles).
  // The default tilings get every case; the variants (two stages, BK 64) one awkward shape in the
  // layouts training uses (each case compiles its own pipelines: ~1 s each on the H100).
  // The variants are the tuner's other candidates (matmul.ts SMX_CANDIDATES), so each is checked here.
  const smxTiles: [MatmulTile, boolean][] = [[SMX_128, true], [SMX_64, true],
    ...SMX_CANDIDATES.filter((t) => t !== SMX_128 && t !== SMX_64).map((t): [MatmulTile, boolean] => [t, false]),
    [{ ...SMX_128, stages: 2 }, false], [{ ...SMX_64, splitK: 4 }, false]];
  for (const [tile, all] of smxTiles) {
    it(`${tileName(tile)} (tensor cores): awkward and full shapes, transposes, epilogue, scaleA`, async (ctx) => {
      const gpu = await getGpu();
      if (!gpu.smxF16) { ctx.skip(); return; }
      const shapes: [number, number, number][] = all ? [[17, 33, 65], [tile.BM, tile.BN, 64], [257, 130, 100], [2 * tile.BM, 3 * tile.BN, 96]] : [[257, 130, 100]];
      const layouts = all ? [[false, false], [false, true], [true, false], [true, true]] as const : [[false, true], [false, false], [true, false]] as const;
      for (const [M, N, K] of shapes) {
        for (const [transA, transB] of layouts) {
          for (const o of [{}, { epilogue: true, scaleA: true, aScale: 1e-6 }, { accumulate: true, scaleA: true, aScale: 1e-6, scaleB: true, bScale: 1e-6 },
            { bias: true, scaleA: true }]) {
            const r = await run(gpu, tile, M, N, K, transA, transB, o);
            const what = `${tileName(tile)} ${M}x${N}x${K} tA=${transA} tB=${transB} ${JSON.stringify(o)}`;
            expect(r.bound, what).toBeLessThanOrEqual(1);
            for (const n of r.names) expect(n, what).toMatch(/^matmul_smx_|^matmul_splitk_reduce$/);
          }
        }
      }
    });
  }

  // The same kernels with emulated subgroup matrices (smx-wgsl.ts) where the adapter has none
  // (lavapipe): their staging, offsets, transposes and both epilogues, not the hardware's matrix
  // ops. Each case is its own pipeline and lavapipe compiles an emulated one in 10-50 s, so the
  // cases are two pipelines, on the 64x64 tiling (2 x 2 result matrices per subgroup): y = x W^T
  // (nt) with bias and accumulate (the scratch epilogue everywhere) and, the same kernel, with a bias
  // alone at 64 x 70, one tile inside C (direct stores from bias / alpha) and one at its edge (the
  // scratch epilogue); and dW += dy^T x (tn: direct stores on full tiles, accumulating, scaled A).
  // The 128x128 tiling (4 x 2 per subgroup) is the same generator, checked natively.
  it('tensor-core kernels with emulated subgroup matrices: the products of a training step', async (ctx) => {
    const gpu = await getGpu();
    if (gpu.smxF16) { ctx.skip(); return; } // tested natively above
    gpu.emulateSmx = true;
    try {
      if (!gpu.smxMode) { ctx.skip(); return; }
      const cases: [MatmulTile, number, number, number, boolean, boolean, Parameters<typeof run>[7]][] = [
        [SMX_64, 37, 70, 50, false, true, { epilogue: true, scaleA: true, aScale: 1e-6 }],
        [SMX_64, 64, 70, 50, false, true, { bias: true, scaleA: true }],
        [SMX_64, 64, 128, 96, true, false, { accumulate: true, scaleA: true, aScale: 1e-6 }],
      ];
      for (const [tile, M, N, K, transA, transB, o] of cases) {
        const r = await run(gpu, tile, M, N, K, transA, transB, o);
        const what = `${tileName(tile)} ${M}x${N}x${K} tA=${transA} tB=${transB} ${JSON.stringify(o)}`;
        expect(r.bound, what).toBeLessThanOrEqual(1);
        for (const n of r.names) expect(n, what).toMatch(/^matmul_smx_.*_emu$/);
      }
      // f16 copies through the first case's kernel layout: the same products bit for bit.
      const copies = await copiesAgainstStaging(gpu, SMX_64, 37, 70, 50, false, true);
      expect(copies.differ, 'f16 copies, emulated tensor cores').toBe(0);
      expect(copies.copies[0]).toMatch(/^matmul_smx_.*_ha_hb.*_emu$/);
      // Two batch levels (attention-unfused.ts: rows x heads) through the first case's kernel (odd
      // leading dimensions and a bias, so the same pipeline): each product within f16 error. C starts
      // zeroed (a pooled buffer holds whatever its last user left): the gaps between rows stay 0.
      const O = 2; const I = 2; const M = 37; const N = 20; const K = 50; const lda = 111; const ldb = 51; const ldc = 21;
      const [iA, iB, iC] = [51, 1, M * ldc]; const [oA, oB, oC] = [M * lda, 2 * N * ldb, I * M * ldc];
      const a = f32(rng.array(O * oA)); const b = f32(rng.array(O * oB)); const bias = f32(rng.array(N));
      const ta = gpu.tensor([O * oA], a); const tb = gpu.tensor([O * oB], b); const tc = gpu.tensor([O * oC], new Float32Array(O * oC)); const tbias = gpu.tensor([N], bias);
      const args = { a: ta, b: tb, c: tc, bias: tbias, M, N, K, transB: true, lda, ldb, ldc, batch: I, strideA: iA, strideB: iB, strideC: iC,
        outer: O, outerStrideA: oA, outerStrideB: oB, outerStrideC: oC, tile: SMX_64, precision: 'f16' as const, scaleA: true };
      for (const n of matmulKernels(gpu, args)) expect(n).toMatch(/^matmul_smx_.*_emu$/);
      matmul(gpu, args);
      const got = await gpu.readF32(tc);
      const want = new Float64Array(O * oC);
      for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let sum = bias[n];
        for (let k = 0; k < K; k++) sum += a[o * oA + i * iA + m * lda + k] * b[o * oB + i * iB + n * ldb + k];
        want[o * oC + i * iC + m * ldc + n] = sum;
      }
      expect(relErr(got, want), 'two batch levels').toBeLessThan(5e-3);
      expect(relErr(got, want), 'two batch levels: rounded to f16').toBeGreaterThan(1e-6);
      gpu.pool.release(ta, tb, tc, tbias);
    } finally {
      gpu.emulateSmx = false;
    }
  }, 300_000);
});
