// SFT loss on the GPU: mean negative log-likelihood over all completion tokens of the batch
// (token-weighted; sft.ref.ts). A token counts when its target is >= 0 (as i32; u32 0xffffffff
// reads as -1), i.e. the same targets tensor the output layer takes.
//   loss = -sum_n logp[n] / count,   dloss/dlogp[n] = -1 / count  (0 for tokens without a target)
// The per-token gradient does not depend on the forward, so the weights are made from the targets
// alone, before it (train/step.ts): sftWeights(targets -> weights), the model's forward (log-probs,
// logits kept within their budget, output-logprob.ts), sftLoss(logp), then its backward with those weights.
// Each kernel is one workgroup with a fixed-order reduction (deterministic).
// stats [2]: 0 = loss, 1 = count (tokens counted).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

const WG = 256;

const COMMON = /* wgsl */ `
struct Params { N: u32, tBase: u32, xBase: u32, sBase: u32, fixedCount: f32, scale: f32 };
@group(0) @binding(0) var<storage, read> targets: array<i32>;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
var<workgroup> red: array<f32, ${2 * WG}>;

// Tree-reduces (a, b) over the workgroup; the totals end up in red[0] and red[${WG}].
fn reduce2(li: u32, a: f32, b: f32) {
  red[li] = a;
  red[${WG}u + li] = b;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) { red[li] += red[li + s]; red[${WG}u + li] += red[${WG}u + li + s]; }
    workgroupBarrier();
  }
}`;

// Writes weights x[n] = -scale / count for counted tokens, else 0. count = p.fixedCount when > 0,
// else the number of counted tokens here.
const WEIGHTS: KernelDef = {
  name: 'sft_weights',
  bindings: ['read', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `${COMMON}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  var c = 0.0;
  for (var n = li; n < p.N; n += ${WG}u) { c += select(0.0, 1.0, targets[p.tBase + n] >= 0); }
  reduce2(li, c, 0.0);
  var count = red[0];
  if (p.fixedCount > 0.0) { count = p.fixedCount; }
  var w = 0.0;
  if (count > 0.0) { w = -p.scale / count; }
  for (var n = li; n < p.N; n += ${WG}u) {
    x[p.xBase + n] = select(0.0, w, targets[p.tBase + n] >= 0);
  }
  if (li == 0u) { stats[p.sBase + 1u] = count; }
}`,
};

const LOSS: KernelDef = {
  name: 'sft_loss',
  bindings: ['read', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `${COMMON}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  var c = 0.0;
  var s = 0.0;
  for (var n = li; n < p.N; n += ${WG}u) {
    if (targets[p.tBase + n] >= 0) { c += 1.0; s += x[p.xBase + n]; }
  }
  reduce2(li, c, s);
  if (li == 0u) {
    var count = red[0];
    if (p.fixedCount > 0.0) { count = p.fixedCount; }
    stats[p.sBase] = -red[${WG}u] / count;
    stats[p.sBase + 1u] = count;
  }
}`,
};

function check(gpu: Gpu, what: string, targets: Tensor, x: Tensor, stats: Tensor, N: number): void {
  if (targets.dtype !== 'i32' && targets.dtype !== 'u32') throw new TypeError(`${what}: targets ${targets} must be i32 or u32`);
  if (targets.numel < N || x.numel < N) throw new RangeError(`${what}: targets ${targets} / ${x} shorter than N=${N}`);
  if (stats.numel < 2) throw new RangeError(`${what}: stats ${stats} needs 2 elements`);
  if (N > maxWindowElems(gpu)) throw new RangeError(`${what}: N=${N} exceeds one binding`);
}

export interface SftWeightsArgs {
  /** [N] i32/u32 next-token targets; < 0 (as i32) = not counted. */
  targets: Tensor;
  /** [N] f32 out: dL/dlogp per token = -scale / count (0 where not counted). */
  weights: Tensor;
  /** [2] f32 out: stats[1] = count (stats[0] untouched). */
  stats: Tensor;
  N: number;
  /** Divide by this token count instead of this batch's own (e.g. the count over all micro-batches
   *  of an accumulated step, which the host knows from the targets). */
  count?: number;
  /** Extra factor on the weights (default 1). */
  scale?: number;
}

/** Per-token weights of the SFT loss (the output layer's backward input). */
export function sftWeights(gpu: Gpu, a: SftWeightsArgs): void {
  check(gpu, 'sftWeights', a.targets, a.weights, a.stats, a.N);
  run(gpu, WEIGHTS, a.targets, a.weights, a.stats, a.N, a.count ?? 0, a.scale ?? 1);
}

export interface SftLossArgs {
  /** [N] f32 per-token log-probs (the output layer's logp). */
  logp: Tensor;
  targets: Tensor;
  /** [2] f32 out: loss (mean NLL over counted tokens; NaN-free only when count > 0), count. */
  stats: Tensor;
  N: number;
  count?: number;
}

/** stats[0] = -sum(logp over counted tokens) / count, stats[1] = count. */
export function sftLoss(gpu: Gpu, a: SftLossArgs): void {
  check(gpu, 'sftLoss', a.targets, a.logp, a.stats, a.N);
  run(gpu, LOSS, a.targets, a.logp, a.stats, a.N, a.count ?? 0, 1);
}

function run(gpu: Gpu, def: KernelDef, targets: Tensor, x: Tensor, stats: Tensor, N: number,
  count: number, scale: number): void {
  if (count < 0) throw new RangeError(`sft: count ${count} < 0`);
  const k = gpu.kernels.get(def);
  const wt = windowOf(gpu, targets, 0, Math.max(1, N));
  const wx = windowOf(gpu, x, 0, Math.max(1, N));
  const ws = windowOf(gpu, stats, 0, 2);
  const params = new ParamWriter().u32(N, wt.base, wx.base, ws.base).f32(count, scale).bytes();
  gpu.recorder.dispatch(k, [wt.range, wx.range, ws.range], params, [1, 1, 1]);
}
