// Attention through the matmul kernels ("unfused"): for a chunk of batch rows at a time, the scores
// of every head as products batched over rows and heads into an f32 scratch holding a square of
// scores per row and head ([rows][Hq][T][ld], squareLayout), a masked softmax over its rows, and the
// products back. Same arguments, mask rules and outputs (out, lse; dq, dk, dv) as the flash kernels
// in attention.ts, which call this: with a tuner, for each direction (forward, backward) and shape
// bucket, as a candidate timed against the flash kernels (the faster kept); SRK_ATTENTION=unfused
// forces it.
//
// Why: the fused tensor-core attention (attention-smx.ts) failed on the first real tensor cores,
// while the tensor-core matmul was exact there and runs at 85-140 TFLOP/s against ~6 for the f32
// flash kernels (bench/RESULTS.md, run 5). Built from the matmul, attention gets the matmul's
// tensor cores in mixed precision (and its f32 kernels, ~5x the flash kernels' rate, in f32) for the
// price of moving score matrices through memory: 4-6 floats per visible score and pass, transient (a
// chunk of rows at a time).
//
// Causality through the matmul (matmul.ts `causal`): the score products compute only the output
// tiles that meet the lower triangle ('lowerC'), and the products that take P or dS as A read them as
// lower triangular ('lowerA': only the K slices that meet the tile's nonzero part, entries above the
// diagonal loaded as 0). So each product is one dispatch over the whole square (until the fourteenth
// session the scores lay in 4 causal row blocks, a dispatch per block and product: per layer, chunk
// and GQA r, forward and backward took 30 dispatches in f32 and 34 in f16, now 9 and 12), computing
// about half of T^2 plus the diagonal tiles (at 128x128 tiles and T = 769, 57%; the row blocks
// 62.5%), and the softmax kernels write only each row's keys up to its query (no product reads
// further: the last row block's kernels wrote whole rows of width T).
//
// Per chunk of batch rows (as many as the scratch cap and a binding window hold; GQA: query head h =
// g nRep + r reads kv head g. The products are batched over rows and heads, the matmul's two batch
// levels: over every query head where only B is a kv head's (matmul groupB: S, P V, dP, dQ), one
// product per r where the output sums over a kv head's query heads (dV, dK)):
//   forward:  S_h = scale Q_h K_g^T; softmax rows (visible keys only) -> P_h and lse; O_h = P_h V_g.
//   backward: D = rowsum(dO * O) (the flash kernels' preparation kernel, PREP); S_h recomputed;
//             dP_h = dO_h V_g^T; P_h = exp(S_h - lse), dS_h = P_h (dP_h - D) (one kernel, in place);
//             dV_g (+)= P_h^T dO_h; dK_g (+)= scale dS_h^T Q_h; dQ_h = scale dS_h K_g (r = 0 writes dK
//             and dV, the other r add to them).
// Precision 'f16': the products take f16 operands (tensor cores where the adapter has them) with A
// scaled by a power of two from its max |value| where it is a gradient or an activation (Q, dO, dS;
// the maxima found once per call for Q and dO, and for dS by the backward softmax kernel as it writes
// it, per chunk, absmax.ts absmaxPartWgsl), shared by the products; P is <= 1 and is rounded as is; in
// dV = P^T dO the small dO is B, scaled as such (scaleB). K and V, and Q where it is B (dK = dS^T Q),
// are scaled as B too, from their own maxima (attention-wgsl.ts qkvMaxima, once per call): a key
// past f16's 65504 would otherwise round to Inf and its score to -Inf, a key dropped without a trace
// in passes with no backward to turn it into NaN (the Sr losses' augmented pass, scoring).
// Soft-capping (Gemma 2): the softmax kernels' variants cap each scaled score as they read it (and the
// backward's multiplies dS by the cap's derivative); the products are unchanged.
// Reference: attention.ref.ts; checked in test/kernels/attention-unfused.test.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, maxWindowElems, memoDef, windowOf, type KernelDef } from '../engine/kernel.js';
import { MASK_WGSL } from './attention-mask.js';
import { SAW_KEYS_WGSL, SOFTCAP_WGSL, capBackward, capped, headAbsmaxInto, qkvMaxima, type QkvMaxima } from './attention-wgsl.js';
import { envSwitch } from '../engine/env.js';
import { matmul } from './matmul.js';
import { ABSMAX_PARTS, absmaxOf, absmaxPartWgsl } from './absmax.js';
import type { Op } from './attention-wgsl.js';

const WG = 64;

// `softcap`: the cap last in Params (params() writes it) and SOFTCAP_WGSL.
const common = (softcap: boolean) => /* wgsl */ `
struct Params { T: u32, Hq: u32, gb: u32, mBase: u32, hasMask: u32, window: u32, rowBase: u32, sBase: u32, ld: u32, A: u32,
  partsBase: u32, partsAccumulate: u32, rows: u32, wholeRows: u32${softcap ? ', cap: f32' : ''} };
@group(0) @binding(0) var<storage, read> m: array<i32>;${softcap ? SOFTCAP_WGSL : ''}`;

/** A workgroup reduction over WG invocations: fn `name`(li, x) combining with `op` (WGSL of a, b). */
const reduceFn = (name: string, op: string) => /* wgsl */ `
fn ${name}(li: u32, x: f32) -> f32 {
  red[li] = x;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (li < s) { let a = red[li]; let b = red[li + s]; red[li] = ${op}; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;
const REDUCE = `var<workgroup> red: array<f32, ${WG}>;${reduceFn('reduceMax', 'max(a, b)')}${reduceFn('reduceSum', 'a + b')}`;

// The row a softmax kernel works on (query i of head h of batch row z within the chunk, whose first
// is p.gb; i, h, z defined before): n indexes [rows][Hq][T]; row is where its scores start in the
// scratch (squareLayout); the mask's length, position and segment of the query, and the causal end of
// its keys; wEnd, where the softmax kernels' writes of the row end: kEnd (all that the causal products
// read of it), or with p.wholeRows (SRK_UNFUSED_CAUSAL=0) the row's pad, zeros past kEnd.
const ROW_WGSL = /* wgsl */ `let gb = p.gb + z; let n = (z * p.Hq + h) * p.T + i;
  let len = rowLen(gb); let pi = posOf(gb, i); let si = segOf(gb, i);
  let row = p.sBase + (z * p.Hq + h) * p.A + i * p.ld;
  let kEnd = min(i + 1u, p.T);
  let wEnd = select(kEnd, p.ld, p.wholeRows != 0u);`;
// One row per workgroup: x the query, y the head, z the batch row within the chunk.
const ROW_OF_WG = 'let i = wg.x; let h = wg.y; let z = wg.z;';

// The forward softmax kernels' bindings (scores in place -> P, lse) and mask functions.
const softmaxHeader = (softcap: boolean) => /* wgsl */ `${common(softcap)}
@group(0) @binding(1) var<storage, read_write> s: array<f32>;   // [rows][Hq][T][ld] scaled scores -> P (squareLayout)
@group(0) @binding(2) var<storage, read_write> lse: array<f32>; // [rows][Hq][T] of this chunk, from rowBase
@group(0) @binding(3) var<uniform> p: Params;
${MASK_WGSL}
${SAW_KEYS_WGSL}`;

// Forward softmax of one row of scores (query i of head h of batch row gb): over the visible keys,
// P = exp(s - lse), lse = max + log(sum exp(s - max)); every other key up to the query P = 0; a row
// without visible keys (past its length) lse = 0, as the flash kernels write it.
//
// The row held in registers, so it is read once (and the mask evaluated once per key) instead of
// once per pass of max, sum and write: `size` invocations hold R keys each, key j = li + k size (each
// k a contiguous run of loads and stores), with a visibility bit per key. Max and sum come out of one
// reduction of each invocation's (max, sum of exp(s - max)) pairs, combined as
// (m, a exp(ma - m) + b exp(mb - m)), m the larger max: one tree of barriers instead of two.
// `softcap`: each visible score capped as it is read (s' = cap tanh(s / cap); lse and P of s').
function softmaxRegGen(size: number, R: number, softcap: boolean): KernelDef {
  return {
    name: `attn_unfused_softmax_${size}x${R}${softcap ? '_softcap' : ''}`,
    bindings: ['read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${softmaxHeader(softcap)}
var<workgroup> red: array<vec2f, ${size}>; // (max, sum) per invocation, then the tree's
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  ${ROW_OF_WG}
  ${ROW_WGSL}
  var x: array<f32, ${R}>; // [R] scores of keys li + k ${size}, where visible
  var vis = 0u;            // bit k: key li + k ${size} visible
  var mx = -3.0e38;
  for (var k = 0u; k < ${R}u; k++) {
    let j = li + k * ${size}u;
    if (j < kEnd && visible(i, j, len, pi, si, posOf(gb, j), segOf(gb, j))) {
      x[k] = ${capped(softcap, 's[row + j]')}; vis |= 1u << k; mx = max(mx, x[k]);
    }
  }
  var sum = 0.0;
  for (var k = 0u; k < ${R}u; k++) {
    if ((vis & (1u << k)) != 0u) { sum += exp(x[k] - mx); }
  }
  // An invocation without visible keys holds (-3e38, 0): weighted by exp(0) = 1 at worst, it adds 0.
  red[li] = vec2f(mx, sum);
  workgroupBarrier();
  for (var st = ${size / 2}u; st > 0u; st = st >> 1u) {
    if (li < st) {
      let a = red[li]; let b = red[li + st]; let m = max(a.x, b.x);
      red[li] = vec2f(m, a.y * exp(a.x - m) + b.y * exp(b.x - m));
    }
    workgroupBarrier();
  }
  let ms = red[0];
  var l = 0.0;
  if (sawKeys(ms.y)) { l = ms.x + log(ms.y); }
  for (var k = 0u; k < ${R}u; k++) {
    let j = li + k * ${size}u;
    if (j < wEnd) { s[row + j] = select(0.0, exp(x[k] - l), (vis & (1u << k)) != 0u); }
  }
  if (li == 0u) { lse[p.rowBase + n] = l; }
}`,
  };
}
const softmaxReg = memoDef(softmaxRegGen);

// The same softmax in three passes over the row in memory (max, sum, write), each evaluating the
// mask (and the cap) again: for rows too wide for the register kernel's registers.
const softmaxPasses = memoDef((softcap: boolean): KernelDef => ({
  name: `attn_unfused_softmax${softcap ? '_softcap' : ''}`,
  bindings: ['read', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `${softmaxHeader(softcap)}
${REDUCE}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  ${ROW_OF_WG}
  ${ROW_WGSL}
  var mx = -3.0e38;
  for (var j = li; j < kEnd; j += ${WG}u) {
    if (visible(i, j, len, pi, si, posOf(gb, j), segOf(gb, j))) { mx = max(mx, ${capped(softcap, 's[row + j]')}); }
  }
  mx = reduceMax(li, mx);
  var sum = 0.0;
  for (var j = li; j < kEnd; j += ${WG}u) {
    if (visible(i, j, len, pi, si, posOf(gb, j), segOf(gb, j))) { sum += exp(${capped(softcap, 's[row + j]')} - mx); }
  }
  sum = reduceSum(li, sum);
  var l = 0.0;
  if (sawKeys(sum)) { l = mx + log(sum); }
  for (var j = li; j < wEnd; j += ${WG}u) {
    var e = 0.0;
    if (j < kEnd && visible(i, j, len, pi, si, posOf(gb, j), segOf(gb, j))) { e = exp(${capped(softcap, 's[row + j]')} - l); }
    s[row + j] = e;
  }
  if (li == 0u) { lse[p.rowBase + n] = l; }
}`,
}));

/** Keys the register softmax holds at most (R 16 at 256 invocations); wider rows take softmaxPasses. */
const SOFTMAX_REG_KEYS = 4096;

/**
 * The forward softmax kernel for a call's T. Rows are at most T keys wide. The register kernel
 * holds size x R = the power of two >= max(T, 64) keys, size growing from 64 to 256 so that R stays
 * <= 8 (few registers: full occupancy), then R 16 (seven variants); wider rows take the three-pass
 * kernel.
 */
function softmaxDef(T: number, softcap: boolean): KernelDef {
  let cells = 64;
  while (cells < T) cells *= 2;
  if (cells > SOFTMAX_REG_KEYS) return softmaxPasses(softcap);
  const size = Math.min(256, Math.max(64, cells / 8));
  return softmaxReg(size, cells / size, softcap);
}

/** Rows the backward softmax kernel that also finds dS's partial maxima works on at once, WG lanes each. */
const DS_ROWS = 4;

// Backward of the softmax for one row: P = exp(s - lse) on the visible keys (0 elsewhere up to the
// query) into the scores' place, dS = P (dP - D) into dP's place; lse and D from the preparation
// kernel's ld. Each row is WG lanes' work (`lane`). `maxima` (f16 precision, where dS is the scaled
// A of dK's and dQ's products): also dS's partial maxima as it is written (absmax.ts
// absmaxPartWgsl): ABSMAX_PARTS workgroups of DS_ROWS x WG invocations take the chunk's rows in
// grid-stride order, DS_ROWS at a time (as many invocations in flight as ~260k, where one row each
// of 64 would leave an H100's SMs a quarter full); without, one workgroup per row. `softcap`: P of the
// capped score s' = cap tanh(s / cap), and dS times ds'/ds = 1 - tanh^2.
function dsoftmaxGen(maxima: boolean, softcap: boolean): KernelDef {
  const cb = capBackward(softcap, 's[row + j]');
  const rowBody = /* wgsl */ `${ROW_WGSL}
    let l = ld[p.rowBase + 2u * n]; let D = ld[p.rowBase + 2u * n + 1u];
    for (var j = lane; j < wEnd; j += ${WG}u) {
      var pv = 0.0; var ds = 0.0;
      if (j < kEnd && visible(i, j, len, pi, si, posOf(gb, j), segOf(gb, j))) {
        ${cb.decl}pv = exp(${cb.score} - l);
        ds = ${cb.dS('pv * (dp[row + j] - D)')};
      }
      s[row + j] = pv;
      dp[row + j] = ds;${maxima ? '\n      mx = amaxNan(mx, abs(ds));' : ''}
    }`;
  return {
    name: `${maxima ? 'attn_unfused_dsoftmax_absmax' : 'attn_unfused_dsoftmax'}${softcap ? '_softcap' : ''}`,
    bindings: maxima ? ['read', 'read', 'rw', 'rw', 'rw'] : ['read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${common(softcap)}
@group(0) @binding(1) var<storage, read> ld: array<f32>;         // [rows][Hq][T][2] of this chunk (lse, D), from rowBase
@group(0) @binding(2) var<storage, read_write> s: array<f32>;    // [rows][Hq][T][ld] scaled scores -> P (squareLayout)
@group(0) @binding(3) var<storage, read_write> dp: array<f32>;   // [rows][Hq][T][ld] dP -> dS (squareLayout)
${maxima ? absmaxPartWgsl(DS_ROWS * WG, 4) : ''}
@group(0) @binding(${maxima ? 5 : 4}) var<uniform> p: Params;
${MASK_WGSL}
@compute @workgroup_size(${maxima ? DS_ROWS * WG : WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {${maxima ? `
  var mx = 0.0;
  // The chunk's rows r = i + T (h + Hq z): lanes [g WG, (g + 1) WG) take rows wg.x DS_ROWS + g, then
  // every (ABSMAX_PARTS DS_ROWS)-th after it.
  let total = p.rows * p.Hq * p.T;
  let lane = li % ${WG}u;
  for (var r = wg.x * ${DS_ROWS}u + li / ${WG}u; r < total; r += ${ABSMAX_PARTS * DS_ROWS}u) {
    let i = r % p.T; let hz = r / p.T; let h = hz % p.Hq; let z = hz / p.Hq;
    ${rowBody}
  }
  writeAbsmaxPart(li, mx, wg.x);` : `
  ${ROW_OF_WG}
  let lane = li;
  {
    ${rowBody}
  }`}
}`,
  };
}
const dsoftmaxDef = memoDef(dsoftmaxGen);

/** The call's shapes and resolved operands (attention.ts resolves and checks them). */
export interface UnfusedShape {
  B: number; T: number; Hq: number; Hkv: number; Dh: number; nRep: number; scale: number; window: number;
  /** Soft-cap of the scaled scores (attention.ts AttentionArgs.softcap); 0: none. */
  softcap: number;
  /** The tuner's name when this runs as a candidate being timed (attention.ts), for every dispatch. */
  timing?: string;
}

/**
 * Whether the products are causal (matmul.ts `causal`), as by default. SRK_UNFUSED_CAUSAL=0 (for a GPU
 * whose causal kernels fail their check, scripts/gpu-check.sh) runs them whole over the square, the
 * softmax kernels writing each row through its pad (zeros past the query) for them; setUnfusedCausal
 * for tests.
 */
let causalOverride: boolean | undefined;
export function setUnfusedCausal(on: boolean | undefined): void { causalOverride = on; }
const causalProducts = (): boolean => causalOverride ?? envSwitch('SRK_UNFUSED_CAUSAL') !== '0';

/** Largest scratch (floats, each of the two) the unfused path takes: 384 MiB, so long sequences
 *  (where T^2 outgrows the model) stay on the flash kernels. (8 rows of Pythia-410m's 16 heads at
 *  T = 769 take 77M floats: one chunk.) */
export const UNFUSED_MAX_SCRATCH = 96 * 2 ** 20;

/**
 * The scores of one batch row and head: a square of T query rows by T keys, rows `ld` floats apart
 * (T rounded up to 16, so every score row starts 64-byte aligned: the tensor-core products store
 * their result matrices straight into the scratch, matmul-smx.ts direct stores, and the pad lets
 * every product move score rows as vec4, matmul.ts padA/padC). A = T ld floats per row and head.
 * The softmax kernels write each row's keys up to its query, and the products read no further
 * (they are causal; the score products write whole tiles that meet the diagonal).
 */
export function squareLayout(T: number): { ld: number; A: number } {
  const ld = Math.ceil(T / 16) * 16;
  return { ld, A: T * ld };
}

/** Whether a batch row's [Hq][A] scratch fits one binding window and the cap (else the flash kernels run). */
export function unfusedFits(gpu: Gpu, Hq: number, T: number): boolean {
  return Hq * squareLayout(T).A <= Math.min(maxWindowElems(gpu), UNFUSED_MAX_SCRATCH);
}

/** Batch rows per chunk: as many as the scratch cap and a binding window hold (each product and
 *  softmax dispatch covers a chunk's rows at once). */
function rowsPerChunk(gpu: Gpu, B: number, Hq: number, A: number): number {
  return Math.max(1, Math.min(B, Math.floor(Math.min(maxWindowElems(gpu), UNFUSED_MAX_SCRATCH) / (Hq * A))));
}

/** The softmax kernels' Params; `softcap` (0: none) last, for their soft-capping variants. */
function params(T: number, Hq: number, gb: number, wm: { base: number }, hasMask: boolean, window: number, rowBase: number, sBase: number,
  layout: { ld: number; A: number }, softcap: number, partsBase = 0, rows = 0): Uint8Array {
  const w = new ParamWriter().u32(T, Hq, gb, wm.base, hasMask ? 1 : 0, window, rowBase, sBase, layout.ld, layout.A, partsBase, 0, rows,
    causalProducts() ? 0 : 1);
  if (softcap) w.f32(softcap);
  return w.bytes();
}

/** One product batched over the chunk's rows and heads (headProduct). */
interface HeadProduct {
  /** The profiler's name (attn_unfused_<what>_<kernel>). */
  what: string;
  a: Op | 'scratch'; b: Op; c: Op | 'scratch';
  /**
   * Which head indexes each operand: the query head h, the kv head g, or the scratch's head h (its
   * square of scores).
   */
  ah: 'q' | 'kv' | 's'; bh: 'q' | 'kv' | 's'; ch: 'q' | 'kv' | 's';
  M: number; N: number; K: number; transA?: boolean; transB?: boolean;
  alpha?: number; accumulate?: boolean; precision: 'f32' | 'f16';
  /** The score products compute C's lower triangle; the others take the scores as a lower-triangular A. */
  causal: 'lowerC' | 'lowerA';
  /** f16: A's (B's) partial maxima (absmax.ts), computed once for all the products that take it. */
  scaleA?: Tensor; scaleB?: Tensor;
}

/**
 * Runs `pr` for batch rows [b0, b0 + rows) as one product batched two ways: over the rows (outer: T
 * token rows apart, or [Hq][A] in the scratch) and heads (inner). For one r, the inner batch is the kv
 * heads g, the operands indexed by query head h = g nRep + r (stride nRep hs over g, offset r hs), kv
 * head g (stride hs) or scratch head h (stride nRep A, offset r A, rows ld apart). With r 'all' (no
 * operand but B indexed by kv head: GQA's products whose output is per query head), the inner batch is
 * every query head h, B's kv head g = h / nRep (matmul groupB): one dispatch for all r.
 */
function headProduct(gpu: Gpu, pr: HeadProduct, sh: UnfusedShape, layout: { ld: number; A: number }, b0: number, rows: number,
  scratch: Tensor, r: number | 'all'): void {
  const { T, nRep, Hq } = sh;
  const { A } = layout;
  const all = r === 'all';
  if (all && (pr.ah === 'kv' || pr.ch === 'kv')) throw new Error(`attention (unfused): ${pr.what} sums over query heads: one product per r`);
  const k = all ? 0 : r; const step = all ? 1 : nRep; // query head of inner product i: i step + k
  const place = (op: Op | 'scratch', who: 'q' | 'kv' | 's') => {
    if (op === 'scratch' || who === 's') return { t: scratch, off: k * A, stride: step * A, ld: layout.ld, outer: Hq * A };
    const base = op.off + b0 * T * op.ts;
    return who === 'q' ? { t: op.t, off: base + k * op.hs, stride: step * op.hs, ld: op.ts, outer: T * op.ts }
      : { t: op.t, off: base, stride: op.hs, ld: op.ts, outer: T * op.ts };
  };
  const A_ = place(pr.a, pr.ah); const Bo = place(pr.b, pr.bh); const C = place(pr.c, pr.ch);
  matmul(gpu, {
    a: A_.t, b: Bo.t, c: C.t, M: pr.M, N: pr.N, K: pr.K, transA: pr.transA, transB: pr.transB,
    lda: A_.ld, ldb: Bo.ld, ldc: C.ld, batch: all ? Hq : sh.Hkv, groupB: all && pr.bh === 'kv' ? nRep : 1,
    strideA: A_.stride, strideB: Bo.stride, strideC: C.stride,
    outer: rows, outerStrideA: A_.outer, outerStrideB: Bo.outer, outerStrideC: C.outer,
    offA: A_.off, offB: Bo.off, offC: C.off, alpha: pr.alpha, accumulate: pr.accumulate ?? false, precision: pr.precision,
    // Score rows are read, or written, past T to their 16-float pad as vec4 (run 7: products on
    // scalar loads and stores at T = 769 took 39 of the 112 ms of attention in the 410m f32 step).
    // The pad lies above the diagonal: a lower-triangular A never uses it, and C's is never read.
    padA: pr.ah === 's', padC: pr.ch === 's', causal: causalProducts() ? pr.causal : undefined,
    scaleA: pr.precision === 'f16' ? pr.scaleA ?? false : false, scaleB: pr.precision === 'f16' ? pr.scaleB : undefined,
    timing: sh.timing, profileLabel: `attn_unfused_${pr.what}`,
  });
}

/** S = scale Q K^T for batch rows [b0, b0 + n) into the scratch S, every query head (the forward's
 *  scores; the backward recomputes them): the lower triangle, by whole tiles. */
function scoreProducts(gpu: Gpu, sh: UnfusedShape, layout: { ld: number; A: number }, ops: { q: Op; k: Op }, b0: number, n: number,
  S: Tensor, sc: QkvMaxima | undefined, precision: 'f32' | 'f16'): void {
  headProduct(gpu, { what: 'qk', a: ops.q, ah: 'q', b: ops.k, bh: 'kv', c: 'scratch', ch: 's', M: sh.T, N: sh.T, K: sh.Dh, transB: true,
    alpha: sh.scale, scaleA: sc?.q, scaleB: sc?.k, precision, causal: 'lowerC' }, sh, layout, b0, n, S, 'all');
}

/** Forward: writes out (through its operand) and lse [B, Hq, T]. `m`: the packed mask or a dummy. */
export function unfusedForward(gpu: Gpu, sh: UnfusedShape, ops: { q: Op; k: Op; v: Op; o: Op }, lse: Tensor,
  m: Tensor, hasMask: boolean, precision: 'f32' | 'f16'): void {
  const { B, T, Hq, Dh } = sh;
  const layout = squareLayout(T); const { A } = layout;
  const R = rowsPerChunk(gpu, B, Hq, A);
  const S = gpu.pool.acquire([R, Hq, A], 'f32', 'attn unfused S');
  const wm = windowOf(gpu, m);
  // Q's, K's and V's scales once for every row and head (a superset of what each product reads).
  const sc = precision === 'f16' ? qkvMaxima(gpu, ops, Dh, B * T, sh.timing) : undefined;
  for (let b0 = 0; b0 < B; b0 += R) {
    const n = Math.min(R, B - b0);
    scoreProducts(gpu, sh, layout, ops, b0, n, S, sc, precision);
    const ws = windowOf(gpu, S, 0, n * Hq * A);
    const wl = windowOf(gpu, lse, b0 * Hq * T, (b0 + n) * Hq * T);
    gpu.recorder.dispatch(gpu.kernels.get(softmaxDef(T, !!sh.softcap)), [wm.range, ws.range, wl.range], params(T, Hq, b0, wm, hasMask, sh.window, wl.base, ws.base, layout, sh.softcap),
      [T, Hq, n], sh.timing);
    headProduct(gpu, { what: 'pv', a: 'scratch', ah: 's', b: ops.v, bh: 'kv', c: ops.o, ch: 'q', M: T, N: Dh, K: T, scaleB: sc?.v, precision, causal: 'lowerA' },
      sh, layout, b0, n, S, 'all');
  }
  gpu.pool.release(S, ...(sc ? [sc.parts] : []));
}

/**
 * The partial maxima of an operand in f16 precision (release after use), else undefined: of its own
 * columns where its heads lie evenly through the tokens (Q of GPT-NeoX's fused QKV tensor without K and
 * V, a third of the reads; a tensor of its own whole), else of its whole tensor (a superset).
 */
function scaled(gpu: Gpu, sh: UnfusedShape, op: Op, precision: 'f32' | 'f16'): Tensor | undefined {
  if (precision !== 'f16') return undefined;
  const parts = gpu.pool.acquire([ABSMAX_PARTS], 'f32', 'absmax parts');
  headAbsmaxInto(gpu, op, sh.Dh, sh.B * sh.T, parts, 0, sh.Dh, sh.timing);
  return parts;
}

/**
 * Backward: writes dq, dk, dv (through their operands) given ld [B, Hq, T, 2] (lse and D, from the
 * flash kernels' preparation kernel, which the caller ran).
 */
export function unfusedBackward(gpu: Gpu, sh: UnfusedShape, ops: { q: Op; k: Op; v: Op; g: Op; dq: Op; dk: Op; dv: Op }, ld: Tensor,
  m: Tensor, hasMask: boolean, precision: 'f32' | 'f16'): void {
  const { B, T, Hq, Dh, nRep, scale } = sh;
  const layout = squareLayout(T); const { A } = layout;
  const R = rowsPerChunk(gpu, B, Hq, A);
  const S = gpu.pool.acquire([R, Hq, A], 'f32', 'attn unfused S');
  const dP = gpu.pool.acquire([R, Hq, A], 'f32', 'attn unfused dP');
  const wm = windowOf(gpu, m);
  // Q's, K's, V's and dO's scales once for every row and head; dS's per chunk of rows, by the softmax kernel.
  const sc = precision === 'f16' ? qkvMaxima(gpu, ops, Dh, B * T, sh.timing) : undefined;
  const gScale = scaled(gpu, sh, ops.g, precision);
  const dsScale = precision === 'f16' ? gpu.pool.acquire([ABSMAX_PARTS], 'f32', 'attn unfused dS absmax') : undefined;
  for (let b0 = 0; b0 < B; b0 += R) {
    const n = Math.min(R, B - b0);
    // S = scale Q K^T (recomputed); dP = dO V^T.
    scoreProducts(gpu, sh, layout, ops, b0, n, S, sc, precision);
    headProduct(gpu, { what: 'dp', a: ops.g, ah: 'q', b: ops.v, bh: 'kv', c: 'scratch', ch: 's', M: T, N: T, K: Dh, transB: true, scaleA: gScale, scaleB: sc?.v, precision, causal: 'lowerC' },
      sh, layout, b0, n, dP, 'all');
    const ws = windowOf(gpu, S, 0, n * Hq * A); const wd = windowOf(gpu, dP, 0, n * Hq * A);
    const wld = windowOf(gpu, ld, 2 * b0 * Hq * T, 2 * (b0 + n) * Hq * T);
    if (ws.base !== wd.base) throw new Error('attention (unfused): S and dP scratch windows differ in alignment');
    const wparts = dsScale ? windowOf(gpu, dsScale, 0, ABSMAX_PARTS) : undefined;
    gpu.recorder.dispatch(gpu.kernels.get(dsoftmaxDef(!!dsScale, !!sh.softcap)), [wm.range, wld.range, ws.range, wd.range, ...(wparts ? [wparts.range] : [])],
      params(T, Hq, b0, wm, hasMask, sh.window, wld.base, ws.base, layout, sh.softcap, wparts?.base ?? 0, n), wparts ? [ABSMAX_PARTS, 1, 1] : [T, Hq, n], sh.timing);
    // dV_g (+)= P_h^T dO_h (dO scaled as B); dK_g (+)= scale dS_h^T Q_h: sums over the query heads
    // of a kv head, one product per r (r = 0 writes, the others add).
    for (let r = 0; r < nRep; r++) {
      const acc = r > 0;
      headProduct(gpu, { what: 'dv', a: 'scratch', ah: 's', b: ops.g, bh: 'q', c: ops.dv, ch: 'kv', M: T, N: Dh, K: T, transA: true, scaleB: gScale, accumulate: acc, precision, causal: 'lowerA' },
        sh, layout, b0, n, S, r);
      headProduct(gpu, { what: 'dk', a: 'scratch', ah: 's', b: ops.q, bh: 'q', c: ops.dk, ch: 'kv', M: T, N: Dh, K: T, transA: true, alpha: scale, scaleA: dsScale, scaleB: sc?.q, accumulate: acc, precision, causal: 'lowerA' },
        sh, layout, b0, n, dP, r);
    }
    // dQ_h = scale dS_h K_g, every query head at once.
    headProduct(gpu, { what: 'dq', a: 'scratch', ah: 's', b: ops.k, bh: 'kv', c: ops.dq, ch: 'q', M: T, N: Dh, K: T, alpha: scale, scaleA: dsScale, scaleB: sc?.k, precision, causal: 'lowerA' },
      sh, layout, b0, n, dP, 'all');
  }
  gpu.pool.release(S, dP, ...[sc?.parts, gScale, dsScale].filter((x): x is Tensor => !!x));
}
