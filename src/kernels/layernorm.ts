// Row normalizations, f32: LayerNorm (GPT-NeoX) here, RMSNorm (Llama/Mistral) in rmsnorm.ts; both
// are built from the templates in this file.
//
// Shapes: x, y, dy, dx [N, D] row-major and contiguous; w, b, dw, db [D]; mean, rstd [N].
//   forward:  mean = sum(x)/D, var = sum((x-mean)^2)/D (biased, as torch), rstd = 1/sqrt(var+eps),
//             y = (x - mean) * rstd * w + b                      (RMSNorm: no mean, no b)
//   backward: xhat = (x - mean) * rstd, g = dy * w,
//             dx = rstd * (g - mean(g) - xhat * mean(g * xhat))   (RMSNorm: no mean(g) term)
//             dw += sum_rows dy * xhat, db += sum_rows dy
//
// One workgroup per row for the forward and for dx: threads stride over the row and reduce in
// workgroup memory (a tree, so the sum order is fixed). The mean is taken first and the variance
// from (x - mean) in a second sweep over the row (no E[x^2] - E[x]^2 cancellation).
//
// dw/db must be deterministic, so no float atomics: stage 1 gives each block of ROWS_PER_BLOCK
// rows a workgroup column sweep that writes one partial row (partial[blk, d]); stage 2 sums the
// partial rows in block order per column and adds into dw/db. Gradients accumulate (+=) because
// they are summed over micro-batches; callers zero them at the start of a step.
//
// Tensors over the binding limit are processed in row chunks (each chunk runs both stages, so
// the chunks' contributions are added in chunk order: still deterministic). More than 65535 rows
// use a 2-D grid (grid()). References: layernorm.ref.ts, rmsnorm.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef, memoDef } from '../engine/kernel.js';
import { sumPartialRows } from './column-sum.js';
import { ABSMAX_PARTS, absmaxPartWgsl, absmaxPartsWindow } from './absmax.js';

/**
 * Threads per row: enough to cover the row in about 4 strides, 32..256. Small rows with 256
 * threads waste most of them, and on a CPU adapter every idle thread still pays for each barrier.
 */
export function rowWorkgroup(D: number): number {
  let wg = 32;
  while (wg < 256 && wg * 4 < D) wg *= 2;
  return wg;
}
/** Rows summed by one stage-1 workgroup of the weight-gradient reduction. */
const ROWS_PER_BLOCK = 32;
/** Columns per stage-1/stage-2 workgroup. */
const WGC = 64;

// A fixed-order tree sum over the workgroup (must be called from uniform control flow).
const REDUCE = (WG: number) => /* wgsl */ `
var<workgroup> red: array<vec2f, ${WG}>;
fn reduce2(v: vec2f, li: u32) -> vec2f {
  red[li] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}`;

// `parts`: the variant that also writes y's partial maxima (absmax.ts absmaxPartWgsl): ABSMAX_PARTS
// workgroups, each over rows wg, wg + ABSMAX_PARTS, ... (else one workgroup per row).
// `off`: the gain is w + off (0, or 1 for Gemma's RMSNorm, whose weights are stored as gain - 1).
const gain = (off: number, idx: string) => off ? `(w[${idx}] + ${off.toFixed(1)})` : `w[${idx}]`;

// `acc`: y += the norm's output (a residual sum, Gemma 3's post-norms) instead of y =.
function forwardDefGen(rms: boolean, WG: number, parts = false, off = 0, acc = false): KernelDef {
  // Bindings: x, w, [b], y, [mean], rstd, [absmax parts].
  const b = rms ? -1 : 2;
  const y = rms ? 2 : 3;
  const mean = rms ? -1 : 4;
  const rstd = rms ? 3 : 5;
  const nb = (rms ? 4 : 6) + (parts ? 1 : 0);
  const bindings: ('read' | 'rw')[] = rms ? ['read', 'read', 'rw', 'rw'] : ['read', 'read', 'read', 'rw', 'rw', 'rw'];
  const rowLoop = parts ? `var m = 0.0;\n  for (var row = wg.x; row < p.rows; row += ${ABSMAX_PARTS}u) {`
    : 'let row = wg.x + wg.y * nwg.x;\n  if (row >= p.rows) { return; }\n  {';
  return {
    name: `${rms ? 'rmsnorm_fwd' : 'layernorm_fwd'}${parts ? '_absmax' : ''}${off ? '_offset' : ''}${acc ? '_acc' : ''}`,
    bindings: parts ? [...bindings, 'rw'] : bindings,
    uniform: true,
    code: /* wgsl */ `
struct Params { rows: u32, D: u32, xBase: u32, wBase: u32, bBase: u32, yBase: u32, meanBase: u32, rstdBase: u32, eps: f32,
  partsBase: u32, partsAccumulate: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
${rms ? '' : `@group(0) @binding(${b}) var<storage, read> bias: array<f32>;`}
@group(0) @binding(${y}) var<storage, read_write> y: array<f32>;
${rms ? '' : `@group(0) @binding(${mean}) var<storage, read_write> meanOut: array<f32>;`}
@group(0) @binding(${rstd}) var<storage, read_write> rstdOut: array<f32>;
${parts ? absmaxPartWgsl(WG, nb - 1) : ''}
@group(0) @binding(${nb}) var<uniform> p: Params;
${REDUCE(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  ${rowLoop}
  let xo = p.xBase + row * p.D;
  let yo = p.yBase + row * p.D;
  let fD = f32(p.D);
  ${rms ? 'let mu = 0.0;' : `
  var s = 0.0;
  for (var d = li; d < p.D; d += ${WG}u) { s += x[xo + d]; }
  let mu = reduce2(vec2f(s, 0.0), li).x / fD;`}
  var q = 0.0;
  for (var d = li; d < p.D; d += ${WG}u) { let c = x[xo + d] - mu; q += c * c; }
  let r = inverseSqrt(reduce2(vec2f(q, 0.0), li).x / fD + p.eps);
  for (var d = li; d < p.D; d += ${WG}u) {
    let v = (x[xo + d] - mu) * r * ${gain(off, 'p.wBase + d')}${rms ? '' : ' + bias[p.bBase + d]'};
    y[yo + d] = ${acc ? 'y[yo + d] + v' : 'v'};${parts ? '\n    m = amaxNan(m, abs(v));' : ''}
  }
  if (li == 0u) {
    ${rms ? '' : 'meanOut[p.meanBase + row] = mu;'}
    rstdOut[p.rstdBase + row] = r;
  }
  }${parts ? '\n  writeAbsmaxPart(li, m, wg.x);' : ''}
}`,
  };
}

// `residual`: the variant that writes dx = residual + the norm's gradient (a residual stream's
// gradient: one pass instead of copying the residual into dx first and adding to it).
function backwardDxDefGen(rms: boolean, WG: number, residual = false, off = 0): KernelDef {
  // Bindings: dy, x, w, [mean], rstd, [residual], dx.
  const rstd = rms ? 3 : 4;
  const res = rstd + 1;
  const dx = rstd + (residual ? 2 : 1);
  const bindings: ('read' | 'rw')[] = rms ? ['read', 'read', 'read', 'read'] : ['read', 'read', 'read', 'read', 'read'];
  return {
    name: `${rms ? 'rmsnorm_bwd_dx' : 'layernorm_bwd_dx'}${residual ? '_residual' : ''}${off ? '_offset' : ''}`,
    bindings: [...bindings, ...(residual ? ['read' as const] : []), 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { rows: u32, D: u32, dyBase: u32, xBase: u32, wBase: u32, meanBase: u32, rstdBase: u32, dxBase: u32, accumulate: u32, resBase: u32 };
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
${rms ? '' : '@group(0) @binding(3) var<storage, read> meanIn: array<f32>;'}
@group(0) @binding(${rstd}) var<storage, read> rstdIn: array<f32>;
${residual ? `@group(0) @binding(${res}) var<storage, read> residualIn: array<f32>;` : ''}
@group(0) @binding(${dx}) var<storage, read_write> dx: array<f32>;
@group(0) @binding(${dx + 1}) var<uniform> p: Params;
${REDUCE(WG)}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= p.rows) { return; }
  let mu = ${rms ? '0.0' : 'meanIn[p.meanBase + row]'};
  let r = rstdIn[p.rstdBase + row];
  let yo = p.dyBase + row * p.D;
  let xo = p.xBase + row * p.D;
  let o = p.dxBase + row * p.D;
  // (sum g, sum g * xhat)
  var acc = vec2f(0.0);
  for (var d = li; d < p.D; d += ${WG}u) {
    let g = dy[yo + d] * ${gain(off, 'p.wBase + d')};
    acc += vec2f(g, g * (x[xo + d] - mu) * r);
  }
  let m = reduce2(acc, li) / f32(p.D);
  for (var d = li; d < p.D; d += ${WG}u) {
    let g = dy[yo + d] * ${gain(off, 'p.wBase + d')};
    let xh = (x[xo + d] - mu) * r;
    var v = r * (g${rms ? '' : ' - m.x'} - xh * m.y);
    ${residual ? 'v += residualIn[p.resBase + row * p.D + d];' : 'if (p.accumulate != 0u) { v += dx[o + d]; }'}
    dx[o + d] = v;
  }
}`,
  };
}

// Stage 1 of the weight gradients: partial[blk * stride + d] = sum over the block's rows of dy * xhat
// (and, for LayerNorm, partial[blk * stride + D + d] = sum of dy; stride 2D): each block's dw and db
// rows side by side, so where dw and db lie side by side too (a model's gradients, arena.ts) one
// stage-2 dispatch sums both.
function partialDefGen(rms: boolean): KernelDef {
  return {
    name: rms ? 'rmsnorm_bwd_dw_partial' : 'layernorm_bwd_dwdb_partial',
    bindings: ['read', 'read', 'read', 'read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { rows: u32, D: u32, dyBase: u32, xBase: u32, meanBase: u32, rstdBase: u32, stride: u32 };
@group(0) @binding(0) var<storage, read> dy: array<f32>;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> meanIn: array<f32>;
@group(0) @binding(3) var<storage, read> rstdIn: array<f32>;
@group(0) @binding(4) var<storage, read_write> partial: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
@compute @workgroup_size(${WGC})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let d = wg.x * ${WGC}u + li;
  let blk = wg.y;
  if (d >= p.D) { return; }
  let r0 = blk * ${ROWS_PER_BLOCK}u;
  let r1 = min(p.rows, r0 + ${ROWS_PER_BLOCK}u);
  var sw = 0.0;
  var sb = 0.0;
  // Four rows' loads issued before their products and sums (in a fixed order): one row at a time
  // keeps a single load chain in flight per thread.
  var row = r0;
  for (; row + 4u <= r1; row += 4u) {
    ${[0, 1, 2, 3].map((j) => `let g${j} = dy[p.dyBase + (row + ${j}u) * p.D + d]; let x${j} = x[p.xBase + (row + ${j}u) * p.D + d]; ` +
      `let m${j} = ${rms ? '0.0' : `meanIn[p.meanBase + row + ${j}u]`}; let s${j} = rstdIn[p.rstdBase + row + ${j}u];`).join('\n    ')}
    sw += (g0 * (x0 - m0) * s0 + g1 * (x1 - m1) * s1) + (g2 * (x2 - m2) * s2 + g3 * (x3 - m3) * s3);
    sb += (g0 + g1) + (g2 + g3);
  }
  for (; row < r1; row++) {
    let g = dy[p.dyBase + row * p.D + d];
    let mu = ${rms ? '0.0' : 'meanIn[p.meanBase + row]'};
    sw += g * (x[p.xBase + row * p.D + d] - mu) * rstdIn[p.rstdBase + row];
    sb += g;
  }
  partial[blk * p.stride + d] = sw;
  ${rms ? '' : 'partial[blk * p.stride + p.D + d] = sb;'}
}`,
  };
}

function need(what: string, t: Tensor | undefined, n: number): void {
  if (!t) return;
  if (t.dtype !== 'f32') throw new TypeError(`${what}: ${t} must be f32`);
  if (t.numel < n) throw new RangeError(`${what}: ${t} has ${t.numel} elements, needs ${n}`);
}

/** Rows per chunk so that an [rows, D] window (and the [rows] stats) fit one binding. */
function rowsPerChunk(gpu: Gpu, D: number): number {
  const r = Math.floor(maxWindowElems(gpu) / Math.max(1, D));
  if (r < 1) throw new RangeError(`norm: one row of ${D} floats exceeds the binding limit`);
  return r;
}

export interface NormForwardArgs {
  x: Tensor; w: Tensor; y: Tensor; rstd: Tensor; N: number; D: number; eps: number;
  /** LayerNorm only. */
  b?: Tensor; mean?: Tensor;
  /**
   * Also y's partial maxima, into this [ABSMAX_PARTS] tensor (absmax.ts; in f16 precision the scale of
   * the linear layers that take y, MatmulArgs.scaleA), written in the same pass instead of by a pass of
   * its own over y.
   */
  absmax?: Tensor;
  /** The gain is w + wOffset: 0 (default), or 1 for Gemma's RMSNorm (y = x * rstd * (1 + w)). */
  wOffset?: 0 | 1;
  /** y += the output (a residual stream's sum) instead of y =; not with absmax. */
  accumulate?: boolean;
}

export interface NormBackwardArgs {
  dy: Tensor; x: Tensor; w: Tensor; rstd: Tensor; dx: Tensor; N: number; D: number;
  /** Weight gradient [D], accumulated (+=); omitted: not computed (frozen weight). */
  dw?: Tensor;
  /** dx += (instead of =): adds into a residual-stream gradient. */
  accumulateDx?: boolean;
  /** dx = residual + (instead of =; not with accumulateDx): a residual stream's gradient [N, D], in one pass. */
  residual?: Tensor;
  /** LayerNorm only: mean [N] from the forward; db [D] accumulated (+=), optional. */
  mean?: Tensor; db?: Tensor;
  /** The forward's gain offset (NormForwardArgs.wOffset); dw is the same either way. */
  wOffset?: 0 | 1;
}

/** Shared forward of LayerNorm (rms=false) and RMSNorm (rms=true). */
export function normForward(gpu: Gpu, rms: boolean, a: NormForwardArgs): void {
  const { x, w, y, rstd, N, D, eps } = a;
  const name = rms ? 'rmsNorm' : 'layerNorm';
  need(`${name} x`, x, N * D); need(`${name} y`, y, N * D); need(`${name} w`, w, D); need(`${name} rstd`, rstd, N);
  if (!rms) { if (!a.b || !a.mean) throw new Error('layerNorm: b and mean are required'); need('layerNorm b', a.b, D); need('layerNorm mean', a.mean, N); }
  if (a.accumulate && a.absmax) throw new Error(`${name}: accumulate and absmax exclude each other (the maxima would be the norm's, not y's)`);
  if (N === 0 || D === 0) return;
  const k = gpu.kernels.get(forwardDef(rms, rowWorkgroup(D), !!a.absmax, a.wOffset ?? 0, !!a.accumulate));
  const ww = windowOf(gpu, w, 0, D);
  const wb = rms ? undefined : windowOf(gpu, a.b!, 0, D);
  const wparts = a.absmax ? absmaxPartsWindow(gpu, a.absmax) : undefined;
  let chunk = 0;
  for (const [r0, r1] of chunkRanges(N, rowsPerChunk(gpu, D))) {
    const wx = windowOf(gpu, x, r0 * D, r1 * D);
    const wy = windowOf(gpu, y, r0 * D, r1 * D);
    const wm = rms ? undefined : windowOf(gpu, a.mean!, r0, r1);
    const wr = windowOf(gpu, rstd, r0, r1);
    const params = new ParamWriter().u32(r1 - r0, D, wx.base, ww.base, wb?.base ?? 0, wy.base, wm?.base ?? 0, wr.base)
      .f32(eps).u32(wparts?.base ?? 0, chunk++ > 0 ? 1 : 0).bytes();
    const ranges = rms ? [wx.range, ww.range, wy.range, wr.range]
      : [wx.range, ww.range, wb!.range, wy.range, wm!.range, wr.range];
    if (wparts) ranges.push(wparts.range);
    gpu.recorder.dispatch(k, ranges, params, wparts ? [ABSMAX_PARTS, 1, 1] : grid(r1 - r0));
  }
}

/** Shared backward of LayerNorm (rms=false) and RMSNorm (rms=true). */
export function normBackward(gpu: Gpu, rms: boolean, a: NormBackwardArgs): void {
  const { dy, x, w, rstd, dx, N, D } = a;
  const name = rms ? 'rmsNormBackward' : 'layerNormBackward';
  need(`${name} dy`, dy, N * D); need(`${name} x`, x, N * D); need(`${name} dx`, dx, N * D);
  need(`${name} w`, w, D); need(`${name} rstd`, rstd, N); need(`${name} dw`, a.dw, D);
  if (!rms) { if (!a.mean) throw new Error('layerNormBackward: mean is required'); need(`${name} mean`, a.mean, N); need(`${name} db`, a.db, D); }
  if (N === 0 || D === 0) return;
  if (a.residual) {
    need(`${name} residual`, a.residual, N * D);
    if (a.accumulateDx) throw new Error(`${name}: residual and accumulateDx exclude each other`);
  }
  const kdx = gpu.kernels.get(backwardDxDef(rms, rowWorkgroup(D), !!a.residual, a.wOffset ?? 0));
  const ww = windowOf(gpu, w, 0, D);
  const mean = rms ? gpu.placeholder() : a.mean!;
  const wantW = !!a.dw; const wantB = !rms && !!a.db;
  for (const [r0, r1] of chunkRanges(N, rowsPerChunk(gpu, D))) {
    const rows = r1 - r0;
    const wdy = windowOf(gpu, dy, r0 * D, r1 * D);
    const wx = windowOf(gpu, x, r0 * D, r1 * D);
    const wdx = windowOf(gpu, dx, r0 * D, r1 * D);
    const wm = rms ? windowOf(gpu, mean) : windowOf(gpu, mean, r0, r1);
    const wr = windowOf(gpu, rstd, r0, r1);
    const wres = a.residual ? windowOf(gpu, a.residual, r0 * D, r1 * D) : undefined;
    const params = new ParamWriter().u32(rows, D, wdy.base, wx.base, ww.base, wm.base, wr.base, wdx.base,
      a.accumulateDx ? 1 : 0, wres?.base ?? 0).bytes();
    const ranges = rms ? [wdy.range, wx.range, ww.range, wr.range] : [wdy.range, wx.range, ww.range, wm.range, wr.range];
    if (wres) ranges.push(wres.range);
    ranges.push(wdx.range);
    gpu.recorder.dispatch(kdx, ranges, params, grid(rows));
    if (!wantW && !wantB) continue;
    // Weight gradients for this chunk: partial rows, then the in-order column sums. The partial
    // buffer is at most 2 * ceil(rows / 32) * D floats, i.e. 1/16 of the chunk: it fits a binding.
    const nblk = Math.ceil(rows / ROWS_PER_BLOCK);
    const part = gpu.pool.acquire([(rms ? 1 : 2) * nblk * D], 'f32', 'norm partial');
    const wp = windowOf(gpu, part);
    const stride = (rms ? 1 : 2) * D;
    const pp = new ParamWriter().u32(rows, D, wdy.base, wx.base, wm.base, wr.base, stride).bytes();
    gpu.recorder.dispatch(gpu.kernels.get(partialDef(rms)), [wdy.range, wx.range, wm.range, wr.range, wp.range], pp,
      [Math.ceil(D / WGC), nblk, 1]);
    if (wantW && wantB && a.db!.buffer === a.dw!.buffer && a.db!.offset === a.dw!.offset + 4 * D) {
      // db right after dw: one sum over 2D columns (a model's LayerNorm gradients: one dispatch fewer each).
      sumPartialRows(gpu, wp, 0, nblk, 2 * D, windowOf(gpu, new Tensor(a.dw!.buffer, a.dw!.offset, [2 * D]), 0, 2 * D), true, stride);
    } else {
      const outs: [Tensor | undefined, number][] = [[a.dw, 0], [wantB ? a.db : undefined, D]];
      for (const [out, off] of outs) if (out) sumPartialRows(gpu, wp, off, nblk, D, windowOf(gpu, out, 0, D), true, stride);
    }
    // Safe to hand back now: a later user of this buffer records after these dispatches.
    gpu.pool.release(part);
  }
}

export interface LayerNormArgs {
  /** [N, D] input, [D] weight and bias, [N, D] output. */
  x: Tensor; w: Tensor; b: Tensor; y: Tensor;
  /** [N] saved statistics for the backward. */
  mean: Tensor; rstd: Tensor;
  N: number; D: number; eps: number;
}

/** y = (x - mean) * rstd * w + b per row of x [N, D]; writes mean and rstd [N]. */
export function layerNorm(gpu: Gpu, a: LayerNormArgs): void {
  normForward(gpu, false, a);
}

export interface LayerNormBackwardArgs {
  dy: Tensor; x: Tensor; w: Tensor; mean: Tensor; rstd: Tensor;
  /** [N, D]: written, or added to when accumulateDx. */
  dx: Tensor;
  /** [D] gradients, accumulated (+=); either may be omitted. */
  dw?: Tensor; db?: Tensor;
  N: number; D: number;
  accumulateDx?: boolean;
}

/** LayerNorm backward: dx (= or +=), dw += sum dy * xhat, db += sum dy (deterministic). */
export function layerNormBackward(gpu: Gpu, a: LayerNormBackwardArgs): void {
  normBackward(gpu, false, a);
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const forwardDef = memoDef(forwardDefGen);
const backwardDxDef = memoDef(backwardDxDefGen);
const partialDef = memoDef(partialDefGen);
