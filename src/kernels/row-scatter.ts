// Row scatter, f32: out[rows[i]] = x[i] for i < n, each row D wide; other rows of out untouched.
// The transpose of the embedding gather (embedding.ts embeddingForward, which gathers rows of any
// [V, D] tensor by index): the model gathers the final hidden states of the scored tokens into a
// dense block for the output layer and scatters its log-probs and gradients back. Rows must be
// distinct (each out row written at most once), so there is no race. Like the gather, out may
// exceed one binding: one pass per out row range, each writing the rows that fall in it.
// Reference: row-scatter.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

const WG = 64;

const SCATTER_ROWS: KernelDef = {
  name: 'row_scatter',
  bindings: ['read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32, D: u32, r0: u32, r1: u32, idxBase: u32, xBase: u32, oBase: u32 };
@group(0) @binding(0) var<storage, read> rows: array<u32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
// One workgroup per source row i.
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = wg.x + wg.y * nwg.x;
  if (i >= p.n) { return; }
  let r = rows[p.idxBase + i];
  if (r < p.r0 || r >= p.r1) { return; }   // another pass's row
  let src = p.xBase + i * p.D;
  let dst = p.oBase + (r - p.r0) * p.D;
  for (var d = li; d < p.D; d += ${WG}u) { o[dst + d] = x[src + d]; }
}`,
};

export interface ScatterRowsArgs {
  /** [n, D] f32 source rows. */
  x: Tensor;
  /** [n] u32 distinct destination rows in [0, M). */
  rows: Tensor;
  /** [M, D] f32; rows not named keep their values. */
  out: Tensor;
  n: number; M: number; D: number;
}

export function scatterRows(gpu: Gpu, a: ScatterRowsArgs): void {
  const { x, rows, out, n, M, D } = a;
  if (x.dtype !== 'f32' || out.dtype !== 'f32') throw new TypeError(`scatterRows: ${x} and ${out} must be f32`);
  if (rows.dtype !== 'u32') throw new TypeError(`scatterRows: rows ${rows} must be u32`);
  if (x.numel < n * D || rows.numel < n || out.numel < M * D) {
    throw new RangeError(`scatterRows: x ${x}, rows ${rows} or out ${out} too small for n=${n} M=${M} D=${D}`);
  }
  if (n === 0 || D === 0 || M === 0) return;
  const per = Math.max(1, Math.floor(maxWindowElems(gpu) / D));
  const k = gpu.kernels.get(SCATTER_ROWS);
  for (const [i0, i1] of chunkRanges(n, per)) {
    const wi = windowOf(gpu, rows, i0, i1);
    const wx = windowOf(gpu, x, i0 * D, i1 * D);
    for (const [r0, r1] of chunkRanges(M, per)) {
      const wo = windowOf(gpu, out, r0 * D, r1 * D);
      const params = new ParamWriter().u32(i1 - i0, D, r0, r1, wi.base, wx.base, wo.base).bytes();
      gpu.recorder.dispatch(k, [wi.range, wx.range, wo.range], params, grid(i1 - i0));
    }
  }
}
