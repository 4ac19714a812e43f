// Per-tensor max |x|, as ABSMAX_PARTS partial maxima (no atomics, no zeroing pass): workgroup g
// writes the max over its grid-stride share to parts[g] (vec4 loads where the window allows). Consumers (the f16 matmul's dynamic operand
// scale) reduce the ABSMAX_PARTS values themselves. NaN propagates (any NaN makes its part NaN), tested
// by its bits: WGSL lets a compiler assume there is none, and lavapipe folds `x != x` away.
// Reference: absmax.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, maxWindowElems, windowOf, type KernelDef, type Window, memoDef } from '../engine/kernel.js';
import { isNanWgsl } from './wgsl-float.js';

export const ABSMAX_PARTS = 1024;
const THREADS = 256;

/** WGSL: max that keeps NaN (WGSL's max may drop it; NaN found by its bits, wgsl-float.ts), named `name`. */
const nanmaxWgsl = (name: string) => `fn ${name}(a: f32, b: f32) -> f32 {
  return select(max(a, b), a + b, ${isNanWgsl('a')} || ${isNanWgsl('b')});
}`;

/**
 * A partial-maxima kernel: ABSMAX_PARTS workgroups, workgroup g folding |x[e]| for the indices i = g
 * THREADS + li, + ABSMAX_PARTS THREADS, ... below `n` (WGSL, after `prelude`) into parts[p.out + g], e =
 * `elem` (WGSL of i; in vec4s where `vec4`).
 */
function absmaxKernel(name: string, vec4: boolean, params: string, prelude: string, elem: string): KernelDef {
  const load = vec4
    ? 'let q = abs(x[e]); m = nanmax(m, nanmax(nanmax(q.x, q.y), nanmax(q.z, q.w)));'
    : 'm = nanmax(m, abs(x[e]));';
  return {
    name,
    bindings: ['read', 'rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { ${params}, out: u32 };
@group(0) @binding(0) var<storage, read> x: array<${vec4 ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read_write> parts: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
var<workgroup> red: array<f32, ${THREADS}>;

${nanmaxWgsl('nanmax')}

@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  var m = 0.0;
  ${prelude}
  for (var i = wg.x * ${THREADS}u + li; i < n; i += ${ABSMAX_PARTS * THREADS}u) { let e = ${elem}; ${load} }
  red[li] = m;
  workgroupBarrier();
  for (var s = ${THREADS / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] = nanmax(red[li], red[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) { parts[p.out + wg.x] = red[0]; }
}`,
  };
}

// vec4: the window starts 16-byte aligned and n is a multiple of 4 (every activation srk scales).
function absmaxDefGen(vec4: boolean): KernelDef {
  return absmaxKernel(vec4 ? 'absmax_parts_vec4' : 'absmax_parts', vec4, 'base: u32, n: u32',
    `let n = ${vec4 ? 'p.n >> 2u' : 'p.n'};`, vec4 ? '(p.base >> 2u) + i' : 'p.base + i');
}

// The same over `count` blocks of `len` elements, `stride` apart (one head's columns of every token in
// a fused QKV tensor: Q's maximum without reading K and V). vec4: base, len and stride multiples of 4.
function absmaxStridedDefGen(vec4: boolean): KernelDef {
  const q = vec4 ? 4 : 1;
  return absmaxKernel(vec4 ? 'absmax_parts_strided_vec4' : 'absmax_parts_strided', vec4, 'base: u32, len: u32, stride: u32, count: u32',
    `let len = p.len / ${q}u; let stride = p.stride / ${q}u; let base = p.base / ${q}u; let n = p.count * len; // in units of ${q}`,
    'base + (i / len) * stride + i % len');
}

/**
 * The partial maxima of `count` blocks of `len` elements of x, `stride` apart from element `off`, into
 * parts[outOff .. outOff + ABSMAX_PARTS) of a caller's tensor: Q's scale read from a fused QKV tensor
 * without K and V. Blocks spanning more than one binding window fall back to the whole of x from `off`
 * (a superset). `timing`: the tuner's name for the call it is part of (recorder.ts dispatch), so a
 * candidate is timed with its passes.
 */
export function absmaxStridedInto(gpu: Gpu, x: Tensor, off: number, len: number, stride: number, count: number, parts: Tensor, outOff: number,
  timing?: string): void {
  if (!(len >= 1 && stride >= len && count >= 1)) throw new RangeError(`absmax: blocks of ${len} every ${stride}, ${count} of them`);
  const span = (count - 1) * stride + len;
  if (off + span > x.numel) throw new RangeError(`absmax: ${count} blocks of ${len} every ${stride} from ${off} exceed ${x}`);
  if (span > maxWindowElems(gpu)) { absmaxInto(gpu, x.view([x.numel - off], off), x.numel - off, parts, outOff, timing); return; }
  const wx = windowOf(gpu, x, off, off + span);
  const vec4 = wx.base % 4 === 0 && len % 4 === 0 && stride % 4 === 0 && wx.range.size % 16 === 0 && gpu.bindingAlign % 16 === 0;
  const wp = windowOf(gpu, parts, outOff, outOff + ABSMAX_PARTS);
  gpu.recorder.dispatch(gpu.kernels.get(absmaxStridedDef(vec4)), [wx.range, wp.range],
    new ParamWriter().u32(wx.base, len, stride, count, wp.base).bytes(), [ABSMAX_PARTS, 1, 1], timing);
}

/**
 * WGSL for a kernel that writes a tensor and, in the same pass, its ABSMAX_PARTS partial maxima
 * (LayerNorm, GELU: the inputs of the next linear layer in f16 precision), so no absmax pass reads
 * the tensor again. Such a kernel runs exactly ABSMAX_PARTS workgroups over its work in grid-stride
 * order, each folding |value| of what it writes into `m` with `amaxNan`, and ends (every invocation,
 * in uniform control flow) with `writeAbsmaxPart(li, m, wg)`: the workgroup's max into parts[base +
 * wg], or folded into the part already there when `accumulate` (a later binding-window chunk of the
 * same tensor). The maxima are those absmax.ts would find (max is order-free; NaN as there), so a
 * matmul scaled by them computes the same bits. Declares binding `binding` as `absmaxOut` and reads
 * p.partsBase and p.partsAccumulate from the caller's Params.
 */
export function absmaxPartWgsl(WG: number, binding: number): string {
  return /* wgsl */ `
@group(0) @binding(${binding}) var<storage, read_write> absmaxOut: array<f32>;
var<workgroup> amaxRed: array<f32, ${WG}>;
${nanmaxWgsl('amaxNan')}
fn writeAbsmaxPart(li: u32, m: f32, wg: u32) {
  amaxRed[li] = m;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { amaxRed[li] = amaxNan(amaxRed[li], amaxRed[li + s]); }
    workgroupBarrier();
  }
  if (li == 0u) {
    let r = amaxRed[0];
    let o = p.partsBase + wg;
    absmaxOut[o] = select(r, amaxNan(absmaxOut[o], r), p.partsAccumulate != 0u);
  }
}`;
}

/** Checks a tensor for a producer's partial maxima (absmaxPartWgsl) and its binding window. */
export function absmaxPartsWindow(gpu: Gpu, parts: Tensor): Window {
  if (parts.dtype !== 'f32' || parts.numel < ABSMAX_PARTS) throw new RangeError(`absmax: ${parts} must be f32 with >= ${ABSMAX_PARTS} elements`);
  return windowOf(gpu, parts, 0, ABSMAX_PARTS);
}

/**
 * Records max |x[off .. off+n)| into parts[outOff .. outOff + ABSMAX_PARTS) as partial maxima.
 * x's range must fit one binding (the matmul calls it per bound operand window).
 */
export function absmaxParts(gpu: Gpu, x: Tensor, off: number, n: number, parts: Tensor, outOff = 0, timing?: string): void {
  if (outOff + ABSMAX_PARTS > parts.numel) throw new RangeError(`absmax: ${parts} is too small for ${ABSMAX_PARTS} parts`);
  const wx = windowOf(gpu, x, off, off + Math.max(1, n));
  const vec4 = wx.base % 4 === 0 && n % 4 === 0 && wx.range.size % 16 === 0 && gpu.bindingAlign % 16 === 0;
  const wp = windowOf(gpu, parts, outOff, outOff + ABSMAX_PARTS);
  const params = new ParamWriter().u32(wx.base, n, wp.base).bytes();
  gpu.recorder.dispatch(gpu.kernels.get(absmaxDef(vec4)), [wx.range, wp.range], params, [ABSMAX_PARTS, 1, 1], timing);
}

/**
 * The partial maxima of |x[0..n)| in a new pooled tensor (the caller releases it), chunked over
 * binding windows: for a dynamically scaled operand used by several matmuls (MatmulArgs.scaleA).
 * With chunks the parts hold each chunk's maxima folded by max, so the result is the same.
 */
export function absmaxOf(gpu: Gpu, x: Tensor, n: number): Tensor {
  const parts = gpu.pool.acquire([ABSMAX_PARTS], 'f32', 'absmax parts');
  absmaxInto(gpu, x, n, parts, 0);
  return parts;
}

/** absmaxOf written into parts[outOff .. outOff + ABSMAX_PARTS) of a caller's tensor. */
export function absmaxInto(gpu: Gpu, x: Tensor, n: number, parts: Tensor, outOff: number, timing?: string): void {
  const limit = Math.max(4, Math.floor(maxWindowElems(gpu) / 4) * 4);
  if (n <= limit) { absmaxParts(gpu, x, 0, n, parts, outOff, timing); return; }
  // Each chunk into a scratch set of parts, then folded into `parts` with the elementwise max.
  const scratch = gpu.pool.acquire([ABSMAX_PARTS * Math.ceil(n / limit)], 'f32', 'absmax chunks');
  let c = 0;
  for (let o = 0; o < n; o += limit, c++) absmaxParts(gpu, x, o, Math.min(limit, n - o), scratch, c * ABSMAX_PARTS, timing);
  absmaxParts(gpu, scratch, 0, c * ABSMAX_PARTS, parts, outOff, timing); // its max over all parts lands in the parts: same reduction
  gpu.pool.release(scratch);
}

/**
 * WGSL: a function `fn(li, base)` (default f16Scale) for a kernel with `threads` invocations that
 * reduces the partial maxima in binding `parts` (declared by the caller) to the power-of-two operand
 * scale of absmax.ref.ts f16ScaleRef (1 where the max is 0 or not finite). Uses its own workgroup
 * array; every invocation must call it (it has barriers). `subgroupSize`: for kernels that enable
 * subgroups and whose subgroups are the runs of that many consecutive local indices (the tensor-core
 * matmul): one subgroupMax per subgroup, then every invocation takes the few subgroup maxima, instead
 * of one invocation walking all `threads` values while the workgroup waits (a fixed cost at the start
 * of every workgroup, felt most by short-K products such as attention's scores). Same result: a max.
 */
export function f16ScaleWgsl(threads: number, fn = 'f16Scale', parts = 'parts', subgroupSize = 0): string {
  const red = `${fn}Red`;
  const bySubgroup = subgroupSize > 0 && threads % subgroupSize === 0;
  const nSub = bySubgroup ? threads / subgroupSize : 0;
  const reduce = bySubgroup ? `
  let ms = subgroupMax(m);
  if (li % ${subgroupSize}u == 0u) { ${red}[li / ${subgroupSize}u] = ms; }
  workgroupBarrier();
  var amax = 0u;
  for (var i = 0u; i < ${nSub}u; i++) { amax = max(amax, ${red}[i]); }` : `
  ${red}[li] = m;
  workgroupBarrier();
  if (li == 0u) {
    var r = 0u;
    for (var i = 0u; i < ${Math.min(threads, ABSMAX_PARTS)}u; i++) { r = max(r, ${red}[i]); }
    ${red}[0] = r;
  }
  workgroupBarrier();
  let amax = ${red}[0];`;
  // The maximum is taken over the parts' bits (sign cleared): non-negative floats order as their bit
  // patterns do, and a NaN sorts above +Inf, so the reduction is exact and a NaN anywhere gives scale 1
  // (WGSL leaves what max and subgroupMax make of a NaN float open: lavapipe drops it).
  return /* wgsl */ `
var<workgroup> ${red}: array<u32, ${bySubgroup ? nSub : threads}>;
fn ${fn}(li: u32, base: u32) -> f32 {
  var m = 0u;
  for (var i = li; i < ${ABSMAX_PARTS}u; i += ${threads}u) { m = max(m, bitcast<u32>(${parts}[base + i]) & 0x7fffffffu); }${reduce}
  // 2^floor(log2(16384 / amax)); exponents from the bits so no transcendental rounding can shift it.
  // 0, or not finite (exponent bits all ones: Inf, NaN): 1.
  if (amax == 0u || amax >= 0x7f800000u) { return 1.0; }
  let e = i32(amax >> 23u) - 127;             // floor(log2 amax) for normal amax
  var k = 14 - e;                              // amax * 2^k in [2^14, 2^15)
  if ((amax & 0x7fffffu) != 0u) { k = k - 1; } // amax above 2^e: one less so it stays <= 2^14
  return exp2(f32(clamp(k, -126, 64)));
}`;
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const absmaxDef = memoDef(absmaxDefGen);
const absmaxStridedDef = memoDef(absmaxStridedDefGen);
