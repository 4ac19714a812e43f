// Partial maxima written by the kernels that make a linear layer's input (LayerNorm, RMSNorm, GELU and
// its backward; absmax.ts absmaxPartWgsl): the same output as without them, and the same maximum as
// max |output| over every element (so an f16 matmul scaled by them computes what it would with
// absmaxOf's), whatever the number of rows per workgroup, binding-window chunks and NaN.
import { describe, expect, it } from 'vitest';
import { getGpu, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { ABSMAX_PARTS, absmaxOf, absmaxStridedInto } from '../../src/kernels/absmax.js';
import { gelu, geluBackward } from '../../src/kernels/activations.js';
import { normForward } from '../../src/kernels/layernorm.js';
import { producedScale } from '../../src/model/linear.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

/** max |v| over v (NaN if any is NaN), as absmax.ref.ts computes it. */
function absmaxRef(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) { if (Number.isNaN(v[i])) return NaN; m = Math.max(m, Math.abs(v[i])); }
  return m;
}

/** Max over the parts (NaN if any part is NaN), as the matmul's scale reduction sees them. */
async function partsMax(gpu: Gpu, parts: Tensor): Promise<number> {
  return absmaxRef(await gpu.readF32(parts));
}

/** A parts tensor filled with garbage, so a part the kernel failed to write shows. */
function garbageParts(gpu: Gpu): Tensor {
  return gpu.tensor([ABSMAX_PARTS], f32(Array.from({ length: ABSMAX_PARTS }, () => 1e30)));
}

describe(`partial maxima written by the producing kernel (seed ${rng.seed})`, () => {
  // Rows: fewer than ABSMAX_PARTS (idle workgroups), and several rows per workgroup.
  for (const [rms, N, D, limit] of [[false, 37, 100, 0], [false, 2 * ABSMAX_PARTS + 77, 24, 0], [true, 1500, 40, 0], [false, 300, 100, 8192], [true, 300, 100, 8192]] as const) {
    it(`${rms ? 'RMSNorm' : 'LayerNorm'} N=${N} D=${D}${limit ? ' (row chunks)' : ''}`, async () => {
      const gpu = await getGpu();
      const x = f32(rng.array(N * D).map((v) => 3 + v)); const w = f32(rng.array(D, 2)); const b = f32(rng.array(D));
      const t = {
        x: gpu.tensor([N, D], x), w: gpu.tensor([D], w), b: gpu.tensor([D], b), y: gpu.tensor([N, D]), y2: gpu.tensor([N, D]),
        mean: gpu.tensor([N]), rstd: gpu.tensor([N]), parts: garbageParts(gpu),
      };
      const args = { x: t.x, w: t.w, rstd: t.rstd, N, D, eps: 1e-5, ...(rms ? {} : { b: t.b, mean: t.mean }) };
      const run = async () => {
        normForward(gpu, rms, { ...args, y: t.y });
        normForward(gpu, rms, { ...args, y: t.y2, absmax: t.parts });
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const y = await gpu.readF32(t.y);
      expect([...(await gpu.readF32(t.y2))]).toEqual([...y]);
      expect(await partsMax(gpu, t.parts)).toBe(absmaxRef(y));
      gpu.pool.release(...Object.values(t));
    });
  }

  for (const [n, limit, inPlace] of [[1000, 0, false], [ABSMAX_PARTS * 256 * 2 + 999, 0, false], [70_001, 65_536, false], [70_001, 65_536, true]] as const) {
    it(`GELU and its backward, n=${n}${limit ? ' (chunks)' : ''}${inPlace ? ' in place' : ''}`, async () => {
      const gpu = await getGpu();
      const x = f32(rng.array(n, 3)); const dy = f32(rng.array(n, 1e-3));
      const t = { x: gpu.tensor([n], x), dy: gpu.tensor([n], dy), y: gpu.tensor([n]), y2: gpu.tensor([n]), dx: gpu.tensor([n]), dx2: gpu.tensor([n]),
        p1: garbageParts(gpu), p2: garbageParts(gpu) };
      const run = async () => {
        gelu(gpu, t.x, t.y, 'erf');
        geluBackward(gpu, t.x, t.dy, t.dx, 'erf');
        if (inPlace) {
          gpu.upload(t.y2, x); gelu(gpu, t.y2, t.y2, 'erf', t.p1);
          gpu.upload(t.dx2, dy); geluBackward(gpu, t.x, t.dx2, t.dx2, 'erf', t.p2);
        } else {
          gelu(gpu, t.x, t.y2, 'erf', t.p1);
          geluBackward(gpu, t.x, t.dy, t.dx2, 'erf', t.p2);
        }
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      const y = await gpu.readF32(t.y); const dx = await gpu.readF32(t.dx);
      expect([...(await gpu.readF32(t.y2))]).toEqual([...y]);
      expect([...(await gpu.readF32(t.dx2))]).toEqual([...dx]);
      expect(await partsMax(gpu, t.p1)).toBe(absmaxRef(y));
      expect(await partsMax(gpu, t.p2)).toBe(absmaxRef(dx));
      gpu.pool.release(...Object.values(t));
    });
  }

  it('NaN in the output: NaN, as absmaxOf finds it', async () => {
    // NaN is found by its bits (WGSL lets a compiler fold `a != a` away, and lavapipe's does): a NaN weight
    // shows in the maxima a checkpoint's float16 check reads.
    const gpu = await getGpu();
    const n = 5000;
    const x = f32(rng.array(n)); x[4321] = NaN;
    const t = { x: gpu.tensor([n], x), y: gpu.tensor([n]), parts: garbageParts(gpu) };
    gelu(gpu, t.x, t.y, 'tanh', t.parts);
    expect(Number.isNaN((await gpu.readF32(t.y))[4321])).toBe(true);
    const separate = absmaxOf(gpu, t.y, n);
    expect(await partsMax(gpu, t.parts)).toBe(await partsMax(gpu, separate));
    expect(await partsMax(gpu, t.parts)).toBeNaN();
    gpu.pool.release(...Object.values(t), separate);
  });

  it('producedScale: a parts tensor in f16 precision only, none with SRK_FUSED_ABSMAX=0 (the fallback gpu-check.sh sets)', async () => {
    const gpu = await getGpu();
    const saved = gpu.matmulPrecision; const env = process.env.SRK_FUSED_ABSMAX;
    try {
      gpu.matmulPrecision = 'f32';
      expect(producedScale(gpu)).toBeUndefined();
      gpu.matmulPrecision = 'f16';
      const t = producedScale(gpu)!;
      expect(t.numel).toBe(ABSMAX_PARTS);
      gpu.pool.release(t);
      process.env.SRK_FUSED_ABSMAX = '0';
      expect(producedScale(gpu)).toBeUndefined();
      process.env.SRK_FUSED_ABSMAX = 'yes';
      expect(() => producedScale(gpu)).toThrow(/SRK_FUSED_ABSMAX=yes/);
    } finally {
      gpu.matmulPrecision = saved;
      if (env === undefined) delete process.env.SRK_FUSED_ABSMAX; else process.env.SRK_FUSED_ABSMAX = env;
    }
  });
  // Q's maximum read out of a fused QKV tensor (attention-unfused.ts): count blocks of len elements,
  // stride apart from off; what lies between the blocks (K and V) is not Q's. vec4 and scalar; over a
  // binding window, the whole tensor from off (a superset).
  it('strided maxima: only the blocks count; over a binding window, the tensor from off; into a part of a larger tensor', async () => {
    const gpu = await getGpu();
    // Into the second half of two sets of parts (the tensor-core attention binds Q's, K's and V's in one
    // tensor): the first half, filled with 1e30, must stay as it was.
    const absmaxStridedOf = (x: Tensor, off: number, len: number, stride: number, count: number) => {
      const parts = gpu.tensor([2 * ABSMAX_PARTS], new Float32Array(2 * ABSMAX_PARTS).fill(1e30));
      absmaxStridedInto(gpu, x, off, len, stride, count, parts, ABSMAX_PARTS);
      return parts;
    };
    const secondHalf = async (parts: Tensor) => {
      const all = await gpu.readF32(parts);
      expect(all.subarray(0, ABSMAX_PARTS).every((v) => v === Math.fround(1e30))).toBe(true);
      return absmaxRef(all.subarray(ABSMAX_PARTS));
    };
    for (const [len, stride, count, off] of [[16, 48, 62, 32], [5, 13, 50, 3], [8, 8, 20, 0]] as const) {
      const n = off + (count - 1) * stride + len + 7;
      const x = f32(rng.array(n));
      const inBlock = (i: number) => i >= off && (i - off) % stride < len && i < off + (count - 1) * stride + len;
      // Larger values outside the blocks (before, between, after) that must not count.
      for (let i = 0; i < n; i++) if (!inBlock(i)) x[i] = 50 + i;
      const want = absmaxRef(Array.from(x).filter((_, i) => inBlock(i)));
      const tx = gpu.tensor([n], x);
      const parts = absmaxStridedOf(tx, off, len, stride, count);
      const what = `len ${len} stride ${stride} count ${count} off ${off}`;
      expect(await secondHalf(parts), what).toBe(Math.fround(want));
      gpu.pool.release(parts);
      // 9000-byte bindings: the parts fit, the first case's blocks (11776 bytes) do not.
      if ((count - 1) * stride + len > 2250) {
        const wide = await withBindingLimit(gpu, 9000, async () => absmaxStridedOf(tx, off, len, stride, count));
        expect(await secondHalf(wide), `${what}, over a window`).toBe(Math.fround(absmaxRef(x.subarray(off))));
        gpu.pool.release(wide);
      }
      gpu.pool.release(tx);
    }
    const t = gpu.tensor([10]);
    expect(() => absmaxStridedOf(t, 2, 4, 3, 2)).toThrow(/blocks of 4 every 3/);
    expect(() => absmaxStridedOf(t, 2, 4, 4, 3)).toThrow(/exceed/);
    gpu.pool.release(t);
  });
});
