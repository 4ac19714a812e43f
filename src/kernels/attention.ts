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
// Forward: a workgroup owns BR query rows of one (batch row, query head); G threads share a row,
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
// Not tuned yet (correctness first): tiles are skipped only by causality and length (a sliding
// window still scans every earlier key tile), loads are scalar, each of a row's G threads
// recomputes the row's exp()s, and the score tiles sit in workgroup memory without padding.
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
  const tiles = chooseTiles(gpu, 'fwd', Dh);
  const kernel = gpu.kernels.get(forwardDef(tiles));
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
      [Math.ceil(T / tiles.R), Hq, n]);
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
  const tq = chooseTiles(gpu, 'dq', Dh);
  const tkv = chooseTiles(gpu, 'dkdv', Dh);
  const kPrep = gpu.kernels.get(PREP);
  const shared = dk.t.buffer === dv.t.buffer;
  const kKV = gpu.kernels.get(dkdvDef(tkv, shared));
  const kQ = gpu.kernels.get(dqDef(tq));
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
      pkv.bytes(), [Math.ceil(T / tkv.R), Hkv, n]);

    const pq = head(new ParamWriter());
    opParams(pq, wdq, dq);
    pq.u32(wld.base).f32(scale);
    gpu.recorder.dispatch(kQ, [wq.range, wk.range, wv.range, wg.range, wld.range, wm.range, wdq.range],
      pq.bytes(), [Math.ceil(T / tq.R), Hq, n]);
  }
  gpu.pool.release(ld);
  mask.done();
}
