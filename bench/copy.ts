// Copy bandwidth: a vec4 f32 copy kernel, bytes read + written per second. This is the
// adapter's practical memory bandwidth, the yardstick other results are divided by.
import type { Gpu } from '../src/engine/gpu.js';
import { ParamWriter, grid, type KernelDef } from '../src/engine/kernel.js';
import { timeIt, type Timing } from './harness.js';

const COPY_VEC4: KernelDef = {
  name: 'bench_copy_vec4',
  bindings: ['read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32 };
@group(0) @binding(0) var<storage, read> x: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * 256u + li;
  if (i < p.n) { y[i] = x[i]; }
}`,
};

export interface CopyResult { bytes: number; timing: Timing; gbPerS: number }

export async function benchCopy(gpu: Gpu, mib: number): Promise<CopyResult> {
  const bytes = Math.min(mib * 2 ** 20, gpu.maxBinding - (gpu.maxBinding % 16));
  const n4 = bytes / 16;
  const x = gpu.pool.acquire([n4 * 4]); const y = gpu.pool.acquire([n4 * 4]);
  const k = gpu.kernels.get(COPY_VEC4);
  const params = new ParamWriter().u32(n4).bytes();
  const run = () => gpu.recorder.dispatch(k, [{ buffer: x.buffer, offset: 0, size: bytes }, { buffer: y.buffer, offset: 0, size: bytes }],
    params, grid(Math.ceil(n4 / 256)));
  const timing = await timeIt(gpu, run, 3, 9);
  gpu.pool.release(x, y);
  return { bytes, timing, gbPerS: (2 * bytes) / (timing.ms * 1e6) };
}
