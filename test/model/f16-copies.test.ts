// f16 operand copies in the linear layers (linear.ts) and the output layer (output-logprob.ts), half.ts:
// in the f16 precision, a model's forward and backward with every such product reading f16 copies
// (SRK_F16_COPIES=1) give the same
// log-probs and the same parameter gradients, bit for bit, as with the products rounding f32
// operands as they stage them (=0): the copies hold exactly the values the staging rounds to.
// GPT-NeoX (fused QKV, biases) and the tied Llama (q, k, v and gate, up sharing a scale).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { dispatchedKernels, getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { Tuner } from '../../src/engine/tuner.js';
import { linearBackward, linearForward } from '../../src/model/linear.js';

// lavapipe compiles without LLVM's optimization passes (set before this file's GPU device loads the
// driver): this file's cost is compiling two models' kernels in both forms (cold: 103 -> 83 s of CPU);
// the models are tiny, so their slower code costs nothing. No effect on other adapters.
process.env.GALLIVM_PERF ??= 'nopt';
const FIX = resolve(import.meta.dirname, '../fixtures/hf');
const rng = makeRng();

/** Runs fn with SRK_F16_COPIES set, collecting the names of the kernels it dispatches. */
async function withCopies<T>(gpu: Gpu, value: '0' | '1', fn: () => Promise<T>): Promise<{ out: T; kernels: Set<string> }> {
  const saved = process.env.SRK_F16_COPIES;
  process.env.SRK_F16_COPIES = value;
  try {
    const { names, result } = await dispatchedKernels(gpu, fn);
    return { out: result, kernels: new Set(names) };
  } finally {
    if (saved === undefined) delete process.env.SRK_F16_COPIES; else process.env.SRK_F16_COPIES = saved;
  }
}

describe(`f16 operand copies in a model (seed ${rng.seed})`, () => {
  for (const name of ['gpt-neox-tiny', 'llama-tiny-tied']) {
    it(`${name}: log-probs and every gradient bit for bit with and without copies`, async (ctx) => {
      const gpu = await getGpu();
      if (!gpu.features.shaderF16) { ctx.skip(); return; }
      const m = await loadModel(gpu, resolve(FIX, name), { grads: true });
      const V = m.cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const layout = buildBatch([{ prompt: ids(9), completions: [ids(7), ids(5)] }, { prompt: ids(4), completions: [ids(11), ids(6)] }], { packed: true });
      const pass = async () => {
        m.params.zeroGrads();
        const batch = uploadBatch(gpu, layout, V);
        const st = m.model.forward(batch, true);
        const logp = await gpu.readF32(st.logp);
        // d/dlogp: a fixed random weight per token, so every product's gradient is exercised.
        const w = gpu.tensor([batch.N], Float32Array.from({ length: batch.N }, (_, i) => Math.sin(i + 1)));
        m.model.backward(st, w);
        const grads = new Map<string, Float32Array>();
        for (const s of m.params.specs) grads.set(s.name, await gpu.readF32(m.params.grad(s.name)));
        gpu.pool.release(w, st.logp); releaseBatch(gpu, batch);
        return { logp, grads };
      };
      gpu.matmulPrecision = 'f16';
      try {
        const staged = await withCopies(gpu, '0', pass);
        const copies = await withCopies(gpu, '1', pass);
        expect([...copies.kernels].filter((k) => k.startsWith('half_copy')).length).toBeGreaterThan(0);
        expect([...staged.kernels].filter((k) => k.startsWith('half_copy'))).toEqual([]);
        expect([...copies.kernels].some((k) => /^matmul_.*_ha_hb/.test(k))).toBe(true);
        // The f16 rounding is in effect both ways (the test would pass trivially in f32).
        expect([...staged.kernels].some((k) => /^matmul_.*_h16s/.test(k))).toBe(true);
        expect(Buffer.from(copies.out.logp.buffer).equals(Buffer.from(staged.out.logp.buffer)), 'log-probs').toBe(true);
        for (const [pname, g] of staged.out.grads) {
          expect(Buffer.from(copies.out.grads.get(pname)!.buffer).equals(Buffer.from(g.buffer)), `grad of ${pname}`).toBe(true);
        }
      } finally {
        gpu.matmulPrecision = 'f32';
        m.model.destroy(); m.params.free();
      }
    });
  }

  // With a tuner (f16 precision on any adapter here: the simple kernels' staging), each linear
  // direction's two ways are candidates timed as a whole; every call, timed or not, gives the same result.
  it('the tuner times staged against copies per linear direction and shape, and keeps one', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.features.shaderF16) { ctx.skip(); return; }
    const N = 40; const inF = 32; const outF = 48;
    const x = gpu.tensor([N * inF], Float32Array.from(rng.array(N * inF)));
    const w = gpu.tensor([outF * inF], Float32Array.from(rng.array(outF * inF, 0.1)));
    const b = gpu.tensor([outF], Float32Array.from(rng.array(outF)));
    const dy = gpu.tensor([N * outF], Float32Array.from(rng.array(N * outF, 1e-6)));
    const once = async () => {
      const y = gpu.tensor([N * outF], new Float32Array(N * outF)); const dx = gpu.tensor([N * inF], new Float32Array(N * inF));
      const dw = gpu.tensor([outF * inF], new Float32Array(outF * inF)); const db = gpu.tensor([outF], new Float32Array(outF));
      linearForward(gpu, x, w, b, y, N, inF, outF);
      linearBackward(gpu, dy, x, w, { dx, dw, db }, N, inF, outF);
      const out = [await gpu.readF32(y), await gpu.readF32(dx), await gpu.readF32(dw)];
      gpu.pool.release(y, dx, dw, db);
      return out.map((t) => Buffer.from(t.buffer));
    };
    gpu.matmulPrecision = 'f16';
    const tuner = new Tuner(gpu.device);
    try {
      const want = (await withCopies(gpu, '0', once)).out;
      gpu.tuner = tuner;
      for (let i = 0; i < 6; i++) (await once()).forEach((t, j) => expect(t.equals(want[j]), `call ${i}, output ${j}`).toBe(true));
      await tuner.settle();
      const ds = tuner.table.decisions().filter((d) => d.key.endsWith('f16 operands'));
      expect(ds.map((d) => d.key.split(' ').slice(0, 2).join(' ')).sort()).toEqual(['linear bwd', 'linear fwd']);
      for (const d of ds) {
        expect(d.candidates).toEqual(['staged', 'f16 copies']);
        expect(d.medianMs.every((m) => m !== null && m > 0)).toBe(true);
      }
      (await once()).forEach((t, j) => expect(t.equals(want[j]), `after the choice, output ${j}`).toBe(true));
    } finally {
      gpu.tuner = undefined;
      gpu.matmulPrecision = 'f32';
      gpu.pool.release(x, w, b, dy);
    }
  });

  // The forward takes an x past f16's 65504 as its scaled A; the weight gradient dW = dy^T x takes
  // it as B, scaled too (else that column of dW is inf), staged and from copies alike.
  it('a linear layer\'s input past f16\'s range: a finite weight gradient within f16 rounding, both ways', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.features.shaderF16) { ctx.skip(); return; }
    const N = 40; const inF = 32; const outF = 48;
    const xv = Float64Array.from(rng.array(N * inF)); xv[7 * inF + 5] = 7e4; xv[30 * inF + 9] = -2.5e5;
    const dyv = Float64Array.from(rng.array(N * outF, 1e-3));
    const x = gpu.tensor([N * inF], Float32Array.from(xv));
    const w = gpu.tensor([outF * inF], Float32Array.from(rng.array(outF * inF, 0.1)));
    const dy = gpu.tensor([N * outF], Float32Array.from(dyv));
    // dW[o, i] = sum_n dy[n, o] x[n, i], in float64; its f16 bound: each term rounded twice (~2^-10 relative).
    const want = new Float64Array(outF * inF); const bound = new Float64Array(outF * inF);
    for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) {
      let s = 0; let a = 0;
      for (let n = 0; n < N; n++) { const t = dyv[n * outF + o] * xv[n * inF + i]; s += t; a += Math.abs(t); }
      want[o * inF + i] = s; bound[o * inF + i] = 2 * 2 ** -10 * a + 1e-12;
    }
    gpu.matmulPrecision = 'f16';
    try {
      for (const copies of ['0', '1'] as const) {
        const { out: dw, kernels } = await withCopies(gpu, copies, async () => {
          const dwT = gpu.tensor([outF * inF], new Float32Array(outF * inF));
          linearBackward(gpu, dy, x, w, { dw: dwT }, N, inF, outF);
          const r = await gpu.readF32(dwT); gpu.pool.release(dwT); return r;
        });
        expect([...kernels].some((k) => /^matmul_tn_.*_h16/.test(k)), `copies=${copies}: f16 products`).toBe(true);
        let worst = 0;
        for (let j = 0; j < dw.length; j++) {
          expect(Number.isFinite(dw[j]), `copies=${copies}: dW[${j}] = ${dw[j]}`).toBe(true);
          worst = Math.max(worst, Math.abs(dw[j] - want[j]) / bound[j]);
        }
        expect(worst, `copies=${copies}: worst error over the f16 bound`).toBeLessThanOrEqual(1);
      }
    } finally {
      gpu.matmulPrecision = 'f32';
      gpu.pool.release(x, w, dy);
    }
  });

  it('SRK_F16_COPIES other than 0 or 1 is refused, naming the variable', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIX, 'gpt-neox-tiny'), {});
    const layout = buildBatch([{ prompt: [1, 2, 3], completions: [[4, 5], [6]] }], { packed: true });
    const batch = uploadBatch(gpu, layout, m.cfg.vocabSize);
    const saved = process.env.SRK_F16_COPIES;
    process.env.SRK_F16_COPIES = 'yes';
    try {
      expect(() => m.model.forward(batch, false)).toThrow(/SRK_F16_COPIES=yes: expected 0 or 1/);
    } finally {
      if (saved === undefined) delete process.env.SRK_F16_COPIES; else process.env.SRK_F16_COPIES = saved;
      releaseBatch(gpu, batch); m.params.free();
    }
  });
});
