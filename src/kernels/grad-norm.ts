// Global L2 norm over many gradient tensors, kept on the GPU (no readback inside a step).
//
//   norm = sqrt(sum_k sum_i grads[k][i]^2)           (torch clip_grad_norm_'s total_norm, p = 2)
//
// Two stages, both with fixed-order tree reductions (deterministic, no atomics):
//   1. every tensor, or run of tensors back to back in one buffer (engine/arena.ts coalesce: a
//      model's gradients), split into binding windows when large, is cut into blocks of BLOCK elements;
//      one workgroup per block writes its sum of squares to its own slot of a partials buffer;
//   2. one workgroup sums all partials in slot order and writes out[0] = norm (and out[1] = the
//      sum of squares when out has two elements).
// Reference: optimizer.ref.ts (globalGradNormRef).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';
import { coalesce } from '../engine/arena.js';

const WG = 256;
const PER_THREAD = 16;
/** Elements per stage-1 workgroup. */
export const GRAD_NORM_BLOCK = WG * PER_THREAD;

const REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${WG}>;
fn reduce(li: u32, v: f32) -> f32 {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  return red[0];
}`;

const PARTIAL: KernelDef = {
  name: 'grad_norm_partial',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32, xBase: u32, pBase: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${REDUCE}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let b = wg.x + wg.y * nwg.x;
  let start = b * ${GRAD_NORM_BLOCK}u;
  if (start >= p.n) { return; }
  let end = min(p.n, start + ${GRAD_NORM_BLOCK}u);
  var acc = 0.0;
  for (var i = start + li; i < end; i += ${WG}u) { let v = x[p.xBase + i]; acc = fma(v, v, acc); }
  let total = reduce(li, acc);
  if (li == 0u) { partials[p.pBase + b] = total; }
}`,
};

const FINAL: KernelDef = {
  name: 'grad_norm_final',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32, oBase: u32, writeSq: u32 };
@group(0) @binding(0) var<storage, read> partials: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${REDUCE}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  var acc = 0.0;
  for (var i = li; i < p.n; i += ${WG}u) { acc += partials[i]; }
  let total = reduce(li, acc);
  if (li == 0u) {
    out[p.oBase] = sqrt(total);
    if (p.writeSq != 0u) { out[p.oBase + 1u] = total; }
  }
}`,
};

/**
 * out[0] = global L2 norm of `grads` (f32 tensors of any sizes, including over one binding);
 * out[1] = its square when out has >= 2 elements. Everything stays on the GPU.
 */
export function gradNorm(gpu: Gpu, grads: readonly Tensor[], out: Tensor): void {
  if (out.dtype !== 'f32' || out.numel < 1) throw new TypeError(`gradNorm: out ${out} must be f32 [1] or [2]`);
  const win = Math.floor(maxWindowElems(gpu) / GRAD_NORM_BLOCK) * GRAD_NORM_BLOCK;
  const jobs: { t: Tensor; s: number; e: number; slot: number }[] = [];
  let slots = 0;
  for (const t of grads) if (t.dtype !== 'f32') throw new TypeError(`gradNorm: ${t} is not f32`);
  // Gradients back to back in a buffer (engine/arena.ts) are summed as one tensor: one dispatch per window.
  for (const { tensors: [t] } of coalesce([grads])) {
    for (const [s, e] of chunkRanges(t.numel, win)) {
      jobs.push({ t, s, e, slot: slots });
      slots += Math.ceil((e - s) / GRAD_NORM_BLOCK);
    }
  }
  const partials = gpu.pool.acquire([Math.max(1, slots)], 'f32', 'grad-norm-partials');
  if (slots === 0) gpu.recorder.clear({ buffer: partials.buffer, offset: partials.offset, size: 4 });
  const kp = gpu.kernels.get(PARTIAL);
  for (const j of jobs) {
    const blocks = Math.ceil((j.e - j.s) / GRAD_NORM_BLOCK);
    const wx = windowOf(gpu, j.t, j.s, j.e);
    const wp = windowOf(gpu, partials, j.slot, j.slot + blocks);
    const params = new ParamWriter().u32(j.e - j.s, wx.base, wp.base).bytes();
    gpu.recorder.dispatch(kp, [wx.range, wp.range], params, grid(blocks));
  }
  const kf = gpu.kernels.get(FINAL);
  const wp = windowOf(gpu, partials, 0, Math.max(1, slots));
  if (wp.base !== 0) throw new Error('gradNorm: partials must start at a binding boundary');
  const wo = windowOf(gpu, out, 0, Math.min(2, out.numel));
  const params = new ParamWriter().u32(Math.max(1, slots), wo.base, out.numel >= 2 ? 1 : 0).bytes();
  gpu.recorder.dispatch(kf, [wp.range, wo.range], params, [1, 1, 1]);
  gpu.pool.release(partials);
}
