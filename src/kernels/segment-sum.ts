// Token log-probs -> per-sequence sums, and the backward (per-token weights from per-sequence
// gradients).
//
// Sequences are contiguous runs of tokens, so a sequence is given as a host-built half-open token
// range: ranges [S, 2] u32 = (start, end) per sequence (start == end: an empty sequence, sum 0).
// Tokens in no range (prompt, padding) are ignored. segmentRanges() builds the ranges from
// per-token segment ids (-1 / 0xffffffff = ignored).
//   forward:  sums[s] = sum_{n in [start_s, end_s)} x[n];  counts[s] = end_s - start_s (f32, optional)
//   backward: g[n] = dsum[s] (times scale) for n in range s, 0 for tokens in no range.
// The forward is one workgroup per sequence with a fixed-order tree reduction: deterministic.
// The backward clears g and then scatters dsum over each range (its ranges must not overlap; the forward's may:
// training reads the sum of a pair whose responses are the same tokens twice from one range, step.ts).
// Reference: segment-sum.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';
import { zero } from './elementwise.js';

const WG = 256;

const SUM: KernelDef = {
  name: 'segment_sum',
  bindings: ['read', 'read', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { S: u32, xBase: u32, rBase: u32, oBase: u32, cBase: u32, writeCounts: u32, n: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> ranges: array<u32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;
@group(0) @binding(3) var<storage, read_write> counts: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
var<workgroup> red: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let s = wg.x + wg.y * nwg.x;
  if (s >= p.S) { return; }
  let start = ranges[p.rBase + 2u * s];
  let end = min(ranges[p.rBase + 2u * s + 1u], p.n); // a bad range cannot reach past the tensor
  var acc = 0.0;
  for (var n = start + li; n < end; n += ${WG}u) { acc += x[p.xBase + n]; }
  red[li] = acc;
  workgroupBarrier();
  for (var k = ${WG / 2}u; k > 0u; k >>= 1u) {
    if (li < k) { red[li] += red[li + k]; }
    workgroupBarrier();
  }
  if (li == 0u) {
    sums[p.oBase + s] = red[0];
    if (p.writeCounts != 0u) { counts[p.cBase + s] = f32(max(end, start) - start); }
  }
}`,
};

const SCATTER: KernelDef = {
  name: 'segment_scatter',
  bindings: ['read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { S: u32, dBase: u32, rBase: u32, gBase: u32, n: u32, scale: f32 };
@group(0) @binding(0) var<storage, read> dsum: array<f32>;
@group(0) @binding(1) var<storage, read> ranges: array<u32>;
@group(0) @binding(2) var<storage, read_write> g: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let s = wg.x + wg.y * nwg.x;
  if (s >= p.S) { return; }
  let start = ranges[p.rBase + 2u * s];
  let end = min(ranges[p.rBase + 2u * s + 1u], p.n); // a bad range cannot reach past the tensor
  let v = p.scale * dsum[p.dBase + s];
  for (var n = start + li; n < end; n += ${WG}u) { g[p.gBase + n] = v; }
}`,
};

/**
 * Host helper: [S, 2] (start, end) ranges from per-token segment ids (ids in [0, S); -1,
 * 0xffffffff or any value outside [0, S) = ignored). Each sequence's tokens must be contiguous.
 */
export function segmentRanges(segIds: ArrayLike<number>, S: number): Uint32Array {
  const r = new Uint32Array(2 * S);
  const seen = new Uint8Array(S);
  for (let n = 0; n < segIds.length; n++) {
    const s = segIds[n];
    if (!(s >= 0 && s < S)) continue;
    if (!seen[s]) { seen[s] = 1; r[2 * s] = n; r[2 * s + 1] = n + 1; continue; }
    if (r[2 * s + 1] !== n) throw new RangeError(`segmentRanges: tokens of sequence ${s} are not contiguous (token ${n})`);
    r[2 * s + 1] = n + 1;
  }
  return r;
}

export interface SegmentSumArgs {
  /** [N] f32 per-token values (log-probs). */
  x: Tensor;
  /** [S, 2] u32 token ranges (start, end) inside [0, N); they may overlap (the backward's may not). */
  ranges: Tensor;
  /** [S] f32 out. */
  sums: Tensor;
  /** [S] f32 out (optional): tokens per sequence. */
  counts?: Tensor;
  S: number;
}

/** sums[s] = sum of x over range s (deterministic). */
export function segmentSum(gpu: Gpu, a: SegmentSumArgs): void {
  const { S } = a;
  if (a.ranges.dtype !== 'u32' && a.ranges.dtype !== 'i32') throw new TypeError(`segmentSum: ranges ${a.ranges} must be u32`);
  if (a.ranges.numel < 2 * S || a.sums.numel < S || (a.counts && a.counts.numel < S)) {
    throw new RangeError(`segmentSum: ranges ${a.ranges} / sums ${a.sums} too small for S=${S}`);
  }
  if (a.x.numel > maxWindowElems(gpu)) throw new RangeError(`segmentSum: ${a.x} exceeds one binding`);
  if (S === 0) return;
  const k = gpu.kernels.get(SUM);
  const wx = windowOf(gpu, a.x);
  const wr = windowOf(gpu, a.ranges, 0, 2 * S);
  const ws = windowOf(gpu, a.sums, 0, S);
  const wc = a.counts ? windowOf(gpu, a.counts, 0, S) : windowOf(gpu, gpu.placeholder());
  const params = new ParamWriter().u32(S, wx.base, wr.base, ws.base, wc.base, a.counts ? 1 : 0, a.x.numel).bytes();
  gpu.recorder.dispatch(k, [wx.range, wr.range, ws.range, wc.range], params, grid(S));
}

export interface SegmentSumBackwardArgs {
  /** [S] f32: dL/dsum per sequence. */
  dsum: Tensor;
  /** [S, 2] u32 token ranges, as for the forward. */
  ranges: Tensor;
  /** [N] f32 out: per-token weights g[n] = scale * dsum[s(n)], 0 for tokens in no range. */
  g: Tensor;
  S: number;
  /** Multiplies every weight (default 1). */
  scale?: number;
}

export function segmentSumBackward(gpu: Gpu, a: SegmentSumBackwardArgs): void {
  const { S } = a;
  if (a.ranges.dtype !== 'u32' && a.ranges.dtype !== 'i32') throw new TypeError(`segmentSumBackward: ranges ${a.ranges} must be u32`);
  if (a.ranges.numel < 2 * S || a.dsum.numel < S) {
    throw new RangeError(`segmentSumBackward: ranges ${a.ranges} / dsum ${a.dsum} too small for S=${S}`);
  }
  if (a.g.numel > maxWindowElems(gpu)) throw new RangeError(`segmentSumBackward: ${a.g} exceeds one binding`);
  zero(gpu, a.g);
  if (S === 0) return;
  const k = gpu.kernels.get(SCATTER);
  const wd = windowOf(gpu, a.dsum, 0, S);
  const wr = windowOf(gpu, a.ranges, 0, 2 * S);
  const wg = windowOf(gpu, a.g);
  const params = new ParamWriter().u32(S, wd.base, wr.base, wg.base, a.g.numel).f32(a.scale ?? 1).bytes();
  gpu.recorder.dispatch(k, [wd.range, wr.range, wg.range], params, grid(S));
}
