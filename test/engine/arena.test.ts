// Tensors back to back in few buffers (src/engine/arena.ts), and the work that takes them a buffer
// at a time: the layout (zeroed, in order, split where a buffer or binding would overflow), the
// mirrored layout of gradients and optimizer state, the runs coalesce() finds, and the optimizer
// and gradient norm over a model's parameters: the same numbers as tensor by tensor, in one
// dispatch per buffer instead of one per tensor.
import { describe, expect, it } from 'vitest';
import { getGpu, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { acquireLike, allocateArenas, coalesce } from '../../src/engine/arena.js';
import { Tensor } from '../../src/engine/tensor.js';
import { gradNorm } from '../../src/kernels/grad-norm.js';
import { Optimizer } from '../../src/kernels/optimizer.js';
import { presetConfig } from '../../src/init/presets.js';
import { expectedParameters } from '../../src/model/tensor-names.js';
import { Params } from '../../src/model/params.js';

const rng = makeRng();

describe(`arenas (seed ${rng.seed})`, () => {
  it('allocateArenas: back to back in spec order, zeroed, a new buffer where one would overflow', async () => {
    const gpu = await getGpu();
    const shapes = [[3], [5, 7], [1], [300], [2, 2]];
    const a = allocateArenas(gpu, shapes, 'test');
    expect(a.arenas).toHaveLength(1);
    let at = a.arenas[0].offset;
    a.views.forEach((v, i) => {
      expect(v.shape).toEqual(shapes[i]);
      expect(v.buffer).toBe(a.arenas[0].buffer);
      expect(v.offset).toBe(at);
      at += v.bytes;
    });
    for (const v of a.views) expect([...(await gpu.readF32(v))].every((x) => x === 0)).toBe(true);
    gpu.pool.release(...a.arenas);
    // A large arena's buffer is its exact size (to 256 bytes), not its size class (81920 bytes here).
    const big = allocateArenas(gpu, [[20000], [1]], 'test');
    expect(big.arenas[0].buffer.size).toBe(80128);
    gpu.pool.release(...big.arenas);
    // Arenas of 1024 bytes at most (a binding window less its alignment): [300] floats, over that,
    // get a buffer of their own (kernels chunk such a tensor); the others share theirs in order.
    await withBindingLimit(gpu, 1024 + gpu.bindingAlign, async () => {
      const b = allocateArenas(gpu, shapes, 'test');
      const groups = new Map<GPUBuffer, Tensor[]>();
      for (const v of b.views) groups.set(v.buffer, [...(groups.get(v.buffer) ?? []), v]);
      expect([...groups.values()].map((g) => g.map((v) => v.numel))).toEqual([[3, 35, 1], [300], [4]]);
      expect(b.arenas).toHaveLength(3);
      gpu.pool.release(...b.arenas);
    });
  });

  it('acquireLike mirrors the layout; coalesce finds the runs that are back to back in every list', async () => {
    const gpu = await getGpu();
    const a = allocateArenas(gpu, [[4], [6], [2]], 'test');
    const lone = gpu.tensor([6]);
    const like = [...a.views, lone, a.views[0]]; // a separate tensor, then one out of order
    const m = acquireLike(gpu, like, 'mirror');
    expect(m.arenas).toHaveLength(2);
    like.forEach((t, i) => { expect(m.views[i].offset).toBe(t.offset); expect(m.views[i].shape).toEqual(t.shape); });
    expect(m.views[0].buffer).toBe(m.views[4].buffer);
    expect(m.views[3].buffer).not.toBe(m.views[0].buffer);
    const runs = coalesce([like, m.views]);
    expect(runs.map((r) => [r.first, r.last])).toEqual([[0, 2], [3, 3], [4, 4]]);
    expect(runs[0].tensors.map((t) => t.numel)).toEqual([12, 12]);
    expect(runs[0].tensors[1].buffer).toBe(m.views[0].buffer);
    // Adjacent in one list but not in the other: no run.
    const apart = [new Tensor(lone.buffer, 0, [2]), new Tensor(lone.buffer, 12, [2])];
    expect(coalesce([a.views.slice(0, 2).map((v) => v.view([2])), apart]).map((r) => r.last)).toEqual([0, 1]);
    gpu.pool.release(...a.arenas, ...m.arenas, lone);
  });

  it('a model\'s optimizer step and gradient norm: one dispatch per buffer, the numbers of tensor by tensor', async () => {
    const gpu = await getGpu();
    const specs = [{ name: 'w', shape: [37, 11] }, { name: 'b', shape: [11] }, { name: 'odd', shape: [5] }, { name: 'v', shape: [999] }];
    const params = new Params(gpu, specs).allocate();
    params.allocateGrads();
    const p0 = specs.map((s) => Float32Array.from(rng.array(s.shape.reduce((x, y) => x * y, 1), 0.1)));
    const g0 = p0.map((p) => Float32Array.from(rng.array(p.length)));
    specs.forEach((s, i) => { gpu.upload(params.get(s.name), p0[i]); gpu.upload(params.grad(s.name), g0[i]); });
    // The same parameters and gradients as separate tensors.
    const sepP = p0.map((p) => gpu.tensor([p.length], p)); const sepG = g0.map((g) => gpu.tensor([g.length], g));
    const run = async (ps: Tensor[], gs: Tensor[]) => {
      // No clipping in effect: the norm's sum runs in another order over a buffer than tensor by tensor
      // (last bits), and a clip factor from it would carry that into every parameter. With the factor 1
      // the updates must agree to the bit. (optimizer.test.ts clips buffers of views against float64.)
      const opt = new Optimizer(gpu, { type: 'rmsprop', momentum: 0.9 }, ps, { maxGradNorm: 1e9 });
      opt.setStep(1e-2, 1);
      const d0 = gpu.recorder.totalDispatches;
      opt.step(gs);
      const dispatches = gpu.recorder.totalDispatches - d0;
      const out = { dispatches, norm: (await gpu.readF32(opt.norm))[0], p: await Promise.all(ps.map((t) => gpu.readF32(t))) };
      opt.release();
      return out;
    };
    const arena = await run(specs.map((s) => params.get(s.name)), specs.map((s) => params.grad(s.name)));
    const apart = await run(sepP, sepG);
    // Tensor by tensor: a norm partial, the final norm and an update per tensor; in one buffer: 3.
    expect(apart.dispatches).toBe(2 * specs.length + 1);
    expect(arena.dispatches).toBe(3);
    expect(Math.abs(arena.norm - apart.norm) / apart.norm).toBeLessThan(1e-6);
    arena.p.forEach((p, i) => expect([...p]).toEqual([...apart.p[i]]));
    // Zeroing the gradients clears the buffer they share.
    params.zeroGrads();
    for (const s of specs) expect([...(await gpu.readF32(params.grad(s.name)))].every((x) => x === 0)).toBe(true);
    const out = gpu.tensor([2]);
    gradNorm(gpu, specs.map((s) => params.grad(s.name)), out);
    expect((await gpu.readF32(out))[0]).toBe(0);
    gpu.pool.release(...sepP, ...sepG, out);
    params.free();
  });

  it("a GPT-NeoX model's LayerNorm weight and bias gradients lie side by side (one stage-2 sum each, layernorm.ts)", async () => {
    const gpu = await getGpu();
    const cfg = presetConfig('gpt-neox', 'tiny');
    const params = new Params(gpu, expectedParameters(cfg)).allocate();
    params.allocateGrads();
    const norms = expectedParameters(cfg).map((s) => s.name).filter((n) => /(layernorm|layer_norm)\.weight$/.test(n));
    expect(norms.length).toBe(2 * cfg.numLayers + 1);
    for (const n of norms) {
      const dw = params.grad(n); const db = params.grad(n.replace(/weight$/, 'bias'));
      expect(db.buffer).toBe(dw.buffer);
      expect(db.offset).toBe(dw.offset + dw.bytes);
    }
    params.free();
  });
});
