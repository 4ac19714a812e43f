// A B shared by groups of batched products (matmul.ts `groupB`; grouped-query attention's products,
// where nRep query heads read one kv head's K or V): product i reads B's matrix i / groupB. Against
// float64 with both batch levels, in the simple and register kernels (and the tensor-core kernel on
// GPUs that have it); split at the binding limit (whole groups, then one group's matrices); refusals.
import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { matmul, matmulKernels, SMX_64, type MatmulArgs, type MatmulTile } from '../../src/kernels/matmul.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';

process.env.GALLIVM_PERF ??= 'nopt'; // as matmul.test.ts: lavapipe compiles these faster unoptimized
const rng = makeRng();
const REG_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' };

interface Case { M: number; N: number; K: number; outer: number; batch: number; groupB: number; transB?: boolean; tile?: MatmulTile; precision?: 'f32' | 'f16' }

/** outer x batch products, B shared by groups; padding between every matrix so a wrong stride reads other values. */
async function check(gpu: Gpu, c: Case): Promise<string[]> {
  const { M, N, K, outer, batch, groupB } = c;
  const transB = c.transB ?? false;
  const nB = batch / groupB;
  const sA = M * K + 3; const sB = K * N + 5; const sC = M * N + 2;
  const oA = batch * sA + 7; const oB = nB * sB + 1; const oC = batch * sC + 4;
  const a = Float32Array.from(rng.array(outer * oA)); const b = Float32Array.from(rng.array(outer * oB));
  const t = (d: Float32Array) => gpu.tensor([d.length], d);
  const ta = t(a); const tb = t(b); const tc = t(new Float32Array(outer * oC).fill(99));
  const args: MatmulArgs = { a: ta, b: tb, c: tc, M, N, K, transB, batch, groupB, strideA: sA, strideB: sB, strideC: sC,
    outer, outerStrideA: oA, outerStrideB: oB, outerStrideC: oC, precision: c.precision ?? 'f32', ...(c.tile ? { tile: c.tile } : {}) };
  const names = matmulKernels(gpu, args);
  matmul(gpu, args);
  const got = await gpu.readF32(tc);
  gpu.pool.release(ta, tb, tc);
  const f16 = c.precision === 'f16';
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < batch; i++) {
      const g = Math.floor(i / groupB);
      const want = matmulRef({ a: a.subarray(o * oA + i * sA, o * oA + i * sA + M * K), b: b.subarray(o * oB + g * sB, o * oB + g * sB + K * N),
        M, N, K, transB, f16 });
      const at = o * oC + i * sC;
      expect(relErr(got.subarray(at, at + M * N), want), `outer ${o} product ${i} (${names.join(' ')})`).toBeLessThan(f16 ? 3e-3 : 1e-5);
      if (at + M * N < got.length) expect(got[at + M * N], 'the gap after C').toBe(99);
    }
  }
  return names;
}

describe(`matmul with B shared by groups of products (seed ${rng.seed})`, () => {
  it('simple and register kernels, both batch levels, B as stored and transposed', async () => {
    const gpu = await getGpu();
    expect((await check(gpu, { M: 37, N: 29, K: 21, outer: 2, batch: 6, groupB: 3 }))[0]).toMatch(/_gb3$/);
    await check(gpu, { M: 19, N: 33, K: 40, outer: 3, batch: 4, groupB: 4, transB: true });
    expect((await check(gpu, { M: 70, N: 20, K: 36, outer: 2, batch: 4, groupB: 2, tile: REG_64 }))[0]).toMatch(/^matmul_reg_.*_gb2$/);
    // groupB 1 is the plain batched product, with its kernel.
    expect((await check(gpu, { M: 9, N: 10, K: 11, outer: 1, batch: 3, groupB: 1 }))[0]).not.toMatch(/_gb/);
  });

  // Natively only: the tensor-core kernel takes B's offset from the same WGSL as the others
  // (batchOffsetsWgsl), and an emulated pipeline costs lavapipe ~25 s to compile (the suite's time).
  it('tensor-core kernel (on an f16 subgroup-matrix GPU)', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.smxF16) { ctx.skip(); return; }
    const names = await check(gpu, { M: 40, N: 32, K: 32, outer: 2, batch: 4, groupB: 2, transB: true, tile: SMX_64, precision: 'f16' });
    expect(names[0]).toMatch(/^matmul_smx_.*_gb2/);
  });

  it('over the binding limit: whole groups apart, one group into two that read its B, then along the matrices', async () => {
    const gpu = await getGpu();
    // 6 KiB windows: A (8 x ~(24 x 24)) and C need several splits; each half keeps whole groups.
    const names = await withBindingLimit(gpu, 6144, () => check(gpu, { M: 24, N: 24, K: 24, outer: 1, batch: 8, groupB: 4 }));
    expect(names.length).toBeGreaterThan(2);
  });

  it('refuses a group that does not divide the batch', async () => {
    const gpu = await getGpu();
    const x = gpu.tensor([64], new Float32Array(64));
    expect(() => matmul(gpu, { a: x, b: x, c: x, M: 2, N: 2, K: 2, batch: 6, groupB: 4, strideA: 4, strideB: 4, strideC: 4 })).toThrow(/groupB 4 must be a whole number dividing the batch 6/);
    expect(() => matmul(gpu, { a: x, b: x, c: x, M: 2, N: 2, K: 2, batch: 3, groupB: 0, strideA: 4, strideB: 4, strideC: 4 })).toThrow(/groupB 0/);
    gpu.pool.release(x);
  });
});
