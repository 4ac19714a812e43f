// Pseudo-random fills for benchmark inputs, generated on the GPU (a hash of the element index and
// a seed), so even a 400M-parameter model needs no host data. Values are uniform in [-a, a]; the
// numbers only have to be finite and of a plausible size, since benchmarks measure time.
import type { Gpu } from '../src/engine/gpu.js';
import type { Tensor } from '../src/engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../src/engine/kernel.js';
import { fill } from '../src/kernels/elementwise.js';
import { initKind } from '../src/init/init-model.js';
import type { Params } from '../src/model/params.js';

const WG = 256;

const UNIFORM: KernelDef = {
  name: 'bench_fill_uniform',
  bindings: ['rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { n: u32, base: u32, seed: u32, start: u32, a: f32 };
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
fn hash(x0: u32) -> u32 {
  var x = x0;
  x ^= x >> 16u; x *= 0x7feb352du; x ^= x >> 15u; x *= 0x846ca68bu; x ^= x >> 16u;
  return x;
}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.n) { return; }
  let h = hash((p.start + i) ^ hash(p.seed));
  y[p.base + i] = p.a * (f32(h >> 8u) * (2.0 / 16777216.0) - 1.0);
}`,
};

/** Fills an f32 tensor with uniform values in [-a, a]. */
export function fillUniform(gpu: Gpu, t: Tensor, a: number, seed: number): void {
  const k = gpu.kernels.get(UNIFORM);
  for (const [s, e] of chunkRanges(t.numel, maxWindowElems(gpu))) {
    const w = windowOf(gpu, t, s, e);
    gpu.recorder.dispatch(k, [w.range], new ParamWriter().u32(e - s, w.base, seed >>> 0, s).f32(a).bytes(), grid(Math.ceil((e - s) / WG)));
  }
}

/** Host integers in [0, n) from a small deterministic generator (token ids, targets). */
export function randomInts(count: number, n: number, seed: number): Int32Array {
  const out = new Int32Array(count);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x % n;
  }
  return out;
}

/** Random init of a model's parameters like transformers' (std 0.02 as uniform, norms 1, biases 0). */
export function randomInitParams(gpu: Gpu, params: Params, seed = 1): void {
  const a = 0.02 * Math.sqrt(3);
  params.specs.forEach((s, i) => {
    const t = params.get(s.name);
    const kind = initKind(s);
    if (kind === 'normal') fillUniform(gpu, t, a, seed * 7919 + i);
    else fill(gpu, t, kind === 'ones' ? 1 : 0);
  });
}
