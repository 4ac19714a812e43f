// Preference losses on the GPU (DPO, IPO, Sr-DPO, Sr-IPO): per-pair losses, the mean loss, the
// gradient with respect to the policy's sequence log-probs, and the logged metrics, in one small
// kernel (one workgroup; fixed-order tree reductions, so the result is deterministic).
//
// Inputs: logps [R, P] f32, rows in this order (R = 4, or 8 with the prompt-augmented rows):
//   0 policy chosen, 1 policy rejected, 2 ref chosen, 3 ref rejected,
//   4 policy chosen aug, 5 policy rejected aug, 6 ref chosen aug, 7 ref rejected aug
// (each a sum over completion tokens; segmentSum can write rows 0-1 or 4-5 in place through a view
// when the sequences are ordered [chosen..., rejected...]; the reference rows are fixed and can be
// uploaded once per batch). Conventions (losses.md 1.3, preference.ref.ts):
//   h = (pc - rc) - (pr - rr);  delta = beta * h_aug (a constant: no gradient)
//   dpo    = -logsigmoid(beta h)                    sr-dpo = -logsigmoid(beta h - lambda delta)
//   ipo    = (h - 1/(2 beta))^2                     sr-ipo = (h - lambda delta - 1/(2 beta))^2
//   (optional cDPO label smoothing ls for dpo/sr-dpo: -(1-ls) logsigmoid(z) - ls logsigmoid(-z))
// Outputs:
//   perPair [P] (optional): per-pair losses;
//   grad [2, P]: row 0 = dL/dpolicyChosen, row 1 = dL/dpolicyRejected, for
//     L = gradScale * sum_i loss_i (gradScale defaults to 1/P: the mean loss). Laid out like the
//     [chosen..., rejected...] sequence sums, so it is segmentSumBackward's dsum directly.
//   stats [PREFERENCE_STATS.length]: see PREFERENCE_STATS (means over the P pairs).
// beta, lambda, ls are uniform parameters (fixed within a run).
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, windowOf, type KernelDef } from '../engine/kernel.js';
import type { PreferenceLossType } from './preference.ref.js';

export type { PreferenceLossType } from './preference.ref.js';

/** Layout of the stats output: stats[i] is the mean over pairs of PREFERENCE_STATS[i]. */
export const PREFERENCE_STATS = [
  'loss',             // mean per-pair loss
  'rewardsChosen',    // beta (pc - rc)             (TRL rewards/chosen)
  'rewardsRejected',  // beta (pr - rr)             (TRL rewards/rejected)
  'margin',           // beta h                     (TRL rewards/margins, "average marginal")
  'accuracy',         // [h > 0]                    (TRL rewards/accuracies; ties are wrong)
  'augAccuracy',      // [delta > 0]                (prompt-augmented accuracy; 0 without aug rows)
  'logpsChosen',      // pc                         (TRL logps/chosen)
  'logpsRejected',    // pr                         (TRL logps/rejected)
  'delta',            // delta = beta h_aug         (0 without aug rows)
] as const;
export type PreferenceStat = typeof PREFERENCE_STATS[number];
const NSTATS = PREFERENCE_STATS.length;

const WG = 256;
const TYPE_CODE: Record<PreferenceLossType, number> = { dpo: 0, ipo: 1, 'sr-dpo': 2, 'sr-ipo': 3 };

const LOSS: KernelDef = {
  name: 'preference_loss',
  bindings: ['read', 'rw', 'rw', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params {
  P: u32, lBase: u32, ppBase: u32, gBase: u32, sBase: u32, kind: u32, hasAug: u32, writePerPair: u32,
  beta: f32, lambda: f32, ls: f32, gradScale: f32,
};
@group(0) @binding(0) var<storage, read> logps: array<f32>;
@group(0) @binding(1) var<storage, read_write> perPair: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

var<workgroup> red: array<f32, ${WG * NSTATS}>;

// log(1 + x) for x >= 0. WGSL's log is accurate near 1 only in absolute terms (2^-21): a small loss's
// log(1 + x) came out 4e-3 off at x = 1e-5 on lavapipe. Up to x = 1 it is 2 atanh(u), u = x / (2 + x) in
// [0, 1/3], by the odd series in arithmetic alone (the first term left out is below 2e-10 of the sum).
fn log1p_(x: f32) -> f32 {
  if (x > 1.0) { return log(1.0 + x); }
  let u = x / (2.0 + x);
  let v = u * u;
  return 2.0 * u * (1.0 + v * (1.0 / 3.0 + v * (1.0 / 5.0 + v * (1.0 / 7.0 + v * (1.0 / 9.0 + v * (1.0 / 11.0
    + v * (1.0 / 13.0 + v * (1.0 / 15.0 + v / 17.0))))))));
}
// log(1 + e^x)
fn softplus(x: f32) -> f32 { return max(x, 0.0) + log1p_(exp(-abs(x))); }
fn sigmoid(x: f32) -> f32 {
  if (x >= 0.0) { return 1.0 / (1.0 + exp(-x)); }
  let e = exp(x);
  return e / (1.0 + e);
}
fn row(r: u32, i: u32) -> f32 { return logps[p.lBase + r * p.P + i]; }

@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  var acc: array<f32, ${NSTATS}>;
  for (var i = li; i < p.P; i += ${WG}u) {
    let pc = row(0u, i); let pr = row(1u, i); let rc = row(2u, i); let rr = row(3u, i);
    let h = (pc - rc) - (pr - rr);
    var delta = 0.0;
    if (p.hasAug != 0u) { delta = p.beta * ((row(4u, i) - row(6u, i)) - (row(5u, i) - row(7u, i))); }
    var shift = 0.0;
    if (p.kind >= 2u) { shift = p.lambda * delta; }
    var loss: f32;
    var dldh: f32;
    if (p.kind == 0u || p.kind == 2u) {
      let z = p.beta * h - shift;
      if (p.ls == 0.0) {
        loss = softplus(-z);
        dldh = -p.beta * sigmoid(-z);
      } else {
        loss = (1.0 - p.ls) * softplus(-z) + p.ls * softplus(z);
        dldh = p.beta * (-(1.0 - p.ls) * sigmoid(-z) + p.ls * sigmoid(z));
      }
    } else {
      let r = h - shift - 0.5 / p.beta;
      loss = r * r;
      dldh = 2.0 * r;
    }
    if (p.writePerPair != 0u) { perPair[p.ppBase + i] = loss; }
    grad[p.gBase + i] = p.gradScale * dldh;
    grad[p.gBase + p.P + i] = -p.gradScale * dldh;
    acc[0] += loss;
    acc[1] += p.beta * (pc - rc);
    acc[2] += p.beta * (pr - rr);
    acc[3] += p.beta * h;
    acc[4] += select(0.0, 1.0, h > 0.0);
    acc[5] += select(0.0, 1.0, delta > 0.0);
    acc[6] += pc;
    acc[7] += pr;
    acc[8] += delta;
  }
  for (var k = 0u; k < ${NSTATS}u; k++) { red[k * ${WG}u + li] = acc[k]; }
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (li < s) {
      for (var k = 0u; k < ${NSTATS}u; k++) { red[k * ${WG}u + li] += red[k * ${WG}u + li + s]; }
    }
    workgroupBarrier();
  }
  if (li < ${NSTATS}u) {
    stats[p.sBase + li] = red[li * ${WG}u] / f32(p.P);
  }
}`,
};

export interface PreferenceLossArgs {
  type: PreferenceLossType;
  beta: number;
  /** Weight of delta (sr-dpo, sr-ipo). */
  lambda?: number;
  /** cDPO label smoothing for dpo / sr-dpo (default 0). */
  labelSmoothing?: number;
  /** Number of pairs. */
  P: number;
  /** [4, P] or [8, P] f32 sequence log-probs, rows as in the file comment (8 rows for sr-*). */
  logps: Tensor;
  /** [2, P] f32 out: dL/dpolicyChosen, dL/dpolicyRejected. */
  grad: Tensor;
  /** [PREFERENCE_STATS.length] f32 out. */
  stats: Tensor;
  /** [P] f32 out (optional). */
  perPair?: Tensor;
  /** L = gradScale * sum of per-pair losses for the gradient (default 1/P). */
  gradScale?: number;
  /** Use the augmented rows 4-7 (default: when logps has 8 rows). Required for sr-*. */
  hasAug?: boolean;
}

export function preferenceLoss(gpu: Gpu, a: PreferenceLossArgs): void {
  const { P, type } = a;
  if (!(type in TYPE_CODE)) throw new Error(`preferenceLoss: unknown loss type ${String(type)}`);
  if (!(P >= 1) || !Number.isInteger(P)) throw new RangeError(`preferenceLoss: P=${P}`);
  const sr = type === 'sr-dpo' || type === 'sr-ipo';
  const hasAug = a.hasAug ?? a.logps.numel >= 8 * P;
  if (sr && a.lambda === undefined) throw new Error(`preferenceLoss: ${type} needs lambda`);
  if (!(a.beta > 0)) throw new RangeError(`preferenceLoss: beta ${a.beta} must be > 0`);
  if ((sr || hasAug) && a.logps.numel < 8 * P) {
    throw new RangeError(`preferenceLoss: ${type} needs the augmented rows: logps ${a.logps} must be [8, ${P}]`);
  }
  if (a.logps.numel < 4 * P) throw new RangeError(`preferenceLoss: logps ${a.logps} smaller than [4, ${P}]`);
  if (a.grad.numel < 2 * P) throw new RangeError(`preferenceLoss: grad ${a.grad} smaller than [2, ${P}]`);
  if (a.stats.numel < NSTATS) throw new RangeError(`preferenceLoss: stats ${a.stats} smaller than [${NSTATS}]`);
  if (a.perPair && a.perPair.numel < P) throw new RangeError(`preferenceLoss: perPair ${a.perPair} smaller than [${P}]`);
  const k = gpu.kernels.get(LOSS);
  const wl = windowOf(gpu, a.logps, 0, (hasAug ? 8 : 4) * P);
  const wg = windowOf(gpu, a.grad, 0, 2 * P);
  const ws = windowOf(gpu, a.stats, 0, NSTATS);
  const wp = a.perPair ? windowOf(gpu, a.perPair, 0, P) : windowOf(gpu, gpu.placeholder());
  const params = new ParamWriter()
    .u32(P, wl.base, wp.base, wg.base, ws.base, TYPE_CODE[type], hasAug ? 1 : 0, a.perPair ? 1 : 0)
    .f32(a.beta, a.lambda ?? 0, a.labelSmoothing ?? 0, a.gradScale ?? 1 / P).bytes();
  gpu.recorder.dispatch(k, [wl.range, wp.range, wg.range, ws.range], params, [1, 1, 1]);
}

/** Host helper: a stats readback as a named record (augAccuracy and delta are NaN when the call
 *  had no augmented rows, i.e. hasAug false). */
export function preferenceStats(stats: ArrayLike<number>, hasAug = true): Record<PreferenceStat, number> {
  const out = {} as Record<PreferenceStat, number>;
  PREFERENCE_STATS.forEach((name, i) => { out[name] = stats[i]; });
  if (!hasAug) { out.augAccuracy = NaN; out.delta = NaN; }
  return out;
}
