// Flash attention (src/kernels/attention.ts) against the float64 reference (attention.ref.ts) on
// fresh random inputs of awkward sizes. Tolerance: relErr (max abs error / max abs reference)
// < 1e-5 for out, lse and the gradients (f32 accumulation over at most a few dozen keys and
// Dh <= 128 stays around 1e-6).
import { describe, expect, it, vi } from 'vitest';

// The matmul's rule tiling only (matmul.ts SRK_MATMUL, read when it loads, hence hoisted): where
// the tuner test keeps the matmul path, tuning its products' tilings too would compile every
// register-tiled candidate on lavapipe (tens of seconds on a cold cache) for nothing attention tests.
vi.hoisted(() => { process.env.SRK_MATMUL ??= 'simple'; });
import { F16_GRAD_BOUND, dispatchedKernels, expectNanLikeReference, getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { attentionBackward, attentionForward, setAttentionTiling, type AttentionTiling, type HeadOperand } from '../../src/kernels/attention.js';
import { Tuner } from '../../src/engine/tuner.js';
import { SEG_CHUNK, maskRowLength, packMask, packMaskArray, packMaskHost, type PackedMask } from '../../src/kernels/attention-mask.js';
import { attentionBackward as attentionBackwardRef, attentionForward as attentionForwardRef, packedPairMask } from '../../src/kernels/attention.ref.js';

// Without LLVM's optimization passes lavapipe compiles these kernels faster and the file runs 13%
// sooner on a cold shader cache (89 -> 77 s); set before this file's GPU device (its own process)
// loads the driver. No effect on other adapters.
process.env.GALLIVM_PERF ??= 'nopt';
const rng = makeRng();
const TOL = 1e-5;

interface Case {
  B: number; T: number; Hq: number; Hkv: number; Dh: number; window?: number;
  positions?: Int32Array; segments?: Int32Array; lengths?: Int32Array;
  /** Gemma 2's soft-cap of the scaled scores (AttentionArgs.softcap). */
  softcap?: number;
}

interface Inputs { q: Float64Array; k: Float64Array; v: Float64Array; dout: Float64Array }

/** Inputs rounded to f32 (so the reference sees exactly what the GPU sees). */
function inputs(c: Case): Inputs {
  const r = (n: number) => Float64Array.from(Float32Array.from(rng.array(n)));
  return { q: r(c.B * c.T * c.Hq * c.Dh), k: r(c.B * c.T * c.Hkv * c.Dh), v: r(c.B * c.T * c.Hkv * c.Dh), dout: r(c.B * c.T * c.Hq * c.Dh) };
}

function reference(c: Case, x: Inputs) {
  const dims = { B: c.B, T: c.T, Hq: c.Hq, Hkv: c.Hkv, Dh: c.Dh };
  const mask = { positions: c.positions, segments: c.segments, lengths: c.lengths, window: c.window ?? 0 };
  const f = attentionForwardRef(x.q, x.k, x.v, dims, mask, undefined, c.softcap);
  const g = attentionBackwardRef(x.dout, x.q, x.k, x.v, f.out, f.lse, dims, mask, undefined, c.softcap);
  return { out: f.out, lse: f.lse, dq: g.dq, dk: g.dk, dv: g.dv };
}

interface GpuResult { out: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }

const f32 = (x: Float64Array) => Float32Array.from(x);

/** Runs forward + backward with dense [B*T, H, Dh] tensors. */
async function runDense(gpu: Gpu, c: Case, x: Inputs, mask?: PackedMask | 'raw'): Promise<GpuResult> {
  const { B, T, Hq, Hkv, Dh } = c;
  const tq = gpu.tensor([B * T, Hq, Dh], f32(x.q)); const tk = gpu.tensor([B * T, Hkv, Dh], f32(x.k));
  const tv = gpu.tensor([B * T, Hkv, Dh], f32(x.v)); const tg = gpu.tensor([B * T, Hq, Dh], f32(x.dout));
  const to = gpu.tensor([B * T, Hq, Dh]); const tl = gpu.tensor([B, Hq, T]);
  const tdq = gpu.tensor([B * T, Hq, Dh]); const tdk = gpu.tensor([B * T, Hkv, Dh]); const tdv = gpu.tensor([B * T, Hkv, Dh]);
  const raw: Tensor[] = [];
  let m: Parameters<typeof attentionForward>[1]['mask'];
  if (mask === 'raw') {
    const t = (a: Int32Array | undefined) => { if (!a) return undefined; const r = gpu.tensor([a.length], a, 'i32'); raw.push(r); return r; };
    m = { positions: t(c.positions), segments: t(c.segments), lengths: t(c.lengths) };
  } else {
    m = mask ?? (c.positions || c.segments || c.lengths ? packMaskHost(gpu, B, T, c) : undefined);
  }
  const args = { B, T, Hq, Hkv, Dh, q: { tensor: tq }, k: { tensor: tk }, v: { tensor: tv }, mask: m, window: c.window, softcap: c.softcap };
  attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
  attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, dq: { tensor: tdq }, dk: { tensor: tdk }, dv: { tensor: tdv } });
  const r = {
    out: await gpu.readF32(to), lse: await gpu.readF32(tl),
    dq: await gpu.readF32(tdq), dk: await gpu.readF32(tdk), dv: await gpu.readF32(tdv),
  };
  gpu.pool.release(tq, tk, tv, tg, to, tl, tdq, tdk, tdv, ...raw);
  if (m && 'packed' in m && m !== mask) gpu.pool.release(m.packed);
  return r;
}

function expectClose(got: GpuResult, want: ReturnType<typeof reference>, tol = TOL): void {
  for (const k of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
    const e = relErr(got[k], want[k]);
    expect(e, `${k} relErr ${e}`).toBeLessThan(tol);
  }
}

function allFinite(r: GpuResult): boolean {
  return Object.values(r).every((a: Float32Array) => a.every(Number.isFinite));
}

describe(`attention (seed ${rng.seed})`, () => {
  it('(a) plain causal B=2 T=37 H=3 Dh=16', async () => {
    const gpu = await getGpu();
    const c: Case = { B: 2, T: 37, Hq: 3, Hkv: 3, Dh: 16 };
    const x = inputs(c);
    expectClose(await runDense(gpu, c, x), reference(c, x));
  });

  it('(b) GQA Hq=4 Hkv=2 Dh=12', async () => {
    const gpu = await getGpu();
    const c: Case = { B: 2, T: 21, Hq: 4, Hkv: 2, Dh: 12 };
    const x = inputs(c);
    expectClose(await runDense(gpu, c, x), reference(c, x));
  });

  it('(c) sliding window 5, T=29', async () => {
    const gpu = await getGpu();
    const c: Case = { B: 2, T: 29, Hq: 2, Hkv: 2, Dh: 16, window: 5 };
    const x = inputs(c);
    expectClose(await runDense(gpu, c, x), reference(c, x));
  });

  it('(d) padding lengths [T, T-9] with window 4 < padding: padded rows exactly 0, all finite', async () => {
    const gpu = await getGpu();
    const T = 26;
    const c: Case = { B: 2, T, Hq: 2, Hkv: 1, Dh: 16, window: 4, lengths: Int32Array.from([T, T - 9]) };
    const x = inputs(c);
    const got = await runDense(gpu, c, x);
    expectClose(got, reference(c, x));
    expect(allFinite(got)).toBe(true);
    const { Hq, Hkv, Dh } = c;
    for (let t = T - 9; t < T; t++) {
      const row = T + t; // batch row 1
      for (let n = 0; n < Hq * Dh; n++) {
        expect(got.out[row * Hq * Dh + n]).toBe(0);
        expect(got.dq[row * Hq * Dh + n]).toBe(0);
      }
      for (let n = 0; n < Hkv * Dh; n++) {
        expect(got.dk[row * Hkv * Dh + n]).toBe(0);
        expect(got.dv[row * Hkv * Dh + n]).toBe(0);
      }
    }
  });

  it('(e) packed pair [prompt 7, chosen 5, rejected 6] equals the two unpacked rows', async () => {
    const gpu = await getGpu();
    const P = 7; const C = 5; const R = 6; const T = P + C + R + 2; // two padding tokens
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(T); const segments = new Int32Array(T);
    positions.set(pm.positions); segments.set(pm.segments);
    const Hq = 2; const Hkv = 2; const Dh = 16;
    const c: Case = { B: 1, T, Hq, Hkv, Dh, positions, segments, lengths: Int32Array.from([P + C + R]) };
    const x = inputs(c);
    const packed = await runDense(gpu, c, x);
    expectClose(packed, reference(c, x));
    // Unpacked: row 0 = prompt + chosen, row 1 = prompt + rejected, padded to P + R.
    const U = P + Math.max(C, R); const w = Hq * Dh; const wk = Hkv * Dh;
    const src = (row: number, t: number) => (t < P ? t : row === 0 ? (t < P + C ? t : -1) : (t < P + R ? t + C : -1));
    const gather = (a: Float64Array, width: number) => {
      const out = new Float64Array(2 * U * width);
      for (let row = 0; row < 2; row++) for (let t = 0; t < U; t++) {
        const s = src(row, t);
        if (s >= 0) out.set(a.subarray(s * width, (s + 1) * width), (row * U + t) * width);
      }
      return out;
    };
    const cu: Case = { B: 2, T: U, Hq, Hkv, Dh, lengths: Int32Array.from([P + C, P + R]) };
    const xu: Inputs = { q: gather(x.q, w), k: gather(x.k, wk), v: gather(x.v, wk), dout: gather(x.dout, w) };
    // The prompt's loss counts once in the packed row: give row 1's prompt copy no gradient.
    xu.dout.fill(0, U * w, (U + P) * w);
    const sep = await runDense(gpu, cu, xu);
    // Every packed token's out equals that of its unpacked twin (the prompt's in both rows), and so
    // does dq (the prompt's from row 0); dk and dv are the sums over both rows.
    const got: Record<'out' | 'dq', number[]> = { out: [], dq: [] };
    const want: Record<'out' | 'dq', number[]> = { out: [], dq: [] };
    const sums = { dk: new Float64Array(T * wk), dv: new Float64Array(T * wk) };
    for (let row = 0; row < 2; row++) for (let t = 0; t < U; t++) {
      const s = src(row, t);
      if (s < 0) continue;
      for (const k of ['out', 'dq'] as const) {
        if (k === 'dq' && row === 1 && t < P) continue;
        for (let n = 0; n < w; n++) { got[k].push(packed[k][s * w + n]); want[k].push(sep[k][(row * U + t) * w + n]); }
      }
      for (const k of ['dk', 'dv'] as const) {
        for (let n = 0; n < wk; n++) sums[k][s * wk + n] += sep[k][(row * U + t) * wk + n];
      }
    }
    for (const k of ['out', 'dq'] as const) expect(relErr(got[k], want[k]), k).toBeLessThan(TOL);
    for (const k of ['dk', 'dv'] as const) expect(relErr(packed[k], sums[k]), k).toBeLessThan(TOL);
  });

  it('(k) long packed pairs: tiles that see nothing through the segments are skipped, results unchanged', async () => {
    const gpu = await getGpu();
    // [prompt 40, chosen 90, rejected 100]: rejected queries x chosen keys span whole 64 x 32 tiles.
    const P = 40; const C = 90; const R = 100; const T = P + C + R + 3; const B = 2;
    const pm = packedPairMask(P, C, R);
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T); const lengths = new Int32Array(B);
    for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); lengths[b] = P + C + R - 7 * b; }
    const c: Case = { B, T, Hq: 2, Hkv: 1, Dh: 16, positions, segments, lengths };
    // The chunk ranges in the packed mask: [min, max] segment per SEG_CHUNK tokens.
    const packedHost = packMaskArray(B, T, c);
    const row = maskRowLength(T);
    for (let g = 0; g * SEG_CHUNK < T; g++) {
      const segs = Array.from(segments.subarray(g * SEG_CHUNK, Math.min(lengths[0], (g + 1) * SEG_CHUNK))); // row 0's real tokens
      const want = segs.length ? [Math.min(...segs), Math.max(...segs)] : [2147483647, -2147483647];
      expect([packedHost[1 + 2 * T + 2 * g], packedHost[2 + 2 * T + 2 * g]], `chunk ${g}`).toEqual(want);
    }
    expect(packedHost.length).toBe(B * row);
    // Such tile pairs exist for the tilings in use (so the skip is exercised, not just allowed).
    const hidden = (qa: number, qe: number, ka: number, ke: number) => {
      const seg = (a: number, e: number) => Array.from(segments.subarray(a, Math.min(e, lengths[0])));
      const k = seg(ka, ke); const q = seg(qa, qe);
      return Math.min(...k) > 0 && (Math.max(...k) < Math.min(...q) || Math.min(...k) > Math.max(...q));
    };
    expect(hidden(192, T, 64, 96)).toBe(true); // rejected queries [192, 233), chosen keys [64, 96)
    const x = inputs(c);
    const want = reference(c, x);
    const got = await runDense(gpu, c, x);
    expectClose(got, want);
    expect(allFinite(got)).toBe(true);
    // The fallback kernels skip the same tiles.
    setAttentionTiling({ legacy: true });
    try { expectClose(await runDense(gpu, c, x), want); } finally { setAttentionTiling(undefined); }
  });

  it('(f) all combined: GQA, window, padding, two packed pairs, raw mask tensors packed on the GPU', async () => {
    const gpu = await getGpu();
    const T = 31; const B = 2;
    const rows = [packedPairMask(6, 9, 7), packedPairMask(4, 5, 3)];
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T); const lengths = new Int32Array(B);
    rows.forEach((pm, b) => { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); lengths[b] = pm.positions.length; });
    // Padding positions continue (as a loader would write them) but must not matter.
    for (let b = 0; b < B; b++) for (let t = lengths[b]; t < T; t++) positions[b * T + t] = t;
    const c: Case = { B, T, Hq: 6, Hkv: 2, Dh: 12, window: 4, positions, segments, lengths };
    const x = inputs(c);
    const want = reference(c, x);
    const got = await runDense(gpu, c, x, 'raw');
    expectClose(got, want);
    expect(allFinite(got)).toBe(true);
    // The GPU packer and the host packer agree.
    const tp = gpu.tensor([B * T], positions, 'i32'); const ts = gpu.tensor([B * T], Uint32Array.from(segments), 'u32');
    const tl = gpu.tensor([B], lengths, 'i32');
    const pm = packMask(gpu, B, T, { positions: tp, segments: ts, lengths: tl });
    expect(Array.from(await gpu.read(pm.packed))).toEqual(Array.from(packMaskArray(B, T, c)));
    gpu.pool.release(tp, ts, tl, pm.packed);
  });

  // The register kernels; the fallback kernels (whose dK/dV pass writes both through one binding of the
  // fused dQKV), forced and where a head of 80 needs them (dK/dV accumulators past 64 a thread).
  for (const [B, T, H, Dh, legacy] of [[2, 19, 3, 16, false], [2, 19, 3, 16, true], [1, 13, 2, 80, false]] as const) {
    it(`(g) GPT-NeoX fused QKV [B*T, H, 3, Dh] in and fused dQKV out, vs separate tensors (Dh ${Dh}${legacy ? ', fallback kernels' : ''})`, async () => {
      if (legacy) setAttentionTiling({ legacy: true });
      let names: string[];
      try { names = await fusedQkvCase(B, T, H, Dh); } finally { setAttentionTiling(undefined); }
      // Where the flash kernels ran (CPU adapters; GPUs take the matmul path by rule): the fallback's shared form.
      if (names.some((n) => n.startsWith('attn_bwd_dkdv'))) {
        expect(names.some((n) => /^attn_bwd_dkdv_g.*_shared$/.test(n)), names.join(' ')).toBe(legacy || Dh > 64);
      }
    });
  }
  /** Runs the case; returns the backward's kernel names. */
  async function fusedQkvCase(B: number, T: number, H: number, Dh: number): Promise<string[]> {
    const gpu = await getGpu();
    const c: Case = { B, T, Hq: H, Hkv: H, Dh, lengths: Int32Array.from(B === 1 ? [T] : [T, T - 4]) };
    const x = inputs(c);
    const fused = new Float32Array(B * T * H * 3 * Dh);
    for (let r = 0; r < B * T; r++) for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) {
      const s = (r * H + h) * Dh + d; const o = (r * H + h) * 3 * Dh + d;
      fused[o] = x.q[s]; fused[o + Dh] = x.k[s]; fused[o + 2 * Dh] = x.v[s];
    }
    const tqkv = gpu.tensor([B * T, H, 3, Dh], fused); const tg = gpu.tensor([B * T, H, Dh], f32(x.dout));
    const to = gpu.tensor([B * T, H, Dh]); const tl = gpu.tensor([B, H, T]);
    const tdqkv = gpu.tensor([B * T, H, 3, Dh]);
    const mask = packMaskHost(gpu, B, T, c);
    const part = (tensor: Tensor, i: number): HeadOperand => ({ tensor, offset: i * Dh, tokenStride: 3 * H * Dh, headStride: 3 * Dh });
    const args = { B, T, Hq: H, Hkv: H, Dh, q: part(tqkv, 0), k: part(tqkv, 1), v: part(tqkv, 2), mask };
    attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
    const { names } = await dispatchedKernels(gpu, () => attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg },
      dq: part(tdqkv, 0), dk: part(tdqkv, 1), dv: part(tdqkv, 2) }));
    const dqkv = await gpu.readF32(tdqkv);
    const split = (i: number) => {
      const a = new Float32Array(B * T * H * Dh);
      for (let r = 0; r < B * T; r++) for (let h = 0; h < H; h++) for (let d = 0; d < Dh; d++) {
        a[(r * H + h) * Dh + d] = dqkv[(r * H + h) * 3 * Dh + i * Dh + d];
      }
      return a;
    };
    const got: GpuResult = { out: await gpu.readF32(to), lse: await gpu.readF32(tl), dq: split(0), dk: split(1), dv: split(2) };
    const sep = await runDense(gpu, c, x, mask);
    for (const k of ['out', 'lse', 'dq', 'dk', 'dv'] as const) expect(Array.from(got[k])).toEqual(Array.from(sep[k]));
    expectClose(got, reference(c, x));
    gpu.pool.release(tqkv, tg, to, tl, tdqkv, mask.packed);
    return names;
  }

  it('(h) Dh=128 (GQA 4:1) and Dh=64 (window 7)', async () => {
    const gpu = await getGpu();
    const c1: Case = { B: 1, T: 21, Hq: 4, Hkv: 1, Dh: 128 };
    const x1 = inputs(c1);
    expectClose(await runDense(gpu, c1, x1), reference(c1, x1));
    const c2: Case = { B: 2, T: 33, Hq: 2, Hkv: 2, Dh: 64, window: 7, lengths: Int32Array.from([30, 33]) };
    const x2 = inputs(c2);
    expectClose(await runDense(gpu, c2, x2), reference(c2, x2));
  });

  it('(i) operands over the binding limit are chunked over batch rows', async () => {
    const gpu = await getGpu();
    const c: Case = { B: 3, T: 9, Hq: 2, Hkv: 2, Dh: 16, lengths: Int32Array.from([9, 5, 7]) };
    const x = inputs(c);
    const limits = gpu.limits; const saved = limits.maxStorageBufferBindingSize;
    limits.maxStorageBufferBindingSize = 2048; // one batch row (9 x 32 floats) per window, not two
    try {
      expectClose(await runDense(gpu, c, x), reference(c, x));
    } finally {
      limits.maxStorageBufferBindingSize = saved;
    }
  });

  // The register-tiled kernels pick their tiles from the adapter's workgroup memory; these force
  // the shapes a 48 KiB GPU picks for Dh 64 (forward 64x32, dQ 32x32, dK/dV 32x32) at head dims
  // that fit here, and the fallback kernels (used where no register tiling fits, e.g. dQ and dK/dV
  // at Dh 128). Windows without a mask let the kernels skip whole tiles: T spans several.
  const tilings: [string, AttentionTiling | undefined][] = [
    ['adapter tiles', undefined],
    ['GPU tiles', { fwd: [64, 32], dq: [32, 32], dkdv: [32, 32] }],
    ['fallback kernels', { legacy: true }],
  ];
  /** Each case on the GPU with `tiling` forced, against float64. */
  const checkCases = async (tiling: AttentionTiling | undefined, cases: Case[]) => {
    const gpu = await getGpu();
    setAttentionTiling(tiling);
    try {
      for (const c of cases) {
        const x = inputs(c);
        expectClose(await runDense(gpu, c, x), reference(c, x));
      }
    } finally {
      setAttentionTiling(undefined);
    }
  };
  for (const [name, tiling] of tilings) {
    // Head sizes that are not a multiple of 4 (no model we load has one, but the kernels take any Dh):
    // the partial vec4 loads and stores of the last columns, and their guards.
    it(`(l) ${name}: Dh 6 and 18 (partial vec4 columns), GQA, window, padding`, () => checkCases(tiling, [
      { B: 2, T: 23, Hq: 2, Hkv: 1, Dh: 6, window: 5, lengths: Int32Array.from([23, 20]) },
      { B: 1, T: 19, Hq: 3, Hkv: 3, Dh: 18 },
    ]));
    // A NaN in a query or key (an f16 overflow upstream, a bad weight) must give NaN, never a finite
    // wrong value: an online softmax that tests `score > MASKED` skips a NaN score as if masked.
    it(`(m) ${name}: NaN in one key and one query reaches exactly the rows that see them`, async () => {
      const gpu = await getGpu();
      setAttentionTiling(tiling);
      try {
        const c: Case = { B: 2, T: 23, Hq: 2, Hkv: 1, Dh: 6, window: 5, lengths: Int32Array.from([23, 20]) };
        const x = inputs(c);
        x.k[10 * c.Hkv * c.Dh + 2] = NaN;                // batch row 0, token 10: queries 10..14 see it
        x.q[((c.T + 5) * c.Hq + 1) * c.Dh + 3] = NaN;    // batch row 1, token 5, head 1
        const got = await runDense(gpu, c, x);
        const dims = { B: c.B, T: c.T, Hq: c.Hq, Hkv: c.Hkv, Dh: c.Dh };
        const want = attentionForwardRef(x.q, x.k, x.v, dims, { lengths: c.lengths, window: c.window });
        expect(expectNanLikeReference(got.out, want.out, TOL, 'out')).toBe((5 * c.Hq + 1) * c.Dh);
        expect(expectNanLikeReference(got.lse, want.lse, TOL, 'lse')).toBe(5 * c.Hq + 1);
      } finally {
        setAttentionTiling(undefined);
      }
    });
    it(`(j) ${name}: window without mask (tile skipping), GQA with padding`, () => checkCases(tiling, [
      { B: 1, T: 100, Hq: 2, Hkv: 1, Dh: 16, window: 9 },
      { B: 2, T: 77, Hq: 4, Hkv: 2, Dh: 32, lengths: Int32Array.from([77, 70]) },
    ]));
  }

  // Gemma 2's soft-capping, each kernel family's softcap variant against the float64 reference: a cap of
  // 0.8 against scores of order 1-3 (queries doubled, exactly), where tanh is far from linear, so that
  // a cap left out, or its derivative in dS, is far outside the tolerance. Each family's three variants
  // cost lavapipe ~13-20 s to compile on a cold shader cache, so one head size each: the register tiles
  // at Dh 16, the fallback kernels at Gemma 2's 256 (where they run unforced).
  /** Packed pairs (two rows, one padded) at Dh, GQA and a window: the masks through raw tensors. */
  const packedCapCase = (Dh: number): Case => {
    const T = 31; const B = 2;
    const rows = [packedPairMask(6, 9, 7), packedPairMask(4, 5, 3)];
    const positions = new Int32Array(B * T); const segments = new Int32Array(B * T); const lengths = new Int32Array(B);
    rows.forEach((pm, b) => { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); lengths[b] = pm.positions.length; });
    return { B, T, Hq: 4, Hkv: 2, Dh, window: 4, positions, segments, lengths, softcap: 0.8 };
  };
  /**
   * The case on the GPU against float64 (the cap matters: a kernel that ignores it fails), then with a
   * NaN in one key: NaN reaches exactly the rows that see it (lavapipe's clamp() turns NaN into a
   * bound, which the capping must not). Returns the kernels dispatched.
   */
  async function checkCapped(c: Case, mask?: 'raw'): Promise<string[]> {
    const gpu = await getGpu();
    const x = inputs(c);
    x.q = x.q.map((e) => 2 * e);
    const want = reference(c, x);
    expect(relErr(reference({ ...c, softcap: undefined }, x).out, want.out)).toBeGreaterThan(0.05);
    const { names, result } = await dispatchedKernels(gpu, () => runDense(gpu, c, x, mask));
    expectClose(result, want);
    expect(allFinite(result)).toBe(true);
    x.k[(2 * c.Hkv + c.Hkv - 1) * c.Dh + 1] = NaN; // batch row 0, key 2, the last kv head
    const nan = reference(c, x);
    const got = await runDense(gpu, c, x, mask);
    expect(expectNanLikeReference(got.lse, nan.lse, TOL, `lse seed ${rng.seed}`)).toBeGreaterThan(0);
    expectNanLikeReference(got.out, nan.out, TOL, `out seed ${rng.seed}`);
    return names;
  }
  /** Each pass ran its softcap variant of the family (`family`: the name's part before the tiles). */
  const expectCapVariants = (names: string[], family: RegExp) => {
    for (const pass of ['attn_fwd_', 'attn_bwd_dq_', 'attn_bwd_dkdv_']) {
      const ran = names.filter((n) => n.startsWith(pass));
      expect(ran.length, pass).toBeGreaterThan(0);
      for (const n of ran) { expect(n).toMatch(family); expect(n).toMatch(/_softcap$/); }
    }
  };
  it('(n) soft-capping, register tiles (Dh 16): window without mask (tile skipping); packed pairs (raw mask), GQA, window, padding', async () => {
    const names = [...await checkCapped({ B: 2, T: 70, Hq: 4, Hkv: 2, Dh: 16, window: 9, softcap: 0.8 }), ...await checkCapped(packedCapCase(16), 'raw')];
    if (names.some((n) => n.startsWith('attn_fwd_'))) expectCapVariants(names, /_reg_/); // (GPUs take the matmul path by rule)
  });
  // Gemma 2's head size: no register tiling fits 256, so the fallback kernels run, unforced.
  it('(o) soft-capping, fallback kernels (Dh 256): packed pairs (raw mask), GQA, window, padding', async () => {
    const names = await checkCapped(packedCapCase(256), 'raw');
    if (names.some((n) => n.startsWith('attn_fwd_'))) expectCapVariants(names, /_g16x16_/);
  });

  it('softcap negative, NaN or infinite is refused, naming softcap', async () => {
    const gpu = await getGpu();
    const t = gpu.tensor([2 * 4 * 16]); const l = gpu.tensor([2 * 4]);
    const a = { B: 1, T: 4, Hq: 2, Hkv: 2, Dh: 16, q: { tensor: t }, k: { tensor: t }, v: { tensor: t } };
    for (const softcap of [-1, NaN, Infinity]) {
      expect(() => attentionForward(gpu, { ...a, softcap, out: { tensor: t }, lse: l }), `${softcap}`).toThrow(/softcap = /);
      expect(() => attentionBackward(gpu, { ...a, softcap, out: { tensor: t }, lse: l, dout: { tensor: t }, dq: { tensor: t }, dk: { tensor: t }, dv: { tensor: t } }))
        .toThrow(/softcap = /);
    }
    gpu.pool.release(t, l);
  });

  it('finite differences of sum(dout * out) agree with the backward: random entries, and along a direction in every entry', async () => {
    const gpu = await getGpu();
    for (const c of [{ B: 1, T: 7, Hq: 2, Hkv: 1, Dh: 12, window: 3 }, { B: 2, T: 9, Hq: 2, Hkv: 2, Dh: 6, lengths: Int32Array.from([9, 6]) }] as Case[]) {
      const x = inputs(c);
      const g = await runDense(gpu, c, x);
      const loss = async (y: Inputs) => {
        const r = await runDense(gpu, c, y);
        let s = 0; for (let n = 0; n < r.out.length; n++) s += r.out[n] * y.dout[n];
        return s;
      };
      const what = `${JSON.stringify({ ...c, lengths: c.lengths && [...c.lengths] })} seed ${rng.seed}`;
      const eps = 1e-2;
      for (const [name, grad] of [['q', g.dq], ['k', g.dk], ['v', g.dv]] as const) {
        for (let t = 0; t < 2; t++) {
          const n = rng.int(x[name].length);
          const plus = { ...x, [name]: Float64Array.from(x[name]) }; plus[name][n] += eps;
          const minus = { ...x, [name]: Float64Array.from(x[name]) }; minus[name][n] -= eps;
          const fd = (await loss(plus) - await loss(minus)) / (2 * eps);
          expect(Math.abs(fd - grad[n]), `${name}[${n}] fd ${fd} vs ${grad[n]} ${what}`).toBeLessThan(2e-3 + 1e-2 * Math.abs(grad[n]));
        }
        // Every entry at once: d/ds loss(x + s v) = sum(grad * v), Richardson-extrapolated central
        // differences (the f32 loss's rounding, ~1e-6 of |loss|, stays below the tolerance).
        const v = Float64Array.from(x[name], () => rng.normal());
        const at = async (s: number) => loss({ ...x, [name]: Float64Array.from(x[name], (e, i) => e + s * v[i]) });
        const c1 = (await at(eps) - await at(-eps)) / (2 * eps);
        const c2 = (await at(eps / 2) - await at(-eps / 2)) / eps;
        const fd = (4 * c2 - c1) / 3;
        let analytic = 0; for (let i = 0; i < v.length; i++) analytic += grad[i] * v[i];
        expect(Math.abs(fd - analytic), `d${name} along a direction: fd ${fd} vs ${analytic} ${what}`).toBeLessThan(2e-3 * Math.max(1, Math.abs(fd)));
      }
    }
  });

  /** Steps of `step` then settle() while the tuner measures or the last step opened keys, at most 8. */
  async function untilChosen(tuner: Tuner, step: (n: number) => Promise<void>): Promise<void> {
    for (let n = 0, grew = true; n < 8 && (tuner.open || grew); n++) {
      const before = tuner.table.progress;
      await step(n);
      await tuner.settle();
      grew = tuner.table.progress > before;
    }
  }

  // The tuner (src/engine/tuner.ts) on this device: each pass's register tiles in turn, every call
  // checked. Dh 64, the common head size: on lavapipe (32 KiB) the forward tries 32x32 (compiled by
  // (h) above) and 32x16; on a 48 KiB GPU the forward tries three and dQ two, the ones it would tune.
  it('with the tuner: flash or unfused per direction, then each pass its tiles, every one exact; keeps the fastest', async () => {
    const gpu = await getGpu();
    const tuner = new Tuner(gpu.device, 2, 1); // one sample per candidate: lavapipe runs each call slowly
    gpu.tuner = tuner;
    try {
      const c: Case = { B: 2, T: 45, Hq: 4, Hkv: 2, Dh: 64, lengths: Int32Array.from([45, 40]) };
      const x = inputs(c);
      const want = reference(c, x);
      // First the flash kernels against the matmul path (attention-unfused.ts), each direction timed
      // as a whole; then, in the way kept, each pass's tiles. Steps of 3 calls until all is chosen: a
      // step that closed the way opens the passes' keys in the next one (as bench step's warm-up).
      await untilChosen(tuner, async () => { for (let i = 0; i < 3; i++) expectClose(await runDense(gpu, c, x), want); });
      expect(tuner.open).toBe(false);
      // The attention choices with more than one candidate (the matmul path's products have keys of their own).
      const decisions = tuner.table.decisions().filter((d) => d.key.startsWith('attention '));
      const modes = decisions.filter((d) => d.key.startsWith('attention mode '));
      expect(modes.map((d) => d.key.split(' ')[2]).sort()).toEqual(['bwd', 'fwd']);
      for (const d of modes) expect(d.candidates).toEqual(['flash', 'unfused']);
      const passes = decisions.filter((d) => !d.key.startsWith('attention mode '));
      if (modes.some((d) => d.key.split(' ')[2] === 'fwd' && d.chosen === 0)) expect(passes.map((d) => d.key.split(' ')[1])).toContain('fwd');
      for (const d of decisions) {
        expect(d.key).toMatch(/ Dh 64 .* gqa masked$/);
        expect(d.candidates.length).toBeGreaterThan(1);
        expect(d.medianMs.every((m) => m !== null && m > 0)).toBe(true);
        expect(d.medianMs[d.chosen]).toBe(Math.min(...(d.medianMs as number[])));
      }
      expectClose(await runDense(gpu, c, x), want); // with the choices, untimed
      // The same shapes with f16 operands (an f32 step's augmented pass may run so, --aug-precision):
      // keys of their own, not the f32 choices and timings.
      gpu.matmulPrecision = 'f16';
      await untilChosen(tuner, async (step) => {
        for (let i = 0; i < 3; i++) {
          // Each candidate within f16 operand precision (the bounds of attention-unfused.test.ts).
          const got = await runDense(gpu, c, x);
          expect(relErr(got.out, want.out), `f16 step ${step} call ${i}: out`).toBeLessThan(3e-3);
          for (const k of ['dq', 'dk', 'dv'] as const) expect(relErr(got[k], want[k]), `f16 step ${step} call ${i}: ${k}`).toBeLessThan(F16_GRAD_BOUND);
        }
      });
      expect(tuner.open).toBe(false);
      const f16Modes = tuner.table.decisions().filter((d) => d.key.startsWith('attention mode ') && d.key.endsWith(' f16'));
      expect(f16Modes.map((d) => d.key.split(' ')[2]).sort()).toEqual(['bwd', 'fwd']);
    } finally {
      gpu.matmulPrecision = 'f32';
      gpu.tuner = undefined;
    }
  });
});
