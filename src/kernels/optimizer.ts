// Optimizers on the GPU with PyTorch semantics and defaults: torch.optim.RMSprop and
// torch.optim.AdamW (single-tensor, non-fused path), with torch.nn.utils.clip_grad_norm_ folded in.
//
// Per step (nothing is read back):
//   1. gradNorm (grad-norm.ts) writes the global L2 norm of all gradients to `norm` on the GPU;
//   2. one update kernel per parameter (per binding window for large ones) reads the norm and uses
//      g = grad * min(1, maxNorm / (norm + 1e-6)) (clip_grad_norm_; the factor is always applied,
//      like torch; without maxNorm, g = grad). Gradients are not modified.
// Values that change every step (learning rate, bias corrections, step count) are DATA: an
// f32 [HYPER_LEN] storage tensor the caller fills with gpu.upload(hyper, optimizerHyper(cfg, lr, t))
// before recording the step (t = 1 for the first step, like torch's state['step'] after its
// increment). The bias corrections are computed on the host in float64. Constants (betas, alpha,
// eps, weight decay, momentum, maxNorm) are uniform parameters.
//   RMSprop (default lr 1e-2, alpha 0.99, eps 1e-8, wd 0, momentum 0, centered false):
//     g += wd p;  v = alpha v + (1 - alpha) g^2;  centered: ga = lerp(ga, g, 1 - alpha),
//     avg = sqrt(v - ga^2) + eps, else avg = sqrt(v) + eps;
//     momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg.
//   AdamW (default lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 1e-2, amsgrad false):
//     p *= 1 - lr wd;  m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2;  (amsgrad: vmax = max(vmax, v))
//     p -= (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps),  bc1 = 1 - b1^t, bc2 = 1 - b2^t.
// State per parameter (f32, same size, zero at the start): RMSprop [v, ga (centered), buf
// (momentum)], AdamW [m, v, vmax (amsgrad)]; absent slots are not allocated.
// The Optimizer class bundles state, hyper, norm and the two stages. Reference: optimizer.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef, memoDef } from '../engine/kernel.js';
import { gradNorm } from './grad-norm.js';
import { acquireLike, coalesce } from '../engine/arena.js';
import { isNanWgsl } from './wgsl-float.js';

export interface RmspropConfig {
  type: 'rmsprop';
  alpha?: number; eps?: number; weightDecay?: number; momentum?: number; centered?: boolean;
}
export interface AdamwConfig {
  type: 'adamw';
  betas?: [number, number]; eps?: number; weightDecay?: number; amsgrad?: boolean;
}
export type OptimizerConfig = RmspropConfig | AdamwConfig;

/** Length of the per-step data tensor: [lr, lr / bc1, sqrt(bc2), 1 - lr wd, t, 0, 0, 0]. */
export const HYPER_LEN = 8;

/** The per-step data to upload into `hyper` (computed in float64). t = 1 for the first step. */
export function optimizerHyper(cfg: OptimizerConfig, lr: number, t: number): Float32Array {
  if (!(t >= 1)) throw new RangeError(`optimizerHyper: step ${t} must be >= 1`);
  const h = new Float32Array(HYPER_LEN);
  h[0] = lr; h[4] = t;
  if (cfg.type === 'adamw') {
    const [b1, b2] = cfg.betas ?? [0.9, 0.999];
    h[1] = lr / (1 - Math.pow(b1, t));
    h[2] = Math.sqrt(1 - Math.pow(b2, t));
    h[3] = 1 - lr * (cfg.weightDecay ?? 1e-2);
  } else {
    h[1] = lr; h[2] = 1; h[3] = 1;
  }
  return h;
}

/** Which state slots a configuration uses (in binding order s0, s1, s2). */
export function optimizerStateSlots(cfg: OptimizerConfig): boolean[] {
  return cfg.type === 'adamw'
    ? [true, true, cfg.amsgrad ?? false]
    : [true, cfg.centered ?? false, (cfg.momentum ?? 0) > 0];
}

/**
 * Zeroed state tensors for `params` (state[k] = the used slots of parameter k, in slot order), laid
 * out as the parameters are (engine/arena.ts acquireLike: parameters back to back in a buffer have
 * their states back to back too, so the update takes them in one dispatch). `arenas`: what to release.
 */
export function initOptimizerState(gpu: Gpu, cfg: OptimizerConfig, params: readonly Tensor[]): { state: Tensor[][]; arenas: Tensor[] } {
  const used = optimizerStateSlots(cfg).filter((s) => s).length;
  const slots = Array.from({ length: used }, () => acquireLike(gpu, params, 'optimizer-state'));
  return { state: params.map((_, k) => slots.map((sl) => sl.views[k])), arenas: slots.flatMap((sl) => sl.arenas) };
}

function lerpWgsl(w: number): string {
  // torch.lerp's CPU formula, picked by the (constant) weight.
  return Math.abs(w) < 0.5 ? 'a + w * (b - a)' : 'b - (b - a) * (1.0 - w)';
}

function updateDefGen(cfg: OptimizerConfig): KernelDef {
  let body: string;
  let name: string;
  if (cfg.type === 'adamw') {
    const [b1] = cfg.betas ?? [0.9, 0.999];
    const ams = cfg.amsgrad ?? false;
    name = `adamw${ams ? '_amsgrad' : ''}${Math.abs(1 - b1) < 0.5 ? '' : '_lerp2'}`;
    body = `
    var pv = param[p.pBase + i] * hy[3];
    let m = lerp_(s0[p.s0Base + i], g, p.oc0);
    s0[p.s0Base + i] = m;
    let v = s1[p.s1Base + i] * p.c1 + p.oc1 * g * g;
    s1[p.s1Base + i] = v;
    var vv = v;
    ${ams ? 'vv = max(s2[p.s2Base + i], v); s2[p.s2Base + i] = vv;' : ''}
    let denom = sqrt(vv) / hy[2] + p.eps;
    param[p.pBase + i] = pv + (-hy[1]) * (m / denom);`;
    return def(name, body, Math.abs(1 - b1));
  }
  const centered = cfg.centered ?? false;
  const mom = (cfg.momentum ?? 0) > 0;
  const alpha = cfg.alpha ?? 0.99;
  name = `rmsprop${centered ? '_centered' : ''}${mom ? '_momentum' : ''}${Math.abs(1 - alpha) < 0.5 ? '' : '_lerp2'}`;
  body = `
    let pv = param[p.pBase + i];
    if (p.wd != 0.0) { g = g + p.wd * pv; }
    let v = s0[p.s0Base + i] * p.c0 + p.oc0 * g * g;
    s0[p.s0Base + i] = v;
    var avg: f32;
    ${centered ? `let ga = lerp_(s1[p.s1Base + i], g, p.oc0);
    s1[p.s1Base + i] = ga;
    avg = sqrt(v - ga * ga) + p.eps;` : 'avg = sqrt(v) + p.eps;'}
    ${mom ? `let buf = s2[p.s2Base + i] * p.c1 + g / avg;
    s2[p.s2Base + i] = buf;
    param[p.pBase + i] = pv + (-hy[0]) * buf;` : 'param[p.pBase + i] = pv + (-hy[0]) * (g / avg);'}`;
  return def(name, body, Math.abs(1 - alpha));
}

const WG = 256;

function def(name: string, body: string, w: number): KernelDef {
  return {
    name,
    bindings: ['rw', 'read', 'rw', 'rw', 'rw', 'read', 'read'],
    uniform: true,
    code: /* wgsl */ `
struct Params {
  n: u32, pBase: u32, gBase: u32, s0Base: u32, s1Base: u32, s2Base: u32, hBase: u32, nBase: u32,
  clip: u32, c0: f32, c1: f32, eps: f32, wd: f32, maxNorm: f32,
  oc0: f32, oc1: f32, // 1 - c0, 1 - c1 from the host in float64 (as torch does: 1 - 0.999 in f32 is off by 1e-5)
};
@group(0) @binding(0) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> s0: array<f32>;
@group(0) @binding(3) var<storage, read_write> s1: array<f32>;
@group(0) @binding(4) var<storage, read_write> s2: array<f32>;
@group(0) @binding(5) var<storage, read> hyperBuf: array<f32>;
@group(0) @binding(6) var<storage, read> normBuf: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;

fn lerp_(a: f32, b: f32, w: f32) -> f32 { return ${lerpWgsl(w)}; } // w = p.oc0

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let i = (wg.x + wg.y * nwg.x) * ${WG}u + li;
  if (i >= p.n) { return; }
  var hy: array<f32, ${HYPER_LEN}>;
  for (var k = 0u; k < ${HYPER_LEN}u; k++) { hy[k] = hyperBuf[p.hBase + k]; }
  var coef = 1.0;
  if (p.clip != 0u) {
    // A NaN norm stays NaN (min(NaN, 1) is 1 where a compiler drops NaN: a full unclipped step).
    let norm = normBuf[p.nBase];
    coef = select(min(p.maxNorm / (norm + 1e-6), 1.0), norm, ${isNanWgsl('norm')});
  }
  var g = grad[p.gBase + i];
  if (p.clip != 0u) { g = g * coef; }
  ${body}
}`,
  };
}

export interface OptimizerStepArgs {
  params: readonly Tensor[];
  grads: readonly Tensor[];
  /** From initOptimizerState (state[k]: the used slots of parameter k). */
  state: readonly (readonly Tensor[])[];
  /** f32 [HYPER_LEN], filled with optimizerHyper(cfg, lr, t) by gpu.upload before the step. */
  hyper: Tensor;
  /** f32 [>= 1]: the global gradient norm (read when maxNorm is set). */
  norm?: Tensor;
  /** clip_grad_norm_ max_norm (absent = no clipping). */
  maxNorm?: number;
}

/** Records the parameter update (stage 2 only; run gradNorm into `norm` first when clipping). */
export function optimizerUpdate(gpu: Gpu, cfg: OptimizerConfig, a: OptimizerStepArgs): void {
  if (a.params.length !== a.grads.length || a.params.length !== a.state.length) {
    throw new RangeError(`optimizer: ${a.params.length} params, ${a.grads.length} grads, ${a.state.length} states`);
  }
  if (a.hyper.numel < HYPER_LEN) throw new RangeError(`optimizer: hyper ${a.hyper} needs ${HYPER_LEN} elements`);
  const clip = a.maxNorm !== undefined;
  if (clip && !a.norm) throw new Error('optimizer: maxNorm needs the norm tensor');
  const slots = optimizerStateSlots(cfg);
  const k = gpu.kernels.get(updateDef(cfg));
  let c0: number; let c1: number; let eps: number; let wd: number;
  if (cfg.type === 'adamw') {
    [c0, c1] = cfg.betas ?? [0.9, 0.999]; eps = cfg.eps ?? 1e-8; wd = cfg.weightDecay ?? 1e-2;
  } else {
    c0 = cfg.alpha ?? 0.99; c1 = cfg.momentum ?? 0; eps = cfg.eps ?? 1e-8; wd = cfg.weightDecay ?? 0;
  }
  const wh = windowOf(gpu, a.hyper, 0, HYPER_LEN);
  const wn = a.norm ? windowOf(gpu, a.norm, 0, 1) : windowOf(gpu, gpu.placeholder(0));
  const win = maxWindowElems(gpu);
  const used = slots.filter((x) => x).length;
  a.params.forEach((p, idx) => {
    const g = a.grads[idx];
    if (p.dtype !== 'f32' || g.dtype !== 'f32' || g.numel !== p.numel) {
      throw new RangeError(`optimizer: param ${idx} ${p} vs grad ${g}`);
    }
    if (a.state[idx].length !== used) throw new RangeError(`optimizer: param ${idx} has ${a.state[idx].length} state tensors, expected ${used}`);
    for (const s of a.state[idx]) if (s.numel !== p.numel) throw new RangeError(`optimizer: state ${s} vs param ${p}`);
  });
  // Parameters back to back in a buffer, with their gradients and states (engine/arena.ts), are
  // updated as one tensor: the same elements, one dispatch per binding window.
  const runs = coalesce([a.params, a.grads, ...Array.from({ length: used }, (_, j) => a.state.map((st) => st[j]))]);
  for (const { tensors: [p, g, ...stUsed] } of runs) {
    const st: (Tensor | undefined)[] = [];
    let j = 0;
    for (const u of slots) st.push(u ? stUsed[j++] : undefined);
    for (const [s, e] of chunkRanges(p.numel, win)) {
      const wp = windowOf(gpu, p, s, e);
      const wg = windowOf(gpu, g, s, e);
      const ws = st.map((t, slot) => (t ? windowOf(gpu, t, s, e) : windowOf(gpu, gpu.placeholder(slot))));
      const params = new ParamWriter()
        .u32(e - s, wp.base, wg.base, ws[0].base, ws[1].base, ws[2].base, wh.base, wn.base, clip ? 1 : 0)
        .f32(c0, c1, eps, wd, a.maxNorm ?? 0, 1 - c0, 1 - c1).bytes();
      gpu.recorder.dispatch(k, [wp.range, wg.range, ws[0].range, ws[1].range, ws[2].range, wh.range, wn.range],
        params, grid(Math.ceil((e - s) / WG)));
    }
  }
}

export interface OptimizerOptions {
  /** clip_grad_norm_ max_norm; absent = no clipping (the norm is still computed, for logging). */
  maxGradNorm?: number;
}

/** State, per-step data and gradient norm of one parameter list, and the two-stage step. */
export class Optimizer {
  readonly state: Tensor[][];
  /** The buffers the state tensors are views of. */
  private stateArenas: Tensor[];
  /** f32 [HYPER_LEN] per-step data (setStep writes it). */
  readonly hyper: Tensor;
  /** f32 [2]: global gradient norm and its square, from the last step (before clipping). */
  readonly norm: Tensor;

  constructor(private gpu: Gpu, readonly cfg: OptimizerConfig, readonly params: readonly Tensor[],
    readonly opts: OptimizerOptions = {}) {
    ({ state: this.state, arenas: this.stateArenas } = initOptimizerState(gpu, cfg, params));
    this.hyper = gpu.tensor([HYPER_LEN], new Float32Array(HYPER_LEN), 'f32');
    this.norm = gpu.tensor([2], new Float32Array(2), 'f32');
  }

  /** Uploads the learning rate and step number (t = 1 for the first step) for the next step(). */
  setStep(lr: number, t: number): void {
    this.gpu.upload(this.hyper, optimizerHyper(this.cfg, lr, t));
  }

  /** Records: global grad norm -> this.norm, then the clipped update of every parameter. */
  step(grads: readonly Tensor[]): void {
    gradNorm(this.gpu, grads, this.norm);
    optimizerUpdate(this.gpu, this.cfg, {
      params: this.params, grads, state: this.state, hyper: this.hyper, norm: this.norm, maxNorm: this.opts.maxGradNorm,
    });
  }

  /** Returns the state, hyper and norm tensors to the pool. */
  release(): void {
    this.gpu.pool.release(...this.stateArenas, this.hyper, this.norm);
  }
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
const updateDef = memoDef(updateDefGen);
