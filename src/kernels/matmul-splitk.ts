// Split-K: a product with few output tiles and a long K (the weight gradients dW = dy^T x, whose
// K is the step's token count and whose M x N is one weight matrix) fills a big GPU badly: 768 x 768
// is 144 workgroups of 64x64 for 132 SMs. Splitting K into S chunks gives S times the
// workgroups; each chunk's product goes to its own slice of a partial buffer [S, M, N] (one batched
// dispatch, matmul.ts), and this kernel adds the slices in order and applies the epilogue:
//   C[m, n] = alpha * sum_s part[s, m, n] (+ C[m, n] if accumulate) (+ bias[n])
// Deterministic (fixed order, no atomics). Whether splitting pays is the tuner's call
// (engine/tuner.ts: split tilings are candidates, never the rule). Reference: matmul.ref.ts, through
// matmul() with a split tiling (test/engine/matmul.test.ts).
import type { Gpu } from '../engine/gpu.js';
import { ParamWriter, windowOf, type KernelDef, type Window } from '../engine/kernel.js';

const WG = 64; // columns per workgroup; one row of C per workgroup row

/** The reduce kernel (a tuner's split candidate is checked to build before it runs: matmul.ts). */
export const SPLITK_REDUCE: KernelDef = {
  name: 'matmul_splitk_reduce',
  bindings: ['read', 'rw', 'read'],
  uniform: true,
  code: /* wgsl */ `
struct Params { M: u32, N: u32, S: u32, ldc: u32, cBase: u32, partBase: u32, biasBase: u32,
  accumulate: u32, hasBias: u32, alpha: f32, row0: u32 };
@group(0) @binding(0) var<storage, read> part: array<f32>;   // [S, M, N]
@group(0) @binding(1) var<storage, read_write> c: array<f32>; // rows of ldc
@group(0) @binding(2) var<storage, read> bias: array<f32>;    // [N]
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = wg.x * ${WG}u + li;
  let m = p.row0 + wg.y;
  if (n >= p.N || m >= p.M) { return; }
  let mn = p.M * p.N;
  var s = 0.0;
  for (var k = 0u; k < p.S; k++) { s += part[p.partBase + k * mn + m * p.N + n]; }
  s *= p.alpha;
  let ci = p.cBase + m * p.ldc + n;
  if (p.accumulate != 0u) { s += c[ci]; }
  if (p.hasBias != 0u) { s += bias[p.biasBase + n]; }
  c[ci] = s;
}`,
};

export interface SplitKReduceArgs {
  /** Window of the [S, M, N] partial products (windowOf), and the S count. */
  part: Window; S: number;
  /** Window of C and its leading dimension. */
  c: Window; ldc: number;
  bias?: Window;
  M: number; N: number; alpha: number; accumulate: boolean;
  /** Name the tuner times this dispatch under (part of one candidate's time). */
  tuning?: string;
}

export function splitKReduce(gpu: Gpu, a: SplitKReduceArgs): void {
  const kernel = gpu.kernels.get(SPLITK_REDUCE);
  const bias = a.bias ?? windowOf(gpu, gpu.placeholder());
  const maxRows = gpu.limits.maxComputeWorkgroupsPerDimension;
  for (let row0 = 0; row0 < a.M; row0 += maxRows) {
    const rows = Math.min(maxRows, a.M - row0);
    const params = new ParamWriter()
      .u32(a.M, a.N, a.S, a.ldc, a.c.base, a.part.base, bias.base, a.accumulate ? 1 : 0, a.bias ? 1 : 0)
      .f32(a.alpha).u32(row0).bytes();
    gpu.recorder.dispatch(kernel, [a.part.range, a.c.range, bias.range], params, [Math.ceil(a.N / WG), rows, 1], a.tuning);
  }
}
