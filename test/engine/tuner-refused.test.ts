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
    const M = 70; const N = 40; const K = 96;
    const a = rng.array(M * K); const b = rng.array(K * N);
    const ta = gpu.tensor([M * K], f32(a)); const tb = gpu.tensor([K * N], f32(b)); const tc = gpu.tensor([M * N]);
    const want = matmulRef({ a, b, M, N, K, transA: false, transB: false });
    try {
      const ran = new Set<string>();
      // Steps of 36 products (12 candidates, the short-K one but no split-K at this K: 3 samples each) until the key
      // closes: the first step mostly waits for the candidates' compiles, which settle() awaits.
      let steps = 0;
      while (tuner.table.decisions().length === 0 && steps < 4) {
        for (let i = 0; i < 36; i++) {
          matmul(gpu, { a: ta, b: tb, c: tc, M, N, K });
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
      expect(d.candidates).toHaveLength(12);
      expect(ran.size).toBe(11); // every candidate but the refused one
      expect(d.medianMs.filter((m) => m !== null)).toHaveLength(11);
      expect(d.chosen).not.toBe(refused);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(String(warn.mock.calls[0][0])).toMatch(/leaves out reg 64x128.*refused its kernel matmul_reg_nn_64x128x16/);
    } finally {
      gpu.tuner = saved;
      warn.mockRestore();
      gpu.pool.release(ta, tb, tc);
    }
  }, 300_000); // 11 candidate kernels to compile: about a second on a warm shader cache, past 120 s on a cold one beside another test file
});
