import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { chooseTile, matmul, matmulCandidates, matmulKernels, tileName, type MatmulTile } from '../../src/kernels/matmul.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { Tensor } from '../../src/engine/tensor.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { Tuner } from '../../src/engine/tuner.js';

// lavapipe compiles the many tilings and layouts here about twice as fast without LLVM's optimization
// passes (cold shader cache: this file 262 -> ~150 s in the full suite); set before this file's GPU
// device (its own process) loads the driver. No effect on other adapters.
process.env.GALLIVM_PERF ??= 'nopt';
const rng = makeRng();
const f32 = (x: Float64Array) => Float32Array.from(x);
const reg = (BM: number, BN: number, BK: number, TM: number, TN: number, x: Partial<MatmulTile> = {}): MatmulTile =>
  ({ BM, BN, BK, TM, TN, kind: 'reg', ...x });

/**
 * One product through `tile` with operands stored at element offsets off = [A, B, C] (bias at C's
 * offset) inside larger tensors; with `epilogue`, bias + accumulate + alpha -0.5. Checks the C window
 * against float64 and that C outside it is untouched; `path` must match every kernel name used
 * (e.g. /_vvv_full$/: vec4 A, B, C on full tiles; /_sss$/: scalar and bounds-checked).
 */
async function checkTile(gpu: Gpu, tile: MatmulTile, M: number, N: number, K: number, transA: boolean, transB: boolean,
  o: { off?: [number, number, number]; epilogue?: boolean; path?: RegExp } = {}): Promise<void> {
  const [offA, offB, offC] = o.off ?? [0, 0, 0];
  const pad = (off: number, x: Float64Array, extra: number) => { const t = new Float32Array(off + x.length + extra); t.set(f32(x), off); return t; };
  const a = rng.array(M * K); const b = rng.array(K * N); const bias = rng.array(N);
  const cAll = f32(rng.array(offC + M * N + 5)); const c0 = Float64Array.from(cAll.subarray(offC, offC + M * N));
  const ta = gpu.tensor([offA + M * K + 3], pad(offA, a, 3)); const tb = gpu.tensor([offB + K * N + 1], pad(offB, b, 1));
  const tc = gpu.tensor([cAll.length], cAll); const tbias = gpu.tensor([offC + N + 2], pad(offC, bias, 2));
  const args = {
    a: ta, b: tb, c: tc, M, N, K, transA, transB, offA, offB, offC, tile,
    ...(o.epilogue ? { bias: tbias, offBias: offC, accumulate: true, alpha: -0.5 } : {}),
  };
  const what = `${tileName(tile)} ${M}x${N}x${K} transA=${transA} transB=${transB} off=${[offA, offB, offC]}`;
  const names = matmulKernels(gpu, args);
  if (o.path) for (const n of names) expect(n, what).toMatch(o.path);
  matmul(gpu, args);
  const got = await gpu.readF32(tc);
  // Same object shapes as the calls above: more shapes make the reference's hot loop megamorphic (3x slower).
  const want = o.epilogue
    ? matmulRef({ a, b, c: f32(c0), bias, M, N, K, transA, transB, accumulate: true, alpha: -0.5 })
    : matmulRef({ a, b, M, N, K, transA, transB });
  expect(relErr(got.subarray(offC, offC + M * N), want), what).toBeLessThan(1e-5);
  const outside = [...got.subarray(0, offC), ...got.subarray(offC + M * N)];
  expect(outside, what).toEqual([...cAll.subarray(0, offC), ...cAll.subarray(offC + M * N)]);
  gpu.pool.release(ta, tb, tc, tbias);
}

describe(`matmul (seed ${rng.seed})`, () => {
  const shapes: [number, number, number][] = [[1, 1, 1], [17, 33, 65], [257, 31, 129], [64, 64, 16], [3, 130, 7]];
  for (const [M, N, K] of shapes) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`${M}x${N}x${K} transA=${transA} transB=${transB}, bias, accumulate, alpha`, async () => {
          const gpu = await getGpu();
          const a = rng.array(M * K); const b = rng.array(K * N); const c0 = rng.array(M * N); const bias = rng.array(N);
          const ta = gpu.tensor([M * K], f32(a)); const tb = gpu.tensor([K * N], f32(b));
          const tc = gpu.tensor([M * N], f32(c0)); const tbias = gpu.tensor([N], f32(bias));
          // Errors against the size of the summed terms (|A| |B| + |C| + |bias|): f32 sums that cancel
          // to a tiny result (a 1x1 output can) keep an absolute error of that size.
          const abs = (x: Float64Array) => x.map(Math.abs);
          const terms = matmulRef({ a: abs(a), b: abs(b), c: f32(abs(c0)), bias: abs(bias), M, N, K, transA, transB, accumulate: true, alpha: 1 });
          const scaledErr = (got: Float32Array, want: Float64Array) => relErr(got, want) * Math.max(...want.map(Math.abs)) / Math.max(...terms);
          matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transA, transB });
          expect(scaledErr(await gpu.readF32(tc), matmulRef({ a, b, M, N, K, transA, transB }))).toBeLessThan(1e-6);
          gpu.upload(tc, f32(c0));
          matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transA, transB, bias: tbias, accumulate: true, alpha: -0.5 });
          const want = matmulRef({ a, b, c: f32(c0), bias, M, N, K, transA, transB, accumulate: true, alpha: -0.5 });
          expect(scaledErr(await gpu.readF32(tc), want)).toBeLessThan(1e-6);
          gpu.pool.release(ta, tb, tc, tbias);
        });
      }
    }
  }

  it('the large-GPU tiling (128x128, 8x8 per thread) on awkward and aligned shapes', async () => {
    const gpu = await getGpu();
    const tile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8 };
    for (const [M, N, K, transA, transB] of [[129, 257, 33, false, true], [256, 128, 64, true, false]] as const) {
      const a = rng.array(M * K); const b = rng.array(K * N);
      const ta = gpu.tensor([M * K], f32(a)); const tb = gpu.tensor([K * N], f32(b)); const tc = gpu.tensor([M * N]);
      matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transA, transB, tile });
      expect(relErr(await gpu.readF32(tc), matmulRef({ a, b, M, N, K, transA, transB }))).toBeLessThan(1e-5);
      gpu.pool.release(ta, tb, tc);
    }
  });

  it('a simple tiling whose staging is not a whole number of passes over the threads (48x32x8/4x4: 96 threads, 256 of B)', async () => {
    const gpu = await getGpu();
    await checkTile(gpu, { BM: 48, BN: 32, BK: 8, TM: 4, TN: 4 }, 50, 70, 21, false, true, { epilogue: true });
    await checkTile(gpu, { BM: 48, BN: 32, BK: 8, TM: 4, TN: 4 }, 96, 64, 16, true, false, { path: /_full$/ });
  });

  // Register-tiled kernels ('reg'). Their unrolled pipelines take ~1.5 s (64x64) to ~5-12 s (128x128)
  // to compile on lavapipe, so the four transposes x {scalar, vec4, full} grid runs on the 64x64 tiling
  // (the generator's layout code is the same for every size) and each other tiling on one or two shapes.
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`reg 64x64x16/4x4 transA=${transA} transB=${transB}: scalar, vec4 and full-tile paths, offsets, epilogue`, async () => {
        const gpu = await getGpu();
        const t = reg(64, 64, 16, 4, 4);
        await checkTile(gpu, t, 1, 1, 1, transA, transB, { path: /_sss$/ });
        await checkTile(gpu, t, 17, 33, 65, transA, transB, { path: /_sss$/, epilogue: true });
        // Offsets that are not multiples of 4 force the scalar path even on an aligned shape.
        await checkTile(gpu, t, 20, 36, 24, transA, transB, { off: [1, 2, 3], path: /_sss$/, epilogue: true });
        await checkTile(gpu, t, 68, 36, 20, transA, transB, { path: /_vvv$/, epilogue: true });
        await checkTile(gpu, t, 128, 64, 32, transA, transB, { path: /_vvv_full$/ });
        await checkTile(gpu, t, 64, 64, 16, transA, transB, { off: [4, 8, 12], path: /_vvv_full$/, epilogue: true });
        // K % 4 != 0 with M, N % 4 == 0: vec4 only for the operands whose contiguous dimension is M or N.
        await checkTile(gpu, t, 36, 40, 21, transA, transB, {
          path: new RegExp(`_${transA ? 'v' : 's'}${transB ? 's' : 'v'}v$`), epilogue: true });
      });
    }
  }

  // 128x128 pipelines with the K step unrolled take ~10 s each to compile on a cold lavapipe; the
  // rolled-K form (same generator, kk a loop variable instead of a constant) takes ~3 s. So the
  // unrolled wide forms run on full tiles once, and otherwise in the nt layout on partial tiles, as
  // the tuner test (last in the file) runs every candidate: it then reuses them. The rest rolled.
  it('reg 128x128x8/8x8 (chooseTile\'s pick for big GPUs): full-tile vec4 and checked vec4 unrolled; checked scalar', async () => {
    const gpu = await getGpu();
    await checkTile(gpu, reg(128, 128, 8, 8, 8), 256, 128, 64, true, true, { path: /_s2_vvv_full$/, epilogue: true });
    await checkTile(gpu, reg(128, 128, 8, 8, 8), 132, 260, 36, false, true, { path: /_s2_vvv$/, epilogue: true }); // nt: the tuner test's kernel
    const rolled = reg(128, 128, 8, 8, 8, { unrollK: false });
    await checkTile(gpu, rolled, 132, 260, 36, false, false, { path: /_s2_rolled_vvv$/, epilogue: true });
    // Checked scalar loads with two quads per thread per operand.
    await checkTile(gpu, rolled, 129, 257, 33, true, false, { path: /_s2_rolled_sss$/, epilogue: true });
  });

  it('the other reg tilings of the bench sweep (rolled-K, 1-stage and scalar at 128; 1-stage and scalar also on 64x64)', async () => {
    const gpu = await getGpu();
    await checkTile(gpu, reg(128, 128, 16, 8, 8, { unrollK: false }), 256, 128, 48, true, false, { path: /_vvv_full$/, epilogue: true });
    await checkTile(gpu, reg(128, 64, 16, 8, 4), 140, 100, 48, false, true, { path: /_vvv$/ });
    await checkTile(gpu, reg(64, 128, 16, 4, 8), 100, 140, 52, false, true, { path: /_vvv$/, epilogue: true });
    await checkTile(gpu, reg(128, 128, 16, 8, 8, { stages: 1, unrollK: false }), 128, 256, 32, true, false, { path: /_s1_rolled_vvv_full$/ });
    await checkTile(gpu, reg(64, 64, 16, 4, 4, { stages: 1 }), 17, 33, 65, false, false, { path: /_s1_sss$/, epilogue: true });
    await checkTile(gpu, reg(64, 64, 16, 4, 4, { vec4: false }), 128, 64, 32, false, true, { path: /_sss_full$/, epilogue: true });
    // Fewer quads than threads (64x8 per operand, 256 threads): the loads are guarded by thread index.
    await checkTile(gpu, reg(64, 64, 8, 4, 4), 72, 68, 44, true, true, { path: /_vvv$/, epilogue: true });
    // 8 x 4 lanes a warp: every output still owned by one thread, on partial and full tiles.
    await checkTile(gpu, reg(128, 128, 8, 8, 8, { lanes: '8x4' }), 130, 260, 36, false, true, { path: /_l8x4_vvv$/, epilogue: true });
    await checkTile(gpu, reg(64, 64, 16, 4, 4, { lanes: '8x4' }), 128, 64, 32, true, false, { path: /_l8x4_vvv_full$/, epilogue: true });
    // Scalar accumulators.
    await checkTile(gpu, reg(128, 128, 8, 8, 8, { scalarAcc: true }), 130, 132, 36, false, true, { path: /_sacc_vvv$/, epilogue: true });
    // The short-K tiling (the whole K of a head-size product in two 32-deep steps, one stage).
    await checkTile(gpu, reg(128, 128, 32, 8, 8, { stages: 1 }), 200, 132, 64, false, true, { path: /_s1_vvv$/, epilogue: true });
    // 8x16 per thread (128x256 tiles; with the lanes among the tuner test's candidates). In the tuner
    // test's layout (nt), as the lanes and scalar-accumulator tilings above, so that test compiles
    // fewer kernels of its own (on lavapipe each of these takes seconds to build).
    await checkTile(gpu, reg(128, 256, 8, 8, 16), 140, 268, 20, false, true, { path: /_vvv$/, epilogue: true });
    const t = gpu.tensor([64]); const tc = gpu.tensor([64]);
    expect(() => matmul(gpu, { a: t, b: t, c: tc, M: 4, N: 4, K: 4, tile: reg(64, 16, 16, 4, 4, { lanes: '8x4' }) })) // a 4 x 16 grid
      .toThrow(/whole 8 x 4 blocks/);
    gpu.pool.release(t, tc);
  });

  // Split-K (matmul-splitk.ts): K chunks of whole BK slices as one batched product, a shorter last
  // chunk, then the ordered sum with the epilogue. K = 203 in 4: three chunks of 64 and one of 11;
  // K = 20: one of 16 and one of 4; K = 5: a single short chunk.
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`split-K transA=${transA} transB=${transB}: chunks, a short last chunk, offsets, epilogue`, async () => {
        const gpu = await getGpu();
        const split = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, splitK: 4 };
        await checkTile(gpu, split, 37, 70, 203, transA, transB, { epilogue: true });
        await checkTile(gpu, split, 20, 36, 20, transA, transB, { off: [1, 2, 3], epilogue: true });
        await checkTile(gpu, split, 9, 5, 5, transA, transB, { epilogue: true });
        await checkTile(gpu, split, 64, 64, 256, transA, transB);
      });
    }
  }

  it('split-K: kernels dispatched, register tiles with vec4 chunks, and refusals', async () => {
    const gpu = await getGpu();
    const split8 = { ...reg(64, 64, 16, 4, 4), splitK: 8 };
    expect(tileName(split8)).toBe('reg 64x64x16/4x4 split-K 8');
    const ta = gpu.tensor([64 * 256]); const tb = gpu.tensor([256 * 64]); const tc = gpu.tensor([64 * 64]);
    // 256 = 8 chunks of 32: one batched product on full vec4 tiles, then the reduction.
    expect(matmulKernels(gpu, { a: ta, b: tb, c: tc, M: 64, N: 64, K: 256, transA: true, tile: split8 }))
      .toEqual(['matmul_reg_tn_64x64x16_4x4_s2_vvv_full', 'matmul_splitk_reduce']);
    await checkTile(gpu, split8, 68, 36, 300, true, false, { path: /^matmul_reg_tn_64x64x16_4x4_s2_vvv|^matmul_splitk_reduce$/, epilogue: true });
    expect(() => matmul(gpu, { a: ta, b: tb, c: tc, M: 8, N: 8, K: 16, batch: 2, strideA: 128, strideB: 128, strideC: 64,
      tile: { ...split8, splitK: 2 } })).toThrow(/split-K 2 splits unbatched products only/);
    gpu.pool.release(ta, tb, tc);
  });

  it('the tuner\'s candidates on a GPU: a long-K product too small for 128x128 tiles also tries them split along K', async () => {
    const real = await getGpu();
    // The GPU rule (chooseTile: 64x64 register tiles for few output tiles), with a tuner attached.
    const gpu = Object.create(real, { isCpuAdapter: { value: false }, tuner: { value: new Tuner(real.device) } }) as Gpu;
    const M = 256; const N = 256;
    const ta = real.tensor([M * 4100]); const tb = real.tensor([4100 * N]); const tc = real.tensor([M * N]);
    const names = (K: number) => matmulCandidates(gpu, { a: ta, b: tb, c: tc, M, N, K, transA: true });
    const long = names(4100);
    expect(long[0]).toBe('reg 64x64x16/4x4');
    expect(long.slice(1, 6)).toEqual(['reg 64x64x16/4x4 split-K 2', 'reg 64x64x16/4x4 split-K 4', 'reg 64x64x16/4x4 split-K 8',
      'reg 128x128x8/8x8 split-K 2', 'reg 128x128x8/8x8 split-K 4']);
    expect(names(2048).filter((n) => n.startsWith('reg 128x128x8/8x8 split'))).toEqual([]);
    real.pool.release(ta, tb, tc);
    // That form computes the product (transposed A as the weight gradients take it, a short last chunk).
    await checkTile(real, { ...reg(128, 128, 8, 8, 8), splitK: 2 }, 70, 36, 4100, true, false, { epilogue: true });
  });

  it('reg kernel: batched with strides and leading dimensions, scalar and vec4', async () => {
    const gpu = await getGpu();
    const t = reg(64, 64, 16, 4, 4);
    for (const [M, N, K, lda, ldb, ldc, pad, path] of [[5, 6, 7, 9, 8, 10, 3, /_sss$/], [8, 12, 16, 20, 16, 16, 4, /_vvv$/]] as const) {
      const B = 3; const sA = M * lda + pad; const sB = N * ldb + pad; const sC = M * ldc + pad;
      const a = f32(rng.array(B * sA)); const b = f32(rng.array(B * sB)); const c = f32(rng.array(B * sC));
      const ta = gpu.tensor([B * sA], a); const tb = gpu.tensor([B * sB], b); const tc = gpu.tensor([B * sC], c);
      const args = { a: ta, b: tb, c: tc, M, N, K, transB: true, lda, ldb, ldc, batch: B, strideA: sA, strideB: sB, strideC: sC, tile: t };
      for (const n of matmulKernels(gpu, args)) expect(n).toMatch(path);
      matmul(gpu, args);
      const got = await gpu.readF32(tc);
      const want = Float64Array.from(c);
      for (let z = 0; z < B; z++) {
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a[z * sA + m * lda + k] * b[z * sB + n * ldb + k];
          want[z * sC + m * ldc + n] = s;
        }
      }
      expect(relErr(got, want)).toBeLessThan(1e-5);
      gpu.pool.release(ta, tb, tc);
    }
  });

  it('padded A and C (score rows of awkward width, 16-float rows): vec4 whatever the width, the pad never in the result', async () => {
    const gpu = await getGpu();
    const ld16 = (n: number) => Math.ceil(n / 16) * 16;
    const W = 37; const D = 16; const R = 20; const B = 2; // W: the score rows' width; D: the head size; R: query rows
    // [padA, transA, M, N, K, rows x ld of A, of C]: P V (A's rows W wide), dS^T Q (A transposed, its
    // rows W wide), Q K^T (C's rows W wide).
    const cases = [
      { what: 'P V', padA: true, padC: false, transA: false, transB: false, M: R, N: D, K: W, lda: ld16(W), ldb: D, ldc: D, aRows: R, bRows: W, cRows: R },
      { what: 'dS^T Q', padA: true, padC: false, transA: true, transB: false, M: W, N: D, K: R, lda: ld16(W), ldb: D, ldc: D, aRows: R, bRows: R, cRows: W },
      { what: 'Q K^T', padA: false, padC: true, transA: false, transB: true, M: R, N: W, K: D, lda: D, ldb: D, ldc: ld16(W), aRows: R, bRows: W, cRows: R },
    ];
    for (const tile of [reg(64, 64, 16, 4, 4), undefined]) {
      for (const precision of ['f32', 'f16'] as const) {
        for (const c of cases) {
          const sA = c.aRows * c.lda; const sB = c.bRows * c.ldb; const sC = c.cRows * c.ldc;
          // A's pad holds finite values other than 0 (the contract: finite), C's starts as garbage.
          const a = f32(rng.array(B * sA)); const b = f32(rng.array(B * sB)); const c0 = f32(rng.array(B * sC));
          const ta = gpu.tensor([B * sA], a); const tb = gpu.tensor([B * sB], b); const tc = gpu.tensor([B * sC], c0);
          const args = { a: ta, b: tb, c: tc, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, lda: c.lda, ldb: c.ldb, ldc: c.ldc,
            batch: B, strideA: sA, strideB: sB, strideC: sC, padA: c.padA, padC: c.padC, precision, ...(tile ? { tile } : {}) };
          const what = `${c.what} ${tile ? tileName(tile) : 'rule'} ${precision}`;
          // The padded operand moves as vec4 (reg kernels name A, B and C: _vvv; smx kernels A and B: _vv;
          // the simple kernel, the rule on CPU adapters, has no vec4 form).
          const names = matmulKernels(gpu, args);
          if (tile) expect(names.length, what).toBeGreaterThan(0);
          for (const n of names) if (tile || /^matmul_(reg|smx)_/.test(n)) expect(n, what).toMatch(/^matmul_(reg|smx)_.*_vvv?(_|$)/);
          matmul(gpu, args);
          const got = await gpu.readF32(tc);
          for (let z = 0; z < B; z++) {
            const want = new Float64Array(c.M * c.N); const gotC = new Float64Array(c.M * c.N);
            for (let m = 0; m < c.M; m++) for (let n = 0; n < c.N; n++) {
              let acc = 0;
              for (let k = 0; k < c.K; k++) {
                const av = a[z * sA + (c.transA ? k * c.lda + m : m * c.lda + k)];
                const bv = b[z * sB + (c.transB ? n * c.ldb + k : k * c.ldb + n)];
                acc += av * bv;
              }
              want[m * c.N + n] = acc; gotC[m * c.N + n] = got[z * sC + m * c.ldc + n];
            }
            expect(relErr(gotC, want), what).toBeLessThan(precision === 'f16' ? 2e-3 : 1e-5);
            // Outside the rows' quads nothing is written: the pad past them and other rows' space.
            for (let m = 0; m < c.cRows; m++) {
              for (let n = Math.ceil(c.N / 4) * 4; n < c.ldc; n++) expect(got[z * sC + m * c.ldc + n], what).toBe(c0[z * sC + m * c.ldc + n]);
            }
          }
          gpu.pool.release(ta, tb, tc);
        }
      }
    }
    // A padded C that is too narrow for its quads is refused.
    const t = gpu.tensor([64]);
    expect(() => matmul(gpu, { a: t, b: t, c: t, M: 2, N: 5, K: 2, ldc: 6, padC: true })).toThrow(/padded C needs a leading dimension of at least 8/);
    gpu.pool.release(t);
  });

  it('chooseTile: simple 64x64 on CPU adapters; reg on GPUs, 128x128 only when there are enough tiles', async () => {
    const cpu = { isCpuAdapter: true } as unknown as Gpu;
    expect(chooseTile(cpu, 4096, 4096).kind ?? 'simple').toBe('simple');
    const fake = { isCpuAdapter: false } as unknown as Gpu;
    expect(tileName(chooseTile(fake, 4096, 4096))).toBe('reg 128x128x8/8x8');
    expect(tileName(chooseTile(fake, 8192, 768))).toBe('reg 128x128x8/8x8');
    expect(tileName(chooseTile(fake, 768, 768))).toBe('reg 64x64x16/4x4');
  });

  // A Pythia-160m layer's widths over 256 tokens (the float64 reference of 512 tokens x 2304 cost
  // seconds of CPU per product, checking nothing more).
  it('model-like 256x768x2304 (x W^T and dW = dy^T x)', async () => {
    const gpu = await getGpu();
    const [M, N, K] = [256, 768, 2304];
    const a = rng.array(M * K); const b = rng.array(N * K);
    const ta = gpu.tensor([M, K], f32(a)); const tb = gpu.tensor([N, K], f32(b)); const tc = gpu.tensor([M, N]);
    matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transB: true });
    expect(relErr(await gpu.readF32(tc), matmulRef({ a, b, M, N, K, transB: true }))).toBeLessThan(1e-5);
    // dW: C [768, 2304] = A^T B with A stored [256, 768] (dy), B stored [256, 2304] (x)
    const tw = gpu.tensor([N, K]);
    const dy = rng.array(M * N); const tdy = gpu.tensor([M, N], f32(dy));
    matmul(gpu, { a: tdy, b: ta, c: tw, M: N, N: K, K: M, transA: true });
    expect(relErr(await gpu.readF32(tw), matmulRef({ a: dy, b: a, M: N, N: K, K: M, transA: true }))).toBeLessThan(1e-5);
    gpu.pool.release(ta, tb, tc, tw, tdy);
  });

  it('batched with strides and leading dimensions (attention-style views)', async () => {
    const gpu = await getGpu();
    // 3 batches of [5 x 7] x [7 x 6]^T read out of padded rows (ld 9 and 8), written with ldc 10.
    const B = 3; const M = 5; const N = 6; const K = 7; const lda = 9; const ldb = 8; const ldc = 10;
    const sA = M * lda + 2; const sB = N * ldb + 1; const sC = M * ldc + 3;
    const a = rng.array(B * sA); const b = rng.array(B * sB); const c = rng.array(B * sC);
    const ta = gpu.tensor([B * sA], f32(a)); const tb = gpu.tensor([B * sB], f32(b)); const tc = gpu.tensor([B * sC], f32(c));
    matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transB: true, lda, ldb, ldc, batch: B, strideA: sA, strideB: sB, strideC: sC });
    const got = await gpu.readF32(tc);
    const want = Float64Array.from(f32(c));
    for (let z = 0; z < B; z++) {
      for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += f32(a)[z * sA + m * lda + k] * f32(b)[z * sB + n * ldb + k];
        want[z * sC + m * ldc + n] = s;
      }
    }
    expect(relErr(got, want)).toBeLessThan(1e-5);
    gpu.pool.release(ta, tb, tc);
  });

  it('two batch levels (rows x heads, as attention-unfused.ts binds them), simple and reg kernels', async () => {
    const gpu = await getGpu();
    // 2 outer x 3 inner products of [5 x 7] x [6 x 7]^T: inner strides 9 (heads inside a token row),
    // outer strides past the inner span; C written with its own strides; gaps keep their values.
    const O = 2; const I = 3; const M = 5; const N = 6; const K = 7;
    const lda = 40; const ldb = 30; const ldc = 8;
    const [iA, iB, iC] = [9, 8, M * ldc + 1]; const [oA, oB, oC] = [M * lda + 5, N * ldb + 3, I * iC + 2];
    const a = f32(rng.array(O * oA)); const b = f32(rng.array(O * oB)); const c = f32(rng.array(O * oC));
    for (const tile of [undefined, reg(64, 64, 16, 4, 4)]) {
      const ta = gpu.tensor([O * oA], a); const tb = gpu.tensor([O * oB], b); const tc = gpu.tensor([O * oC], c);
      matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transB: true, lda, ldb, ldc, batch: I, strideA: iA, strideB: iB, strideC: iC,
        outer: O, outerStrideA: oA, outerStrideB: oB, outerStrideC: oC, tile });
      const got = await gpu.readF32(tc);
      const want = Float64Array.from(c);
      for (let o = 0; o < O; o++) for (let i = 0; i < I; i++) {
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
          let sum = 0;
          for (let k = 0; k < K; k++) sum += a[o * oA + i * iA + m * lda + k] * b[o * oB + i * iB + n * ldb + k];
          want[o * oC + i * iC + m * ldc + n] = sum;
        }
      }
      expect(relErr(got, want), tile ? tileName(tile) : 'rule').toBeLessThan(1e-5);
      gpu.pool.release(ta, tb, tc);
    }
  });

  it('operands larger than maxStorageBufferBindingSize are split (logits-, dW- and dx-shaped)', async (ctx) => {
    const gpu = await getGpu();
    // The point is the 128 MiB lavapipe limit; on a GPU with 2 GiB bindings the host arrays would be huge.
    if (gpu.maxBinding > 512 * 2 ** 20) ctx.skip();
    const K = 1024;
    const V = Math.ceil((gpu.maxBinding * 1.25) / (4 * K)); // rows so that [V, K] f32 exceeds one binding
    expect(V * K * 4).toBeGreaterThan(gpu.maxBinding);
    const M = 3;
    const w = new Float32Array(V * K); for (let i = 0; i < w.length; i++) w[i] = rng.normal();
    const x = f32(rng.array(M * K));
    const tw = gpu.tensor([V, K], w); const tx = gpu.tensor([M, K], x);
    // logits [M, V] = x W^T: B (transposed) is over the limit -> split along N.
    const tl = gpu.tensor([M, V]);
    matmul(gpu, { a: tx, b: tw, c: tl, M, N: V, K, transB: true });
    const logits = await gpu.readF32(tl);
    // Every output (the halves of a split meet at some column or row, and an off-by-one leaves one
    // unwritten), the worst one named.
    const worst = { err: 0, at: '' };
    const note = (err: number, at: string) => { if (!(err <= worst.err)) { worst.err = err; worst.at = at; } };
    for (let m = 0; m < M; m++) for (let n = 0; n < V; n++) {
      let s = 0; for (let k = 0; k < K; k++) s += x[m * K + k] * w[n * K + k];
      note(Math.abs(logits[m * V + n] - s), `logits[${m}, ${n}]`);
    }
    expect(worst.err, worst.at).toBeLessThan(1e-4 * Math.sqrt(K));
    // dx [M, K] = dlogits [M, V] W [V, K]: B (plain) over the limit -> split along K-reduction rows.
    const dl = f32(rng.array(M * V)); const tdl = gpu.tensor([M, V], dl); const tdx = gpu.tensor([M, K]);
    matmul(gpu, { a: tdl, b: tw, c: tdx, M, N: K, K: V });
    const dx = await gpu.readF32(tdx);
    for (const m of [0, M - 1]) for (const n of [0, 17, K - 1]) {
      let s = 0; for (let v = 0; v < V; v++) s += dl[m * V + v] * w[v * K + n];
      expect(Math.abs(dx[m * K + n] - s)).toBeLessThan(1e-4 * Math.sqrt(V));
    }
    // dW [V, K] += dlogits^T x: C over the limit -> split along M.
    matmul(gpu, { a: tdl, b: tx, c: tw, M: V, N: K, K: M, transA: true, accumulate: true });
    const w2 = await gpu.readF32(tw);
    worst.err = 0;
    for (let v = 0; v < V; v++) for (const k of [0, 5, K - 1]) {
      let s = w[v * K + k]; for (let m = 0; m < M; m++) s += dl[m * V + v] * x[m * K + k];
      note(Math.abs(w2[v * K + k] - s), `dW[${v}, ${k}]`);
    }
    expect(worst.err, worst.at).toBeLessThan(1e-4);
    gpu.pool.release(tw, tx, tl, tdl, tdx);
  });

  // A 7B model's MLP product over many tokens (Qwen2-7B's gate_proj on 32 rows of 8192: M N = 4.97e9, past
  // 2^32) on a GPU's 2 GiB bindings, recorded only (fake buffers; nothing runs): the product splits into
  // dispatches that fit, and an unbatched one's batch strides (M K, K N, M N by default) are not sent
  // as the u32 parameters they cannot be ("u32 param out of range" ended a scoring pass before).
  it('an unbatched product with M N past 2^32 records its split dispatches (recording only, 2 GiB bindings)', async () => {
    const gpu = await getGpu();
    const M = 262144; const K = 3584; const N = 18944;
    const fake = (shape: number[]) => new Tensor({ size: shape.reduce((a, b) => a * b) * 4, label: 'fake' } as unknown as GPUBuffer, 0, shape);
    const a = fake([M, K]); const b = fake([N, K]); const c = fake([M, N]);
    const saved = gpu.limits.maxStorageBufferBindingSize; const dispatch = gpu.recorder.dispatch;
    const calls: number[] = [];
    gpu.limits.maxStorageBufferBindingSize = 2 ** 31 - 4;
    gpu.recorder.dispatch = (_k, _ranges, params) => { calls.push(params?.byteLength ?? 0); };
    try {
      matmul(gpu, { a, b, c, M, N, K, transB: true, precision: 'f32', tile: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' } });
    } finally {
      gpu.limits.maxStorageBufferBindingSize = saved; gpu.recorder.dispatch = dispatch;
    }
    expect(calls.length).toBeGreaterThan(1);
  });

  // The tuner (src/engine/tuner.ts) on this device: last in the file, so most candidates' pipelines
  // (nn layout, vec4, edge tiles) are already compiled by the tests above.
  it('with the tuner: every candidate (split-K included) computes the product; one is kept, untimed', async () => {
    const gpu = await getGpu();
    const tuner = new Tuner(gpu.device);
    gpu.tuner = tuner;
    try {
      // Edge tiles in M and N, K long enough and output tiles few enough for split-K candidates,
      // a bias: split-K candidates are several dispatches each, timed as one.
      // B transposed (x W^T, the linear layers' forward): the layout of the bench-sweep test's lanes,
      // scalar-accumulator and 128x256 checks, whose kernels this test then reuses.
      const M = 68; const N = 36; const K = 2100;
      const a = rng.array(M * K); const b = rng.array(K * N); const bias = rng.array(N);
      const ta = gpu.tensor([M * K], f32(a)); const tb = gpu.tensor([K * N], f32(b)); const tbias = gpu.tensor([N], f32(bias));
      const want = matmulRef({ a, b, bias, M, N, K, transA: false, transB: true });
      const args = { a: ta, b: tb, bias: tbias, M, N, K, transB: true };
      const ran = new Set<string>();
      // A candidate runs only once the adapter has built every kernel it dispatches (kernel.ts checked()),
      // split-K's chunk products and reduction too: every kernel created with get() (which would turn a
      // refused one into a failed step) is the rule's, or one checked() has seen built.
      const rule = matmulKernels(gpu, { ...args, c: ta });
      const kc = gpu.kernels;
      const [get, checked] = [kc.get.bind(kc), kc.checked.bind(kc)];
      const built = new Set<string>(); const unchecked = new Set<string>();
      kc.checked = (def) => { const k = checked(def); if ('pipeline' in k) built.add(def.code); return k; };
      kc.get = (def) => { if (!rule.includes(def.name) && !built.has(def.code)) unchecked.add(def.name); return get(def); };
      // 3 samples of each of 14 candidates, and more calls for picks that find their kernels still
      // compiling (the rule runs instead, untimed; a split candidate's kernels may take a few such calls).
      try {
        for (let i = 0; i < 6 * 14; i++) {
          const tc = gpu.tensor([M * N]);
          matmul(gpu, { ...args, c: tc });
          ran.add(gpu.recorder.lastKernel);
          expect(relErr(await gpu.readF32(tc), want), `call ${i}: ${gpu.recorder.lastKernel}`).toBeLessThan(1e-5);
          gpu.pool.release(tc);
        }
      } finally {
        delete (kc as Partial<typeof kc>).get; delete (kc as Partial<typeof kc>).checked; // the prototype's again
      }
      expect([...unchecked]).toEqual([]);
      expect(tuner.table.open).toBe(true);
      await tuner.settle();
      expect(tuner.table.open).toBe(false);
      const [d] = tuner.table.decisions();
      expect(d.key).toMatch(/^matmul nt bias 2\^/);
      expect(d.candidates.slice(1, 4).map((c) => c.replace(/.* split-K/, 'split-K'))).toEqual(['split-K 2', 'split-K 4', 'split-K 8']);
      expect(d.candidates.length).toBe(ran.size + 2); // the three split forms end with the one reduction kernel
      expect(d.medianMs.every((m) => m !== null && m > 0)).toBe(true);
      expect(d.medianMs[d.chosen]).toBe(Math.min(...(d.medianMs as number[])));
      // The choice from now on: what a dry run names, untimed, still exact.
      const tc = gpu.tensor([M * N]);
      const names = matmulKernels(gpu, { ...args, c: tc });
      expect(names.at(-1)).toBe(/split-K/.test(d.candidates[d.chosen]) ? 'matmul_splitk_reduce' : names[0]);
      matmul(gpu, { ...args, c: tc });
      expect(gpu.recorder.lastKernel).toBe(names.at(-1));
      expect(relErr(await gpu.readF32(tc), want)).toBeLessThan(1e-5);
      // A caller's tiling is not tuned.
      matmul(gpu, { ...args, c: tc, tile: { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 } });
      expect(gpu.recorder.lastKernel).toMatch(/^matmul_nt_64x64x16_4x4/);
      expect(tuner.table.decisions()).toHaveLength(1);
      // Part of an outer candidate (attention-unfused.ts): no pick of its own; the choice made, timed
      // under the outer name.
      const progress = tuner.table.progress;
      matmul(gpu, { ...args, c: tc, timing: 'outer' });
      expect(gpu.recorder.lastKernel).toBe(names.at(-1));
      expect(relErr(await gpu.readF32(tc), want)).toBeLessThan(1e-5);
      await tuner.profiler.collect();
      expect(tuner.profiler.samples.get('outer')?.length).toBeGreaterThan(0);
      tuner.profiler.reset();
      expect(tuner.table.progress).toBe(progress);
      gpu.pool.release(ta, tb, tbias, tc);
    } finally {
      gpu.tuner = undefined;
    }
  }, 240_000); // 14 candidate kernels compile on a cold shader cache: ~70 s here, twice that on a loaded machine
});
