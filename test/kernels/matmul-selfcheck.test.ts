// The tensor-core matmul's self-check (matmul-selfcheck.ts): its judge on products right and wrong
// (float64, no GPU), the whole check on the rule's 64x64 tiling with the tensor-core kernels (natively
// on a tensor-core GPU, emulated on lavapipe), what it decides when tilings fail (a stand-in runner
// reports the failures), and that an excluded tiling leaves the tuner's candidates.
import { describe, expect, it } from 'vitest';
import { getGpu, withTensorCores } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { checkTensorCoreMatmul, checkedPrecision, judgeCase, runTilings, smxCheckCases, type SmxCheckCase } from '../../src/kernels/matmul-selfcheck.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { roundF16 } from '../../src/kernels/absmax.ref.js';
import { excludeTiling, matmulCandidates, matmulKernels, resetTensorCoreFindings, smxSafe, smxTilingFits, splitForms, useSafeTensorCoreForms, SIMPLE_64, SMX_128, SMX_64, SMX_CANDIDATES } from '../../src/kernels/matmul.js';
import { tileName, type MatmulTile } from '../../src/kernels/matmul-shared.js';
import { Tuner } from '../../src/engine/tuner.js';
import type { Gpu } from '../../src/engine/gpu.js';

process.env.GALLIVM_PERF ??= 'nopt'; // lavapipe compiles the emulated kernels faster (matmul-f16.test.ts)
const rng = makeRng();
const normals = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/**
 * The same device as an adapter with native tensor cores and a tuner sees it: what the self-check and
 * the candidate list do there (emulated tensor cores are never tuned). Nothing is dispatched through it.
 */
const asNativeTuned = (gpu: Gpu): Gpu =>
  Object.create(gpu, { smxMode: { get: () => 'native' }, tuner: { value: new Tuner(gpu.device) } }) as Gpu;

/** Inputs for case c and the product f16-rounded operands give (what correct tensor cores return). */
function roundedProduct(c: SmxCheckCase) {
  const a = normals(c.M * c.K); const b = normals(c.K * c.N); const bias = c.bias ? normals(c.N) : undefined;
  const c0 = c.accumulate ? normals(c.M * c.N) : new Float32Array(c.M * c.N).fill(NaN);
  const want = matmulRef({ a, b, bias, c: c0, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB,
    accumulate: c.accumulate, alpha: c.alpha, f16: true, lowerA: c.causal === 'lowerA' });
  return { a, b, bias, c0, got: Float32Array.from(want) };
}

describe(`tensor-core matmul self-check (seed ${rng.seed})`, () => {
  it('judges f16-rounded products right, and a missing bias, a lost accumulate, a NaN, a wrong row wrong', () => {
    const [withBias, accumulating] = smxCheckCases(SMX_64, true);
    for (const c of [withBias, accumulating]) {
      const { a, b, bias, c0, got } = roundedProduct(c);
      expect(judgeCase(c, a, b, bias, c0, got), c.what).toBeUndefined();
      // Operands rounded the other way where WGSL may (up to 2^-10 relative each): still right.
      const up = (x: Float32Array) => Float32Array.from(x, (v) => roundF16(v) * (1 + 2 ** -11));
      const other = matmulRef({ a: up(a), b: up(b), bias, c: c0, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, accumulate: c.accumulate, alpha: c.alpha });
      expect(judgeCase(c, a, b, bias, c0, Float32Array.from(other)), `${c.what}, rounded up`).toBeUndefined();
      const nan = Float32Array.from(got); nan[rng.int(nan.length)] = NaN;
      expect(judgeCase(c, a, b, bias, c0, nan)).toMatch(/not finite/);
      const row = Float32Array.from(got); const m = rng.int(c.M);
      row.copyWithin(m * c.N, ((m + 1) % c.M) * c.N, ((m + 1) % c.M + 1) * c.N);
      expect(judgeCase(c, a, b, bias, c0, row)).toMatch(/times the f16 bound/);
    }
    {
      const { a, b, bias, c0 } = roundedProduct(withBias);
      const noBias = matmulRef({ a, b, M: withBias.M, N: withBias.N, K: withBias.K, transB: true, f16: true });
      expect(judgeCase(withBias, a, b, bias, c0, Float32Array.from(noBias))).toMatch(/^x W\^T with a bias: .* times the f16 bound at \[0, /);
    }
    {
      const { a, b, c0 } = roundedProduct(accumulating);
      const lost = matmulRef({ a, b, M: accumulating.M, N: accumulating.N, K: accumulating.K, alpha: 0.5, f16: true, scaleA: true });
      expect(judgeCase(accumulating, a, b, undefined, c0, Float32Array.from(lost))).toMatch(/times the f16 bound/);
    }
  });

  it("compares a 'lowerC' product on C's lower triangle only, and takes A's upper part of a 'lowerA' one as 0", () => {
    const c: SmxCheckCase = { what: 'scores', M: 37, N: 37, K: 16, transB: true, causal: 'lowerC' };
    const { a, b, c0, got } = roundedProduct(c);
    got[3] = NaN; // (0, 3): above the diagonal
    expect(judgeCase(c, a, b, undefined, c0, got)).toBeUndefined();
    got[3 * 37] = NaN; // (3, 0): below it
    expect(judgeCase(c, a, b, undefined, c0, got)).toMatch(/not finite/);
    const pv: SmxCheckCase = { what: 'P V', M: 21, N: 8, K: 21, causal: 'lowerA' };
    const r = roundedProduct(pv);
    for (let i = 0; i < r.a.length; i++) if (i % 21 > Math.floor(i / 21)) r.a[i] = 1e3; // as the check fills it
    expect(judgeCase(pv, r.a, r.b, undefined, r.c0, r.got)).toBeUndefined();
    const full = matmulRef({ a: r.a, b: r.b, M: 21, N: 8, K: 21, f16: true });
    expect(judgeCase(pv, r.a, r.b, undefined, r.c0, Float32Array.from(full))).toMatch(/times the f16 bound/);
  });

  it('records and judges every case right: all on the f32 kernels with f16 operands, the first on the tensor-core kernels', async () => {
    const gpu = await getGpu();
    // The recording (strides, shared B, causal fills, copies, the split) and the judge, on kernels
    // that lavapipe compiles in a fraction of a second.
    const simple = await runTilings(gpu, [SIMPLE_64], [SIMPLE_64]);
    expect(simple.get(SIMPLE_64)).toEqual({ plain: [], split: [] });
    expect(smxCheckCases(SIMPLE_64, true).map((c) => c.what)).toHaveLength(7);
    // The tensor-core kernels: natively the whole check over every tiling; emulated (lavapipe
    // compiles each such pipeline in ~10 s; matmul-f16.test.ts checks their forms) the first case.
    const tc = await withTensorCores(gpu, async (emulated) => {
      try {
        if (!emulated) return await checkTensorCoreMatmul(gpu, SMX_CANDIDATES);
        return await runTilings(gpu, [SMX_64], [], (c) => c.what === 'x W^T with a bias');
      } finally { resetTensorCoreFindings(gpu); }
    });
    if (!tc) return; // no f16 or subgroups here
    if (tc.result instanceof Map) expect(tc.result.get(SMX_64)).toEqual({ plain: [], split: [] });
    else expect(tc.result).toMatchObject({ usable: true, safe: false, excluded: [], why: [] });
  }, 240_000);

  it('leaves failing candidates out, turns on the safe forms for a failing rule, and falls back to f32 when they fail too', async (ctx) => {
    const gpu = await getGpu();
    const other = SMX_CANDIDATES[2];
    type Found = Map<MatmulTile, { plain: string[]; split: string[] }>;
    const runner = (fail: (t: MatmulTile, safe: boolean) => { plain?: string[]; split?: string[] }) =>
      async (g: Gpu, tilings: readonly MatmulTile[]): Promise<Found> =>
        new Map(tilings.map((t) => { const f = fail(t, smxSafe(g)); return [t, { plain: f.plain ?? [], split: f.split ?? [] }]; }));
    const ran = await withTensorCores(gpu, async () => {
      try {
        const candidatesOnly = await checkTensorCoreMatmul(gpu, [SMX_64, other], runner((t) => (t === other ? { plain: ['x W^T with a bias: bad'] } : { split: ['K split in two: bad'] })));
        expect(candidatesOnly).toMatchObject({ usable: true, safe: false, why: [] });
        expect(candidatesOnly.excluded).toEqual([`${tileName(SMX_64)} split along K (K split in two: bad)`, `${tileName(other)} (x W^T with a bias: bad)`]);
        resetTensorCoreFindings(gpu);
        const safeOk = await checkTensorCoreMatmul(gpu, [SMX_64], runner((_, safe) => (safe ? {} : { plain: ['dy W: bad'] })));
        expect(safeOk).toMatchObject({ usable: true, safe: true, why: [`${tileName(SMX_64)}: dy W: bad`] });
        expect(smxSafe(gpu)).toBe(true);
        resetTensorCoreFindings(gpu);
        const none = await checkTensorCoreMatmul(gpu, [SMX_64], runner(() => ({ plain: ['bad'] })));
        expect(none).toMatchObject({ usable: false, safe: true });
        expect(none.why).toEqual([`${tileName(SMX_64)}: bad`, `${tileName(SMX_64)} (safe forms): bad`]);
        // What a run does with that: its products run f32, with a note and a warning.
        resetTensorCoreFindings(gpu);
        const lines: string[] = [];
        const saved = process.env.SRK_SMX_CHECK; const warn = console.warn; const warned: string[] = [];
        process.env.SRK_SMX_CHECK = '1'; console.warn = (m: string) => { warned.push(m); };
        gpu.matmulPrecision = 'f16';
        try {
          const after = await checkedPrecision(gpu, { precision: 'mixed' }, { precision: 'mixed', matmul: 'f16', description: 'f16' }, (l) => lines.push(l),
            (g) => checkTensorCoreMatmul(g, [SMX_64], runner(() => ({ plain: ['bad'] }))));
          expect(after.main).toMatchObject({ precision: 'f32', note: expect.stringMatching(/failed its check/) });
          expect(after.aug).toMatchObject({ precision: 'f32', matmul: 'f32' });
          expect(gpu.matmulPrecision).toBe('f32');
          expect(lines).toEqual([expect.stringMatching(/^tensor-core matmul: 1 tilings checked .* fail even in their safe forms/)]);
          expect(warned).toEqual([expect.stringMatching(/running f32/)]);
          // SRK_SMX_CHECK=0: no check, the choices as they were.
          process.env.SRK_SMX_CHECK = '0'; gpu.matmulPrecision = 'f16';
          const skipped = await checkedPrecision(gpu, { precision: 'mixed' }, undefined, (l) => lines.push(l), () => { throw new Error('not skipped'); });
          expect(skipped.main.precision).toBe('mixed');
          process.env.SRK_SMX_CHECK = 'yes';
          await expect(checkedPrecision(gpu, { precision: 'mixed' }, undefined, () => {})).rejects.toThrow(/SRK_SMX_CHECK=yes: expected 0 or 1/);
        } finally {
          if (saved === undefined) delete process.env.SRK_SMX_CHECK; else process.env.SRK_SMX_CHECK = saved;
          console.warn = warn; gpu.matmulPrecision = 'f32';
        }
      } finally {
        resetTensorCoreFindings(gpu);
      }
    });
    if (!ran) ctx.skip(); // no f16 or subgroups here
  });

  it('checks the rule tilings alone where no tuner picks others, and every candidate (splits too) where one does', async (ctx) => {
    const gpu = await getGpu();
    const ran = await withTensorCores(gpu, async () => {
      const seen: { tilings: string[]; rules: string[] }[] = [];
      const runner = async (_: Gpu, tilings: readonly MatmulTile[], rules: readonly MatmulTile[]) => {
        seen.push({ tilings: tilings.map(tileName), rules: rules.map(tileName) });
        return new Map(tilings.map((t) => [t, { plain: [] as string[], split: [] as string[] }]));
      };
      const native = asNativeTuned(gpu);
      try {
        expect(await checkTensorCoreMatmul(gpu, undefined, runner)).toMatchObject({ usable: true, tilings: 2 });
        expect(await checkTensorCoreMatmul(native, undefined, runner)).toMatchObject({ usable: true });
        const fit = SMX_CANDIDATES.filter((t) => smxTilingFits(native, t)).map(tileName);
        expect(seen).toEqual([
          { tilings: [tileName(SMX_128), tileName(SMX_64)], rules: [] },
          { tilings: fit, rules: [tileName(SMX_128), tileName(SMX_64)] },
        ]);
        expect(fit.length).toBeGreaterThan(2);
      } finally {
        resetTensorCoreFindings(gpu); resetTensorCoreFindings(native);
      }
    });
    if (!ran) ctx.skip(); // no f16 or subgroups here
  });

  it("an excluded tiling and the rule's split forms leave the tuner's candidates; the rule stays", async (ctx) => {
    const gpu = await getGpu();
    const ran = await withTensorCores(gpu, async () => {
      const native = asNativeTuned(gpu);
      const a = gpu.tensor([1536 * 1024]); const b = gpu.tensor([1024 * 1024]); const c = gpu.tensor([1536 * 1024]);
      const args = { a, b, c, M: 1536, N: 1024, K: 1024, precision: 'f16' as const };
      try {
        const before = matmulCandidates(native, args);
        expect(before.length).toBeGreaterThan(3);
        const rule = before[0];
        const dropped = SMX_CANDIDATES.find((t) => t !== SMX_64 && t !== SMX_128 && before.includes(tileName(t)))!;
        expect(before.some((n) => n.includes('split'))).toBe(true);
        excludeTiling(native, dropped);
        for (const s of [...splitForms(SMX_64), ...splitForms(SMX_128)]) excludeTiling(native, s);
        const after = matmulCandidates(native, args);
        expect(after[0]).toBe(rule);
        expect(after).not.toContain(tileName(dropped));
        expect(after.some((n) => n.includes('split'))).toBe(false);
        expect(after.length).toBe(before.length - 1 - before.filter((n) => n.includes('split')).length);
      } finally {
        resetTensorCoreFindings(native);
        gpu.pool.release(a, b, c);
      }
    });
    if (!ran) ctx.skip(); // no f16 or subgroups here
  });
});

describe('the safe tensor-core forms (matmul.ts useSafeTensorCoreForms)', () => {
  it('one stage, no direct stores, scales reduced without subgroups; the default forms again after', async (ctx) => {
    const gpu = await getGpu();
    const ran = await withTensorCores(gpu, async () => {
      const a = gpu.tensor([128 * 96]); const b = gpu.tensor([96 * 128]); const c = gpu.tensor([128 * 128]); const bias = gpu.tensor([128]);
      const args = { a, b, c, bias, M: 128, N: 128, K: 96, transB: true, tile: { ...SMX_64, stages: 2 as const }, precision: 'f16' as const, scaleA: true };
      try {
        const names = () => matmulKernels(gpu, args).filter((n) => n.startsWith('matmul_smx'));
        expect(names()).toEqual([expect.stringMatching(/_s2_.*_direct.*_sg\d+(?!\d|_wgscale)/)]);
        useSafeTensorCoreForms(gpu);
        expect(names()).toEqual([expect.stringMatching(/_s1_/)]);
        expect(names()[0]).not.toMatch(/_direct/);
        expect(names()[0]).toMatch(/_wgscale/);
        useSafeTensorCoreForms(gpu, false);
        expect(names()).toEqual([expect.stringMatching(/_s2_.*_direct/)]);
      } finally {
        resetTensorCoreFindings(gpu);
        gpu.pool.release(a, b, c, bias);
      }
    });
    if (!ran) ctx.skip(); // no f16 or subgroups here
  });
});
