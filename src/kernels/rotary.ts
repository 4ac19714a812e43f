// Rotary position embeddings (RoPE), f32, Hugging Face "rotate_half" convention, in place or out
// of place, on q or k stored in any [token, head, channel] layout.
//
// Layout (as attention.ts's HeadOperand): channel d of head h of token t is at
//   offset + t * tokenStride + h * headStride + d       (defaults: offset 0, tokenStride H*headDim, headStride headDim)
// so GPT-NeoX's fused qkv [T, H, 3, Dh] is rotated in place (q: offset 0, k: offset Dh, both with
// tokenStride 3*H*Dh and headStride 3*Dh), as are Llama's separate q [T, Hq, Dh] and k [T, Hkv, Dh].
// (GPT-NeoX rotates its q and k in one dispatch: `also`.)
//
// Within the first rotaryDim channels of a head, channel j < rotaryDim/2 pairs with j + rotaryDim/2:
//   out_j = x_j cos(a) - x_{j+r/2} sin(a),   out_{j+r/2} = x_{j+r/2} cos(a) + x_j sin(a)
// with a = pos[t] * inv_freq[j]; channels >= rotaryDim pass through (partial rotary, Pythia 25%).
// The backward is the rotation by -a (inverse: true); it is its own transpose, so it maps dy to dx.
//
// Precision, as HF: inv_freq[j] = 1 / theta^(float32(2j) / rotaryDim) in float32 (computed here on
// the host with float32 rounding at each step, or given as invFreq for scaled RoPE variants), and
// the angle pos * inv_freq rounded to f32. cos and sin of that f32 angle are then computed to ~1
// ulp without the hardware sin/cos (WGSL only promises 2^-11 absolute error on [-pi, pi], nothing
// outside): a Cody-Waite reduction by pi/2 with a four-piece split of pi/2 (the first three pieces
// have 7 significant bits, so k * piece is exact in f32 for |k| < 2^17, i.e. angles < ~200000),
// then polynomials of my own fit (least squares, degree 3 in r^2 after the leading terms) on
// [-pi/4, pi/4]. Measured absolute error in an f32 emulation: 9e-8 for positions up to 131072.
// Note that the f32 angle itself differs from the exact pos * inv_freq by up to half an ulp of the
// angle (2.4e-4 rad at angle 4096): that is HF's behaviour, reproduced on purpose, so the float64
// reference (rotary.ref.ts, exact angles) is only matched to ~pos * 6e-8 (see the tests).
//
// One thread per (token, head, pair); tokens chunk over the binding limit; > 65535 workgroups use
// a 2-D grid. Positions are an i32 (or u32) tensor [T], per token (they restart for each sequence
// of a packed batch).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef, memoDef } from '../engine/kernel.js';

const WG = 256;

/** Where q or k lives: element (t, h, d) at offset + t * tokenStride + h * headStride + d. */
export interface HeadOperand { tensor: Tensor; offset?: number; tokenStride?: number; headStride?: number }

export interface RotaryArgs {
  /** Input (and, without `out`, output: rotated in place). */
  x: HeadOperand;
  /** Optional separate output (pass-through channels are copied). Must not share a buffer with x. */
  out?: HeadOperand;
  /** Tokens (rows of positions). */
  N: number;
  heads: number; headDim: number;
  /** Rotated channels per head (even, <= headDim); the rest pass through. */
  rotaryDim: number;
  /** RoPE base (rope_theta / rotary_emb_base). Ignored when invFreq is given. */
  theta: number;
  /** [N] i32 or u32 positions, one per token. */
  positions: Tensor;
  /** Rotate by -angle: the backward (dx from dy). */
  inverse?: boolean;
  /**
   * [rotaryDim / 2] inverse frequencies (scaled RoPE: linear, llama3, ...; model/rope.ts); default HF's f32
   * formula. A Float32Array is taken as fixed once passed: its GPU copy is found by the array itself.
   */
  invFreq?: ArrayLike<number>;
  /**
   * A second operand rotated in place the same way in the same dispatch: the same tensor and token and
   * head strides as x, at a larger offset, its heads apart from x's (GPT-NeoX's k beside q in the fused
   * qkv: one dispatch where two would do). Not with `out`.
   */
  also?: HeadOperand;
  /**
   * cos and sin times this (transformers' attention_scaling: LongRoPE's attention factor), on the rotated channels
   * alone; absent or 1, the plain kernels. The backward (inverse) takes the same scale: the transpose of a scaled rotation.
   */
  scale?: number;
}

/** HF's theta^(float(2j) / rotaryDim) in float32, each step rounded to f32: the table's denominators. */
export function rotaryPowF32(rotaryDim: number, theta: number): Float32Array {
  const f = Math.fround;
  return Float32Array.from({ length: rotaryDim / 2 }, (_, j) => f(Math.pow(f(theta), f(f(2 * j) / rotaryDim))));
}

/** HF's inv_freq in float32: 1 / theta^(float(2j) / rotaryDim), each step rounded to f32. */
export function rotaryInvFreqF32(rotaryDim: number, theta: number): Float32Array {
  return rotaryPowF32(rotaryDim, theta).map((p) => Math.fround(1 / p));
}

// pi/2 = C1 + C2 + C3 + C4: C1..C3 are pi/2's leading bits in 7-bit pieces, C4 the f32 rest.
const PIO2 = Math.PI / 2;
function top7(x: number): number { const q = 2 ** (Math.floor(Math.log2(x)) - 6); return Math.trunc(x / q) * q; }
const C1 = top7(PIO2); const C2 = top7(PIO2 - C1); const C3 = top7(PIO2 - C1 - C2); const C4 = Math.fround(PIO2 - C1 - C2 - C3);
// sin r = r + r^3 S(r^2), cos r = 1 - r^2/2 + r^4 C(r^2) on |r| <= pi/4 (1% margin).
const S = [-1.666666716e-1, 8.333331905e-3, -1.984003902e-4, 2.724382284e-6];
const CC = [4.166666791e-2, -1.388888806e-3, 2.480056173e-5, -2.729597384e-7];
const lit = (v: number) => v.toExponential(10).replace('e+', 'e');

const SINCOS = /* wgsl */ `
// (sin a, cos a) for an f32 angle |a| < ~2e5, error ~1 ulp.
fn sincos(a: f32) -> vec2f {
  let k = round(a * ${lit(Math.fround(2 / Math.PI))});
  var r = a - k * ${lit(C1)};
  r = r - k * ${lit(C2)};
  r = r - k * ${lit(C3)};
  r = r - k * ${lit(C4)};
  let s = r * r;
  let ps = r + r * s * (${lit(S[0])} + s * (${lit(S[1])} + s * (${lit(S[2])} + s * ${lit(S[3])})));
  let pc = (1.0 - 0.5 * s) + s * s * (${lit(CC[0])} + s * (${lit(CC[1])} + s * (${lit(CC[2])} + s * ${lit(CC[3])})));
  let q = i32(k) & 3;
  var sc = vec2f(ps, pc);
  if (q == 1) { sc = vec2f(pc, -ps); } else if (q == 2) { sc = vec2f(-ps, -pc); } else if (q == 3) { sc = vec2f(-pc, ps); }
  return sc;
}`;

/** The WGSL lines that take (sin, cos) from sincos(): times LongRoPE's attention factor where scaled (HF: cos(emb) * attention_scaling, f32 products). */
function cosSin(scaled: boolean): string {
  return scaled
    ? '// HF: cos(emb) * attention_scaling, sin(emb) * attention_scaling.\n  let s = p.sign * (sc.x * p.scale);\n  let c = sc.y * p.scale;'
    : 'let s = p.sign * sc.x;\n  let c = sc.y;';
}

function rotaryDefGen(outOfPlace: boolean, scaled = false): KernelDef {
  return {
    name: (outOfPlace ? 'rotary_copy' : 'rotary') + (scaled ? '_scaled' : ''),
    bindings: outOfPlace ? ['read', 'read', 'read', 'rw'] : ['read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params {
  tokens: u32, heads: u32, half: u32, passDims: u32, rotaryDim: u32,
  xBase: u32, xTok: u32, xHead: u32, oBase: u32, oTok: u32, oHead: u32, posBase: u32, sign: f32,
  sub: u32, subOff: u32,  // operands (1, or 2 with \`also\`) and the element offset from x to the second${scaled ? '\n  scale: f32,             // cos and sin times it (LongRoPE\'s attention factor)' : ''}
};
@group(0) @binding(0) var<storage, read> pos: array<i32>;
@group(0) @binding(1) var<storage, read> invFreq: array<f32>;
${outOfPlace
    ? '@group(0) @binding(2) var<storage, read> x: array<f32>;\n@group(0) @binding(3) var<storage, read_write> o: array<f32>;'
    : '@group(0) @binding(2) var<storage, read_write> x: array<f32>;'}
@group(0) @binding(${outOfPlace ? 4 : 3}) var<uniform> p: Params;
${SINCOS}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  let per = p.half + p.passDims;     // work items per (token, head, operand): rotated pairs, then copied channels
  let hs = p.heads * p.sub;
  if (i >= p.tokens * hs * per) { return; }
  let j = i % per;
  let th = i / per;
  let hh = th % hs;
  let h = hh / p.sub;
  let t = th / hs;
  let xi = p.xBase + t * p.xTok + h * p.xHead + (hh % p.sub) * p.subOff;
  let oi = ${outOfPlace ? 'p.oBase + t * p.oTok + h * p.oHead' : 'xi'};
  if (j >= p.half) {
    ${outOfPlace ? 'let d = p.rotaryDim + j - p.half; o[oi + d] = x[xi + d];' : ''}
    return;
  }
  // HF: freqs = inv_freq @ position (f32), then cos/sin of it.
  let a = f32(pos[p.posBase + t]) * invFreq[j];
  let sc = sincos(a);
  ${cosSin(scaled)}
  let x1 = x[xi + j];
  let x2 = x[xi + j + p.half];
  ${outOfPlace ? 'o' : 'x'}[oi + j] = x1 * c - x2 * s;
  ${outOfPlace ? 'o' : 'x'}[oi + j + p.half] = x2 * c + x1 * s;
}`,
  };
}

const invFreqCache = new WeakMap<Gpu, Map<string, Tensor>>();
/** "rotaryDim,theta" -> rotaryInvFreqF32 and its invFreqTensor key. */
const defaultInvFreq = new Map<string, { inv: Float32Array; key: string }>();
/** A caller's own Float32Array table -> its invFreqTensor key. */
const givenInvFreqKey = new WeakMap<Float32Array, string>();
const invFreqKey = (inv: Float32Array) => Array.from(new Uint32Array(inv.buffer, inv.byteOffset, inv.length)).join(',');
function invFreqTensor(gpu: Gpu, inv: Float32Array, key = invFreqKey(inv)): Tensor {
  let m = invFreqCache.get(gpu);
  if (!m) invFreqCache.set(gpu, (m = new Map()));
  let t = m.get(key);
  if (!t) {
    // A training run uses one or two; hand old ones back to the pool if something cycles through many.
    if (m.size >= 64) { gpu.pool.release(...m.values()); m.clear(); }
    t = gpu.tensor([inv.length], inv, 'f32', 'inv_freq');
    m.set(key, t);
  }
  return t;
}

interface Op { t: Tensor; off: number; ts: number; hs: number }

/** Rotates q or k by their positions' angles (or by minus them, `inverse`), in place or into `out`. */
export function rotary(gpu: Gpu, a: RotaryArgs): void {
  const { N, heads: H, headDim: Dh, rotaryDim: R } = a;
  if (R % 2 !== 0 || R <= 0 || R > Dh) throw new RangeError(`rotary: rotaryDim ${R} must be even, > 0 and <= headDim ${Dh}`);
  if (a.positions.numel < N || (a.positions.dtype !== 'i32' && a.positions.dtype !== 'u32')) {
    throw new RangeError(`rotary: positions ${a.positions} must be i32/u32 with >= ${N} entries`);
  }
  const mk = (o: HeadOperand, what: string): Op => {
    const op = { t: o.tensor, off: o.offset ?? 0, ts: o.tokenStride ?? H * Dh, hs: o.headStride ?? Dh };
    if (op.t.dtype !== 'f32') throw new TypeError(`rotary ${what}: ${op.t} must be f32`);
    if (N > 0 && op.off + (N - 1) * op.ts + (H - 1) * op.hs + Dh > op.t.numel) {
      throw new RangeError(`rotary ${what}: N=${N} H=${H} Dh=${Dh} offset=${op.off} tokenStride=${op.ts} ` +
        `headStride=${op.hs} exceeds ${op.t}`);
    }
    return op;
  };
  const x = mk(a.x, 'x');
  let subOff = 0;
  if (a.also) {
    const b = mk(a.also, 'also');
    subOff = b.off - x.off;
    const sameLayout = b.t.buffer === x.t.buffer && b.t.offset === x.t.offset && b.ts === x.ts && b.hs === x.hs;
    // Every head of both apart: the second's heads after all of x's, or between x's heads, and all
    // within the token (before the next token's x).
    const apart = subOff >= Dh && (H * x.hs <= subOff || subOff + Dh <= x.hs) && (N <= 1 || subOff + (H - 1) * x.hs + Dh <= x.ts);
    if (!sameLayout || !apart || a.out) {
      throw new RangeError('rotary: `also` must be in x\'s tensor with x\'s strides, at an offset whose heads do not overlap x\'s, and without `out`');
    }
  }
  let out = a.out ? mk(a.out, 'out') : undefined;
  if (out && out.t.buffer === x.t.buffer) {
    if (out.t.offset + out.off * 4 === x.t.offset + x.off * 4 && out.ts === x.ts && out.hs === x.hs) out = undefined;
    else throw new Error('rotary: out shares a buffer with x (rotate in place by omitting out)');
  }
  if (N === 0 || H === 0) return;
  let tInv: Tensor;
  if (a.invFreq) {
    if (a.invFreq.length !== R / 2) throw new RangeError(`rotary: invFreq has ${a.invFreq.length} entries, expected ${R / 2}`);
    // A model's scaled table is one array for the whole run: its key is made once (host time per call).
    const given = a.invFreq instanceof Float32Array ? a.invFreq : undefined;
    let key = given && givenInvFreqKey.get(given);
    const inv = given ?? Float32Array.from(a.invFreq);
    if (!key) { key = invFreqKey(inv); if (given) givenInvFreqKey.set(given, key); }
    tInv = invFreqTensor(gpu, inv, key);
  } else {
    // The model's own frequencies, looked up by (rotaryDim, theta): a layer's four calls a step made
    // the table and its key anew each time (host time per dispatch, bench/RESULTS.md thirteenth session).
    const id = `${R},${a.theta}`;
    let d = defaultInvFreq.get(id);
    if (!d) {
      const inv = rotaryInvFreqF32(R, a.theta);
      defaultInvFreq.set(id, (d = { inv, key: invFreqKey(inv) }));
    }
    tInv = invFreqTensor(gpu, d.inv, d.key);
  }
  const half = R / 2; const pass = out ? Dh - R : 0;
  const scale = a.scale ?? 1;
  if (!(scale > 0) || !Number.isFinite(scale)) throw new RangeError(`rotary: scale ${scale} must be a positive number`);
  const scaled = scale !== 1;
  const k = gpu.kernels.get(rotaryDef(!!out, scaled));
  // Tokens per chunk: every operand's span of rows must fit one binding.
  const max = maxWindowElems(gpu);
  let per = N;
  const sub = a.also ? 2 : 1;
  // A token's span in x: its heads, and the second operand's past them.
  const rowSpan = (o: Op) => (H - 1) * o.hs + Dh + (o === x ? subOff : 0);
  for (const o of out ? [x, out] : [x]) {
    const row = rowSpan(o);
    if (row > max) throw new RangeError('rotary: one token exceeds the binding limit');
    per = Math.min(per, Math.floor((max - row) / Math.max(1, o.ts)) + 1);
  }
  const wInv = windowOf(gpu, tInv);
  for (const [t0, t1] of chunkRanges(N, Math.max(1, per))) {
    const win = (o: Op) => windowOf(gpu, o.t, o.off + t0 * o.ts, o.off + (t1 - 1) * o.ts + rowSpan(o));
    const wx = win(x); const wo = out ? win(out) : undefined;
    const wp = windowOf(gpu, a.positions, t0, t1);
    const pw = new ParamWriter()
      .u32(t1 - t0, H, half, pass, R, wx.base, x.ts, x.hs, wo?.base ?? 0, out?.ts ?? 0, out?.hs ?? 0, wp.base)
      .f32(a.inverse ? -1 : 1).u32(sub, subOff);
    const params = (scaled ? pw.f32(scale) : pw).bytes();
    const ranges = out ? [wp.range, wInv.range, wx.range, wo!.range] : [wp.range, wInv.range, wx.range];
    gpu.recorder.dispatch(k, ranges, params, grid(Math.ceil(((t1 - t0) * H * sub * (half + pass)) / WG)));
  }
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const rotaryDef = memoDef(rotaryDefGen);
