// A tuner candidate whose kernel the adapter refuses (engine/kernel.ts checked()): the products go on
// with the rule's tiling, exact; the candidate is left out of the key for good, with one warning; and
// no device error reaches the caller (before, one refused candidate stopped the step).
import { describe, expect, it, vi } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { matmul } from '../../src/kernels/matmul.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { Tuner } from '../../src/engine/tuner.js';

// The 64x128 register tiling's WGSL broken on purpose (a type error), as a driver might refuse a
// kernel its compiler cannot build.
vi.mock('../../src/kernels/matmul-simt.js', async (importOriginal) =>
  (await import('../helpers/broken-tiling.js')).withBrokenRegTiling(await importOriginal()));

// lavapipe compiles the candidates' unrolled kernels about twice as fast without LLVM's optimization
// passes; set before this file's GPU device (its own process) loads the driver.
process.env.GALLIVM_PERF ??= 'nopt';
const rng = makeRng();
const f32 = (x: Float64Array) => Float32Array.from(x);

describe(`tuner with a refused candidate (seed ${rng.seed})`, () => {
  it('runs the rule in its place, never chooses it, warns once, raises no device error', async () => {
    const gpu = await getGpu();
    const saved = gpu.tuner;
    const tuner = new Tuner(gpu.device);
    gpu.tuner = tuner;
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    // The product of matmul.test.ts's tuner test (x W^T with a bias, K long enough for split-K): the
    // same candidate kernels, which a cold shader cache then builds once for both files (on lavapipe
    // they take over a minute), the broken one aside.
    const M = 68; const N = 36; const K = 2100;
    const a = rng.array(M * K); const b = rng.array(K * N); const bias = rng.array(N);
    const ta = gpu.tensor([M * K], f32(a)); const tb = gpu.tensor([K * N], f32(b)); const tbias = gpu.tensor([N], f32(bias));
    const tc = gpu.tensor([M * N]);
    const want = matmulRef({ a, b, bias, M, N, K, transA: false, transB: true });
    try {
      const ran = new Set<string>();
      // Steps of 42 products (14 candidates, split-K in 2, 4 and 8 included: 3 samples each) until the
      // key closes: the first step mostly waits for the candidates' compiles, which settle() awaits.
      let steps = 0;
      while (tuner.table.decisions().length === 0 && steps < 4) {
        for (let i = 0; i < 42; i++) {
          matmul(gpu, { a: ta, b: tb, c: tc, bias: tbias, M, N, K, transB: true });
          ran.add(gpu.recorder.lastKernel);
          expect(relErr(await gpu.readF32(tc), want), `step ${steps} call ${i}: ${gpu.recorder.lastKernel}`).toBeLessThan(1e-5);
        }
        gpu.check('the tuned products');
        await tuner.settle();
        steps++;
      }
      expect(steps).toBeLessThanOrEqual(3);
      expect([...ran].filter((n) => /64x128/.test(n))).toEqual([]);
      const [d] = tuner.table.decisions();
      const refused = d.candidates.findIndex((c) => /^reg 64x128/.test(c));
      expect(refused, d.candidates.join(', ')).toBeGreaterThan(0);
      expect(d.medianMs[refused]).toBeNull();
      expect(d.candidates).toHaveLength(14);
      // Every candidate but the refused one ran; the three split forms end with the one reduction kernel.
      expect(ran.size).toBe(11);
      expect(d.medianMs.filter((m) => m !== null)).toHaveLength(13);
      expect(d.chosen).not.toBe(refused);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/leaves out reg 64x128.*refused its kernel matmul_reg_nt_64x128x16/);
    } finally {
      gpu.tuner = saved;
      warn.mockRestore();
      gpu.pool.release(ta, tb, tc, tbias);
    }
  }, 300_000); // 13 candidate kernels to compile: about a second on a warm shader cache (matmul.test.ts's), past 120 s on a cold one beside another test file
});
