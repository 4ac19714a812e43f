// Float64 CPU references for the optimizers, gradient clipping and the warm-up schedule, with
// PyTorch semantics and defaults (torch.optim.RMSprop, torch.optim.AdamW single-tensor non-fused
// path, torch.nn.utils.clip_grad_norm_, the original DPO code's LambdaLR warm-up).
// Parameters are a list of Float64Array tensors (any shapes, flattened), updated IN PLACE; the
// optimizer state is a plain object holding one Float64Array per parameter, so tests can run
// several steps and GPU code can compare its state buffers.

// ---------------------------------------------------------------- RMSprop

export interface RmspropOptions {
  lr?: number;          // default 1e-2 (torch); the original DPO code uses 5e-7
  alpha?: number;       // default 0.99
  eps?: number;         // default 1e-8
  weightDecay?: number; // default 0 (L2, added to the gradient)
  momentum?: number;    // default 0
  centered?: boolean;   // default false
}

export interface RmspropState {
  step: number;
  squareAvg: Float64Array[];            // per param, same length as the param
  gradAvg: Float64Array[] | null;       // per param, only when centered
  momentumBuffer: Float64Array[] | null; // per param, only when momentum > 0
}

/** Fresh RMSprop state (zeros) for params [k][len_k]. */
export function rmspropInit(params: ArrayLike<number>[], opts: RmspropOptions = {}): RmspropState {
  const z = (): Float64Array[] => params.map((p) => new Float64Array(p.length));
  return {
    step: 0,
    squareAvg: z(),
    gradAvg: opts.centered ? z() : null,
    momentumBuffer: (opts.momentum ?? 0) > 0 ? z() : null,
  };
}

/**
 * One torch.optim.RMSprop step, in place: params [k][len_k], grads [k][len_k] (grads are not modified).
 *   g = grad + wd * p
 *   v = alpha v + (1 - alpha) g^2
 *   centered: gavg = lerp(gavg, g, 1 - alpha); avg = sqrt(v - gavg^2) + eps,  else avg = sqrt(v) + eps
 *   momentum > 0: buf = momentum buf + g / avg; p -= lr buf,   else p -= lr g / avg
 */
export function rmspropStepRef(
  params: Float64Array[], grads: ArrayLike<number>[], state: RmspropState, opts: RmspropOptions = {},
): void {
  const lr = opts.lr ?? 1e-2, alpha = opts.alpha ?? 0.99, eps = opts.eps ?? 1e-8;
  const wd = opts.weightDecay ?? 0, momentum = opts.momentum ?? 0, centered = opts.centered ?? false;
  checkLists(params, grads);
  if (centered && !state.gradAvg) state.gradAvg = params.map((p) => new Float64Array(p.length));
  if (momentum > 0 && !state.momentumBuffer) state.momentumBuffer = params.map((p) => new Float64Array(p.length));
  state.step += 1;
  for (let k = 0; k < params.length; k++) {
    const p = params[k], gr = grads[k], v = state.squareAvg[k];
    const ga = centered ? state.gradAvg![k] : null;
    const buf = momentum > 0 ? state.momentumBuffer![k] : null;
    for (let i = 0; i < p.length; i++) {
      const g = wd !== 0 ? gr[i] + wd * p[i] : gr[i];
      v[i] = v[i] * alpha + (1 - alpha) * g * g;
      let avg: number;
      if (ga) {
        ga[i] = lerp(ga[i], g, 1 - alpha);
        avg = Math.sqrt(v[i] - ga[i] * ga[i]);
      } else {
        avg = Math.sqrt(v[i]);
      }
      avg += eps;
      if (buf) {
        buf[i] = buf[i] * momentum + g / avg;
        p[i] += -lr * buf[i];
      } else {
        p[i] += -lr * (g / avg);
      }
    }
  }
}

// ---------------------------------------------------------------- AdamW

export interface AdamWOptions {
  lr?: number;                   // default 1e-3
  betas?: [number, number];      // default [0.9, 0.999]
  eps?: number;                  // default 1e-8
  weightDecay?: number;          // default 1e-2 (decoupled)
  amsgrad?: boolean;             // default false
}

export interface AdamWState {
  step: number;                  // number of steps taken (torch's state['step'])
  expAvg: Float64Array[];        // per param: first moment m
  expAvgSq: Float64Array[];      // per param: second moment v
  maxExpAvgSq: Float64Array[] | null; // per param, only with amsgrad
}

/** Fresh AdamW state (zeros, step 0) for params [k][len_k]. */
export function adamwInit(params: ArrayLike<number>[], opts: AdamWOptions = {}): AdamWState {
  const z = (): Float64Array[] => params.map((p) => new Float64Array(p.length));
  return { step: 0, expAvg: z(), expAvgSq: z(), maxExpAvgSq: opts.amsgrad ? z() : null };
}

/**
 * One torch.optim.AdamW step (single-tensor, non-fused), in place: params [k][len_k], grads [k][len_k].
 *   t += 1;  p *= 1 - lr wd
 *   m = lerp(m, g, 1 - b1);  v = b2 v + (1 - b2) g^2
 *   bc1 = 1 - b1^t;  bc2 = 1 - b2^t
 *   denom = sqrt(v) / sqrt(bc2) + eps        (amsgrad: vmax = max(vmax, v) in place of v)
 *   p -= (lr / bc1) * m / denom
 */
export function adamwStepRef(
  params: Float64Array[], grads: ArrayLike<number>[], state: AdamWState, opts: AdamWOptions = {},
): void {
  const lr = opts.lr ?? 1e-3, [b1, b2] = opts.betas ?? [0.9, 0.999], eps = opts.eps ?? 1e-8;
  const wd = opts.weightDecay ?? 1e-2, amsgrad = opts.amsgrad ?? false;
  checkLists(params, grads);
  if (amsgrad && !state.maxExpAvgSq) state.maxExpAvgSq = params.map((p) => new Float64Array(p.length));
  state.step += 1;
  const t = state.step;
  const bc1 = 1 - Math.pow(b1, t);
  const bc2 = 1 - Math.pow(b2, t);
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  for (let k = 0; k < params.length; k++) {
    const p = params[k], gr = grads[k], m = state.expAvg[k], v = state.expAvgSq[k];
    const vmax = amsgrad ? state.maxExpAvgSq![k] : null;
    for (let i = 0; i < p.length; i++) {
      const g = gr[i];
      p[i] *= 1 - lr * wd;
      m[i] = lerp(m[i], g, 1 - b1);
      v[i] = v[i] * b2 + (1 - b2) * g * g;
      let vv = v[i];
      if (vmax) { vmax[i] = Math.max(vmax[i], v[i]); vv = vmax[i]; }
      const denom = Math.sqrt(vv) / bc2Sqrt + eps;
      p[i] += -stepSize * (m[i] / denom);
    }
  }
}

// ---------------------------------------------------------------- gradient norm and clipping

/** Global L2 norm over a list of gradients [k][len_k] (torch: norm of the per-tensor 2-norms). */
export function globalGradNormRef(grads: ArrayLike<number>[]): number {
  let s = 0;
  for (const g of grads) {
    let t = 0;
    for (let i = 0; i < g.length; i++) t += g[i] * g[i];
    s += t; // (sqrt(t))^2
  }
  return Math.sqrt(s);
}

/**
 * torch.nn.utils.clip_grad_norm_(grads, maxNorm), in place: grads [k][len_k].
 * clip_coef = maxNorm / (total_norm + 1e-6); grads *= min(clip_coef, 1) (always multiplied, as torch does).
 * Returns the total norm BEFORE clipping and the factor applied.
 */
export function clipGradNormRef(grads: Float64Array[], maxNorm: number): { totalNorm: number; scale: number } {
  const totalNorm = globalGradNormRef(grads);
  const clipCoef = maxNorm / (totalNorm + 1e-6);
  const scale = Math.min(clipCoef, 1);
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] *= scale;
  return { totalNorm, scale };
}

// ---------------------------------------------------------------- helpers

/** torch.lerp(start, end, w) as its CPU kernel evaluates it. */
function lerp(start: number, end: number, w: number): number {
  return Math.abs(w) < 0.5 ? start + w * (end - start) : end - (end - start) * (1 - w);
}

function checkLists(params: ArrayLike<number>[], grads: ArrayLike<number>[]): void {
  if (params.length !== grads.length) throw new Error(`${params.length} params vs ${grads.length} grads`);
  for (let k = 0; k < params.length; k++) {
    if (params[k].length !== grads[k].length) throw new Error(`param ${k}: length ${params[k].length} vs grad ${grads[k].length}`);
  }
}
