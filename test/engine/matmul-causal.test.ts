// Causal products (matmul.ts `causal`), as attention-unfused.ts runs them on a square of scores per
// head: S = Q K^T computing only the tiles that meet the lower triangle ('lowerC'), and P V, dS K,
// P^T dO with P lower triangular as stored ('lowerA'), whose upper triangle and row pads hold NaN here
// (what a reused scratch may hold) and must not reach the result. Against float64 on awkward sizes,
// batched, in the simple and register kernels (and the tensor-core kernel with emulated subgroup
// matrices), f32 and f16 (scaled A); and the refusals.
import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit, withTensorCores } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { matmul, matmulCandidates, matmulKernels, SMX_64, tileName, type MatmulTile } from '../../src/kernels/matmul.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { absmaxOf } from '../../src/kernels/absmax.js';

process.env.GALLIVM_PERF ??= 'nopt'; // as matmul.test.ts: lavapipe compiles these faster unoptimized
const rng = makeRng();
const ld16 = (n: number) => Math.ceil(n / 16) * 16;

/** [B][T][ld] scores, lower triangle random, everything else (upper triangle, pads) NaN; and the dense [B][T][T] lower triangle. */
function lowerScores(B: number, T: number, ld: number): { stored: Float32Array; dense: Float64Array[] } {
  const stored = new Float32Array(B * T * ld).fill(NaN);
  const dense: Float64Array[] = [];
  for (let b = 0; b < B; b++) {
    const d = new Float64Array(T * T);
    for (let i = 0; i < T; i++) for (let j = 0; j <= i; j++) { const v = Math.fround(rng.normal()); stored[(b * T + i) * ld + j] = v; d[i * T + j] = v; }
    dense.push(d);
  }
  return { stored, dense };
}

type Kind = 'S = Q K^T' | 'O = P V' | 'dV = P^T dO';

/**
 * One causal product of B heads over T tokens, head size D, through `tile` (the rule's without),
 * checked against float64; returns the kernels' names.
 */
async function check(gpu: Gpu, kind: Kind, T: number, D: number, B: number, precision: 'f32' | 'f16', tile?: MatmulTile): Promise<string[]> {
  const ld = ld16(T);
  const what = `${kind} T ${T} D ${D} B ${B} ${precision} ${tile ? tileName(tile) : 'rule'}`;
  const dense = (n: number) => Float32Array.from(rng.array(n));
  const t = (d: Float32Array) => gpu.tensor([d.length], d);
  const bound = precision === 'f16' ? 3e-3 : 1e-5;
  if (kind === 'S = Q K^T') {
    const q = dense(B * T * D); const k = dense(B * T * D);
    const c0 = new Float32Array(B * T * ld).fill(12345);
    const tq = t(q); const tk = t(k); const tc = t(c0);
    const args = { a: tq, b: tk, c: tc, M: T, N: T, K: D, transB: true, ldc: ld, batch: B, strideA: T * D, strideB: T * D, strideC: T * ld,
      padC: true, causal: 'lowerC' as const, precision, ...(tile ? { tile } : {}) };
    const names = matmulKernels(gpu, args);
    matmul(gpu, args);
    const got = await gpu.readF32(tc);
    gpu.pool.release(tq, tk, tc);
    for (let b = 0; b < B; b++) {
      const want = matmulRef({ a: q.subarray(b * T * D, (b + 1) * T * D), b: k.subarray(b * T * D, (b + 1) * T * D), M: T, N: T, K: D, transB: true, f16: precision === 'f16' });
      const lower = []; const lowerWant = [];
      for (let i = 0; i < T; i++) {
        for (let j = 0; j <= i; j++) { lower.push(got[(b * T + i) * ld + j]); lowerWant.push(want[i * T + j]); }
        // Above the diagonal: the full product (a diagonal tile) or untouched (a skipped tile); with
        // a known tiling, exactly the tiles wholly above the diagonal are skipped.
        for (let j = i + 1; j < T; j++) {
          const v = got[(b * T + i) * ld + j];
          if (tile) {
            const skipped = Math.floor(j / tile.BN) * tile.BN >= Math.floor(i / tile.BM) * tile.BM + tile.BM;
            if (skipped) expect(v, `${what}: (${i}, ${j}) in a skipped tile`).toBe(12345);
            else expect(Math.abs(v - want[i * T + j]), `${what}: (${i}, ${j})`).toBeLessThan(1e-3);
          } else expect(v === 12345 || Math.abs(v - want[i * T + j]) < 1e-3, `${what}: (${i}, ${j}) ${v}`).toBe(true);
        }
      }
      expect(relErr(lower, lowerWant), what).toBeLessThan(bound);
    }
    if (tile && T > tile.BM + tile.BN) expect(got.filter((v) => v === 12345).length, `${what}: tiles skipped`).toBeGreaterThan(0);
    return names;
  }
  // A = P lower triangular as stored, [B][T][ld]; B operand [B][T][D]; C [B][T][D].
  const transA = kind === 'dV = P^T dO';
  const p = lowerScores(B, T, ld);
  const v = dense(B * T * D);
  const tp = t(p.stored); const tv = t(v); const tc = t(new Float32Array(B * T * D));
  // f16: A scaled by the maxima of its lower triangle (the NaN elsewhere is not A's).
  const denseAll = new Float32Array(B * T * T);
  p.dense.forEach((d, b) => denseAll.set(Float32Array.from(d), b * T * T));
  const tdense = precision === 'f16' ? t(denseAll) : undefined;
  const scaleA = tdense ? absmaxOf(gpu, tdense, tdense.numel) : undefined;
  const args = { a: tp, b: tv, c: tc, M: T, N: D, K: T, transA, lda: ld, batch: B, strideA: T * ld, strideB: T * D, strideC: T * D,
    padA: true, causal: 'lowerA' as const, precision, ...(scaleA ? { scaleA } : {}), ...(tile ? { tile } : {}) };
  const names = matmulKernels(gpu, args);
  matmul(gpu, args);
  const got = await gpu.readF32(tc);
  gpu.pool.release(tp, tv, tc, ...(tdense ? [tdense, scaleA!] : []));
  const want = new Float64Array(B * T * D);
  for (let b = 0; b < B; b++) {
    // The reference scales each head by its own maximum, the product all by theirs: powers of two
    // apart, which change no f16 rounding of these (normal-range) values.
    const r = matmulRef({ a: p.dense[b], b: v.subarray(b * T * D, (b + 1) * T * D), M: T, N: D, K: T, transA, lowerA: true, f16: precision === 'f16' });
    want.set(r, b * T * D);
  }
  expect(relErr(got, want), what).toBeLessThan(bound);
  return names;
}

describe(`causal matmul (seed ${rng.seed})`, () => {
  const kinds: Kind[] = ['S = Q K^T', 'O = P V', 'dV = P^T dO'];
  const reg = (BM: number, BN: number, BK: number, TM: number, TN: number, x: Partial<MatmulTile> = {}): MatmulTile => ({ BM, BN, BK, TM, TN, kind: 'reg', ...x });

  it('the simple kernel (the rule on a CPU adapter): f32 and f16, awkward T', async () => {
    const gpu = await getGpu();
    for (const kind of kinds) {
      for (const precision of ['f32', 'f16'] as const) {
        const names = await check(gpu, kind, 150, 20, 2, precision, { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 });
        for (const n of names) expect(n, kind).toMatch(kind.startsWith('S') ? /_lc$/ : /_la$/);
      }
      await check(gpu, kind, 37, 12, 3, 'f32');
    }
  }, 300_000);

  // Each kind on two-stage 64x64 tiles; then one kind each (every case is a pipeline for lavapipe to
  // compile): one stage with K slices from the tile's first row (P^T), f16 staging (P V), and 128x128
  // tiles with 8-deep K slices (P^T again: the first slice index m0 / BK, 16 of them a tile).
  it('register tiles (one and two stages, 128x128 with BK 8): vec4 through the pads', async () => {
    const gpu = await getGpu();
    const cases: [Kind, number, 'f32' | 'f16', MatmulTile][] = [
      ...kinds.map((k): [Kind, number, 'f32' | 'f16', MatmulTile] => [k, 150, 'f32', reg(64, 64, 16, 4, 4)]),
      ['dV = P^T dO', 150, 'f32', reg(64, 64, 16, 4, 4, { stages: 1 })],
      ['O = P V', 77, 'f16', reg(64, 64, 16, 4, 4)],
      ['dV = P^T dO', 300, 'f32', reg(128, 128, 8, 8, 8)],
    ];
    for (const [kind, T, precision, tile] of cases) {
      const names = await check(gpu, kind, T, 16, 2, precision, tile);
      for (const n of names) expect(n, kind).toMatch(/^matmul_reg_.*_vvv(_h16s?)?_l[ca]$/);
    }
  }, 300_000);

  // An emulated pipeline takes lavapipe 10-50 s to compile, so emulated, one: the transposed lower A
  // (K slices from the tile's first row, masked loads); natively (an f16 subgroup-matrix GPU) the
  // skipped tiles of S too. The skip is the same statement in every kernel family (causalLoop).
  it('tensor-core kernels (emulated where the adapter has none): P^T dO, and natively Q K^T', async (ctx) => {
    const gpu = await getGpu();
    const ran = await withTensorCores(gpu, async (emulated) => {
      for (const kind of emulated ? ['dV = P^T dO'] as const : ['dV = P^T dO', 'S = Q K^T'] as const) {
        const names = await check(gpu, kind, 150, 32, 2, 'f16', SMX_64);
        for (const n of names) expect(n, kind).toMatch(/^matmul_smx_.*_l[ca](_emu)?$/);
      }
    });
    if (!ran) ctx.skip();
  }, 300_000);

  it('refused: a lower A scaled from its whole window, split-K, and splits along M, N or K', async () => {
    const gpu = await getGpu();
    const t = gpu.tensor([64 * 64]);
    expect(() => matmul(gpu, { a: t, b: t, c: t, M: 64, N: 64, K: 64, causal: 'lowerA', precision: 'f16', scaleA: true }))
      .toThrow(/lower-triangular A is scaled by partial maxima of its lower triangle/);
    expect(() => matmul(gpu, { a: t, b: t, c: t, M: 64, N: 64, K: 64, causal: 'lowerA', tile: { ...reg(64, 64, 16, 4, 4), splitK: 2 } }))
      .toThrow(/splits no causal product/);
    expect(() => matmul(gpu, { a: t, b: t, c: t, M: 64, N: 64, K: 64, causal: 'upper' as never })).toThrow(/expected lowerC or lowerA/);
    // The tuner never offers split-K forms for a causal product (a long-K, few-tile shape).
    const tuned = Object.create(gpu, { isCpuAdapter: { value: false }, tuner: { value: { table: { chosen: () => undefined } } } }) as Gpu;
    const big = gpu.tensor([64 * 4096]);
    const plain = matmulCandidates(tuned, { a: big, b: big, c: t, M: 64, N: 64, K: 4096, transA: true });
    expect(plain.some((n) => n.includes('split-K'))).toBe(true);
    const causal = matmulCandidates(tuned, { a: big, b: big, c: t, M: 64, N: 64, K: 4096, transA: true, causal: 'lowerA', lda: 64 });
    expect(causal.some((n) => n.includes('split-K'))).toBe(false);
    // A product over the binding limit (as one head's square would be) is the caller's to split.
    await withBindingLimit(gpu, 4096, async () => {
      expect(() => matmul(gpu, { a: t, b: t, c: t, M: 64, N: 64, K: 64, causal: 'lowerC' })).toThrow(/causal product \(lowerC\) over the binding limit/);
    });
    gpu.pool.release(t, big);
  });
});
