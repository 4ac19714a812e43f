// Attention through the matmul kernels (src/kernels/attention-unfused.ts, SRK_ATTENTION=unfused)
// against the float64 reference, on fresh random inputs of awkward sizes: plain causal, GQA with a
// sliding window, packed pairs with short rows (padding rows write out = 0 and lse = 0), and
// GPT-NeoX's fused QKV operands with gradients into one fused dQKV buffer. f32: relErr < 1e-5 as
// the flash kernels (attention.test.ts); f16 precision: the forward against the reference on
// f16-rounded inputs, the gradients against the exact ones, within the tensor-core bounds of
// attention-smx.test.ts (and not the f32 result: the rounding happened), also after the flash
// forward (the tuner chooses each direction apart).
import { afterAll, describe, expect, it } from 'vitest';
import { F16_GRAD_BOUND, dispatchedKernels, expectNanLikeReference, getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { attentionBackward, attentionForward, modePick, setAttentionTiling, type HeadOperand } from '../../src/kernels/attention.js';
import { attentionModeLabels } from '../../src/kernels/attention-tiling.js';
import { packMaskHost } from '../../src/kernels/attention-mask.js';
import { attentionBackward as backwardRef, attentionForward as forwardRef, attentionVisible, packedPairMask } from '../../src/kernels/attention.ref.js';
import { roundF16 } from '../../src/kernels/absmax.ref.js';
import { setUnfusedCausal, squareLayout } from '../../src/kernels/attention-unfused.js';

const rng = makeRng();
afterAll(() => setAttentionTiling(undefined));

interface Case {
  B: number; T: number; Hq: number; Hkv: number; Dh: number; window?: number;
  positions?: Int32Array; segments?: Int32Array; lengths?: Int32Array; fused?: boolean;
  /** Gemma 2's soft-cap of the scaled scores; check() doubles the queries then (scores of order 1-3). */
  softcap?: number;
}
type Result = { out: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array };

/** Forward and backward; `unfused`: both through the matmul path, or [forward, backward] apart. */
async function run(gpu: Gpu, c: Case, x: Record<'q' | 'k' | 'v' | 'dout', Float32Array>, precision: 'f32' | 'f16', unfused: boolean | [boolean, boolean]): Promise<Result> {
  const { B, T, Hq, Hkv, Dh } = c;
  const [uf, ub] = typeof unfused === 'boolean' ? [unfused, unfused] : unfused;
  const pool: ReturnType<Gpu['tensor']>[] = [];
  const t = (shape: number[], d?: Float32Array) => { const r = gpu.tensor(shape, d); pool.push(r); return r; };
  let ops: { q: HeadOperand; k: HeadOperand; v: HeadOperand };
  let grads: () => Promise<{ dq: Float32Array; dk: Float32Array; dv: Float32Array }>;
  let gops: { dq: HeadOperand; dk: HeadOperand; dv: HeadOperand };
  if (c.fused) {
    const qkv = new Float32Array(B * T * Hq * 3 * Dh);
    for (let r = 0; r < B * T; r++) for (let h = 0; h < Hq; h++) for (let d = 0; d < Dh; d++) {
      const s = (r * Hq + h) * Dh + d; const base = (r * Hq + h) * 3 * Dh + d;
      qkv[base] = x.q[s]; qkv[base + Dh] = x.k[s]; qkv[base + 2 * Dh] = x.v[s];
    }
    const tq = t([B * T, Hq, 3, Dh], qkv); const td = t([B * T, Hq, 3, Dh]);
    const o = (tt: typeof tq, off: number) => ({ tensor: tt, offset: off, tokenStride: 3 * Hq * Dh, headStride: 3 * Dh });
    ops = { q: o(tq, 0), k: o(tq, Dh), v: o(tq, 2 * Dh) };
    gops = { dq: o(td, 0), dk: o(td, Dh), dv: o(td, 2 * Dh) };
    grads = async () => {
      const all = await gpu.readF32(td);
      const split = (w: number) => Float32Array.from({ length: B * T * Hq * Dh }, (_, i) => all[Math.floor(i / Dh) * 3 * Dh + w * Dh + (i % Dh)]);
      return { dq: split(0), dk: split(1), dv: split(2) };
    };
  } else {
    ops = { q: { tensor: t([B * T, Hq, Dh], x.q) }, k: { tensor: t([B * T, Hkv, Dh], x.k) }, v: { tensor: t([B * T, Hkv, Dh], x.v) } };
    const tdq = t([B * T, Hq, Dh]); const tdk = t([B * T, Hkv, Dh]); const tdv = t([B * T, Hkv, Dh]);
    gops = { dq: { tensor: tdq }, dk: { tensor: tdk }, dv: { tensor: tdv } };
    grads = async () => ({ dq: await gpu.readF32(tdq), dk: await gpu.readF32(tdk), dv: await gpu.readF32(tdv) });
  }
  const mask = c.positions || c.segments || c.lengths ? packMaskHost(gpu, B, T, c) : undefined;
  const to = t([B * T, Hq, Dh]); const tl = t([B, Hq, T]); const tg = t([B * T, Hq, Dh], x.dout);
  const args = { B, T, Hq, Hkv, Dh, ...ops, mask, window: c.window, softcap: c.softcap, precision };
  setAttentionTiling({ unfused: uf });
  attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
  setAttentionTiling({ unfused: ub });
  attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, ...gops });
  const r = { out: await gpu.readF32(to), lse: await gpu.readF32(tl), ...(await grads()) };
  gpu.pool.release(...pool);
  if (mask) gpu.pool.release(mask.packed);
  setAttentionTiling(undefined);
  return r;
}

/** f32 always; `f16`: also with f16 operands and the flash-forward mix (each costs lavapipe a set of
 *  pipeline compiles, so the cases share two of them). */
async function check(c: Case, f16 = false): Promise<Result> {
  const gpu = await getGpu();
  const { B, T, Hq, Hkv, Dh } = c;
  const n = (k: number) => Float32Array.from(rng.array(k));
  const x = { q: n(B * T * Hq * Dh), k: n(B * T * Hkv * Dh), v: n(B * T * Hkv * Dh), dout: n(B * T * Hq * Dh) };
  if (c.softcap) x.q = x.q.map((e) => 2 * e);
  const dims = { B, T, Hq, Hkv, Dh };
  const mask = { positions: c.positions, segments: c.segments, lengths: c.lengths, window: c.window ?? 0 };
  const exact = forwardRef(x.q, x.k, x.v, dims, mask, undefined, c.softcap);
  const g = backwardRef(x.dout, x.q, x.k, x.v, exact.out, exact.lse, dims, mask, undefined, c.softcap);
  const what = `${JSON.stringify({ B, T, Hq, Hkv, Dh, window: c.window, fused: c.fused, masked: !!(c.segments || c.lengths), softcap: c.softcap })} seed ${rng.seed}`;
  const r = await run(gpu, c, x, 'f32', true);
  expect(relErr(r.lse, exact.lse), `lse ${what}`).toBeLessThan(1e-5);
  expect(relErr(r.out, exact.out), `out ${what}`).toBeLessThan(1e-5);
  for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(r[k], g[k]), `${k} ${what}`).toBeLessThan(1e-5);
  if (!f16) return r;
  // f16 operands (tensor cores where the adapter has them; the f32 kernels rounding elsewhere).
  const r16 = (a: Float32Array) => Float64Array.from(a, roundF16);
  const rounded = forwardRef(r16(x.q), r16(x.k), r16(x.v), dims, mask, undefined, c.softcap);
  const h = await run(gpu, c, x, 'f16', true);
  expect(relErr(h.lse, rounded.lse), `f16 lse ${what}`).toBeLessThan(1e-5);
  expect(relErr(h.out, rounded.out), `f16 out ${what}`).toBeLessThan(2e-3);
  expect(relErr(h.out, r.out), `f16 is rounded ${what}`).toBeGreaterThan(1e-6);
  for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(h[k], g[k]), `f16 ${k} ${what}`).toBeLessThan(F16_GRAD_BOUND);
  // The tuner picks each direction apart: the flash forward (f32 scores and lse) with this backward
  // (f16 scores, P from the flash lse) stays within the same bounds.
  const mix = await run(gpu, c, x, 'f16', [false, true]);
  for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(mix[k], g[k]), `flash forward, unfused f16 backward: ${k} ${what}`).toBeLessThan(F16_GRAD_BOUND);
  return r;
}

describe(`attention through the matmul kernels (seed ${rng.seed})`, () => {
  // Without timings (no tuner, or before a key is timed) the rule decides: the matmul path on a GPU,
  // the flash kernels on a CPU adapter; SRK_ATTENTION-like overrides and an over-large scratch win.
  it('the rule: the matmul path on a GPU, the flash kernels on a CPU adapter; forced ways and the scratch limit first', async () => {
    const real = await getGpu();
    const as = (isCpuAdapter: boolean) => Object.create(real, { isCpuAdapter: { value: isCpuAdapter }, tuner: { value: undefined } }) as Gpu;
    const head = { tensor: real.tensor([4]) };
    const a = { B: 2, T: 64, Hq: 4, Hkv: 2, Dh: 16, q: head, k: head, v: head, precision: 'f32' as const };
    for (const dir of ['fwd', 'bwd'] as const) {
      expect(modePick(as(false), dir, a, false).unfused, dir).toBe(true);
      expect(modePick(as(true), dir, a, false).unfused, dir).toBe(false);
    }
    expect(attentionModeLabels(false)[0]).toBe('unfused');
    expect(attentionModeLabels(true)[0]).toBe('flash');
    setAttentionTiling({ unfused: false });
    expect(modePick(as(false), 'fwd', a, false).unfused).toBe(false);
    setAttentionTiling(undefined);
    // A scratch for even one row over the binding limit: the flash kernels, on any adapter.
    expect(modePick(as(false), 'fwd', { ...a, B: 1, T: 1 << 14, Hq: 64 }, false).unfused).toBe(false);
    real.pool.release(head.tensor);
  });

  // The scratch (no GPU): a square per row and head, rows 16-float aligned (the softmax kernels'
  // ROW_WGSL row arithmetic uses ld and A as given).
  it('the scratch layout: T rows of T keys, 64-byte aligned rows', () => {
    for (const T of [1, 7, 16, 37, 64, 769, 2048]) {
      const { ld, A } = squareLayout(T);
      expect(ld % 16).toBe(0);
      expect(ld - T).toBeGreaterThanOrEqual(0);
      expect(ld - T).toBeLessThan(16);
      expect(A).toBe(T * ld);
    }
  });

  it('plain causal; GQA with a sliding window', async () => {
    await check({ B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 20 }, true);
    await check({ B: 1, T: 50, Hq: 4, Hkv: 2, Dh: 16, window: 9 });
  }, 300_000);

  it('packed pairs with short rows: padding rows write out = 0 and lse = 0; rows in chunks', async () => {
    const P = 9; const C = 14; const R = 11; const T = P + C + R + 3; const B = 2; const Hq = 2;
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); }
    const lengths = Int32Array.from([P + C + R, P + C + R - 6]);
    const c: Case = { B, T, Hq, Hkv: 1, Dh: 12, positions, segments, lengths };
    const r = await check(c, true);
    // One row per chunk (a binding window that holds one row's [Hq][A] scores but not two).
    const gpu = await getGpu();
    const limit = 4 * Hq * squareLayout(T).A + 512;
    expect(2 * Hq * squareLayout(T).A * 4).toBeGreaterThan(limit);
    await withBindingLimit(gpu, limit, () => check(c));
    for (let b = 0; b < B; b++) for (let t = lengths[b]; t < T; t++) for (let h = 0; h < Hq; h++) {
      expect(r.lse[(b * Hq + h) * T + t]).toBe(0);
      for (let d = 0; d < 12; d++) expect(r.out[((b * T + t) * Hq + h) * 12 + d]).toBe(0);
    }
  }, 300_000);

  // Only each row's keys up to its query are written (squareLayout): the rest of the square, and the
  // rows' pads, hold whatever the scratch's earlier user left. The products read the scores as lower
  // triangular and dS's maximum (its f16 scale) comes from what the backward softmax writes, so a
  // scratch left full of huge values, or of NaN, changes nothing.
  it('the scratch past each row\'s query is never read: a scratch left full of huge values or NaN changes nothing', async () => {
    const gpu = await getGpu();
    // Rows 150 wide, 160 apart: with 64x64 tiles (the rule here) the score products skip the tiles
    // wholly above the diagonal, so what lies there is the earlier user's.
    const c: Case = { B: 2, T: 150, Hq: 2, Hkv: 2, Dh: 16 };
    expect(squareLayout(c.T).ld - c.T).toBe(10);
    const n = (k: number) => Float32Array.from(rng.array(k));
    const x = { q: n(c.B * c.T * c.Hq * c.Dh), k: n(c.B * c.T * c.Hkv * c.Dh), v: n(c.B * c.T * c.Hkv * c.Dh), dout: n(c.B * c.T * c.Hq * c.Dh) };
    const clean = await run(gpu, c, x, 'f16', true);
    // Every free pool buffer of the scratch's size class (the pool hands out the lowest-id one) filled.
    const numel = c.B * c.Hq * squareLayout(c.T).A;
    for (const fill of [1e30, NaN]) {
      const held: ReturnType<Gpu['tensor']>[] = [];
      const bytes0 = gpu.pool.allocatedBytes;
      while (gpu.pool.allocatedBytes === bytes0) held.push(gpu.pool.acquire([numel]));
      for (const t of held) gpu.upload(t, new Float32Array(numel).fill(fill));
      gpu.pool.release(...held);
      const dirty = await run(gpu, c, x, 'f16', true);
      for (const k of ['out', 'lse', 'dq', 'dk', 'dv'] as const) expect(Array.from(dirty[k]), `${k}, scratch of ${fill}`).toEqual(Array.from(clean[k]));
    }
  }, 300_000);

  // dS's f16 scale comes from the maxima the backward softmax finds as it writes dS: gradients of any
  // magnitude keep f16's precision in dK and dQ (tiny ones would fall into f16's subnormals unscaled,
  // huge ones overflow).
  it('f16 backward with tiny and huge output gradients: dS scaled by its own maxima', async () => {
    const gpu = await getGpu();
    const c: Case = { B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 20 };
    const n = (k: number, sc = 1) => Float32Array.from(rng.array(k, sc));
    for (const mag of [1e-10, 1e5]) {
      const x = { q: n(c.B * c.T * c.Hq * c.Dh), k: n(c.B * c.T * c.Hkv * c.Dh), v: n(c.B * c.T * c.Hkv * c.Dh), dout: n(c.B * c.T * c.Hq * c.Dh, mag) };
      const dims = { B: c.B, T: c.T, Hq: c.Hq, Hkv: c.Hkv, Dh: c.Dh };
      const mask = { window: 0 };
      const exact = forwardRef(x.q, x.k, x.v, dims, mask);
      const g = backwardRef(x.dout, x.q, x.k, x.v, exact.out, exact.lse, dims, mask);
      const h = await run(gpu, c, x, 'f16', true);
      for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(h[k], g[k]), `f16 ${k}, |dO| ~ ${mag}, seed ${rng.seed}`).toBeLessThan(F16_GRAD_BOUND);
    }
  }, 300_000);

  // The forward softmax holds a row in registers (a kernel per power of two of T, up to 4096 keys)
  // and walks wider rows three times in memory. Per variant and the three-pass kernel, P read straight
  // from the scratch, which is filled with NaN first so that a key left unwritten shows, against
  // float64: exp(s - lse) on the visible keys, exact zeros on the hidden ones up to the query; lse
  // and out too. Packed pairs (keys hidden mid-row), rows past the length, T not a multiple of 16.
  it('the forward softmax in registers (each width) and in three passes (T > 4096): P up to each query, lse, out', async () => {
    const gpu = await getGpu();
    const Hq = 1; const Hkv = 1; const Dh = 8; const scale = 1 / Math.sqrt(Dh);
    let S: ReturnType<Gpu['tensor']> | undefined;
    const acquire = gpu.pool.acquire.bind(gpu.pool);
    gpu.pool.acquire = (shape, dtype, label) => {
      const t = acquire(shape, dtype, label);
      if (label === 'attn unfused S') { S = t; gpu.upload(t, new Float32Array(t.numel).fill(NaN)); }
      return t;
    };
    try {
      for (const [T, kernel] of [[75, '_64x2'], [470, '_64x8'], [1000, '_128x8'], [2100, '_256x16'], [4097, '']] as const) {
        const third = Math.floor(T / 3);
        const pm = packedPairMask(third, third, T - 2 * third - 3);
        const positions = new Int32Array(T); const segments = new Int32Array(T);
        positions.set(pm.positions); segments.set(pm.segments);
        const lengths = Int32Array.from([T - 5]);
        const x = { q: Float32Array.from(rng.array(T * Hq * Dh)), k: Float32Array.from(rng.array(T * Hkv * Dh)), v: Float32Array.from(rng.array(T * Hkv * Dh)) };
        const mask = { positions, segments, lengths, window: 0 };
        const exact = forwardRef(x.q, x.k, x.v, { B: 1, T, Hq, Hkv, Dh }, mask);
        const tq = gpu.tensor([T, Hq, Dh], x.q); const tk = gpu.tensor([T, Hkv, Dh], x.k); const tv = gpu.tensor([T, Hkv, Dh], x.v);
        const to = gpu.tensor([T, Hq, Dh]); const tl = gpu.tensor([1, Hq, T]);
        const pmask = packMaskHost(gpu, 1, T, mask);
        setAttentionTiling({ unfused: true });
        const { names } = await dispatchedKernels(gpu, () => attentionForward(gpu, { B: 1, T, Hq, Hkv, Dh, q: { tensor: tq }, k: { tensor: tk }, v: { tensor: tv },
          mask: pmask, precision: 'f32', out: { tensor: to }, lse: tl }));
        setAttentionTiling(undefined);
        const got = { out: await gpu.readF32(to), lse: await gpu.readF32(tl), P: await gpu.readF32(S!) };
        gpu.pool.release(tq, tk, tv, to, tl, pmask.packed);
        expect(names.filter((s) => s.startsWith('attn_unfused_softmax')), `T ${T}`).toEqual([`attn_unfused_softmax${kernel}`]);
        expect(relErr(got.lse, exact.lse), `lse T ${T}`).toBeLessThan(1e-5);
        expect(relErr(got.out, exact.out), `out T ${T}`).toBeLessThan(1e-5);
        // Every row's P up to its query ([h][T][ld] squareLayout), the key's score in float64.
        const { ld, A } = squareLayout(T);
        let bad = 0; let first = '';
        for (let h = 0; h < Hq; h++) for (let i = 0; i < T; i++) {
          const at = h * A + i * ld;
          for (let j = 0; j <= i; j++) {
            let want = 0;
            if (attentionVisible(mask, T, 0, i, j)) {
              let dot = 0;
              for (let d = 0; d < Dh; d++) dot += x.q[(i * Hq + h) * Dh + d] * x.k[j * Hkv * Dh + d];
              want = Math.exp(scale * dot - exact.lse[h * T + i]);
            }
            const ok = want === 0 ? got.P[at + j] === 0 : Math.abs(got.P[at + j] - want) <= 1e-5;
            if (!ok && bad++ === 0) first = `head ${h} query ${i} key ${j}: ${got.P[at + j]}, want ${want}`;
          }
        }
        expect(bad, `T ${T}: P wrong at ${bad} entries, first ${first}`).toBe(0);
      }
    } finally {
      gpu.pool.acquire = acquire;
      setAttentionTiling(undefined);
    }
  }, 300_000);

  // Keys and values past f16's range (|x| ~ 1e5 > 65504) and tiny queries: scaled by powers of two as
  // the products' B, they keep f16's precision (unscaled, a key rounded to Inf scored -Inf and was dropped,
  // a value to Inf gave Inf). Separate operands and GPT-NeoX's fused QKV (one pass for the three maxima).
  it('f16: keys and values past f16\'s range, tiny queries: forward and gradients within the f16 bounds', async () => {
    const gpu = await getGpu();
    for (const fused of [false, true]) {
      const c: Case = { B: 2, T: 29, Hq: 2, Hkv: 2, Dh: 12, fused, lengths: Int32Array.from([29, 23]) };
      const { B, T, Hq, Hkv, Dh } = c;
      const n = (k: number, sc: number) => Float32Array.from(rng.array(k, sc));
      const x = { q: n(B * T * Hq * Dh, 1e-5), k: n(B * T * Hkv * Dh, 1e5), v: n(B * T * Hkv * Dh, 1e5), dout: n(B * T * Hq * Dh, 1) };
      const dims = { B, T, Hq, Hkv, Dh };
      const mask = { lengths: c.lengths, window: 0 };
      const exact = forwardRef(x.q, x.k, x.v, dims, mask);
      const g = backwardRef(x.dout, x.q, x.k, x.v, exact.out, exact.lse, dims, mask);
      const h = await run(gpu, c, x, 'f16', true);
      const what = `fused ${fused}, seed ${rng.seed}`;
      expect(relErr(h.lse, exact.lse), `lse ${what}`).toBeLessThan(1e-3);
      expect(relErr(h.out, exact.out), `out ${what}`).toBeLessThan(5e-3);
      for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(h[k], g[k]), `${k} ${what}`).toBeLessThan(F16_GRAD_BOUND);
    }
  }, 300_000);

  // A NaN score (a NaN in a query or key) gives NaN in out and lse of exactly the rows that see it,
  // never a finite wrong row: the register softmax (f32 and f16 operands) and the three-pass one.
  it('NaN in one key and one query reaches exactly the rows that see them (register and three-pass softmax, f32 and f16)', async () => {
    const gpu = await getGpu();
    for (const [T, precision, B, Hq, softmax] of [[37, 'f32', 2, 2, '_64x1'], [37, 'f16', 2, 2, '_64x1'], [4097, 'f32', 1, 1, '']] as const) {
      const c: Case = { B, T, Hq, Hkv: 1, Dh: 8, lengths: Int32Array.from([T, T - 6].slice(0, B)) };
      const n = (k: number) => Float32Array.from(rng.array(k));
      const x = { q: n(c.B * T * c.Hq * c.Dh), k: n(c.B * T * c.Hkv * c.Dh), v: n(c.B * T * c.Hkv * c.Dh), dout: n(c.B * T * c.Hq * c.Dh) };
      x.k[(T - 4) * c.Hkv * c.Dh + 1] = NaN;           // batch row 0, key T - 4: the last 4 queries see it
      x.q[(((B - 1) * T + 5) * c.Hq + Hq - 1) * c.Dh + 2] = NaN; // last batch row, query 5, last head
      const r16 = (a: Float32Array) => Float64Array.from(a, precision === 'f16' ? roundF16 : (v) => v);
      const want = forwardRef(r16(x.q), r16(x.k), r16(x.v), { B: c.B, T, Hq: c.Hq, Hkv: c.Hkv, Dh: c.Dh }, { lengths: c.lengths, window: 0 });
      const { names, result: got } = await dispatchedKernels(gpu, () => run(gpu, c, x, precision, true));
      const what = `T ${T} ${precision} seed ${rng.seed}`;
      expect(names.filter((k) => k.startsWith('attn_unfused_softmax')), what).toEqual([`attn_unfused_softmax${softmax}`]);
      expect(expectNanLikeReference(got.out, want.out, precision === 'f16' ? 2e-3 : 1e-5, `out ${what}`)).toBe((4 * c.Hq + 1) * c.Dh);
      expect(expectNanLikeReference(got.lse, want.lse, 1e-5, `lse ${what}`)).toBe(4 * c.Hq + 1);
    }
  }, 300_000);

  // The fallback for a GPU whose causal products fail (SRK_UNFUSED_CAUSAL=0, scripts/gpu-check.sh): the
  // products whole over the square, the softmax kernels writing each row through its pad.
  it('SRK_UNFUSED_CAUSAL=0: whole products over the square, the same results, also on a scratch full of NaN', async () => {
    const gpu = await getGpu();
    const acquire = gpu.pool.acquire.bind(gpu.pool);
    gpu.pool.acquire = (shape, dtype, label) => {
      const t = acquire(shape, dtype, label);
      if (label?.startsWith('attn unfused')) gpu.upload(t, new Float32Array(t.numel).fill(NaN));
      return t;
    };
    setUnfusedCausal(false);
    let names: string[];
    try {
      ({ names } = await dispatchedKernels(gpu, () => check({ B: 2, T: 150, Hq: 2, Hkv: 1, Dh: 16, window: 40 }, true)));
    } finally {
      setUnfusedCausal(undefined);
      gpu.pool.acquire = acquire;
    }
    const products = names.filter((n) => n.startsWith('matmul'));
    expect(products.length).toBeGreaterThan(0);
    for (const n of products) expect(n).not.toMatch(/_l[ca]$/);
    // Any other value of the switch is refused by name.
    const saved = process.env.SRK_UNFUSED_CAUSAL;
    process.env.SRK_UNFUSED_CAUSAL = 'no';
    try {
      const c: Case = { B: 1, T: 8, Hq: 1, Hkv: 1, Dh: 4 };
      const n = (k: number) => Float32Array.from(rng.array(k));
      await expect(run(gpu, c, { q: n(32), k: n(32), v: n(32), dout: n(32) }, 'f32', true)).rejects.toThrow(/SRK_UNFUSED_CAUSAL=no: expected 0 or 1/);
    } finally {
      if (saved === undefined) delete process.env.SRK_UNFUSED_CAUSAL; else process.env.SRK_UNFUSED_CAUSAL = saved;
      setAttentionTiling(undefined);
    }
  }, 300_000);

  // Gemma 2's soft-capping: the softmax kernels' softcap variants (forward, backward, and the backward's
  // dS-maxima form of f16), f32 and f16, after the flash forward too; a cap of 0.8 against scores of
  // order 1-3, far from tanh's linear range. And the three-pass forward softmax (T > 4096).
  it('soft-capping (Gemma 2): GQA, window, packed pairs with padding, f32 and f16; the three-pass softmax', async () => {
    const P = 9; const C = 14; const R = 11; const T = P + C + R + 3; const B = 2;
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); }
    const gpu = await getGpu();
    const { names } = await dispatchedKernels(gpu, () => check({ B, T, Hq: 4, Hkv: 2, Dh: 12, window: 6, positions, segments,
      lengths: Int32Array.from([P + C + R, P + C + R - 6]), softcap: 0.8 }, true));
    const softmax = [...new Set(names.filter((n) => n.includes('softmax')))].sort();
    expect(softmax).toEqual(['attn_unfused_dsoftmax_absmax_softcap', 'attn_unfused_dsoftmax_softcap', 'attn_unfused_softmax_64x1_softcap']);
    // T > 4096 (forward only, one head): every visible score capped in each of the three passes.
    const T2 = 4097; const Dh = 8;
    const x = { q: Float32Array.from(rng.array(T2 * Dh, 2)), k: Float32Array.from(rng.array(T2 * Dh)), v: Float32Array.from(rng.array(T2 * Dh)) };
    const mask = { lengths: Int32Array.from([T2 - 5]), window: 300 };
    const exact = forwardRef(x.q, x.k, x.v, { B: 1, T: T2, Hq: 1, Hkv: 1, Dh }, mask, undefined, 0.8);
    const t = { q: gpu.tensor([T2, 1, Dh], x.q), k: gpu.tensor([T2, 1, Dh], x.k), v: gpu.tensor([T2, 1, Dh], x.v), o: gpu.tensor([T2, 1, Dh]), l: gpu.tensor([1, 1, T2]) };
    const pmask = packMaskHost(gpu, 1, T2, mask);
    setAttentionTiling({ unfused: true });
    try {
      const wide = await dispatchedKernels(gpu, () => attentionForward(gpu, { B: 1, T: T2, Hq: 1, Hkv: 1, Dh, q: { tensor: t.q }, k: { tensor: t.k }, v: { tensor: t.v },
        mask: pmask, window: mask.window, softcap: 0.8, precision: 'f32', out: { tensor: t.o }, lse: t.l }));
      expect(wide.names.filter((n) => n.startsWith('attn_unfused_softmax'))).toEqual(['attn_unfused_softmax_softcap']);
    } finally {
      setAttentionTiling(undefined);
    }
    expect(relErr(await gpu.readF32(t.l), exact.lse), `lse T ${T2} seed ${rng.seed}`).toBeLessThan(1e-5);
    expect(relErr(await gpu.readF32(t.o), exact.out), `out T ${T2} seed ${rng.seed}`).toBeLessThan(1e-5);
    gpu.pool.release(...Object.values(t), pmask.packed);
  }, 300_000);

  it('GPT-NeoX fused QKV operands, gradients into one fused dQKV buffer', async () => {
    await check({ B: 2, T: 21, Hq: 2, Hkv: 2, Dh: 8, fused: true });
  }, 300_000);
});
