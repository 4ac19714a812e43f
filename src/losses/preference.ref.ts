// Float64 CPU reference for the preference losses DPO, IPO, Sr-DPO and Sr-IPO, their backward
// w.r.t. the policy sequence log-probs, and the logged reward metrics.
//
// Conventions (shared/notes/losses.md §1.3, shared/fixtures/hf/README.md). For pair i, with every
// log-prob SUMMED over the completion tokens:
//   h_i     = (policyChosen_i - refChosen_i) - (policyRejected_i - refRejected_i)
//   h_aug_i = the same on the prompt-augmented sequences (p ⊕ x)
//   delta_i = beta * h_aug_i                       (stop-gradient: a constant for the backward)
//   dpo     = -logsigmoid(beta h)
//   ipo     = (h - 1/(2 beta))^2                   (summed log-probs: original DPO code, not TRL's mean)
//   sr-dpo  = -logsigmoid(beta h - lambda delta)
//   sr-ipo  = (h - lambda delta - 1/(2 beta))^2
//   loss    = mean_i per_pair_i
// Backward (delta constant):
//   dpo/sr-dpo: dl/dh = -beta * sigmoid(-(beta h - lambda delta))   (lambda delta = 0 for dpo)
//   ipo/sr-ipo: dl/dh = 2 (h - lambda delta - 1/(2 beta))
//   d loss / d policyChosen_i = dl_i/dh_i / P,   d loss / d policyRejected_i = -dl_i/dh_i / P
// Optional labelSmoothing ls (cDPO, original DPO code; default 0) for dpo/sr-dpo, with z the sigmoid argument:
//   l = -(1 - ls) logsigmoid(z) - ls logsigmoid(-z),   dl/dz = -(1 - ls) sigmoid(-z) + ls sigmoid(z)

export type PreferenceLossType = 'dpo' | 'ipo' | 'sr-dpo' | 'sr-ipo';
export const PREFERENCE_LOSS_TYPES: readonly PreferenceLossType[] = ['dpo', 'ipo', 'sr-dpo', 'sr-ipo'];

/** Per-pair sequence log-probs; every array has length P (number of pairs). */
export interface PreferenceLogps {
  policyChosen: ArrayLike<number>;    // [P]
  policyRejected: ArrayLike<number>;  // [P]
  refChosen: ArrayLike<number>;       // [P]
  refRejected: ArrayLike<number>;     // [P]
  // Prompt-augmented (p ⊕ x) log-probs, forward only; required for 'sr-dpo' / 'sr-ipo'.
  policyChosenAug?: ArrayLike<number>;   // [P]
  policyRejectedAug?: ArrayLike<number>; // [P]
  refChosenAug?: ArrayLike<number>;      // [P]
  refRejectedAug?: ArrayLike<number>;    // [P]
}

export interface PreferenceOptions {
  beta: number;
  lambda?: number;          // weight of delta in sr-dpo / sr-ipo (required for those)
  labelSmoothing?: number;  // cDPO smoothing for dpo / sr-dpo, default 0
}

export interface PreferenceLossResult {
  h: Float64Array;               // [P] log-ratio difference
  delta: Float64Array | null;    // [P] beta * h_aug, null when augmented log-probs were not given
  perPair: Float64Array;         // [P] per-pair losses
  loss: number;                  // mean of perPair
  dLdh: Float64Array;            // [P] d perPair_i / d h_i (NOT divided by P)
  dPolicyChosen: Float64Array;   // [P] d loss / d policyChosen_i  =  dLdh_i / P
  dPolicyRejected: Float64Array; // [P] d loss / d policyRejected_i = -dLdh_i / P
}

/** Stable softplus log(1 + e^x) (scalar). */
export function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

/** Stable log(sigmoid(x)) = -softplus(-x) (scalar). */
export function logSigmoid(x: number): number {
  return -softplus(-x);
}

/** Stable logistic sigmoid (scalar). */
export function sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** h [P] = (pc - rc) - (pr - rr), all inputs [P]. */
export function logratioDiffRef(
  policyChosen: ArrayLike<number>, policyRejected: ArrayLike<number>,
  refChosen: ArrayLike<number>, refRejected: ArrayLike<number>,
): Float64Array {
  const P = policyChosen.length;
  for (const [name, a] of [['policyRejected', policyRejected], ['refChosen', refChosen], ['refRejected', refRejected]] as const) {
    if (a.length !== P) throw new Error(`${name}: length ${a.length}, expected ${P}`);
  }
  const h = new Float64Array(P);
  for (let i = 0; i < P; i++) h[i] = (policyChosen[i] - refChosen[i]) - (policyRejected[i] - refRejected[i]);
  return h;
}

/** delta [P] = beta * h_aug from the augmented log-probs; null when any of them is missing. */
export function augmentedDeltaRef(logps: PreferenceLogps, beta: number): Float64Array | null {
  const { policyChosenAug: a, policyRejectedAug: b, refChosenAug: c, refRejectedAug: d } = logps;
  if (!a || !b || !c || !d) return null;
  const hAug = logratioDiffRef(a, b, c, d);
  for (let i = 0; i < hAug.length; i++) hAug[i] *= beta;
  return hAug;
}

/**
 * One pair (scalar): h, delta (ignored by dpo/ipo) -> { loss: per-pair loss, dLdh: d loss / d h }.
 * This is what a fused GPU loss kernel computes per pair.
 */
export function preferencePairRef(
  type: PreferenceLossType, h: number, delta: number, opts: PreferenceOptions,
): { loss: number; dLdh: number } {
  const { beta } = opts;
  const sr = type === 'sr-dpo' || type === 'sr-ipo';
  const lambda = opts.lambda ?? 0;
  if (sr && opts.lambda === undefined) throw new Error(`${type} needs lambda`);
  const shift = sr ? lambda * delta : 0;
  if (type === 'dpo' || type === 'sr-dpo') {
    const ls = opts.labelSmoothing ?? 0;
    const z = beta * h - shift;
    const loss = ls === 0 ? -logSigmoid(z) : -(1 - ls) * logSigmoid(z) - ls * logSigmoid(-z);
    const dLdz = ls === 0 ? -sigmoid(-z) : -(1 - ls) * sigmoid(-z) + ls * sigmoid(z);
    return { loss, dLdh: beta * dLdz };
  }
  if (type === 'ipo' || type === 'sr-ipo') {
    const r = h - shift - 1 / (2 * beta);
    return { loss: r * r, dLdh: 2 * r };
  }
  throw new Error(`unknown preference loss type ${String(type)}`);
}

/**
 * Batch forward + backward: logps (each [P]) -> h [P], delta [P] | null, perPair [P], mean loss,
 * dLdh [P], dPolicyChosen [P], dPolicyRejected [P] (gradients of the MEAN loss; delta constant).
 */
export function preferenceLossRef(
  type: PreferenceLossType, logps: PreferenceLogps, opts: PreferenceOptions,
): PreferenceLossResult {
  const h = logratioDiffRef(logps.policyChosen, logps.policyRejected, logps.refChosen, logps.refRejected);
  const P = h.length;
  const delta = augmentedDeltaRef(logps, opts.beta);
  const sr = type === 'sr-dpo' || type === 'sr-ipo';
  if (sr && !delta) throw new Error(`${type} needs the augmented log-probs (policyChosenAug, ...)`);
  if (delta && delta.length !== P) throw new Error(`augmented log-probs: length ${delta.length}, expected ${P}`);
  const perPair = new Float64Array(P);
  const dLdh = new Float64Array(P);
  const dPolicyChosen = new Float64Array(P);
  const dPolicyRejected = new Float64Array(P);
  let sum = 0;
  for (let i = 0; i < P; i++) {
    const r = preferencePairRef(type, h[i], delta ? delta[i] : 0, opts);
    perPair[i] = r.loss;
    dLdh[i] = r.dLdh;
    dPolicyChosen[i] = r.dLdh / P;
    dPolicyRejected[i] = -r.dLdh / P;
    sum += r.loss;
  }
  return { h, delta, perPair, loss: P > 0 ? sum / P : NaN, dLdh, dPolicyChosen, dPolicyRejected };
}

export interface PreferenceMetrics {
  rewardsChosen: Float64Array;    // [P] beta * (policyChosen - refChosen)
  rewardsRejected: Float64Array;  // [P] beta * (policyRejected - refRejected)
  rewardsChosenMean: number;      // TRL rewards/chosen
  rewardsRejectedMean: number;    // TRL rewards/rejected
  margin: number;                 // mean beta * h   (TRL rewards/margins, "average marginal")
  accuracy: number;               // mean [h > 0]    (TRL rewards/accuracies; ties count as wrong)
  augAccuracy: number | null;     // mean [delta > 0] (prompt-augmented accuracy); null without aug log-probs
  logpsChosenMean: number;        // mean policyChosen (TRL logps/chosen)
  logpsRejectedMean: number;      // mean policyRejected (TRL logps/rejected)
}

/** Reward metrics over P pairs (all logps arrays [P]). Accuracy uses h > 0 (= chosen reward > rejected reward). */
export function preferenceMetricsRef(logps: PreferenceLogps, beta: number): PreferenceMetrics {
  const h = logratioDiffRef(logps.policyChosen, logps.policyRejected, logps.refChosen, logps.refRejected);
  const P = h.length;
  const delta = augmentedDeltaRef(logps, beta);
  const rewardsChosen = new Float64Array(P);
  const rewardsRejected = new Float64Array(P);
  let rc = 0, rr = 0, m = 0, acc = 0, aug = 0, lc = 0, lr = 0;
  for (let i = 0; i < P; i++) {
    rewardsChosen[i] = beta * (logps.policyChosen[i] - logps.refChosen[i]);
    rewardsRejected[i] = beta * (logps.policyRejected[i] - logps.refRejected[i]);
    rc += rewardsChosen[i]; rr += rewardsRejected[i];
    m += beta * h[i];
    if (h[i] > 0) acc++;
    if (delta && delta[i] > 0) aug++;
    lc += logps.policyChosen[i]; lr += logps.policyRejected[i];
  }
  return {
    rewardsChosen, rewardsRejected,
    rewardsChosenMean: rc / P, rewardsRejectedMean: rr / P,
    margin: m / P, accuracy: acc / P, augAccuracy: delta ? aug / P : null,
    logpsChosenMean: lc / P, logpsRejectedMean: lr / P,
  };
}
