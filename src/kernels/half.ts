// f16 copies of matmul operands: out [n] f16 = f16(x [n] f32 * s), s = 1 or the power-of-two scale of
// x's partial maxima (absmax.ts, f16ScaleWgsl), as the f16 matmul would have rounded x while staging
// it. The matmul then reads the copy (MatmulArgs with an f16 tensor, matmul.ts): 2 bytes per element
// instead of 4, read from L2 once per tile of the other operand, and no conversion in its loads.
// Why (bench/RESULTS.md, run 5): the tensor-core products ran at 120-140 TFLOP/s alone, where a
// 128 x 128 tile reading f32 operands moves ~4 TB/s from L2; f16 copies halve that traffic for the
// price of one pass over each operand.
// Rounding: WGSL's f32 -> f16 conversion, the one the tensor-core staging uses (matmul-smx.ts), so a
// product of copies takes the same f16 values it would have staged itself. NaN stays NaN; values
// from 65520 on (after the scale) become +-inf, as in the staging.
// Reference: half.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, memoDef, windowOf, type KernelDef } from '../engine/kernel.js';
import { envSwitch } from '../engine/env.js';
import { f16ScaleWgsl } from './absmax.js';

const THREADS = 256;
// Elements per workgroup: enough that each workgroup's reduction of the 1024 partial maxima (the
// scale) is a small part of its work.
const PER_WG = THREADS * 4 * 8;

// vec4: both windows start at a multiple of 4 elements and n is a multiple of 4.
function halfDefGen(vec4: boolean, scaled: boolean): KernelDef {
  const body = vec4
    ? `let q = i / 4u; if (q < p.n / 4u) { out[p.oBase / 4u + q] = vec4<f16>(x[p.xBase / 4u + q] * s); }`
    : `if (i < p.n) { out[p.oBase + i] = f16(x[p.xBase + i] * s); }`;
  return {
    name: `half_copy${vec4 ? '_vec4' : ''}${scaled ? '_scaled' : ''}`,
    bindings: ['read', 'rw', ...(scaled ? ['read' as const] : [])],
    uniform: true,
    code: /* wgsl */ `enable f16;
struct Params { n: u32, xBase: u32, oBase: u32, partsBase: u32 };
@group(0) @binding(0) var<storage, read> x: array<${vec4 ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read_write> out: array<${vec4 ? 'vec4<f16>' : 'f16'}>;
${scaled ? '@group(0) @binding(2) var<storage, read> parts: array<f32>;' : ''}
@group(0) @binding(${scaled ? 3 : 2}) var<uniform> p: Params;
${scaled ? f16ScaleWgsl(THREADS) : ''}
@compute @workgroup_size(${THREADS})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let s = ${scaled ? 'f16Scale(li, p.partsBase)' : '1.0'};
  let first = (wg.x + wg.y * nwg.x) * ${PER_WG}u;
  for (var j = 0u; j < ${PER_WG / THREADS / (vec4 ? 4 : 1)}u; j++) {
    let i = first + ${vec4 ? 4 : 1}u * (j * ${THREADS}u + li);
    ${body}
  }
}`,
  };
}
const halfDef = memoDef(halfDefGen);

export interface HalfCopyArgs {
  /** x [n] f32 and the f16 tensor [n] it is copied to. */
  x: Tensor; out: Tensor; n: number;
  /** Partial maxima of x (absmaxOf): scale by the power of two they give; absent: no scale. */
  parts?: Tensor;
  /** The tuner's timing name (tuner.ts) of an outer candidate these dispatches are part of. */
  timing?: string;
}

/** out = f16(x * scale), chunked over binding windows. */
export function halfCopy(gpu: Gpu, a: HalfCopyArgs): void {
  const { x, out, n, parts } = a;
  if (out.dtype !== 'f16' || x.dtype !== 'f32') throw new TypeError(`halfCopy: ${x} -> ${out}: expected f32 -> f16`);
  if (x.numel < n || out.numel < n) throw new RangeError(`halfCopy: ${n} elements from ${x} to ${out}`);
  if (!gpu.features.shaderF16) throw new Error('halfCopy needs an adapter with shader-f16');
  const wp = parts ? windowOf(gpu, parts) : undefined;
  // Chunks of whole quads (vec4 stays possible past the first), at least one.
  const chunk = Math.max(4, Math.floor(maxWindowElems(gpu) / 4) * 4);
  for (const [s, e] of chunkRanges(n, chunk)) {
    const wx = windowOf(gpu, x, s, e);
    const wo = windowOf(gpu, out, s, e);
    const m = e - s;
    const vec4 = wx.base % 4 === 0 && wo.base % 4 === 0 && m % 4 === 0 && wx.range.size % 16 === 0 && wo.range.size % 8 === 0;
    const params = new ParamWriter().u32(m, wx.base, wo.base, wp?.base ?? 0).bytes();
    gpu.recorder.dispatch(gpu.kernels.get(halfDef(vec4, !!parts)), [wx.range, wo.range, ...(wp ? [wp.range] : [])], params,
      grid(Math.ceil(m / PER_WG)), a.timing);
  }
}

/** A new pooled f16 tensor holding f16(x * scale) (the caller releases it). */
export function halfOf(gpu: Gpu, x: Tensor, n: number, parts?: Tensor, timing?: string): Tensor {
  const out = gpu.pool.acquire([n], 'f16', 'f16 copy');
  halfCopy(gpu, { x, out, n, parts, timing });
  return out;
}

/** SRK_F16_COPIES: '1' always, '0' never, unset: the tuner's choice (on tensor cores). */
export const f16CopiesEnv = (): '0' | '1' | undefined => envSwitch('SRK_F16_COPIES');

/**
 * Whether the products of one operation (a linear layer's direction, the output layer's) read f16
 * copies of their operands, and the tuner's timing name for the copies and products while it
 * measures: only in the f16 precision (tensor cores; elsewhere SRK_MIXED=emulate); SRK_F16_COPIES
 * forces either way; otherwise, with a tuner, the two ways are candidates under `key` (operation and
 * shape bucket), timed as a whole.
 */
export function f16CopiesPick(gpu: Gpu, key: string): { copies: boolean; timing?: string } {
  const env = f16CopiesEnv();
  if (gpu.matmulPrecision !== 'f16' || !gpu.features.shaderF16) return { copies: false };
  if (env !== undefined) return { copies: env === '1' };
  // Not over emulated tensor cores (checking only, never fast, and each pipeline costs lavapipe seconds).
  if (!gpu.tuner || gpu.smxMode === 'emulated') return { copies: false };
  const { index, timing } = gpu.tuner.pick(`${key} f16 operands`, ['staged', 'f16 copies']);
  return { copies: index === 1, timing };
}
