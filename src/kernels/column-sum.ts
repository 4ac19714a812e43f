// Column sums: out[d] (+)= sum over rows r of x[r, d], for x [N, D] (bias gradients: db = sum of
// dy over tokens). Deterministic without atomics: stage 1 sums blocks of ROWS rows per column into
// partial[blk, d] (threads along d, so loads are coalesced), stage 2 adds the blocks in order.
// Rows are processed in chunks whose window fits one binding. Reference: column-sum.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

const WG = 64;     // columns per workgroup
const ROWS = 64;   // rows per stage-1 block

const PARTIAL: KernelDef = {
  name: 'colsum_partial',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { rows: u32, D: u32, xBase: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let d = wg.x * ${WG}u + li;
  if (d >= p.D) { return; }
  let r0 = wg.y * ${ROWS}u;
  let r1 = min(p.rows, r0 + ${ROWS}u);
  var s = 0.0;
  for (var r = r0; r < r1; r++) { s += x[p.xBase + r * p.D + d]; }
  partial[wg.y * p.D + d] = s;
}`,
};

const TOTAL: KernelDef = {
  name: 'colsum_total',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { D: u32, nblk: u32, outBase: u32, accumulate: u32 };
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> outv: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let d = wg.x * ${WG}u + li;
  if (d >= p.D) { return; }
  var s = 0.0;
  for (var b = 0u; b < p.nblk; b++) { s += partial[b * p.D + d]; }
  if (p.accumulate != 0u) { s += outv[p.outBase + d]; }
  outv[p.outBase + d] = s;
}`,
};

export interface ColumnSumArgs {
  /** [N, D] input and [D] output. */
  x: Tensor; out: Tensor; N: number; D: number;
  /** out += (the gradient convention); false: out =. */
  accumulate?: boolean;
}

export function columnSum(gpu: Gpu, a: ColumnSumArgs): void {
  const { x, out, N, D } = a;
  if (x.numel < N * D) throw new RangeError(`columnSum: ${x} has ${x.numel} elements, needs ${N * D}`);
  if (out.numel < D) throw new RangeError(`columnSum: ${out} has ${out.numel} elements, needs ${D}`);
  if (D === 0) return;
  const wo = windowOf(gpu, out, 0, D);
  const rowsPerChunk = Math.max(1, Math.floor(maxWindowElems(gpu) / D));
  let accumulate = a.accumulate ?? false;
  for (const [r0, r1] of N === 0 ? [[0, 0]] : chunkRanges(N, rowsPerChunk)) {
    const rows = r1 - r0;
    const nblk = Math.max(1, Math.ceil(rows / ROWS));
    const part = gpu.pool.acquire([nblk * D], 'f32', 'colsum partial');
    const wp = windowOf(gpu, part);
    if (rows === 0) {
      gpu.recorder.clear(wp.range);
    } else {
      const wx = windowOf(gpu, x, r0 * D, r1 * D);
      gpu.recorder.dispatch(gpu.kernels.get(PARTIAL), [wx.range, wp.range], new ParamWriter().u32(rows, D, wx.base).bytes(),
        [Math.ceil(D / WG), nblk, 1]);
    }
    gpu.recorder.dispatch(gpu.kernels.get(TOTAL), [wp.range, wo.range],
      new ParamWriter().u32(D, nblk, wo.base, accumulate ? 1 : 0).bytes(), [Math.ceil(D / WG), 1, 1]);
    gpu.pool.release(part); // later users record after these dispatches
    accumulate = true; // the next chunk adds to this one
  }
}
