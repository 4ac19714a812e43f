// Small elementwise ops over f32 tensors of any length: fill, zero, copy.
// Each op chunks over binding windows so tensors larger than maxStorageBufferBindingSize work.
// References: elementwise.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

const WG = 256;

// One template: y[i] = f(x[i], y[i]) with scalars a, b. `op` is a WGSL expression; y is read only
// where it uses yv: an op that overwrites y must not touch what y held, since 0 * NaN (a pooled
// buffer's leftover Inf or NaN) is NaN wherever the compiler keeps IEEE semantics.
function def(name: string, op: string, reads: boolean): KernelDef {
  const readsY = /\byv\b/.test(op);
  return {
    name,
    bindings: reads ? ['read', 'rw'] : ['rw'],
    uniform: true,
    code: /* wgsl */ `
struct Params { n: u32, xBase: u32, yBase: u32, a: f32, b: f32 };
${reads ? '@group(0) @binding(0) var<storage, read> x: array<f32>;' : ''}
@group(0) @binding(${reads ? 1 : 0}) var<storage, read_write> y: array<f32>;
@group(0) @binding(${reads ? 2 : 1}) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.n) { return; }
  ${reads ? 'let xv = x[p.xBase + i];' : ''}
  ${readsY ? 'let yv = y[p.yBase + i];' : ''}
  y[p.yBase + i] = ${op};
}`,
  };
}

const FILL = def('fill', 'p.a', false);
const COPY = def('copy', 'xv', true);

function run1(gpu: Gpu, d: KernelDef, y: Tensor, a: number, b = 0): void {
  const k = gpu.kernels.get(d);
  for (const [s, e] of chunkRanges(y.numel, maxWindowElems(gpu))) {
    const wy = windowOf(gpu, y, s, e);
    const params = new ParamWriter().u32(e - s, 0, wy.base).f32(a, b).bytes();
    gpu.recorder.dispatch(k, [wy.range], params, grid(Math.ceil((e - s) / WG)));
  }
}

function run2(gpu: Gpu, d: KernelDef, x: Tensor, y: Tensor, a: number, b: number): void {
  if (x.numel !== y.numel) throw new RangeError(`${d.name}: ${x} and ${y} differ in size`);
  const k = gpu.kernels.get(d);
  for (const [s, e] of chunkRanges(y.numel, maxWindowElems(gpu))) {
    const wx = windowOf(gpu, x, s, e);
    const wy = windowOf(gpu, y, s, e);
    const params = new ParamWriter().u32(e - s, wx.base, wy.base).f32(a, b).bytes();
    gpu.recorder.dispatch(k, [wx.range, wy.range], params, grid(Math.ceil((e - s) / WG)));
  }
}

/** y[:] = value */
export function fill(gpu: Gpu, y: Tensor, value: number): void {
  if (value === 0) zero(gpu, y); else run1(gpu, FILL, y, value);
}
/** y[:] = 0, with the copy engine when the range is 4-byte aligned. */
export function zero(gpu: Gpu, y: Tensor): void {
  if (y.offset % 4 === 0 && y.bytes % 4 === 0) gpu.recorder.clear({ buffer: y.buffer, offset: y.offset, size: y.bytes });
  else run1(gpu, FILL, y, 0);
}
/** y = x (a kernel: works for views at any 4-byte offset and any size) */
export function copy(gpu: Gpu, x: Tensor, y: Tensor): void { run2(gpu, COPY, x, y, 1, 0); }
