import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { uploadConverted } from '../../src/kernels/convert.js';
import { decodeRef } from '../../src/kernels/convert.ref.js';

const rng = makeRng();

describe(`f16 / bf16 / f64 to f32 on the GPU (seed ${rng.seed})`, () => {
  for (const from of ['f16', 'bf16', 'f64'] as const) {
    it(`${from}: random values of every magnitude, odd count, special values`, async () => {
      const gpu = await getGpu();
      const n = 1001;
      const size = from === 'f64' ? 8 : 2;
      const bytes = new Uint8Array(n * size);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) {
        const v = rng.normal() * 10 ** (rng.int(12) - 6);
        if (from === 'f64') dv.setFloat64(8 * i, v, true);
        else dv.setUint16(2 * i, rng.int(65536), true); // every bit pattern of a half type
      }
      if (from === 'f64') { dv.setFloat64(0, 0, true); dv.setFloat64(8, -Infinity, true); dv.setFloat64(16, 1e-300, true); dv.setFloat64(24, 3.4e38, true); }
      const t = gpu.pool.acquire([n]);
      uploadConverted(gpu, from, bytes, t);
      const got = await gpu.readF32(t);
      const want = decodeRef(from, bytes);
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(want[i])) { expect(Number.isNaN(got[i])).toBe(true); continue; }
        if (!Number.isFinite(want[i])) { expect(got[i]).toBe(want[i]); continue; }
        const expected = Math.fround(want[i]);
        expect(Math.abs(got[i] - expected), `${from}[${i}] ${got[i]} vs ${expected}`).toBeLessThanOrEqual(Math.abs(expected) * 1.2e-7);
      }
      gpu.pool.release(t);
    });
  }
});
