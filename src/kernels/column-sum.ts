// Column sums: out[d] (+)= sum over rows r of x[r, d], for x [N, D] (bias gradients: db = sum of
// dy over tokens). Deterministic without atomics: stage 1 sums blocks of COLUMN_SUM_ROWS rows per
// column into partial[blk, d] (threads along d, so loads are coalesced), stage 2 adds the blocks in order
// (sumPartialRows, also the norms' weight-gradient stage 2).
// Rows are processed in chunks whose window fits one binding. Reference: column-sum.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import { ParamWriter, chunkRanges, maxWindowElems, windowOf, type KernelDef, type Window } from '../engine/kernel.js';
import { Tensor } from '../engine/tensor.js';
import { ABSMAX_PARTS, absmaxPartWgsl, absmaxPartsWindow } from './absmax.js';
import { fill } from './elementwise.js';

const WG = 64;     // columns per workgroup
/** Rows per stage-1 block (bench/norm.ts counts the partial rows' traffic with it). */
export const COLUMN_SUM_ROWS = 64;

/**
 * WGSL: `acc += load(i)` for i in [from, to), eight loads issued before their sum (a loop of
 * dependent single loads keeps one load in flight per thread: these kernels are latency-bound
 * otherwise), summed in a fixed order, so results are deterministic. `i` names the loop variable.
 */
function unrolledSumWgsl(acc: string, i: string, from: string, to: string, load: (i: string) => string, each?: (v: string) => string): string {
  const v = Array.from({ length: 8 }, (_, j) => `let v${j} = ${load(j ? `${i} + ${j}u` : i)};`).join(' ');
  const seen = (names: string[]) => (each ? ` ${names.map(each).join(' ')}` : '');
  return `var ${i} = ${from};
  for (; ${i} + 8u <= ${to}; ${i} += 8u) {
    ${v}${seen(['v0', 'v1', 'v2', 'v3', 'v4', 'v5', 'v6', 'v7'])}
    ${acc} += ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7));
  }
  for (; ${i} < ${to}; ${i}++) { let v = ${load(i)};${seen(['v'])} ${acc} += v; }`;
}

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
  let r0 = wg.y * ${COLUMN_SUM_ROWS}u;
  let r1 = min(p.rows, r0 + ${COLUMN_SUM_ROWS}u);
  var s = 0.0;
  ${unrolledSumWgsl('s', 'r', 'r0', 'r1', (r) => `x[p.xBase + (${r}) * p.D + d]`)}
  partial[wg.y * p.D + d] = s;
}`,
};

// Stage 1 that also finds x's partial maxima (absmax.ts absmaxPartWgsl: ABSMAX_PARTS workgroups, each
// taking the (column block, row block) tiles wg.x, wg.x + ABSMAX_PARTS, ...): for a gradient whose bias
// gradient and f16 scale are both wanted (a linear layer's dy), one pass over it instead of two. The
// same sums, in the same order, as PARTIAL.
const PARTIAL_ABSMAX: KernelDef = {
  name: 'colsum_partial_absmax',
  bindings: ['read', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { rows: u32, D: u32, xBase: u32, partsBase: u32, partsAccumulate: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
${absmaxPartWgsl(WG, 2)}
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let cblk = (p.D + ${WG - 1}u) / ${WG}u;
  let tiles = cblk * ((p.rows + ${COLUMN_SUM_ROWS - 1}u) / ${COLUMN_SUM_ROWS}u);
  var m = 0.0;
  for (var t = wg.x; t < tiles; t += ${ABSMAX_PARTS}u) {
    let d = (t % cblk) * ${WG}u + li;
    let rb = t / cblk;
    if (d < p.D) {
      let r0 = rb * ${COLUMN_SUM_ROWS}u;
      let r1 = min(p.rows, r0 + ${COLUMN_SUM_ROWS}u);
      var s = 0.0;
      ${unrolledSumWgsl('s', 'r', 'r0', 'r1', (r) => `x[p.xBase + (${r}) * p.D + d]`, (v) => `m = amaxNan(m, abs(${v}));`)}
      partial[rb * p.D + d] = s;
    }
  }
  writeAbsmaxPart(li, m, wg.x);
}`,
};

// Stage 2: out[d] (+)= sum over blocks b of partial[pBase + b * stride + d], blocks in order;
// `also`: the same sum into a second output too (alsov[alsoBase + d] (+)= it), in the same pass:
// 'apart' binds it on its own, 'shared' in the first output's binding (outputs that lie close in one
// buffer, whose two windows would overlap: WebGPU refuses overlapping writable bindings).
function totalDef(also: 'apart' | 'shared' | undefined): KernelDef {
  return {
    name: also ? `colsum_total_also${also === 'shared' ? '_shared' : ''}` : 'colsum_total',
    bindings: also === 'apart' ? ['read', 'rw', 'rw'] : ['read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { D: u32, nblk: u32, outBase: u32, accumulate: u32, pBase: u32, stride: u32, alsoBase: u32 };
@group(0) @binding(0) var<storage, read> partial: array<f32>;
@group(0) @binding(1) var<storage, read_write> outv: array<f32>;${also === 'apart' ? `
@group(0) @binding(2) var<storage, read_write> alsov: array<f32>;` : ''}
@group(0) @binding(${also === 'apart' ? 3 : 2}) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let d = wg.x * ${WG}u + li;
  if (d >= p.D) { return; }
  var s = 0.0;
  ${unrolledSumWgsl('s', 'b', '0u', 'p.nblk', (b) => `partial[p.pBase + (${b}) * p.stride + d]`)}
  var o = s;
  if (p.accumulate != 0u) { o += outv[p.outBase + d]; }
  outv[p.outBase + d] = o;${also ? `
  var a = s;
  if (p.accumulate != 0u) { a += ${also === 'shared' ? 'outv' : 'alsov'}[p.alsoBase + d]; }
  ${also === 'shared' ? 'outv' : 'alsov'}[p.alsoBase + d] = a;` : ''}
}`,
  };
}
const TOTAL = totalDef(undefined);
const TOTAL_ALSO = totalDef('apart');
const TOTAL_ALSO_SHARED = totalDef('shared');

/**
 * Stage 2 of a two-stage column sum, shared with the norms' weight gradients (layernorm.ts):
 * out[d] (+)= the sum of `nblk` partial rows of D floats, `stride` apart (default D), starting at
 * element `pBase` of `part`.
 */
export function sumPartialRows(gpu: Gpu, part: Window, pBase: number, nblk: number, D: number, out: Window, accumulate: boolean, stride = D): void {
  dispatchTotal(gpu, TOTAL, [part.range, out.range], part.base + pBase, nblk, D, out.base, 0, accumulate, stride);
}

function dispatchTotal(gpu: Gpu, def: KernelDef, ranges: Window['range'][], pBase: number, nblk: number, D: number, outBase: number, alsoBase: number,
  accumulate: boolean, stride: number): void {
  gpu.recorder.dispatch(gpu.kernels.get(def), ranges,
    new ParamWriter().u32(D, nblk, outBase, accumulate ? 1 : 0, pBase, stride, alsoBase).bytes(), [Math.ceil(D / WG), 1, 1]);
}

/**
 * Stage 2 into `out` and `also` in one pass: their windows bound apart, or, when both lie in one
 * buffer within one binding's reach, one window over both (overlapping writable windows are refused).
 */
function totalsInto(gpu: Gpu, part: Window, nblk: number, D: number, out: Tensor, also: Tensor, accumulate: boolean): void {
  if (out.buffer === also.buffer) {
    const lo = Math.min(out.offset, also.offset);
    const hi = Math.max(out.offset, also.offset) + D * 4;
    if (hi - lo <= 4 * maxWindowElems(gpu)) {
      const w = windowOf(gpu, new Tensor(out.buffer, lo, [(hi - lo) / 4]), 0, (hi - lo) / 4);
      dispatchTotal(gpu, TOTAL_ALSO_SHARED, [part.range, w.range], part.base, nblk, D, w.base + (out.offset - lo) / 4, w.base + (also.offset - lo) / 4,
        accumulate, D);
      return;
    }
    sumPartialRows(gpu, part, 0, nblk, D, windowOf(gpu, out, 0, D), accumulate);
    sumPartialRows(gpu, part, 0, nblk, D, windowOf(gpu, also, 0, D), accumulate);
    return;
  }
  const wo = windowOf(gpu, out, 0, D); const wa = windowOf(gpu, also, 0, D);
  dispatchTotal(gpu, TOTAL_ALSO, [part.range, wo.range, wa.range], part.base, nblk, D, wo.base, wa.base, accumulate, D);
}

export interface ColumnSumArgs {
  /** [N, D] input and [D] output. */
  x: Tensor; out: Tensor; N: number; D: number;
  /** out += (the gradient convention); false: out =. */
  accumulate?: boolean;
  /**
   * A second [D] output given the same sums the same way (GPT-NeoX's parallel residual: the attention
   * output's and the MLP output's bias gradients are both the column sums of the block's dy): x is read
   * once, and one stage-2 pass writes both.
   */
  also?: Tensor;
  /**
   * [ABSMAX_PARTS] out: x's partial maxima (absmax.ts), found in the same pass (a linear layer's dy in
   * f16 precision: its bias gradient and its scale from one read).
   */
  absmax?: Tensor;
}

export function columnSum(gpu: Gpu, a: ColumnSumArgs): void {
  const { x, out, N, D } = a;
  if (x.numel < N * D) throw new RangeError(`columnSum: ${x} has ${x.numel} elements, needs ${N * D}`);
  if (out.numel < D) throw new RangeError(`columnSum: ${out} has ${out.numel} elements, needs ${D}`);
  if (a.also && a.also.numel < D) throw new RangeError(`columnSum: ${a.also} has ${a.also.numel} elements, needs ${D}`);
  if (D === 0) return;
  const wo = windowOf(gpu, out, 0, D);
  const wparts = a.absmax ? absmaxPartsWindow(gpu, a.absmax) : undefined;
  const rowsPerChunk = Math.max(1, Math.floor(maxWindowElems(gpu) / D));
  let accumulate = a.accumulate ?? false;
  let chunk = 0;
  for (const [r0, r1] of N === 0 ? [[0, 0]] : chunkRanges(N, rowsPerChunk)) {
    const rows = r1 - r0;
    const nblk = Math.max(1, Math.ceil(rows / COLUMN_SUM_ROWS));
    const part = gpu.pool.acquire([nblk * D], 'f32', 'colsum partial');
    const wp = windowOf(gpu, part);
    if (rows === 0) {
      gpu.recorder.clear(wp.range);
      if (a.absmax) fill(gpu, a.absmax.view([ABSMAX_PARTS]), 0); // no rows: every maximum 0
    } else if (wparts) {
      const wx = windowOf(gpu, x, r0 * D, r1 * D);
      gpu.recorder.dispatch(gpu.kernels.get(PARTIAL_ABSMAX), [wx.range, wp.range, wparts.range],
        new ParamWriter().u32(rows, D, wx.base, wparts.base, chunk > 0 ? 1 : 0).bytes(), [ABSMAX_PARTS, 1, 1]);
    } else {
      const wx = windowOf(gpu, x, r0 * D, r1 * D);
      gpu.recorder.dispatch(gpu.kernels.get(PARTIAL), [wx.range, wp.range], new ParamWriter().u32(rows, D, wx.base).bytes(),
        [Math.ceil(D / WG), nblk, 1]);
    }
    chunk++;
    if (a.also) totalsInto(gpu, wp, nblk, D, out, a.also, accumulate);
    else sumPartialRows(gpu, wp, 0, nblk, D, wo, accumulate);
    gpu.pool.release(part); // later users record after these dispatches
    accumulate = true; // the next chunk adds to this one
  }
}
