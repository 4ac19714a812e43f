import { describe, expect, it } from 'vitest';
import { getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { rotary, rotaryInvFreqF32 } from '../../src/kernels/rotary.js';
import { scaledInvFreq } from '../../src/model/rope.js';
import { rotaryBackward as rotBackRef, rotaryForward as rotRef, rotaryInvFreq } from '../../src/kernels/rotary.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);


/** HF's arithmetic: f32 inv_freq, f32 angle = pos * inv_freq, then exact cos/sin of that angle. */
function hfRotary(x: ArrayLike<number>, pos: ArrayLike<number>, T: number, H: number, Dh: number, R: number, theta: number, sign = 1): Float64Array {
  const inv = rotaryInvFreqF32(R, theta); const half = R / 2;
  const out = Float64Array.from(x);
  for (let t = 0; t < T; t++) for (let j = 0; j < half; j++) {
    const a = Math.fround(pos[t] * inv[j]); const c = Math.cos(a); const s = sign * Math.sin(a);
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * Dh; const x1 = x[o + j]; const x2 = x[o + j + half];
      out[o + j] = x1 * c - x2 * s; out[o + j + half] = x2 * c + x1 * s;
    }
  }
  return out;
}

const positions = (T: number, max: number) => {
  const p = Int32Array.from({ length: T }, () => rng.int(max + 1));
  p[0] = 0; if (T > 1) p[T - 1] = max;
  return p;
};

describe(`rotary (seed ${rng.seed})`, () => {
  it('inv_freq follows HF float32 arithmetic (within 1 ulp of float64)', () => {
    for (const [R, theta] of [[64, 10000], [16, 10000], [128, 1e6], [128, 500000]] as const) {
      const a = rotaryInvFreqF32(R, theta); const b = rotaryInvFreq(R, theta);
      for (let j = 0; j < R / 2; j++) expect(Math.abs(a[j] - b[j]) / b[j]).toBeLessThan(2.5e-7);
    }
  });

  it('Llama layout [T, H, Dh], full rotary, in place, positions up to 4096; backward; round trip', async () => {
    const gpu = await getGpu();
    const T = 33; const H = 3; const Dh = 16; const R = 16; const theta = 10000;
    const x = f32(rng.array(T * H * Dh)); const pos = positions(T, 4096);
    const tx = gpu.tensor([T, H, Dh], x); const tp = gpu.tensor([T], pos, 'i32');
    rotary(gpu, { x: { tensor: tx }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp });
    const y = await gpu.readF32(tx);
    // Against HF's f32-angle arithmetic: tight.
    expect(relErr(y, hfRotary(x, pos, T, H, Dh, R, theta))).toBeLessThan(1e-6);
    // Against the float64 reference (exact angles): the f32 angle is off by up to half an ulp of
    // pos * inv_freq (2.4e-4 rad at 4096), HF's own deviation; the bound is pos_max * 2^-24 * ~2.
    const inv = rotaryInvFreqF32(R, theta);
    expect(relErr(y, rotRef(x, pos, T, H, Dh, R, theta, inv))).toBeLessThan(4096 * 2 ** -24 * 2.5);
    // Backward (rotation by -angle) of dy, and the round trip back to x.
    const dy = f32(rng.array(T * H * Dh)); const tdy = gpu.tensor([T, H, Dh], dy);
    rotary(gpu, { x: { tensor: tdy }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp, inverse: true });
    expect(relErr(await gpu.readF32(tdy), hfRotary(dy, pos, T, H, Dh, R, theta, -1))).toBeLessThan(1e-6);
    expect(relErr(await gpu.readF32(tdy), rotBackRef(dy, pos, T, H, Dh, R, theta, inv))).toBeLessThan(4096 * 2 ** -24 * 2.5);
    rotary(gpu, { x: { tensor: tx }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp, inverse: true });
    expect(relErr(await gpu.readF32(tx), x)).toBeLessThan(1e-6);
    gpu.pool.release(tx, tp, tdy);
  });

  it('a scaled table (invFreq: Llama 3.1 rope scaling) replaces theta; a table passed again is found again', async () => {
    const gpu = await getGpu();
    const T = 21; const H = 2; const Dh = 40; const R = 40; const theta = 5e5;
    const inv = scaledInvFreq(R, theta, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 256 })!;
    expect(Array.from(inv).some((v, j) => v !== rotaryInvFreqF32(R, theta)[j])).toBe(true);
    const x = f32(rng.array(T * H * Dh)); const pos = positions(T, 3000);
    const tx = gpu.tensor([T, H, Dh], x); const tp = gpu.tensor([T], pos, 'i32');
    const args = { x: { tensor: tx }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, invFreq: inv, positions: tp };
    rotary(gpu, args);
    const y = await gpu.readF32(tx);
    expect(relErr(y, rotRef(x, pos, T, H, Dh, R, theta, inv))).toBeLessThan(3000 * 2 ** -24 * 2.5);
    expect(relErr(y, rotRef(x, pos, T, H, Dh, R, theta))).toBeGreaterThan(1e-3); // not the unscaled rotation
    // The same array again (a model's table), then as a plain array: the backward undoes the forward.
    rotary(gpu, { ...args, inverse: true });
    expect(relErr(await gpu.readF32(tx), x)).toBeLessThan(1e-6);
    rotary(gpu, { ...args, invFreq: Array.from(inv) });
    expect(relErr(await gpu.readF32(tx), y)).toBeLessThan(1e-6);
    expect(() => rotary(gpu, { ...args, invFreq: inv.subarray(1) })).toThrow(/invFreq has 19 entries, expected 20/);
    gpu.pool.release(tx, tp);
  });

  it('LongRoPE: its table (1 / (ext * theta^(2j/r)) in f32) and cos / sin times its attention factor, on the rotated channels alone; backward', async () => {
    const gpu = await getGpu();
    const T = 19; const H = 3; const Dh = 24; const R = 16; const theta = 1e4; const half = R / 2;
    const ext = Array.from({ length: half }, () => 1 + 3 * rng.uniform());
    const scaling = { type: 'longrope' as const, shortFactor: ext, longFactor: ext.map((v) => v * 2), originalMaxPositions: 64, attentionFactor: 1.19 };
    const inv = scaledInvFreq(R, theta, scaling)!;
    // Against float64: within a few f32 roundings of 1 / (ext_j * theta^(2j / r)).
    inv.forEach((v, j) => expect(Math.abs(v - 1 / (ext[j]! * Math.pow(theta, (2 * j) / R))) * Math.pow(theta, (2 * j) / R) * ext[j]!).toBeLessThan(4 * 2 ** -24));
    const scale = Math.fround(1.19);
    const x = f32(rng.array(T * H * Dh)); const pos = positions(T, 63);
    const tx = gpu.tensor([T, H, Dh], x); const tp = gpu.tensor([T], pos, 'i32');
    const args = { x: { tensor: tx }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, invFreq: inv, positions: tp, scale };
    rotary(gpu, args);
    const y = await gpu.readF32(tx);
    const want = rotRef(x, pos, T, H, Dh, R, theta, inv, scale);
    expect(relErr(y, want)).toBeLessThan(1e-6);
    expect(relErr(y, rotRef(x, pos, T, H, Dh, R, theta, inv))).toBeGreaterThan(0.1); // the factor applied
    // The pass-through channels keep their values (the factor is cos's and sin's, not the head's).
    for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = R; d < Dh; d++) expect(y[(t * H + h) * Dh + d]).toBe(x[(t * H + h) * Dh + d]);
    // The backward: the transposed scaled rotation (inverse with the same scale), against the float64 one.
    const dy = f32(rng.array(T * H * Dh)); const tdy = gpu.tensor([T, H, Dh], dy);
    rotary(gpu, { ...args, x: { tensor: tdy }, inverse: true });
    expect(relErr(await gpu.readF32(tdy), rotBackRef(dy, pos, T, H, Dh, R, theta, inv, scale))).toBeLessThan(1e-6);
    // <dy, R x> = <R^T dy, x>: the reference's backward is the forward's transpose.
    const fwd = rotRef(x, pos, T, H, Dh, R, theta, inv, scale); const back = rotBackRef(dy, pos, T, H, Dh, R, theta, inv, scale);
    const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((s, v, i) => s + v * b[i]!, 0);
    expect(Math.abs(dot(dy, fwd) - dot(back, x))).toBeLessThan(1e-9 * Math.abs(dot(dy, fwd)) + 1e-9);
    expect(() => rotary(gpu, { ...args, scale: 0 })).toThrow(/scale 0 must be a positive number/);
    gpu.pool.release(tx, tp, tdy);
  });

  it('GPT-NeoX fused qkv [T, H, 3, Dh], partial rotary (25%), q and k in place, v untouched', async () => {
    const gpu = await getGpu();
    const T = 7; const H = 4; const Dh = 24; const R = 6; const theta = 10000;
    const qkv = f32(rng.array(T * H * 3 * Dh)); const pos = positions(T, 2048);
    const t = gpu.tensor([T, 3 * H * Dh], qkv); const tp = gpu.tensor([T], pos, 'i32');
    const op = (part: number) => ({ tensor: t, offset: part * Dh, tokenStride: 3 * H * Dh, headStride: 3 * Dh });
    rotary(gpu, { x: op(0), N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp });
    rotary(gpu, { x: op(1), N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp });
    const got = await gpu.readF32(t);
    const part = (a: ArrayLike<number>, k: number) => Float64Array.from({ length: T * H * Dh }, (_, i) => {
      const d = i % Dh; const th = Math.floor(i / Dh); return a[th * 3 * Dh + k * Dh + d];
    });
    for (const k of [0, 1]) {
      const want = hfRotary(part(qkv, k), pos, T, H, Dh, R, theta);
      expect(relErr(part(got, k), want)).toBeLessThan(1e-6);
      // Pass-through channels are bit-identical.
      const g = part(got, k); const x = part(qkv, k);
      for (let i = 0; i < g.length; i++) if (i % Dh >= R) expect(g[i]).toBe(x[i]);
    }
    expect(part(got, 2)).toEqual(part(qkv, 2));
    gpu.pool.release(t, tp);
  });

  for (const limit of [0, 2048]) {
    it(`GPT-NeoX fused qkv: q and k in one dispatch (also), the same as one each${limit ? ' (token chunks)' : ''}; inverse`, async () => {
      const gpu = await getGpu();
      const T = 9; const H = 3; const Dh = 16; const R = 8; const theta = 10000;
      const qkv = f32(rng.array(T * H * 3 * Dh)); const pos = positions(T, 1000);
      const one = gpu.tensor([T, 3 * H * Dh], qkv); const two = gpu.tensor([T, 3 * H * Dh], qkv); const tp = gpu.tensor([T], pos, 'i32');
      const op = (t: typeof one, part: number) => ({ tensor: t, offset: part * Dh, tokenStride: 3 * H * Dh, headStride: 3 * Dh });
      const base = { N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp };
      let dispatches = 0;
      const run = async () => {
        for (const inverse of [false, true]) {
          rotary(gpu, { ...base, inverse, x: op(two, 0) });
          rotary(gpu, { ...base, inverse, x: op(two, 1) });
          const n0 = gpu.recorder.totalDispatches;
          rotary(gpu, { ...base, inverse, x: op(one, 0), also: op(one, 1) });
          dispatches = gpu.recorder.totalDispatches - n0;
        }
      };
      if (limit) await withBindingLimit(gpu, limit, run); else await run();
      if (limit) expect(dispatches).toBeGreaterThan(1); else expect(dispatches).toBe(1); // one per token chunk
      expect([...(await gpu.readF32(one))]).toEqual([...(await gpu.readF32(two))]);
      // and not the input: the rotation and its inverse ran (round trip to ~1e-6, v untouched exactly)
      const got = await gpu.readF32(one);
      expect(relErr(got, qkv)).toBeLessThan(1e-5);
      rotary(gpu, { ...base, x: op(one, 0), also: op(one, 1) });
      expect(relErr(await gpu.readF32(one), qkv)).toBeGreaterThan(1e-3);
      gpu.pool.release(one, two, tp);
    });
  }

  it('also: refused where its heads would overlap x\'s, in another tensor, or with out', async () => {
    const gpu = await getGpu();
    const T = 3; const H = 2; const Dh = 8;
    const t = gpu.tensor([T, 3 * H * Dh]); const u = gpu.tensor([T, 3 * H * Dh]); const tp = gpu.tensor([T], Int32Array.from([0, 1, 2]), 'i32');
    const op = (tensor: typeof t, offset: number) => ({ tensor, offset, tokenStride: 3 * H * Dh, headStride: 3 * Dh });
    const base = { N: T, heads: H, headDim: Dh, rotaryDim: 4, theta: 10000, positions: tp };
    expect(() => rotary(gpu, { ...base, x: op(t, 0), also: op(t, Dh / 2) })).toThrow(/also/);
    expect(() => rotary(gpu, { ...base, x: op(t, 0), also: op(u, Dh) })).toThrow(/also/);
    expect(() => rotary(gpu, { ...base, x: op(t, 0), also: op(t, Dh), out: op(u, 0) })).toThrow(/also/);
    expect(() => rotary(gpu, { ...base, x: op(t, 0), also: { ...op(t, Dh), headStride: 2 * Dh } })).toThrow(/also/);
    gpu.pool.release(t, u, tp);
  });

  it('out of place with pass-through copy (odd half = 5), u32 positions, lowered binding limit', async () => {
    const gpu = await getGpu();
    const T = 40; const H = 2; const Dh = 20; const R = 10; const theta = 500;
    const x = f32(rng.array(T * H * Dh)); const pos = Uint32Array.from(positions(T, 300));
    const tx = gpu.tensor([T * H * Dh], x); const tp = gpu.tensor([T], pos, 'u32');
    // Output with a padded token stride inside a larger buffer.
    const ts = H * Dh + 7; const to = gpu.tensor([5 + T * ts], new Float32Array(5 + T * ts));
    await withBindingLimit(gpu, 1024, async () => {
      rotary(gpu, { x: { tensor: tx }, out: { tensor: to, offset: 5, tokenStride: ts }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp });
    });
    const all = await gpu.readF32(to);
    const got = Float64Array.from({ length: T * H * Dh }, (_, i) => all[5 + Math.floor(i / (H * Dh)) * ts + (i % (H * Dh))]);
    expect(relErr(got, hfRotary(x, pos, T, H, Dh, R, theta))).toBeLessThan(1e-6);
    expect(await gpu.readF32(tx)).toEqual(x);
    gpu.pool.release(tx, tp, to);
  });

  it('large positions (up to 131072, theta 1e6): still ~1 ulp against HF arithmetic', async () => {
    const gpu = await getGpu();
    const T = 64; const H = 1; const Dh = 128; const R = 128; const theta = 1e6;
    const x = f32(rng.array(T * H * Dh)); const pos = positions(T, 131072);
    const tx = gpu.tensor([T, H, Dh], x); const tp = gpu.tensor([T], pos, 'i32');
    rotary(gpu, { x: { tensor: tx }, N: T, heads: H, headDim: Dh, rotaryDim: R, theta, positions: tp });
    expect(relErr(await gpu.readF32(tx), hfRotary(x, pos, T, H, Dh, R, theta))).toBeLessThan(1e-6);
    gpu.pool.release(tx, tp);
  });
});
