// Causal self-attention, f32, flash style: forward (out + logsumexp) and backward (dq, dk, dv).
//
// Shapes: B batch rows of T tokens; Hq query heads, Hkv key/value heads (GQA: query head h reads
// kv head floor(h / (Hq / Hkv))); head dim Dh <= 256.
//   q: [B*T, Hq, Dh], k, v: [B*T, Hkv, Dh], out / dout / dq: like q, dk / dv: like k; lse: [B, Hq, T].
// Every per-head operand is a HeadOperand (tensor, element offset, token stride, head stride), so
// the models bind their activations without copies: GPT-NeoX's fused QKV [B*T, H, 3, Dh] is
// q = {t, 0, 3HDh, 3Dh}, k = {t, Dh, 3HDh, 3Dh}, v = {t, 2Dh, 3HDh, 3Dh}; Llama's separate
// projections are the defaults (offset 0, token stride H*Dh, head stride Dh).
// Mask: see attention-mask.ts (positions, segments, lengths; window per call). Reference:
// attention.ref.ts.
//
// Kernels: register-tiled ones (see "Register-tiled kernels" below: 4 x 4 score blocks per
// thread from vec4 workgroup tiles, each score and exponential computed once) wherever their
// tiles fit the adapter's workgroup memory; tiles come from maxComputeWorkgroupStorageSize (Dh 64:
// forward 64x32, dQ and dK/dV 32x32 on a 48 KiB GPU; 32x32, 32x16, 16x32 on lavapipe's 32 KiB).
// The first kernels below are the fallback (dQ and dK/dV at Dh 128, anything at Dh > 128):
// a workgroup owns BR query rows of one (batch row, query head); G threads share a row,
// thread g owning the head-dim columns g, g+G, ... (DPT = 16 accumulators in registers). Key and
// value tiles of BC rows are staged in workgroup memory; the BR x BC score tile goes through
// workgroup memory too (a thread computes scores of its row for keys g, g+G, ..., then every
// thread of the row reads the whole row for the online softmax). No T x T matrix exists.
// Rows at or past their length have no visible key: they write out = 0 and lse = 0 (finite, so
// the backward, which recomputes P = exp(s - lse) only for visible pairs, never meets NaN).
//
// Backward (flash-attention-2): D_i = rowsum(dout_i * out_i) (one small kernel, which also packs
// lse and D side by side); then
//   dK/dV pass: a workgroup owns BR keys of one kv head and walks every query row >= its first key
//     for each of the Hq/Hkv query heads sharing that kv head: P = exp(scale q.k - lse),
//     dV += P^T dO, dS = P (dO.v - D), dK += scale dS^T Q. Summing the GQA group inside one
//     workgroup keeps it deterministic (no float atomics).
//   dQ pass: a workgroup owns BR query rows of one query head and walks the key tiles:
//     dQ += scale dS K.
// Gradients are written (not accumulated) through HeadOperands, so they can land directly in a
// fused dQKV buffer.
//
// Bindings: at most 8 storage buffers per kernel. Operands larger than one binding window are
// handled by chunking over batch rows; a single batch row must fit one window.
//
// Not done yet (performance): the register-tiled kernels skip tiles outside a sliding window only
// without a mask (positions = indices); global loads are scalar (coalesced); the backward passes
// run 64-thread workgroups (occupancy limited by their ~40 KiB of workgroup memory); the fallback
// kernels keep their scalar, G-fold redundant design. WGSL note: declare per-iteration private
// arrays with an explicit initializer (lavapipe did not re-zero `var s: array<f32, 16>;` inside a loop).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, grid, maxWindowElems, windowOf, type KernelDef, type Window } from '../engine/kernel.js';
import { MASK_WGSL, dummyI32, isPackedMask, packMask, type MaskTensors, type PackedMask } from './attention-mask.js';

/** A per-head f32 operand: element (token r = b*T + t, head h, column d) is at
 *  offset + r * tokenStride + h * headStride + d. Defaults: offset 0, tokenStride H*Dh, headStride Dh. */
export interface HeadOperand { tensor: Tensor; offset?: number; tokenStride?: number; headStride?: number }

export interface AttentionArgs {
  B: number; T: number; Hq: number; Hkv: number; Dh: number;
  q: HeadOperand; k: HeadOperand; v: HeadOperand;
  /** Packed (attention-mask.ts) or raw mask tensors; absent = plain causal over all T tokens. */
  mask?: PackedMask | MaskTensors;
  /** Sliding window in positions (0 or absent = none): key visible iff pos_i - pos_j < window. */
  window?: number;
  /** Score scale; default 1 / sqrt(Dh). */
  scale?: number;
}

export interface AttentionForwardArgs extends AttentionArgs {
  /** [B*T, Hq, Dh] by default. Must not share a buffer with q, k, v. */
  out: HeadOperand;
  /** [B, Hq, T] dense, f32: logsumexp of each row's scaled scores (0 for rows without keys). */
  lse: Tensor;
}

export interface AttentionBackwardArgs extends AttentionArgs {
  /** The forward's output and logsumexp. */
  out: HeadOperand; lse: Tensor;
  /** Gradient of the loss with respect to out. */
  dout: HeadOperand;
  /** Written (overwritten) gradients, same layout rules as q, k, v. dk and dv may share a buffer
   *  (e.g. a fused dQKV); none may share a buffer with the inputs. */
  dq: HeadOperand; dk: HeadOperand; dv: HeadOperand;
}

const MAX_DH = 256;

// ---------------------------------------------------------------------------------------------
// Tiling

interface Tiles {
  /** Threads per row and head-dim columns per thread; DP = G * DPT is Dh padded. */
  G: number; DPT: number; DP: number;
  /** Rows owned by a workgroup (one per G threads) and rows of the streamed tile. */
  R: number; C: number;
}

type Pass = 'fwd' | 'dq' | 'dkdv';

/** Workgroup-memory floats a pass needs for R owned rows and C streamed rows. */
function sharedFloats(pass: Pass, DP: number, R: number, C: number): number {
  switch (pass) {
    case 'fwd': return R * DP + 2 * C * DP + R * C + 2 * C + 4;          // Q, K, V, S, key pos/seg
    case 'dq': return 2 * R * DP + 2 * C * DP + R * C + 2 * C + 4;       // Q, dO, K, V, dS, key pos/seg
    case 'dkdv': return 2 * R * DP + 2 * C * DP + 2 * R * C + 4 * C + 4; // K, V, Q, dO, P, dS, query pos/seg/lse/D
  }
}

// 16 accumulators per thread and G = ceil(Dh / 16) threads per row keep registers bounded from
// Dh = 16 to 256, and one pipeline serves every Dh with the same G (Dh is a runtime parameter;
// columns past it are zero in workgroup memory). Tiles start at 32 x 32 and halve until the
// workgroup memory fits the adapter.
function chooseTiles(gpu: Gpu, pass: Pass, Dh: number): Tiles {
  const G = Math.ceil(Dh / 16);
  const DPT = 16;
  const DP = G * DPT;
  const maxThreads = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  const limit = gpu.limits.maxComputeWorkgroupStorageSize / 4;
  let R = Math.max(1, Math.min(32, Math.floor(maxThreads / G)));
  let C = 32;
  while (sharedFloats(pass, DP, R, C) > limit) {
    if (C >= R && C > 4) C /= 2;
    else if (R > 1) R = Math.max(1, Math.floor(R / 2));
    else throw new RangeError(`attention: Dh=${Dh} does not fit ${limit * 4} bytes of workgroup memory`);
  }
  return { G, DPT, DP, R, C };
}

// ---------------------------------------------------------------------------------------------
// Operands

interface Op { t: Tensor; off: number; ts: number; hs: number; H: number }

function resolve(name: string, o: HeadOperand, H: number, a: AttentionArgs): Op {
  const { B, T, Dh } = a;
  const op: Op = { t: o.tensor, off: o.offset ?? 0, ts: o.tokenStride ?? H * Dh, hs: o.headStride ?? Dh, H };
  if (op.t.dtype !== 'f32') throw new TypeError(`attention: ${name} must be f32, got ${op.t}`);
  for (const [k, v] of [['offset', op.off], ['tokenStride', op.ts], ['headStride', op.hs]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`attention: ${name}.${k} = ${v}`);
  }
  const end = op.off + span(op, B * T, Dh);
  if (end > op.t.numel) {
    throw new RangeError(`attention: ${name} needs ${end} elements but ${op.t} has ${op.t.numel} ` +
      `(B=${B} T=${T} H=${H} Dh=${Dh} offset=${op.off} tokenStride=${op.ts} headStride=${op.hs})`);
  }
  return op;
}

/** Elements spanned by `rows` tokens of an operand, from its first element. */
function span(op: Op, rows: number, Dh: number): number {
  return rows === 0 ? 0 : (rows - 1) * op.ts + (op.H - 1) * op.hs + Dh;
}

function win(gpu: Gpu, op: Op, b0: number, nb: number, T: number, Dh: number): Window {
  const first = op.off + b0 * T * op.ts;
  return windowOf(gpu, op.t, first, first + span(op, nb * T, Dh));
}

/** Element range [start, end) of rows [b0, b0 + nb) of an operand, counted from the start of its buffer. */
function bufferRange(op: Op, b0: number, nb: number, T: number, Dh: number): [number, number] {
  const s = op.t.offset / 4 + op.off + b0 * T * op.ts;
  return [s, s + span(op, nb * T, Dh)];
}

/** One binding window over two operands of the same buffer, with each one's base inside it. */
function unionWin(gpu: Gpu, x: Op, y: Op, b0: number, nb: number, T: number, Dh: number): { range: Window['range']; bases: [number, number] } {
  const [xs, xe] = bufferRange(x, b0, nb, T, Dh); const [ys, ye] = bufferRange(y, b0, nb, T, Dh);
  const align = gpu.bindingAlign;
  const start = Math.floor((4 * Math.min(xs, ys)) / align) * align;
  const size = Math.min(Math.ceil((4 * Math.max(xe, ye) - start) / 4) * 4, x.t.buffer.size - start);
  if (size > gpu.maxBinding) throw new RangeError(`attention: dk/dv window of ${size} bytes over the binding limit`);
  return { range: { buffer: x.t.buffer, offset: start, size }, bases: [xs - start / 4, ys - start / 4] };
}

/** Batch rows per dispatch so that every operand's window fits one binding. */
function batchChunk(gpu: Gpu, a: AttentionArgs, ops: Op[], perRowDense: number, pairs: [Op, Op][] = []): number {
  const limit = maxWindowElems(gpu);
  let nb = a.B;
  const pairSpan = ([x, y]: [Op, Op], n: number) => {
    const [xs, xe] = bufferRange(x, 0, n, a.T, a.Dh); const [ys, ye] = bufferRange(y, 0, n, a.T, a.Dh);
    return Math.max(xe, ye) - Math.min(xs, ys);
  };
  const fits = (n: number) => perRowDense * n <= limit && ops.every((op) => span(op, n * a.T, a.Dh) <= limit) &&
    pairs.every((pr) => pairSpan(pr, n) <= limit);
  while (nb > 1 && !fits(nb)) nb = Math.ceil(nb / 2);
  if (!fits(nb)) throw new RangeError(`attention: one batch row of T=${a.T} exceeds a binding window; chunking over T is not implemented`);
  return nb;
}

function checkArgs(a: AttentionArgs): void {
  const { B, T, Hq, Hkv, Dh } = a;
  for (const [k, v] of Object.entries({ B, T, Hq, Hkv, Dh })) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`attention: ${k} = ${v}`);
  }
  if (Hq % Hkv !== 0) throw new RangeError(`attention: Hq=${Hq} is not a multiple of Hkv=${Hkv}`);
  if (Dh > MAX_DH) throw new RangeError(`attention: Dh=${Dh} over ${MAX_DH}`);
  if (a.window !== undefined && (!Number.isInteger(a.window) || a.window < 0)) throw new RangeError(`attention: window = ${a.window}`);
  if (a.mask && isPackedMask(a.mask) && (a.mask.B !== B || a.mask.T !== T)) {
    throw new RangeError(`attention: mask is for B=${a.mask.B} T=${a.mask.T}, attention has B=${B} T=${T}`);
  }
}

function checkDense(name: string, t: Tensor, n: number): void {
  if (t.dtype !== 'f32') throw new TypeError(`attention: ${name} must be f32, got ${t}`);
  if (t.numel < n) throw new RangeError(`attention: ${name} ${t} needs ${n} elements`);
}

/** WebGPU forbids a buffer bound writable in a dispatch from being bound read-only in the same one. */
function checkNoAlias(written: Tensor[], read: Tensor[]): void {
  for (const w of written) for (const r of read) {
    if (w.buffer === r.buffer) throw new Error(`attention: output ${w} shares a GPU buffer with input ${r}`);
  }
}

/** The packed mask (packing raw tensors into a scratch when needed) and a release function. */
function maskOf(gpu: Gpu, a: AttentionArgs): { m?: Tensor; done: () => void } {
  if (!a.mask) return { done: () => {} };
  if (isPackedMask(a.mask)) return { m: a.mask.packed, done: () => {} };
  const pm = packMask(gpu, a.B, a.T, a.mask);
  return { m: pm.packed, done: () => gpu.pool.release(pm.packed) };
}

// ---------------------------------------------------------------------------------------------
// WGSL

const opFields = (n: string) => `${n}Base: u32, ${n}Tok: u32, ${n}Head: u32,`;
const opParams = (w: ParamWriter, wi: Window, op: Op) => w.u32(wi.base, op.ts, op.hs);
/** Index of element (local batch b, token t, head h, column d) of operand n. */
const at = (n: string, b: string, t: string, h: string, d: string) =>
  `p.${n}Base + (${b} * p.T + ${t}) * p.${n}Tok + ${h} * p.${n}Head + ${d}`;

function header(t: Tiles): string {
  return `
const DP = ${t.DP}u; // head dim (p.Dh) padded to G * DPT (pad columns are zero in workgroup memory)
const G = ${t.G}u;   // threads per owned row
const DPT = ${t.DPT}u;
const BR = ${t.R}u;  // owned rows per workgroup
const BC = ${t.C}u;  // rows per streamed tile
const NT = ${t.G * t.R}u;
const MASKED = -3.0e38; // score of an invisible pair (below any real score, and exp() of it is 0)
const M0 = -1.0e30;     // running max before any visible key: finite, so exp(M0 - m) never sees inf - inf`;
}

function forwardDef(t: Tiles): KernelDef {
  return {
    name: `attn_fwd_g${t.G}x${t.DPT}_${t.R}x${t.C}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${header(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('o')}
  lseBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<i32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${MASK_WGSL}
var<workgroup> Qs: array<f32, ${t.R * t.DP}>; // [BR][DP]
var<workgroup> Ks: array<f32, ${t.C * t.DP}>; // [BC][DP]
var<workgroup> Vs: array<f32, ${t.C * t.DP}>; // [BC][DP]
var<workgroup> Ss: array<f32, ${t.R * t.C}>;  // [BR][BC] scaled scores
var<workgroup> kpos: array<i32, ${t.C}>;
var<workgroup> kseg: array<i32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk); thread (g, r).
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let i = q0 + r;
  // The row length comes from storage; workgroupUniformLoad makes the key loop (which holds
  // barriers) provably uniform.
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let qi = q0 + rr;
    var x = 0.0;
    if (qi < p.T && d < p.Dh) { x = q[${at('q', 'b', 'qi', 'h', 'd')}]; }
    Qs[idx] = x;
  }
  var pi = 0; var si = 0;
  if (i < p.T) { pi = posOf(gb, i); si = segOf(gb, i); }
  var mrow = M0;
  var lrow = 0.0;
  var acc: array<f32, DPT>;
  // Causal and length bound: no row of this tile sees a key at or past kEnd.
  let kEnd = min(min(q0 + BR, p.T), len);
  for (var k0 = 0u; k0 < kEnd; k0 += BC) {
    for (var idx = li; idx < BC * DP; idx += NT) {
      let jj = idx / DP; let d = idx % DP; let j = k0 + jj;
      var kx = 0.0; var vx = 0.0;
      if (j < kEnd && d < p.Dh) {
        kx = k[${at('k', 'b', 'j', 'kvh', 'd')}];
        vx = v[${at('v', 'b', 'j', 'kvh', 'd')}];
      }
      Ks[idx] = kx; Vs[idx] = vx;
    }
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj;
      var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    for (var jj = g; jj < BC; jj += G) {
      let j = k0 + jj;
      var s = MASKED;
      if (j < kEnd && visible(i, j, len, pi, si, kpos[jj], kseg[jj])) {
        var dot = 0.0;
        for (var d = 0u; d < DP; d++) { dot = fma(Qs[r * DP + d], Ks[jj * DP + d], dot); }
        s = dot * p.scale;
      }
      Ss[r * BC + jj] = s;
    }
    workgroupBarrier();
    // Online softmax: rescale what was accumulated to the new running max.
    var tmax = M0;
    for (var jj = 0u; jj < BC; jj++) { tmax = max(tmax, Ss[r * BC + jj]); }
    let mnew = max(mrow, tmax);
    let alpha = exp(mrow - mnew);
    lrow *= alpha;
    for (var c = 0u; c < DPT; c++) { acc[c] *= alpha; }
    for (var jj = 0u; jj < BC; jj++) {
      let s = Ss[r * BC + jj];
      if (s > MASKED) {
        let pj = exp(s - mnew);
        lrow += pj;
        for (var c = 0u; c < DPT; c++) { acc[c] = fma(pj, Vs[jj * DP + g + c * G], acc[c]); }
      }
    }
    mrow = mnew;
    workgroupBarrier();
  }
  if (i < p.T) {
    var inv = 0.0;
    var l = 0.0;
    if (lrow > 0.0) { inv = 1.0 / lrow; l = mrow + log(lrow); }
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) { o[${at('o', 'b', 'i', 'h', 'd')}] = acc[c] * inv; }
    }
    if (g == 0u) { lse[p.lseBase + (b * p.Hq + h) * p.T + i] = l; }
  }
}`,
  };
}

const PRE_WG = 64;
// D_i = rowsum(dout_i * out_i), stored beside lse_i: ld[2 n] = lse, ld[2 n + 1] = D (n = (b Hq + h) T + i).
const PREP: KernelDef = {
  name: 'attn_bwd_prep',
  bindings: ['read', 'read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { T: u32, Hq: u32, Dh: u32, n: u32, ${opFields('g')} ${opFields('o')} lseBase: u32, ldBase: u32 };
@group(0) @binding(0) var<storage, read> dout: array<f32>;
@group(0) @binding(1) var<storage, read> out: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> ld: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@compute @workgroup_size(${PRE_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = (wg.x + wg.y * nwg.x) * ${PRE_WG}u + li;
  if (n >= p.n) { return; }
  let i = n % p.T; let h = (n / p.T) % p.Hq; let b = n / (p.T * p.Hq);
  var D = 0.0;
  for (var d = 0u; d < p.Dh; d++) { D = fma(dout[${at('g', 'b', 'i', 'h', 'd')}], out[${at('o', 'b', 'i', 'h', 'd')}], D); }
  ld[p.ldBase + 2u * n] = lse[p.lseBase + n];
  ld[p.ldBase + 2u * n + 1u] = D;
}`,
};

// shared: dk and dv live in one buffer (a fused dQKV) and are written through one binding, since
// WebGPU rejects overlapping writable bindings in a dispatch.
function dkdvDef(t: Tiles, shared: boolean): KernelDef {
  return {
    name: `attn_bwd_dkdv_g${t.G}x${t.DPT}_${t.R}x${t.C}${shared ? '_shared' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', ...(shared ? [] : ['rw' as const])],
    uniform: true,
    code: /* wgsl */ `${header(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('g')} ${opFields('dk')} ${opFields('dv')}
  ldBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> ld: array<f32>;
@group(0) @binding(5) var<storage, read> m: array<i32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
${shared ? '' : '@group(0) @binding(7) var<storage, read_write> dv: array<f32>;'}
@group(0) @binding(${shared ? 7 : 8}) var<uniform> p: Params;
${MASK_WGSL}
var<workgroup> Ks: array<f32, ${t.R * t.DP}>;  // [BR][DP] owned keys
var<workgroup> Vs: array<f32, ${t.R * t.DP}>;
var<workgroup> Qs: array<f32, ${t.C * t.DP}>;  // [BC][DP] streamed queries
var<workgroup> dOs: array<f32, ${t.C * t.DP}>;
var<workgroup> Ps: array<f32, ${t.R * t.C}>;   // [BR][BC]
var<workgroup> dSs: array<f32, ${t.R * t.C}>;
var<workgroup> qpos: array<i32, ${t.C}>;
var<workgroup> qseg: array<i32, ${t.C}>;
var<workgroup> qlse: array<f32, ${t.C}>;
var<workgroup> qD: array<f32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: key tile, y: kv head, z: batch row in this chunk); thread (g, r) owns key k0 + r.
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let kvh = wg.y; let k0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let j = k0 + r;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let kj = k0 + rr;
    var kx = 0.0; var vx = 0.0;
    if (kj < len && d < p.Dh) {
      kx = k[${at('k', 'b', 'kj', 'kvh', 'd')}];
      vx = v[${at('v', 'b', 'kj', 'kvh', 'd')}];
    }
    Ks[idx] = kx; Vs[idx] = vx;
  }
  var pj = 0; var sj = 0;
  if (j < len) { pj = posOf(gb, j); sj = segOf(gb, j); }
  var dka: array<f32, DPT>;
  var dva: array<f32, DPT>;
  for (var hh = 0u; hh < p.nRep; hh++) {
    let h = kvh * p.nRep + hh;
    let ldRow = p.ldBase + 2u * ((b * p.Hq + h) * p.T);
    // Causal: only queries i >= k0 can see this tile's keys; none at or past the length.
    for (var i0 = k0; i0 < len; i0 += BC) {
      for (var idx = li; idx < BC * DP; idx += NT) {
        let ii = idx / DP; let d = idx % DP; let qi = i0 + ii;
        var qx = 0.0; var gx = 0.0;
        if (qi < len && d < p.Dh) {
          qx = q[${at('q', 'b', 'qi', 'h', 'd')}];
          gx = dout[${at('g', 'b', 'qi', 'h', 'd')}];
        }
        Qs[idx] = qx; dOs[idx] = gx;
      }
      for (var ii = li; ii < BC; ii += NT) {
        let qi = i0 + ii;
        var pq = 0; var sq = 0; var lq = 0.0; var dq = 0.0;
        if (qi < len) { pq = posOf(gb, qi); sq = segOf(gb, qi); lq = ld[ldRow + 2u * qi]; dq = ld[ldRow + 2u * qi + 1u]; }
        qpos[ii] = pq; qseg[ii] = sq; qlse[ii] = lq; qD[ii] = dq;
      }
      workgroupBarrier();
      for (var ii = g; ii < BC; ii += G) {
        let qi = i0 + ii;
        var pv = 0.0; var ds = 0.0;
        if (j < len && visible(qi, j, len, qpos[ii], qseg[ii], pj, sj)) {
          var s = 0.0; var dp = 0.0;
          for (var d = 0u; d < DP; d++) {
            s = fma(Qs[ii * DP + d], Ks[r * DP + d], s);
            dp = fma(dOs[ii * DP + d], Vs[r * DP + d], dp);
          }
          pv = exp(s * p.scale - qlse[ii]);
          ds = pv * (dp - qD[ii]);
        }
        Ps[r * BC + ii] = pv; dSs[r * BC + ii] = ds;
      }
      workgroupBarrier();
      for (var ii = 0u; ii < BC; ii++) {
        let pv = Ps[r * BC + ii]; let ds = dSs[r * BC + ii];
        for (var c = 0u; c < DPT; c++) {
          let d = g + c * G;
          dva[c] = fma(pv, dOs[ii * DP + d], dva[c]);
          dka[c] = fma(ds, Qs[ii * DP + d], dka[c]);
        }
      }
      workgroupBarrier();
    }
  }
  if (j < p.T) {
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) {
        dk[${at('dk', 'b', 'j', 'kvh', 'd')}] = dka[c] * p.scale;
        ${shared ? 'dk' : 'dv'}[${at('dv', 'b', 'j', 'kvh', 'd')}] = dva[c];
      }
    }
  }
}`,
  };
}

function dqDef(t: Tiles): KernelDef {
  return {
    name: `attn_bwd_dq_g${t.G}x${t.DPT}_${t.R}x${t.C}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `${header(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('g')} ${opFields('dq')}
  ldBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> ld: array<f32>;
@group(0) @binding(5) var<storage, read> m: array<i32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
${MASK_WGSL}
var<workgroup> Qs: array<f32, ${t.R * t.DP}>;  // [BR][DP] owned queries
var<workgroup> dOs: array<f32, ${t.R * t.DP}>;
var<workgroup> Ks: array<f32, ${t.C * t.DP}>;  // [BC][DP] streamed keys
var<workgroup> Vs: array<f32, ${t.C * t.DP}>;
var<workgroup> dSs: array<f32, ${t.R * t.C}>;  // [BR][BC]
var<workgroup> kpos: array<i32, ${t.C}>;
var<workgroup> kseg: array<i32, ${t.C}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk); thread (g, r) owns query q0 + r.
@compute @workgroup_size(${t.G}, ${t.R}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let g = lid.x; let r = lid.y; let i = q0 + r;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  for (var idx = li; idx < BR * DP; idx += NT) {
    let rr = idx / DP; let d = idx % DP; let qi = q0 + rr;
    var qx = 0.0; var gx = 0.0;
    if (qi < len && d < p.Dh) {
      qx = q[${at('q', 'b', 'qi', 'h', 'd')}];
      gx = dout[${at('g', 'b', 'qi', 'h', 'd')}];
    }
    Qs[idx] = qx; dOs[idx] = gx;
  }
  var pi = 0; var si = 0; var lq = 0.0; var Dq = 0.0;
  if (i < len) {
    pi = posOf(gb, i); si = segOf(gb, i);
    let n = (b * p.Hq + h) * p.T + i;
    lq = ld[p.ldBase + 2u * n]; Dq = ld[p.ldBase + 2u * n + 1u];
  }
  var acc: array<f32, DPT>;
  let kEnd = min(min(q0 + BR, p.T), len);
  for (var k0 = 0u; k0 < kEnd; k0 += BC) {
    for (var idx = li; idx < BC * DP; idx += NT) {
      let jj = idx / DP; let d = idx % DP; let j = k0 + jj;
      var kx = 0.0; var vx = 0.0;
      if (j < kEnd && d < p.Dh) {
        kx = k[${at('k', 'b', 'j', 'kvh', 'd')}];
        vx = v[${at('v', 'b', 'j', 'kvh', 'd')}];
      }
      Ks[idx] = kx; Vs[idx] = vx;
    }
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj;
      var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    for (var jj = g; jj < BC; jj += G) {
      let j = k0 + jj;
      var ds = 0.0;
      if (j < kEnd && visible(i, j, len, pi, si, kpos[jj], kseg[jj])) {
        var s = 0.0; var dp = 0.0;
        for (var d = 0u; d < DP; d++) {
          s = fma(Qs[r * DP + d], Ks[jj * DP + d], s);
          dp = fma(dOs[r * DP + d], Vs[jj * DP + d], dp);
        }
        let pv = exp(s * p.scale - lq);
        ds = pv * (dp - Dq);
      }
      dSs[r * BC + jj] = ds;
    }
    workgroupBarrier();
    for (var jj = 0u; jj < BC; jj++) {
      let ds = dSs[r * BC + jj];
      for (var c = 0u; c < DPT; c++) { acc[c] = fma(ds, Ks[jj * DP + g + c * G], acc[c]); }
    }
    workgroupBarrier();
  }
  if (i < p.T) {
    for (var c = 0u; c < DPT; c++) {
      let d = g + c * G;
      if (d < p.Dh) { dq[${at('dq', 'b', 'i', 'h', 'd')}] = acc[c] * p.scale; }
    }
  }
}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Register-tiled kernels (the default wherever their tiles fit; the kernels above are the fallback)
//
// A workgroup of NT = (BR / 4) * (BC / 4) threads; thread li = (rg = li / NCG, cg = li % NCG) with
// NCG = BC / 4. Score phase: the thread computes the 4 x 4 scores of owned rows rg*4 + m and
// streamed rows cg + NCG*n (vec4 loads from workgroup memory: 8 vec4 loads per 64 multiply-adds),
// masks them and writes them once to workgroup memory. Product phase: the thread accumulates
// owned rows rg*4 + m over the vec4 columns cg + NCG*c (c < TD4 = DP / (4 NCG)). Forward only:
// between the two, thread li < BR runs the online softmax of row li (one exp per score, written
// back as P), while every thread stages V over K's tile. Rows of the staged tiles are DP + 4
// floats apart (vec4 reads of 8 different rows hit 8 different bank groups) and score rows BC + 1.
// DP is Dh rounded up to 4 NCG (pad columns are zero in workgroup memory).

interface RegTiles { BR: number; BC: number; NCG: number; NT: number; DP: number; TD4: number }

/** Tests: force the register-tiled shapes ([BR, BC] per pass) or the fallback kernels. */
export interface AttentionTiling { legacy?: boolean; fwd?: [number, number]; dq?: [number, number]; dkdv?: [number, number] }
let tilingOverride: AttentionTiling | undefined;
export function setAttentionTiling(t: AttentionTiling | undefined): void { tilingOverride = t; }

function regFloats(pass: Pass, t: RegTiles): number {
  const rs = t.DP + 4; const ss = t.BC + 1;
  switch (pass) {
    case 'fwd': return (t.BR + t.BC) * rs + t.BR * ss + 3 * t.BR + 2 * t.BC + 4;
    case 'dq': return (2 * t.BR + 2 * t.BC) * rs + t.BR * ss + 4 * t.BR + 2 * t.BC + 4;
    case 'dkdv': return (2 * t.BR + 2 * t.BC) * rs + 2 * t.BR * ss + 2 * t.BR + 4 * t.BC + 4;
  }
}

function regTiles(BR: number, BC: number, Dh: number): RegTiles {
  const NCG = BC / 4;
  const DP = Math.ceil(Dh / (4 * NCG)) * 4 * NCG;
  return { BR, BC, NCG, NT: (BR / 4) * NCG, DP, TD4: DP / (4 * NCG) };
}

// Preference order: big query tiles first (each staged key tile serves more rows), BC = 32 before
// 16. Accumulators per thread are capped at 64 floats (32 + 32 for dK/dV) so that nothing spills.
const REG_CANDIDATES: [number, number][] = [[64, 32], [32, 32], [32, 16], [16, 32], [16, 16]];

function chooseRegTiles(gpu: Gpu, pass: Pass, Dh: number): RegTiles | undefined {
  if (tilingOverride?.legacy) return undefined;
  const forced = tilingOverride?.[pass];
  const limit = gpu.limits.maxComputeWorkgroupStorageSize / 4;
  const maxThreads = gpu.limits.maxComputeInvocationsPerWorkgroup;
  for (const [BR, BC] of forced ? [forced] : REG_CANDIDATES) {
    const t = regTiles(BR, BC, Dh);
    const accs = (pass === 'dkdv' ? 2 : 1) * 4 * 4 * t.TD4;
    if (t.NT > maxThreads || regFloats(pass, t) > limit) continue;
    if (!forced && accs > 64) continue;
    return t;
  }
  if (forced) throw new RangeError(`attention: forced ${pass} tiles ${forced} do not fit Dh=${Dh}`);
  return undefined;
}

function regHeader(t: RegTiles): string {
  return `
const DP = ${t.DP}u;
const D4 = ${t.DP / 4}u;   // vec4 columns
const RS = ${t.DP / 4 + 1}u; // vec4 row stride of staged tiles
const BR = ${t.BR}u;
const BC = ${t.BC}u;
const SS = ${t.BC + 1}u;   // row stride of score tiles
const NCG = ${t.NCG}u;
const NT = ${t.NT}u;
const MASKED = -3.0e38;
const M0 = -1.0e30;`;
}

/** fn NAME4(i, d0): columns d0 .. d0 + 3 of an f32 array starting at element i (zero past p.Dh). */
const load4 = (arr: string) => `
fn ${arr}4(i: u32, d0: u32) -> vec4f {
  var x = vec4f(0.0);
  if (d0 + 3u < p.Dh) { return vec4f(${arr}[i], ${arr}[i + 1u], ${arr}[i + 2u], ${arr}[i + 3u]); }
  if (d0 < p.Dh) { x.x = ${arr}[i]; }
  if (d0 + 1u < p.Dh) { x.y = ${arr}[i + 1u]; }
  if (d0 + 2u < p.Dh) { x.z = ${arr}[i + 2u]; }
  return x;
}`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const unroll = (n: number, f: (i: number) => string) => range(n).map(f).join('\n');

/** Stages rows [r0, r0 + ROWS) (those below `lim`) of operands into vec4 workgroup tiles. */
function stage(rows: string, r0: string, lim: string, head: string, ops: [string, string, string][]): string {
  // ops: [workgroup array, storage array, operand field name]
  return `
    for (var idx = li; idx < ${rows} * D4; idx += NT) {
      let rr = idx / D4; let c4 = idx % D4; let t = ${r0} + rr; let d0 = c4 * 4u;
      ${ops.map(([w]) => `var x${w} = vec4f(0.0);`).join(' ')}
      if (t < ${lim}) {
        ${ops.map(([w, s, f]) => `x${w} = ${s}4(${at(f, 'b', 't', head, 'd0')}, d0);`).join('\n        ')}
      }
      ${ops.map(([w]) => `${w}[rr * RS + c4] = x${w};`).join(' ')}
    }`;
}

/** Dot products of 4 owned rows (rg*4 + m) with 4 streamed rows (cg + NCG*n) over all columns. */
function scores(pairs: [string, string, string][]): string {
  // pairs: [result array, owned tile, streamed tile]
  return `
    ${pairs.map(([s]) => `var ${s} = array<f32, 16>();`).join(' ')}
    for (var d4 = 0u; d4 < D4; d4++) {
      ${pairs.map(([s, , st]) => unroll(4, (n) => `let ${s}b${n} = ${st}[(cg + ${n}u * NCG) * RS + d4];`)).join('\n      ')}
      ${pairs.map(([s, ow, st]) => unroll(4, (m) => `{ let a = ${ow}[(rg * 4u + ${m}u) * RS + d4]; ${
        unroll(4, (n) => `${s}[${m * 4 + n}] += dot(a, ${s}b${n});`)} }`)).join('\n      ')}
    }`;
}

/** acc[m*TD4 + c] += w[owned row m][jj] * tile[jj][vec4 column cg + NCG*c] over the BC streamed rows. */
function product(t: RegTiles, terms: [string, string, string][]): string {
  // terms: [accumulator, weights (score layout [BR][SS]), streamed tile]
  return `
    for (var jj = 0u; jj < BC; jj++) {
      ${terms.map(([a, , tile]) => unroll(t.TD4, (c) => `let ${a}v${c} = ${tile}[jj * RS + cg + ${c}u * NCG];`)).join('\n      ')}
      ${terms.map(([a, w]) => unroll(4, (m) => `{ let x = vec4f(${w}[(rg * 4u + ${m}u) * SS + jj]); ${
        unroll(t.TD4, (c) => `${a}[${m * t.TD4 + c}] = fma(x, ${a}v${c}, ${a}[${m * t.TD4 + c}]);`)} }`)).join('\n      ')}
    }`;
}

/** Writes acc rows (owned row rg*4 + m, token `tok`) times f through operand n. */
function storeRows(t: RegTiles, acc: string, arr: string, n: string, head: string, r0: string, f: (m: number) => string): string {
  return unroll(4, (m) => `{
    let rr = rg * 4u + ${m}u; let t = ${r0} + rr;
    if (t < p.T) {
      let f = ${f(m)};
      ${unroll(t.TD4, (c) => `{
        let d0 = (cg + ${c}u * NCG) * 4u; let x = ${acc}[${m * t.TD4 + c}] * f; let i = ${at(n, 'b', 't', head, 'd0')};
        if (d0 < p.Dh) { ${arr}[i] = x.x; }
        if (d0 + 1u < p.Dh) { ${arr}[i + 1u] = x.y; }
        if (d0 + 2u < p.Dh) { ${arr}[i + 2u] = x.z; }
        if (d0 + 3u < p.Dh) { ${arr}[i + 3u] = x.w; }
      }`)}
    }
  }`);
}

function regForwardDef(t: RegTiles): KernelDef {
  return {
    name: `attn_fwd_reg_${t.BR}x${t.BC}_d${t.DP}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('o')}
  lseBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> m: array<i32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${MASK_WGSL}
${load4('q')}
${load4('k')}
${load4('v')}
var<workgroup> Qs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;  // [BR][RS] owned queries
var<workgroup> KVs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>; // [BC][RS] keys, then values
var<workgroup> Ss: array<f32, ${t.BR * (t.BC + 1)}>;        // [BR][SS] scaled scores, then P
var<workgroup> qpos: array<i32, ${t.BR}>;
var<workgroup> qseg: array<i32, ${t.BR}>;
var<workgroup> rowA: array<f32, ${t.BR}>;  // per-row rescale of this tile, then 1 / l
var<workgroup> kpos: array<i32, ${t.BC}>;
var<workgroup> kseg: array<i32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'q0', 'p.T', 'h', [['Qs', 'q', 'q']])}
  for (var rr = li; rr < BR; rr += NT) {
    let i = q0 + rr; var pi = 0; var si = 0;
    if (i < p.T) { pi = posOf(gb, i); si = segOf(gb, i); }
    qpos[rr] = pi; qseg[rr] = si;
  }
  var mrow = M0;
  var lrow = 0.0;
  var acc: array<vec4f, ${4 * t.TD4}>;
  // Causal and length bound: no row of this tile sees a key at or past kEnd. Without a mask
  // (positions = indices) a sliding window also hides every key below q0 + 1 - window.
  let kEnd = min(min(q0 + BR, p.T), len);
  var kStart = 0u;
  if (p.hasMask == 0u && p.window > 0u && q0 + 1u > p.window) { kStart = ((q0 + 1u - p.window) / BC) * BC; }
  for (var k0 = kStart; k0 < kEnd; k0 += BC) {
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['KVs', 'k', 'k']])}
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj; var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    ${scores([['s', 'Qs', 'KVs']])}
    ${unroll(16, (e) => `{
      let rr = rg * 4u + ${e >> 2}u; let jj = cg + ${e & 3}u * NCG; let j = k0 + jj;
      var x = MASKED;
      if (j < kEnd && visible(q0 + rr, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) { x = s[${e}] * p.scale; }
      Ss[rr * SS + jj] = x;
    }`)}
    workgroupBarrier();
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['KVs', 'v', 'v']])}
    if (li < BR) {
      var tmax = M0;
      for (var jj = 0u; jj < BC; jj++) { tmax = max(tmax, Ss[li * SS + jj]); }
      let mnew = max(mrow, tmax);
      let alpha = exp(mrow - mnew);
      var sum = 0.0;
      for (var jj = 0u; jj < BC; jj++) {
        let x = Ss[li * SS + jj];
        var e = 0.0;
        if (x > MASKED) { e = exp(x - mnew); }
        Ss[li * SS + jj] = e;
        sum += e;
      }
      lrow = lrow * alpha + sum;
      mrow = mnew;
      rowA[li] = alpha;
    }
    workgroupBarrier();
    ${unroll(4, (mm) => `{ let a = rowA[rg * 4u + ${mm}u]; ${unroll(t.TD4, (c) => `acc[${mm * t.TD4 + c}] *= a;`)} }`)}
    ${product(t, [['acc', 'Ss', 'KVs']])}
    workgroupBarrier();
  }
  if (li < BR) {
    let i = q0 + li;
    var inv = 0.0;
    var l = 0.0;
    if (lrow > 0.0) { inv = 1.0 / lrow; l = mrow + log(lrow); }
    rowA[li] = inv;
    if (i < p.T) { lse[p.lseBase + (b * p.Hq + h) * p.T + i] = l; }
  }
  workgroupBarrier();
  ${storeRows(t, 'acc', 'o', 'o', 'h', 'q0', (mm) => `rowA[rg * 4u + ${mm}u]`)}
}`,
  };
}

function regDqDef(t: RegTiles): KernelDef {
  return {
    name: `attn_bwd_dq_reg_${t.BR}x${t.BC}_d${t.DP}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('g')} ${opFields('dq')}
  ldBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> ld: array<f32>;
@group(0) @binding(5) var<storage, read> m: array<i32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
${MASK_WGSL}
${load4('q')}
${load4('k')}
${load4('v')}
${load4('dout')}
var<workgroup> Qs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;   // [BR][RS] owned queries
var<workgroup> dOs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;
var<workgroup> Ks: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;   // [BC][RS] streamed keys
var<workgroup> Vs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;
var<workgroup> dSs: array<f32, ${t.BR * (t.BC + 1)}>;        // [BR][SS]
var<workgroup> qpos: array<i32, ${t.BR}>;
var<workgroup> qseg: array<i32, ${t.BR}>;
var<workgroup> qL: array<f32, ${t.BR}>;
var<workgroup> qD: array<f32, ${t.BR}>;
var<workgroup> kpos: array<i32, ${t.BC}>;
var<workgroup> kseg: array<i32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: query tile, y: query head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let h = wg.y; let kvh = h / p.nRep; let q0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'q0', 'len', 'h', [['Qs', 'q', 'q'], ['dOs', 'dout', 'g']])}
  for (var rr = li; rr < BR; rr += NT) {
    let i = q0 + rr; var pi = 0; var si = 0; var lq = 0.0; var Dq = 0.0;
    if (i < len) {
      pi = posOf(gb, i); si = segOf(gb, i);
      let n = (b * p.Hq + h) * p.T + i;
      lq = ld[p.ldBase + 2u * n]; Dq = ld[p.ldBase + 2u * n + 1u];
    }
    qpos[rr] = pi; qseg[rr] = si; qL[rr] = lq; qD[rr] = Dq;
  }
  var acc: array<vec4f, ${4 * t.TD4}>;
  let kEnd = min(min(q0 + BR, p.T), len);
  var kStart = 0u;
  if (p.hasMask == 0u && p.window > 0u && q0 + 1u > p.window) { kStart = ((q0 + 1u - p.window) / BC) * BC; }
  for (var k0 = kStart; k0 < kEnd; k0 += BC) {
    ${stage('BC', 'k0', 'kEnd', 'kvh', [['Ks', 'k', 'k'], ['Vs', 'v', 'v']])}
    for (var jj = li; jj < BC; jj += NT) {
      let j = k0 + jj; var pj = 0; var sj = 0;
      if (j < kEnd) { pj = posOf(gb, j); sj = segOf(gb, j); }
      kpos[jj] = pj; kseg[jj] = sj;
    }
    workgroupBarrier();
    ${scores([['s', 'Qs', 'Ks'], ['dp', 'dOs', 'Vs']])}
    ${unroll(16, (e) => `{
      let rr = rg * 4u + ${e >> 2}u; let jj = cg + ${e & 3}u * NCG; let j = k0 + jj;
      var ds = 0.0;
      if (j < kEnd && visible(q0 + rr, j, len, qpos[rr], qseg[rr], kpos[jj], kseg[jj])) {
        ds = exp(s[${e}] * p.scale - qL[rr]) * (dp[${e}] - qD[rr]);
      }
      dSs[rr * SS + jj] = ds;
    }`)}
    workgroupBarrier();
    ${product(t, [['acc', 'dSs', 'Ks']])}
    workgroupBarrier();
  }
  ${storeRows(t, 'acc', 'dq', 'dq', 'h', 'q0', () => 'p.scale')}
}`,
  };
}

function regDkdvDef(t: RegTiles, shared: boolean): KernelDef {
  return {
    name: `attn_bwd_dkdv_reg_${t.BR}x${t.BC}_d${t.DP}${shared ? '_shared' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', ...(shared ? [] : ['rw' as const])],
    uniform: true,
    code: /* wgsl */ `${regHeader(t)}
struct Params {
  T: u32, Dh: u32, Hq: u32, nRep: u32, b0: u32, mBase: u32, hasMask: u32, window: u32,
  ${opFields('q')} ${opFields('k')} ${opFields('v')} ${opFields('g')} ${opFields('dk')} ${opFields('dv')}
  ldBase: u32, scale: f32,
};
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dout: array<f32>;
@group(0) @binding(4) var<storage, read> ld: array<f32>;
@group(0) @binding(5) var<storage, read> m: array<i32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
${shared ? '' : '@group(0) @binding(7) var<storage, read_write> dv: array<f32>;'}
@group(0) @binding(${shared ? 7 : 8}) var<uniform> p: Params;
${MASK_WGSL}
${load4('q')}
${load4('k')}
${load4('v')}
${load4('dout')}
var<workgroup> Ks: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;   // [BR][RS] owned keys
var<workgroup> Vs: array<vec4f, ${t.BR * (t.DP / 4 + 1)}>;
var<workgroup> Qs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;   // [BC][RS] streamed queries
var<workgroup> dOs: array<vec4f, ${t.BC * (t.DP / 4 + 1)}>;
var<workgroup> Ps: array<f32, ${t.BR * (t.BC + 1)}>;         // [BR][SS]
var<workgroup> dSs: array<f32, ${t.BR * (t.BC + 1)}>;
var<workgroup> kpos: array<i32, ${t.BR}>;
var<workgroup> kseg: array<i32, ${t.BR}>;
var<workgroup> qpos: array<i32, ${t.BC}>;
var<workgroup> qseg: array<i32, ${t.BC}>;
var<workgroup> qlse: array<f32, ${t.BC}>;
var<workgroup> qD: array<f32, ${t.BC}>;
var<workgroup> lenS: u32;

// workgroup (x: key tile, y: kv head, z: batch row in this chunk).
@compute @workgroup_size(${t.NT}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let b = wg.z; let gb = p.b0 + b; let kvh = wg.y; let k0 = wg.x * BR;
  let cg = li % NCG; let rg = li / NCG;
  if (li == 0u) { lenS = rowLen(gb); }
  let len = workgroupUniformLoad(&lenS);
  ${stage('BR', 'k0', 'len', 'kvh', [['Ks', 'k', 'k'], ['Vs', 'v', 'v']])}
  for (var rr = li; rr < BR; rr += NT) {
    let j = k0 + rr; var pj = 0; var sj = 0;
    if (j < len) { pj = posOf(gb, j); sj = segOf(gb, j); }
    kpos[rr] = pj; kseg[rr] = sj;
  }
  var dka: array<vec4f, ${4 * t.TD4}>;
  var dva: array<vec4f, ${4 * t.TD4}>;
  // Without a mask (positions = indices) a sliding window hides every query at or past
  // k0 + BR - 1 + window from this tile's keys.
  var iEnd = len;
  if (p.hasMask == 0u && p.window > 0u) { iEnd = min(len, k0 + BR - 1u + p.window); }
  for (var hh = 0u; hh < p.nRep; hh++) {
    let h = kvh * p.nRep + hh;
    let ldRow = p.ldBase + 2u * ((b * p.Hq + h) * p.T);
    // Causal: only queries i >= k0 can see this tile's keys; none at or past the length.
    for (var i0 = k0; i0 < iEnd; i0 += BC) {
      ${stage('BC', 'i0', 'iEnd', 'h', [['Qs', 'q', 'q'], ['dOs', 'dout', 'g']])}
      for (var ii = li; ii < BC; ii += NT) {
        let qi = i0 + ii;
        var pq = 0; var sq = 0; var lq = 0.0; var dq = 0.0;
        if (qi < iEnd) { pq = posOf(gb, qi); sq = segOf(gb, qi); lq = ld[ldRow + 2u * qi]; dq = ld[ldRow + 2u * qi + 1u]; }
        qpos[ii] = pq; qseg[ii] = sq; qlse[ii] = lq; qD[ii] = dq;
      }
      workgroupBarrier();
      ${scores([['s', 'Ks', 'Qs'], ['dp', 'Vs', 'dOs']])}
      ${unroll(16, (e) => `{
        let rr = rg * 4u + ${e >> 2}u; let ii = cg + ${e & 3}u * NCG; let qi = i0 + ii; let j = k0 + rr;
        var pv = 0.0; var ds = 0.0;
        if (qi < iEnd && visible(qi, j, len, qpos[ii], qseg[ii], kpos[rr], kseg[rr])) {
          pv = exp(s[${e}] * p.scale - qlse[ii]);
          ds = pv * (dp[${e}] - qD[ii]);
        }
        Ps[rr * SS + ii] = pv; dSs[rr * SS + ii] = ds;
      }`)}
      workgroupBarrier();
      ${product(t, [['dva', 'Ps', 'dOs'], ['dka', 'dSs', 'Qs']])}
      workgroupBarrier();
    }
  }
  ${storeRows(t, 'dka', 'dk', 'dk', 'kvh', 'k0', () => 'p.scale')}
  ${storeRows(t, 'dva', shared ? 'dk' : 'dv', 'dv', 'kvh', 'k0', () => '1.0')}
}`,
  };
}

// ---------------------------------------------------------------------------------------------
// Host side

function common(gpu: Gpu, a: AttentionArgs) {
  checkArgs(a);
  const q = resolve('q', a.q, a.Hq, a);
  const k = resolve('k', a.k, a.Hkv, a);
  const v = resolve('v', a.v, a.Hkv, a);
  const scale = a.scale ?? 1 / Math.sqrt(a.Dh);
  const window = a.window ?? 0;
  return { q, k, v, scale, window, nRep: a.Hq / a.Hkv };
}

/** Writes out [B*T, Hq, Dh] (through its HeadOperand) and lse [B, Hq, T]. */
export function attentionForward(gpu: Gpu, a: AttentionForwardArgs): void {
  const { q, k, v, scale, window, nRep } = common(gpu, a);
  const { B, T, Hq, Dh } = a;
  const o = resolve('out', a.out, Hq, a);
  checkDense('lse', a.lse, B * Hq * T);
  checkNoAlias([o.t, a.lse], [q.t, k.t, v.t]);
  if (o.t.buffer === a.lse.buffer) throw new Error('attention: out and lse must be in different GPU buffers');
  const mask = maskOf(gpu, a);
  const rt = chooseRegTiles(gpu, 'fwd', Dh);
  const rows = rt ? rt.BR : chooseTiles(gpu, 'fwd', Dh).R;
  const kernel = gpu.kernels.get(rt ? regForwardDef(rt) : forwardDef(chooseTiles(gpu, 'fwd', Dh)));
  const nb = batchChunk(gpu, a, [q, k, v, o], Hq * T);
  const mt = mask.m ?? dummyI32(gpu);
  const wm = windowOf(gpu, mt);
  for (let b0 = 0; b0 < B; b0 += nb) {
    const n = Math.min(nb, B - b0);
    const wq = win(gpu, q, b0, n, T, Dh); const wk = win(gpu, k, b0, n, T, Dh);
    const wv = win(gpu, v, b0, n, T, Dh); const wo = win(gpu, o, b0, n, T, Dh);
    const wl = windowOf(gpu, a.lse, b0 * Hq * T, (b0 + n) * Hq * T);
    const pw = new ParamWriter().u32(T, Dh, Hq, nRep, b0, wm.base, mask.m ? 1 : 0, window);
    opParams(pw, wq, q); opParams(pw, wk, k); opParams(pw, wv, v); opParams(pw, wo, o);
    pw.u32(wl.base).f32(scale);
    gpu.recorder.dispatch(kernel, [wq.range, wk.range, wv.range, wm.range, wo.range, wl.range], pw.bytes(),
      [Math.ceil(T / rows), Hq, n]);
  }
  mask.done();
}

/** Writes dq, dk, dv (through their HeadOperands) from dout and the forward's out and lse. */
export function attentionBackward(gpu: Gpu, a: AttentionBackwardArgs): void {
  const { q, k, v, scale, window, nRep } = common(gpu, a);
  const { B, T, Hq, Hkv, Dh } = a;
  const o = resolve('out', a.out, Hq, a);
  const go = resolve('dout', a.dout, Hq, a);
  const dq = resolve('dq', a.dq, Hq, a);
  const dk = resolve('dk', a.dk, Hkv, a);
  const dv = resolve('dv', a.dv, Hkv, a);
  checkDense('lse', a.lse, B * Hq * T);
  checkNoAlias([dq.t, dk.t, dv.t], [q.t, k.t, v.t, o.t, go.t, a.lse]);
  const mask = maskOf(gpu, a);
  const mt = mask.m ?? dummyI32(gpu);
  const wm = windowOf(gpu, mt);
  const ld = gpu.pool.acquire([B, Hq, T, 2], 'f32', 'attn_lse_d');
  const rq = chooseRegTiles(gpu, 'dq', Dh);
  const rkv = chooseRegTiles(gpu, 'dkdv', Dh);
  const kPrep = gpu.kernels.get(PREP);
  const shared = dk.t.buffer === dv.t.buffer;
  const kKV = gpu.kernels.get(rkv ? regDkdvDef(rkv, shared) : dkdvDef(chooseTiles(gpu, 'dkdv', Dh), shared));
  const kQ = gpu.kernels.get(rq ? regDqDef(rq) : dqDef(chooseTiles(gpu, 'dq', Dh)));
  const kvRows = rkv ? rkv.BR : chooseTiles(gpu, 'dkdv', Dh).R;
  const qRows = rq ? rq.BR : chooseTiles(gpu, 'dq', Dh).R;
  const nb = batchChunk(gpu, a, [q, k, v, o, go, dq, dk, dv], 2 * Hq * T, shared ? [[dk, dv]] : []);
  for (let b0 = 0; b0 < B; b0 += nb) {
    const n = Math.min(nb, B - b0);
    const rows = n * Hq * T;
    const wld = windowOf(gpu, ld, 2 * b0 * Hq * T, 2 * (b0 + n) * Hq * T);
    const wlse = windowOf(gpu, a.lse, b0 * Hq * T, (b0 + n) * Hq * T);
    const wq = win(gpu, q, b0, n, T, Dh); const wk = win(gpu, k, b0, n, T, Dh); const wv = win(gpu, v, b0, n, T, Dh);
    const wo = win(gpu, o, b0, n, T, Dh); const wg = win(gpu, go, b0, n, T, Dh);
    const wdq = win(gpu, dq, b0, n, T, Dh);
    let wdk: Window; let wdv: Window;
    if (shared) {
      const u = unionWin(gpu, dk, dv, b0, n, T, Dh);
      wdk = { range: u.range, base: u.bases[0] }; wdv = { range: u.range, base: u.bases[1] };
    } else {
      wdk = win(gpu, dk, b0, n, T, Dh); wdv = win(gpu, dv, b0, n, T, Dh);
    }

    const pp = new ParamWriter().u32(T, Hq, Dh, rows);
    opParams(pp, wg, go); opParams(pp, wo, o);
    pp.u32(wlse.base, wld.base);
    gpu.recorder.dispatch(kPrep, [wg.range, wo.range, wlse.range, wld.range], pp.bytes(), grid(Math.ceil(rows / PRE_WG)));

    const head = (w: ParamWriter) => {
      w.u32(T, Dh, Hq, nRep, b0, wm.base, mask.m ? 1 : 0, window);
      opParams(w, wq, q); opParams(w, wk, k); opParams(w, wv, v); opParams(w, wg, go);
      return w;
    };
    const pkv = head(new ParamWriter());
    opParams(pkv, wdk, dk); opParams(pkv, wdv, dv);
    pkv.u32(wld.base).f32(scale);
    gpu.recorder.dispatch(kKV, [wq.range, wk.range, wv.range, wg.range, wld.range, wm.range, wdk.range, ...(shared ? [] : [wdv.range])],
      pkv.bytes(), [Math.ceil(T / kvRows), Hkv, n]);

    const pq = head(new ParamWriter());
    opParams(pq, wdq, dq);
    pq.u32(wld.base).f32(scale);
    gpu.recorder.dispatch(kQ, [wq.range, wk.range, wv.range, wg.range, wld.range, wm.range, wdq.range],
      pq.bytes(), [Math.ceil(T / qRows), Hq, n]);
  }
  gpu.pool.release(ld);
  mask.done();
}
