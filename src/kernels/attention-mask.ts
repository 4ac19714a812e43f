// The attention mask, packed into one small i32 tensor that every attention kernel reads.
//
// Semantics (attention.ref.ts): key j is visible to query i of batch row b iff
//   j <= i  and  i < lengths[b]  and  (segments[b, j] == 0 or segments[b, j] == segments[b, i])
//   and  (window == 0 or positions[b, i] - positions[b, j] < window).
// Missing parts default to: positions[b, t] = t, segments = 0 (one sequence), lengths[b] = T.
// The window is a property of the layer, so it is an argument of the attention call, not of the mask.
//
// Packed layout, i32 [B, 1 + 2T]: row b = [lengths[b], positions[b,0], segments[b,0], positions[b,1], ...].
// Packing positions, segments and lengths into one binding keeps the backward kernels under the
// 8 storage buffers per stage that some adapters allow. Build it once per batch (packMaskHost from
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

export function isPackedMask(m: PackedMask | MaskTensors): m is PackedMask {
  return (m as PackedMask).packed !== undefined;
}

/** Packs host arrays into the layout above (pure; for uploads and for tests). */
export function packMaskArray(B: number, T: number, m: HostMask): Int32Array {
  const row = 1 + 2 * T;
  const out = new Int32Array(B * row);
  for (let b = 0; b < B; b++) {
    const len = m.lengths ? m.lengths[b] : T;
    if (!(len >= 0 && len <= T)) throw new RangeError(`mask: lengths[${b}] = ${len} outside [0, ${T}]`);
    out[b * row] = len;
    for (let t = 0; t < T; t++) {
      out[b * row + 1 + 2 * t] = m.positions ? m.positions[b * T + t] : t;
      out[b * row + 2 + 2 * t] = m.segments ? m.segments[b * T + t] : 0;
    }
  }
  return out;
}

/** Uploads a packed mask built from host arrays. */
export function packMaskHost(gpu: Gpu, B: number, T: number, m: HostMask): PackedMask {
  for (const [name, a, n] of [['positions', m.positions, B * T], ['segments', m.segments, B * T], ['lengths', m.lengths, B]] as const) {
    if (a && a.length !== n) throw new RangeError(`mask: ${name} has ${a.length} entries, expected ${n}`);
  }
  return { packed: gpu.tensor([B, 1 + 2 * T], packMaskArray(B, T, m), 'i32', 'attn_mask'), B, T };
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
// One thread per packed entry (B rows of 1 + 2T).
@compute @workgroup_size(${PACK_WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let idx = (wg.x + wg.y * nwg.x) * ${PACK_WG}u + li;
  let row = 1u + 2u * p.T;
  if (idx >= p.B * row) { return; }
  let b = idx / row; let c = idx % row;
  // Branches, not select(): an absent input is a 4-element dummy that must not be indexed.
  var x = 0;
  if (c == 0u) {
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
  const out = gpu.pool.acquire([B, 1 + 2 * T], 'i32', 'attn_mask');
  const d = dummyI32(gpu);
  const wp = windowOf(gpu, m.positions ?? d); const ws = windowOf(gpu, m.segments ?? d);
  const wl = windowOf(gpu, m.lengths ?? d); const wo = windowOf(gpu, out);
  const params = new ParamWriter()
    .u32(B, T, wp.base, ws.base, wl.base, wo.base, m.positions ? 1 : 0, m.segments ? 1 : 0, m.lengths ? 1 : 0).bytes();
  gpu.recorder.dispatch(gpu.kernels.get(PACK), [wp.range, ws.range, wl.range, wo.range], params,
    grid(Math.ceil((B * (1 + 2 * T)) / PACK_WG)));
  return { packed: out, B, T };
}

/**
 * WGSL helpers over a packed mask bound as `m: array<i32>`; they read p.hasMask, p.mBase, p.T and
 * p.window from the kernel's Params. `gb` is the batch row in the whole mask (not in a chunk).
 */
export const MASK_WGSL = /* wgsl */ `
fn rowLen(gb: u32) -> u32 {
  if (p.hasMask == 0u) { return p.T; }
  return min(u32(max(m[p.mBase + gb * (2u * p.T + 1u)], 0)), p.T);
}
fn posOf(gb: u32, t: u32) -> i32 {
  if (p.hasMask == 0u) { return i32(t); }
  return m[p.mBase + gb * (2u * p.T + 1u) + 1u + 2u * t];
}
fn segOf(gb: u32, t: u32) -> i32 {
  if (p.hasMask == 0u) { return 0; }
  return m[p.mBase + gb * (2u * p.T + 1u) + 2u + 2u * t];
}
// Query i (position pi, segment si) sees key j (pj, sj) of a row of length len.
fn visible(i: u32, j: u32, len: u32, pi: i32, si: i32, pj: i32, sj: i32) -> bool {
  return j <= i && i < len && (sj == 0 || sj == si) && (p.window == 0u || pi - pj < i32(p.window));
}
`;
