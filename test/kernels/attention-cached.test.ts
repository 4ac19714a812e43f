import { describe, expect, it } from 'vitest';
import { dispatchedKernels, getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { kvAppend, kvCopy } from '../../src/kernels/kv-cache.js';
import { kvAppendRef, kvCopyRef } from '../../src/kernels/kv-cache.ref.js';
import { attentionCached } from '../../src/kernels/attention-cached.js';
import { attentionCachedRef } from '../../src/kernels/attention-cached.ref.js';

const rng = makeRng();
const f32 = (x: ArrayLike<number>) => Float32Array.from(x);

describe(`key/value cache and attention over it (seed ${rng.seed})`, () => {
  it('kvAppend writes a fused operand\'s heads at their slots, other slots untouched', async () => {
    const gpu = await getGpu();
    const N = 5; const heads = 3; const Dh = 7; const S = 23;
    // GPT-NeoX's k inside fused qkv rows: token stride 3 H Dh, head stride 3 Dh, offset Dh.
    const ts = 3 * heads * Dh; const hs = 3 * Dh; const off = Dh;
    const src = f32(rng.array(N * ts));
    const slots = Uint32Array.from([4, 0, 22, 9, 10]);
    const cache0 = f32(rng.array(S * heads * Dh));
    const t = { src: gpu.tensor([N, ts], src), slots: gpu.tensor([N], slots, 'u32'), cache: gpu.tensor([S, heads, Dh], cache0) };
    kvAppend(gpu, { src: { tensor: t.src, offset: off, tokenStride: ts, headStride: hs }, slots: t.slots, cache: t.cache, N, heads, Dh });
    expect(await gpu.readF32(t.cache)).toEqual(f32(kvAppendRef(src, slots, cache0, { heads, Dh, offset: off, tokenStride: ts, headStride: hs })));
    gpu.pool.release(...Object.values(t));
  });

  it('kvCopy copies slots in place (sources never destinations), the rest untouched', async () => {
    const gpu = await getGpu();
    const width = 70; const S = 19;
    const cache0 = f32(rng.array(S * width));
    const pairs = Uint32Array.from([3, 0, 3, 7, 11, 18, 2, 5]);
    const t = { cache: gpu.tensor([S, width], cache0), pairs: gpu.tensor([pairs.length], pairs, 'u32') };
    kvCopy(gpu, { cache: t.cache, pairs: t.pairs, n: 4, width });
    expect(await gpu.readF32(t.cache)).toEqual(f32(kvCopyRef(cache0, pairs, width)));
    gpu.pool.release(...Object.values(t));
  });

  // A prompt pass: every token of a prompt appended, then attending. With grouped-query attention the
  // queries are Hq / Hkv times a token's cache entry, and GPT-NeoX's fused qkv source three times one:
  // past one binding they run in pieces (the cache still fits one), with the same results.
  it('a prompt pass whose queries and fused source exceed one binding runs in pieces, the same results', async () => {
    const gpu = await getGpu();
    const Hq = 8; const Hkv = 1; const Dh = 16; const Tmax = 24; const N = 21; // cache 1.5 KiB; q 10.5 KiB, source 4 KiB
    const srcTok = 3 * Hkv * Dh;
    const src = f32(rng.array(N * srcTok));
    const q = f32(rng.array(N * Hq * Dh));
    const slots = Uint32Array.from({ length: N }, (_, i) => i);
    const t = {
      src: gpu.tensor([N, srcTok], src), q: gpu.tensor([N, Hq * Dh], q), slots: gpu.tensor([N], slots, 'u32'),
      kc: gpu.tensor([Tmax, Hkv, Dh], new Float32Array(Tmax * Hkv * Dh)), vc: gpu.tensor([Tmax, Hkv, Dh], new Float32Array(Tmax * Hkv * Dh)), out: gpu.tensor([N, Hq * Dh]),
    };
    const { names } = await withBindingLimit(gpu, 2048, () => dispatchedKernels(gpu, () => {
      kvAppend(gpu, { src: { tensor: t.src, offset: Dh, tokenStride: srcTok, headStride: 3 * Dh }, slots: t.slots, cache: t.kc, N, heads: Hkv, Dh });
      kvAppend(gpu, { src: { tensor: t.src, offset: 2 * Dh, tokenStride: srcTok, headStride: 3 * Dh }, slots: t.slots, cache: t.vc, N, heads: Hkv, Dh });
      attentionCached(gpu, { q: { tensor: t.q }, kCache: t.kc, vCache: t.vc, slots: t.slots, out: t.out, N, Hq, Hkv, Dh, Tmax });
    }));
    expect(names.filter((n) => n === 'attention_cached').length).toBeGreaterThan(1);
    expect(names.filter((n) => n === 'kv_append').length).toBeGreaterThan(2);
    const zero = new Float32Array(Tmax * Hkv * Dh);
    const kc = kvAppendRef(src, slots, zero, { heads: Hkv, Dh, offset: Dh, tokenStride: srcTok, headStride: 3 * Dh });
    const vc = kvAppendRef(src, slots, zero, { heads: Hkv, Dh, offset: 2 * Dh, tokenStride: srcTok, headStride: 3 * Dh });
    expect(await gpu.readF32(t.kc)).toEqual(f32(kc));
    expect(await gpu.readF32(t.vc)).toEqual(f32(vc));
    const want = attentionCachedRef(Float64Array.from(q), kc, vc, slots, { Hq, Hkv, Dh, Tmax, window: 0 });
    expect(relErr(await gpu.readF32(t.out), want)).toBeLessThan(1e-5);
    gpu.pool.release(...Object.values(t));
  });

  // Rows of different lengths, keys over several chunks of 64, GQA, head sizes below and above 64,
  // a sliding window shorter and longer than the rows, a query operand inside wider rows.
  for (const [Hq, Hkv, Dh, Tmax, window] of [[6, 2, 72, 150, 0], [4, 4, 20, 97, 37], [2, 1, 130, 70, 200], [3, 3, 256, 40, 5]] as const) {
    it(`Hq=${Hq} Hkv=${Hkv} Dh=${Dh} Tmax=${Tmax} window=${window}`, async () => {
      const gpu = await getGpu();
      const rows = 3;
      const kc = f32(rng.array(rows * Tmax * Hkv * Dh)); const vc = f32(rng.array(rows * Tmax * Hkv * Dh));
      // Queries: a row's first position, its last, and some between, in no particular order.
      const slots = Uint32Array.from([0 * Tmax + 0, 2 * Tmax + Tmax - 1, 1 * Tmax + 65, 1 * Tmax + 64, 0 * Tmax + 63, 2 * Tmax + rng.int(Tmax)]);
      const N = slots.length;
      const qTok = Hq * Dh + 11; const qOff = 5;
      const q = f32(rng.array(qOff + N * qTok));
      const qDense = new Float64Array(N * Hq * Dh);
      for (let i = 0; i < N; i++) for (let e = 0; e < Hq * Dh; e++) qDense[i * Hq * Dh + e] = q[qOff + i * qTok + e];
      const t = {
        q: gpu.tensor([q.length], q), kc: gpu.tensor([kc.length], kc), vc: gpu.tensor([vc.length], vc),
        slots: gpu.tensor([N], slots, 'u32'), out: gpu.tensor([N, Hq * Dh]),
      };
      attentionCached(gpu, { q: { tensor: t.q, offset: qOff, tokenStride: qTok, headStride: Dh }, kCache: t.kc, vCache: t.vc, slots: t.slots, out: t.out,
        N, Hq, Hkv, Dh, Tmax, window });
      const want = attentionCachedRef(qDense, kc, vc, slots, { Hq, Hkv, Dh, Tmax, window });
      expect(relErr(await gpu.readF32(t.out), want)).toBeLessThan(1e-5);
      gpu.pool.release(...Object.values(t));
    });
  }

  // Gemma 2's soft-capping (the kernel's softcap variant), at its head size 256 with GQA, a window and a
  // scale of its own: a cap of 0.8 against scores of order 1-3, where tanh is far from linear.
  it('soft-capped scores: Hq=4 Hkv=2 Dh=256, window, scale; softcap refused unless finite and > 0', async () => {
    const gpu = await getGpu();
    const Hq = 4; const Hkv = 2; const Dh = 256; const Tmax = 70; const rows = 2; const window = 40; const scale = 2 / Math.sqrt(Dh);
    const kc = f32(rng.array(rows * Tmax * Hkv * Dh)); const vc = f32(rng.array(rows * Tmax * Hkv * Dh));
    const slots = Uint32Array.from([0, Tmax + Tmax - 1, Tmax + 65, 5, Tmax + rng.int(Tmax)]);
    const N = slots.length;
    const q = f32(rng.array(N * Hq * Dh));
    const t = { q: gpu.tensor([N, Hq * Dh], q), kc: gpu.tensor([kc.length], kc), vc: gpu.tensor([vc.length], vc), slots: gpu.tensor([N], slots, 'u32'), out: gpu.tensor([N, Hq * Dh]) };
    const args = { q: { tensor: t.q }, kCache: t.kc, vCache: t.vc, slots: t.slots, out: t.out, N, Hq, Hkv, Dh, Tmax, window, scale };
    const { names } = await dispatchedKernels(gpu, () => attentionCached(gpu, { ...args, softcap: 0.8 }));
    expect(names).toEqual(['attention_cached_softcap']);
    const want = attentionCachedRef(Float64Array.from(q), kc, vc, slots, { Hq, Hkv, Dh, Tmax, window, scale, softcap: 0.8 });
    expect(relErr(await gpu.readF32(t.out), want), `seed ${rng.seed}`).toBeLessThan(1e-5);
    // The cap matters here.
    expect(relErr(attentionCachedRef(Float64Array.from(q), kc, vc, slots, { Hq, Hkv, Dh, Tmax, window, scale }), want)).toBeGreaterThan(0.05);
    for (const softcap of [-1, NaN, Infinity]) expect(() => attentionCached(gpu, { ...args, softcap }), `${softcap}`).toThrow(/softcap = /);
    gpu.pool.release(...Object.values(t));
  });
});
