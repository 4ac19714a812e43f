// The attention mask, packed into one small i32 tensor that every attention kernel reads.
//
// Semantics (attention.ref.ts): key j is visible to query i of batch row b iff
//   j <= i  and  i < lengths[b]  and  (segments[b, j] == 0 or segments[b, j] == segments[b, i])
//   and  (window == 0 or positions[b, i] - positions[b, j] < window).
// Missing parts default to: positions[b, t] = t, segments = 0 (one sequence), lengths[b] = T.
// The window is a property of the layer, so it is an argument of the attention call, not of the mask.
//
// Packed layout, i32 [B, maskRowLength(T)]: row b = [lengths[b], positions[b,0], segments[b,0],
// positions[b,1], ..., then for each chunk of SEG_CHUNK tokens the min and max segment in it].
// Packing positions, segments and lengths into one binding keeps the backward kernels under the
// 8 storage buffers per stage that some adapters allow. The chunk ranges let the kernels skip a
// query tile x key tile that no pair can see without reading its tokens (tileHidden below): in
// packed pairs, the rejected branch's queries against the chosen branch's keys. Build it once per batch (packMaskHost from
// the data loader's arrays, or packMask from GPU tensors) and hand it to every layer's attention;
// release it with gpu.pool.release(mask.packed).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, grid, windowOf, type KernelDef } from '../engine/kernel.js';

/** Mask parts as GPU tensors (u32 or i32): positions [B, T], segments [B, T], lengths [B]. */
export interface MaskTensors { positions?: Tensor; segments?: Tensor; lengths?: Tensor }
/** Mask parts as host arrays, same shapes. */
export interface HostMask { positions?: ArrayLike<number>; segments?: ArrayLike<number>; lengths?: ArrayLike<number> }
/** A packed mask for batches of B rows of T tokens. */
export interface PackedMask { packed: Tensor; B: number; T: number }

/** Tokens per segment-range chunk. */
export const SEG_CHUNK = 16;
/** The range of a chunk with no real token: neutral under min and max. */
const SEG_NONE_LO = 2147483647; const SEG_NONE_HI = -2147483647;
/** i32 entries per packed row: length, (position, segment) per token, (min, max) segment per chunk. */
export function maskRowLength(T: number): number { return 1 + 2 * T + 2 * Math.ceil(T / SEG_CHUNK); }

export function isPackedMask(m: PackedMask | MaskTensors): m is PackedMask {
  return (m as PackedMask).packed !== undefined;
}

/** Packs host arrays into the layout above (pure; for uploads and for tests). */
export function packMaskArray(B: number, T: number, m: HostMask): Int32Array {
  const row = maskRowLength(T);
  const out = new Int32Array(B * row);
  for (let b = 0; b < B; b++) {
    const len = m.lengths ? m.lengths[b] : T;
    if (!(len >= 0 && len <= T)) throw new RangeError(`mask: lengths[${b}] = ${len} outside [0, ${T}]`);
    out[b * row] = len;
    for (let t = 0; t < T; t++) {
      out[b * row + 1 + 2 * t] = m.positions ? m.positions[b * T + t] : t;
      out[b * row + 2 + 2 * t] = m.segments ? m.segments[b * T + t] : 0;
    }
    // Chunk ranges over the row's real tokens only (padding is never seen and never sees).
    for (let g = 0; g * SEG_CHUNK < T; g++) {
      let lo = SEG_NONE_LO; let hi = SEG_NONE_HI;
      for (let t = g * SEG_CHUNK; t < Math.min(len, (g + 1) * SEG_CHUNK); t++) {
        const sg = m.segments ? m.segments[b * T + t] : 0;
        lo = Math.min(lo, sg); hi = Math.max(hi, sg);
      }
      out[b * row + 1 + 2 * T + 2 * g] = lo;
      out[b * row + 2 + 2 * T + 2 * g] = hi;
    }
  }
  return out;
}

/** Uploads a packed mask built from host arrays. */
export function packMaskHost(gpu: Gpu, B: number, T: number, m: HostMask): PackedMask {
  for (const [name, a, n] of [['positions', m.positions, B * T], ['segments', m.segments, B * T], ['lengths', m.lengths, B]] as const) {
    if (a && a.length !== n) throw new RangeError(`mask: ${name} has ${a.length} entries, expected ${n}`);
  }
  return { packed: gpu.tensor([B, maskRowLength(T)], packMaskArray(B, T, m), 'i32', 'attn_mask'), B, T };
}

const PACK_WG = 64;
const PACK: KernelDef = {
  name: 'attn_mask_pack',
  bindings: ['read', 'read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { B: u32, T: u32, posBase: u32, segBase: u32, lenBase: u32, outBase: u32,
  hasPos: u32, hasSeg: u32, hasLen: u32 };
@group(0) @binding(0) var<storage, read> pos: array<i32>;
@group(0) @binding(1) var<storage, read> seg: array<i32>;
@group(0) @binding(2) var<storage, read> lens: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<i32>;
@group(0) @binding(4) var<uniform> p: Params;
// One thread per packed entry (B rows of maskRowLength(T)).
@compute @workgroup_size(${PACK_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = (wg.x + wg.y * nwg.x) * ${PACK_WG}u + li;
  let row = 1u + 2u * p.T + 2u * ((p.T + ${SEG_CHUNK - 1}u) / ${SEG_CHUNK}u);
  if (idx >= p.B * row) { return; }
  let b = idx / row; let c = idx % row;
  // Branches, not select(): an absent input is a 4-element dummy that must not be indexed.
  var x = 0;
  if (c > 2u * p.T) {
    // The min (even entry) or max (odd) segment of chunk g over the row's real tokens.
    let e = c - 1u - 2u * p.T; let g = e / 2u;
    var len = p.T;
    if (p.hasLen != 0u) { len = min(u32(max(lens[p.lenBase + b], 0)), p.T); }
    let t1 = min(len, (g + 1u) * ${SEG_CHUNK}u);
    var lo = ${SEG_NONE_LO}; var hi = ${SEG_NONE_HI};
    for (var t = g * ${SEG_CHUNK}u; t < t1; t++) {
      var v = 0;
      if (p.hasSeg != 0u) { v = seg[p.segBase + b * p.T + t]; }
      lo = min(lo, v); hi = max(hi, v);
    }
    x = select(hi, lo, (e & 1u) == 0u);
  } else if (c == 0u) {
    x = i32(p.T);
    if (p.hasLen != 0u) { x = lens[p.lenBase + b]; }
  } else {
    let t = (c - 1u) / 2u;
    if ((c & 1u) == 1u) {
      x = i32(t);
      if (p.hasPos != 0u) { x = pos[p.posBase + b * p.T + t]; }
    } else if (p.hasSeg != 0u) {
      x = seg[p.segBase + b * p.T + t];
    }
  }
  out[p.outBase + idx] = x;
}`,
};

const dummies = new WeakMap<Gpu, Tensor>();
/** A 4-element i32 tensor bound where an optional input is absent. */
export function dummyI32(gpu: Gpu): Tensor {
  let t = dummies.get(gpu);
  if (!t) { t = gpu.tensor([4], new Int32Array(4), 'i32', 'attn_dummy'); dummies.set(gpu, t); }
  return t;
}

/** Packs GPU mask tensors into a new pooled tensor (one dispatch). */
export function packMask(gpu: Gpu, B: number, T: number, m: MaskTensors): PackedMask {
  const check = (t: Tensor | undefined, n: number, name: string) => {
    if (!t) return;
    if (t.dtype !== 'i32' && t.dtype !== 'u32') throw new TypeError(`mask: ${name} must be i32 or u32, got ${t}`);
    if (t.numel !== n) throw new RangeError(`mask: ${name} ${t} should have ${n} elements (B=${B}, T=${T})`);
  };
  check(m.positions, B * T, 'positions'); check(m.segments, B * T, 'segments'); check(m.lengths, B, 'lengths');
  const out = gpu.pool.acquire([B, maskRowLength(T)], 'i32', 'attn_mask');
  const d = dummyI32(gpu);
  const wp = windowOf(gpu, m.positions ?? d); const ws = windowOf(gpu, m.segments ?? d);
  const wl = windowOf(gpu, m.lengths ?? d); const wo = windowOf(gpu, out);
  const params = new ParamWriter()
    .u32(B, T, wp.base, ws.base, wl.base, wo.base, m.positions ? 1 : 0, m.segments ? 1 : 0, m.lengths ? 1 : 0).bytes();
  gpu.recorder.dispatch(gpu.kernels.get(PACK), [wp.range, ws.range, wl.range, wo.range], params,
    grid(Math.ceil((B * maskRowLength(T)) / PACK_WG)));
  return { packed: out, B, T };
}

/**
 * WGSL helpers over a packed mask bound as `m: array<i32>`; they read p.hasMask, p.mBase, p.T and
 * p.window from the kernel's Params. `gb` is the batch row in the whole mask (not in a chunk).
 */
export const MASK_WGSL = /* wgsl */ `
fn maskRow(gb: u32) -> u32 {
  return p.mBase + gb * (2u * p.T + 1u + 2u * ((p.T + ${SEG_CHUNK - 1}u) / ${SEG_CHUNK}u));
}
fn rowLen(gb: u32) -> u32 {
  if (p.hasMask == 0u) { return p.T; }
  return min(u32(max(m[maskRow(gb)], 0)), p.T);
}
fn posOf(gb: u32, t: u32) -> i32 {
  if (p.hasMask == 0u) { return i32(t); }
  return m[maskRow(gb) + 1u + 2u * t];
}
fn segOf(gb: u32, t: u32) -> i32 {
  if (p.hasMask == 0u) { return 0; }
  return m[maskRow(gb) + 2u + 2u * t];
}
// Min and max segment over the chunks that hold tokens [a, e) (a superset when a or e is not a
// chunk boundary, which only makes tileHidden more conservative), e > a.
fn segRange(gb: u32, a: u32, e: u32) -> vec2<i32> {
  let base = maskRow(gb) + 1u + 2u * p.T;
  var r = vec2<i32>(2147483647, -2147483647);
  for (var g = a / ${SEG_CHUNK}u; g * ${SEG_CHUNK}u < e; g++) {
    r = vec2<i32>(min(r.x, m[base + 2u * g]), max(r.y, m[base + 2u * g + 1u]));
  }
  return r;
}
// True when no query in [qa, qe) can see any key in [ka, ke) through the segments: every key is
// in a branch (segment != 0) and none shares a segment with a query. Conservative (false when in
// doubt); causality and lengths are the loops' business.
fn tileHidden(gb: u32, qa: u32, qe: u32, ka: u32, ke: u32) -> bool {
  if (p.hasMask == 0u || qe <= qa || ke <= ka) { return false; }
  let k = segRange(gb, ka, ke);
  if (k.x <= 0) { return false; }
  let q = segRange(gb, qa, qe);
  return k.y < q.x || k.x > q.y;
}
var<workgroup> skipS: u32;
// tileHidden as a workgroup-uniform value, so a kernel may skip a tile pair in uniform control
// flow: invocation li 0 decides, workgroupUniformLoad hands it to all. Call from uniform control flow.
fn tileSkipped(li: u32, gb: u32, qa: u32, qe: u32, ka: u32, ke: u32) -> bool {
  if (li == 0u) { skipS = select(0u, 1u, tileHidden(gb, qa, qe, ka, ke)); }
  return workgroupUniformLoad(&skipS) != 0u;
}
// Query i (position pi, segment si) sees key j (pj, sj) of a row of length len.
fn visible(i: u32, j: u32, len: u32, pi: i32, si: i32, pj: i32, sj: i32) -> bool {
  return j <= i && i < len && (sj == 0 || sj == si) && (p.window == 0u || pi - pj < i32(p.window));
}
`;
