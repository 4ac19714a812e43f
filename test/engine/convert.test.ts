import { describe, expect, it } from 'vitest';
import { getGpu, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { uploadConverted } from '../../src/kernels/convert.js';
import { decodeRef } from '../../src/kernels/convert.ref.js';

const rng = makeRng();

// f64 values where rounding to f32 is delicate: exact ties (to even: down and up), just past a tie
// (which a mantissa rounded to 24 bits first and scaled after would round the wrong way), the top of
// the f32 range (the tie at its end goes to inf), and the subnormal range (ties there too).
const F64_EDGES = [
  0, -0, -Infinity, NaN, 1e-300, 3.4e38, 5e-324,
  1 + 2 ** -23 + (2 ** -24 - 2 ** -52), 1 + 2 ** -24, 1 + 3 * 2 ** -24, 1 + 2 ** -24 + 2 ** -52, -(1 + 3 * 2 ** -24 - 2 ** -52),
  3.4028234663852886e38, 3.4028235677973366e38, 3.4028235677973362e38, -3.5e38,
  2 ** -126, 2 ** -126 - 2 ** -150, 2 ** -126 - 2 ** -151, 2 ** -149, 1.5 * 2 ** -149, 2.5 * 2 ** -149, 2 ** -150, 2 ** -150 + 2 ** -200,
  -(2 ** -150) - 2 ** -170, 2 ** -151, 1e-40, -3e-39, 1.401298464324817e-45,
];

describe(`f16 / bf16 / f64 to f32 on the GPU (seed ${rng.seed})`, () => {
  // Also with bindings of 1 KiB: the conversion in windows (16-bit values in pairs per word), a short last one.
  for (const [from, limit] of [['f16', undefined], ['bf16', undefined], ['f64', undefined], ['f16', 1024], ['f64', 1024]] as const) {
    it(`${from}: random values of every magnitude, odd count, special values${limit ? `, in ${limit}-byte windows` : ''}`, async () => {
      const gpu = await getGpu();
      await withBindingLimit(gpu, limit, async () => {
      const n = 1001;
      const size = from === 'f64' ? 8 : 2;
      const bytes = new Uint8Array(n * size);
      const dv = new DataView(bytes.buffer);
      for (let i = 0; i < n; i++) {
        const v = rng.normal() * 10 ** (rng.int(12) - 6);
        if (from === 'f64') dv.setFloat64(8 * i, v, true);
        else dv.setUint16(2 * i, rng.int(65536), true); // every bit pattern of a half type
      }
      if (from === 'f64') F64_EDGES.forEach((v, j) => dv.setFloat64(8 * j, v, true));
      const t = gpu.pool.acquire([n]);
      uploadConverted(gpu, from, bytes, t);
      const got = await gpu.readF32(t);
      const want = decodeRef(from, bytes);
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(want[i])) { expect(Number.isNaN(got[i])).toBe(true); continue; }
        if (!Number.isFinite(want[i])) { expect(got[i]).toBe(want[i]); continue; }
        // Exactly the nearest f32 (ties to even), as torch's .float(): Math.fround rounds so; -0 stays -0.
        expect(Object.is(got[i], Math.fround(want[i])), `${from}[${i}] ${want[i]}: ${got[i]} vs ${Math.fround(want[i])}`).toBe(true);
      }
      gpu.pool.release(t);
      });
    });
  }
});
