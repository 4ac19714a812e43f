// f16 copies of matmul operands (half.ts) against half.ref.ts: awkward sizes and offsets (scalar and
// vec4 paths), the dynamic scale from partial maxima (tiny gradients kept out of f16's subnormals),
// overflow and NaN without a scale, chunks over binding windows.
import { describe, expect, it } from 'vitest';
import { getGpu, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { halfCopy, halfOf } from '../../src/kernels/half.js';
import { halfCopyRef } from '../../src/kernels/half.ref.js';
import { absmaxOf } from '../../src/kernels/absmax.js';
import { absmaxRef, f16ScaleRef } from '../../src/kernels/absmax.ref.js';
import { decodeRef } from '../../src/kernels/convert.ref.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';

const rng = makeRng();

async function readHalf(gpu: Gpu, t: Tensor, first: number, n: number): Promise<Float64Array> {
  const bits = (await gpu.read(t)) as Uint16Array;
  return decodeRef('f16', new Uint8Array(bits.buffer, bits.byteOffset + 2 * first, 2 * n));
}

/**
 * got must be an f16 value next to the exact x * s: WGSL lets the conversion round to either
 * neighbour, so within one f16 spacing of it (lavapipe rounds to nearest: then equal to want).
 */
function expectHalf(got: ArrayLike<number>, x: ArrayLike<number>, s: number, want: ArrayLike<number>, what: string): void {
  for (let i = 0; i < got.length; i++) {
    const v = Math.fround(x[i] * s);
    if (Number.isNaN(v)) { expect(Number.isNaN(got[i]), `${what}[${i}]`).toBe(true); continue; }
    if (!Number.isFinite(want[i])) { expect(got[i], `${what}[${i}] of ${v}`).toBe(want[i]); continue; }
    const spacing = 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v) || 2 ** -24)), -14) - 10);
    expect(Math.abs(got[i] - v), `${what}[${i}]: ${got[i]} for ${v} (nearest ${want[i]})`).toBeLessThan(spacing);
  }
}

describe(`f16 operand copies (seed ${rng.seed})`, () => {
  for (const [n, off] of [[1, 0], [7, 3], [1000, 0], [4099, 1], [20_000, 4]] as const) {
    it(`${n} elements at offset ${off}: unscaled (overflow, NaN) and scaled`, async (ctx) => {
      const gpu = await getGpu();
      if (!gpu.features.shaderF16) { ctx.skip(); return; }
      const x = Float32Array.from(rng.array(off + n), (v, i) => (i % 97 === 5 ? v * 1e5 : v));
      if (n > 10) x[off + 2] = NaN;
      const tx = gpu.tensor([off + n], x);
      const view = tx.view([n], off);
      const xs = x.subarray(off);
      // Unscaled: values as they are (1e5 overflows to inf, NaN stays NaN).
      const out = gpu.pool.acquire([n + 3], 'f16', 'out');
      halfCopy(gpu, { x: view, out: out.view([n], 3), n });
      expectHalf(await readHalf(gpu, out, 3, n), xs, 1, halfCopyRef(xs, false), 'unscaled');
      // Scaled: gradients of ~1e-6 (f16 subnormals unscaled) by the power of two of their max.
      const tiny = Float32Array.from(rng.array(n), (v) => v * 1e-6);
      const tt = gpu.tensor([n], tiny);
      const parts = absmaxOf(gpu, tt, n);
      const h = halfOf(gpu, tt, n, parts);
      const scale = f16ScaleRef(absmaxRef(tiny));
      expect(scale).toBeGreaterThan(2 ** 20);
      expectHalf(await readHalf(gpu, h, 0, n), tiny, scale, halfCopyRef(tiny, true), 'scaled');
      gpu.pool.release(tx, out, tt, parts, h);
    });
  }

  it('chunks over binding windows give the same copy', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.features.shaderF16) { ctx.skip(); return; }
    const n = 70_001;
    const x = Float32Array.from(rng.array(n), (v) => v * 3e-5);
    const tx = gpu.tensor([n], x);
    const parts = absmaxOf(gpu, tx, n);
    const whole = halfOf(gpu, tx, n, parts);
    const chunked = await withBindingLimit(gpu, 65_536, async () => halfOf(gpu, tx, n, parts)); // 16k-element windows
    // Windows smaller than a workgroup's share (8192 elements) still make progress.
    const small = await withBindingLimit(gpu, 16_384, async () => halfOf(gpu, tx, n, parts));
    const a = (await gpu.read(whole)) as Uint16Array; const b = (await gpu.read(chunked)) as Uint16Array;
    const c = (await gpu.read(small)) as Uint16Array;
    expect(Buffer.from(b.buffer, b.byteOffset, 2 * n).equals(Buffer.from(a.buffer, a.byteOffset, 2 * n))).toBe(true);
    expect(Buffer.from(c.buffer, c.byteOffset, 2 * n).equals(Buffer.from(a.buffer, a.byteOffset, 2 * n))).toBe(true);
    expectHalf(decodeRef('f16', new Uint8Array(a.buffer, a.byteOffset, 2 * n)), x, f16ScaleRef(absmaxRef(x)), halfCopyRef(x, true), 'whole');
    gpu.pool.release(tx, parts, whole, chunked, small);
  });

  it('refuses other types and short tensors', async () => {
    const gpu = await getGpu();
    const t = gpu.tensor([8]);
    expect(() => halfCopy(gpu, { x: t, out: t, n: 8 })).toThrow(/f32 -> f16/);
    expect(() => halfCopy(gpu, { x: t, out: gpu.pool.acquire([4], 'f16'), n: 8 })).toThrow(/8 elements/);
  });
});
