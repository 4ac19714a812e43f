// Scaled rotary embeddings: the rope types of Hugging Face configs that change only inv_freq
// (`rope_scaling` in hub configs, `rope_parameters` in what transformers 5 writes; the formulas are
// transformers' modeling_rope_utils.py):
//   linear   inv_freq / factor (Code Llama style position interpolation);
//   dynamic  NTK-aware: transformers changes the base only for a sequence longer than
//            max_position_embeddings, which srk refuses (gpu-batch.ts), so below it these are the
//            default frequencies;
//   llama3   (Llama 3.1 and later) per frequency, by its wavelength 2 pi / inv_freq against the
//            original context L = original_max_position_embeddings:
//              wavelength < L / high_freq_factor   unchanged
//              wavelength > L / low_freq_factor    inv_freq / factor
//              between                             (1 - s) inv_freq / factor + s inv_freq,
//                                                  s = (L / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor)
//   longrope (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini; config.ts reads it for Phi-3 alone) per frequency
//            inv_freq / ext_j with ext = short_factor, cos and sin times the attention factor
//            (attention_factor, or sqrt(1 + ln(factor) / ln(L)) for factor = max_position_embeddings / L > 1, with
//            L = original_max_position_embeddings). transformers switches to long_factor for a forward whose
//            positions pass L; srk refuses those positions (positionLimit) rather than compute them otherwise.
// The others do not scale cos and sin (attention_factor 1); YaRN does, and is refused by the config reader.
//
// transformers computes these in float32 tensors with Python floats as scalars; each step here is
// rounded to f32 in the same order (a scalar divisor is one f32 division; torch's CUDA kernels multiply
// by its reciprocal instead, so the two may differ in an entry's last bit, far below what the f32
// angle itself rounds away: rotary.ts).
import { rotaryInvFreqF32, rotaryPowF32 } from '../kernels/rotary.js';
import { layerWindow, type ModelShape } from './context.js';

export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'dynamic'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'longrope'; shortFactor: readonly number[]; longFactor: readonly number[]; originalMaxPositions: number; attentionFactor: number };

const f = Math.fround;

/**
 * inv_freq [rotaryDim / 2] for a scaled rope, as transformers computes it in float32; undefined where
 * it is the default table (no scaling, or dynamic below max_position_embeddings).
 */
export function scaledInvFreq(rotaryDim: number, theta: number, scaling: RopeScaling | null | undefined): Float32Array | undefined {
  if (!scaling || scaling.type === 'dynamic') return undefined;
  if (scaling.type === 'longrope') {
    // 1.0 / (ext_factors * base ** (arange(0, dim, 2).float() / dim)): the default table's power, times the factor, inverted (f32).
    if (scaling.shortFactor.length !== rotaryDim / 2) throw new RangeError(`longrope: short_factor has ${scaling.shortFactor.length} entries, expected ${rotaryDim / 2}`);
    return rotaryPowF32(rotaryDim, theta).map((p, j) => f(1 / f(f(scaling.shortFactor[j]!) * p)));
  }
  const inv = rotaryInvFreqF32(rotaryDim, theta);
  const factor = f(scaling.factor);
  if (scaling.type === 'linear') return inv.map((x) => f(x / factor));
  const { lowFreqFactor: low, highFreqFactor: high, originalMaxPositions: L } = scaling;
  const lowWavelen = f(L / low); const highWavelen = f(L / high);
  const twoPi = f(2 * Math.PI); const span = f(high - low);
  return inv.map((x) => {
    const wavelen = f(f(1 / x) * twoPi); // Python scalar / tensor: reciprocal, then times the scalar
    const scaled = wavelen > lowWavelen ? f(x / factor) : x;
    if (wavelen < highWavelen || wavelen > lowWavelen) return scaled;
    const s = f(f(f(f(1 / wavelen) * f(L)) - f(low)) / span);
    return f(f(f(f(1 - s) * scaled) / factor) + f(s * scaled));
  });
}

const perShape = new WeakMap<object, Float32Array | undefined>();

/**
 * The model's inv_freq table for rotary(): computed once per config object and then the same array
 * (rotary.ts keys its GPU copy by the array), or undefined for the default table.
 */
export function modelInvFreq(cfg: { rotaryDim: number; ropeTheta: number; ropeScaling?: RopeScaling | null }): Float32Array | undefined {
  if (!cfg.ropeScaling) return undefined;
  if (!perShape.has(cfg)) perShape.set(cfg, scaledInvFreq(cfg.rotaryDim, cfg.ropeTheta, cfg.ropeScaling));
  return perShape.get(cfg);
}

/**
 * Layer l's rotary theta and inv_freq table: Gemma 3's sliding layers take their own (slidingRope: the local
 * base frequency), every other layer the model's.
 */
export function layerRope(cfg: ModelShape, l: number): { theta: number; invFreq: Float32Array | undefined; scale?: number } {
  const sr = cfg.slidingRope;
  if (sr && layerWindow(cfg, l) > 0) {
    if (!sr.scaling) return { theta: sr.theta, invFreq: undefined };
    // (cached by the slidingRope object, as modelInvFreq by the config: rotary.ts keys its GPU copy by the array)
    if (!perShape.has(sr)) perShape.set(sr, scaledInvFreq(cfg.rotaryDim, sr.theta, sr.scaling));
    return { theta: sr.theta, invFreq: perShape.get(sr) };
  }
  return { theta: cfg.ropeTheta, invFreq: modelInvFreq(cfg), scale: ropeAttentionFactor(cfg.ropeScaling) };
}

/** cos and sin's factor (transformers' attention_scaling): LongRoPE's attention factor, else undefined (1). */
export function ropeAttentionFactor(s: RopeScaling | null | undefined): number | undefined {
  return s?.type === 'longrope' && s.attentionFactor !== 1 ? Math.fround(s.attentionFactor) : undefined;
}

/**
 * The positions a model computes as transformers does: max_position_embeddings, and for LongRoPE its original
 * context too (past it transformers takes long_factor for the whole forward, which srk does not implement).
 * `name`: what the limit is, for messages.
 */
export function positionLimit(cfg: { maxPositions: number; ropeScaling?: RopeScaling | null }): { max: number; name: string } {
  const s = cfg.ropeScaling;
  if (s?.type === 'longrope' && s.originalMaxPositions < cfg.maxPositions) {
    return { max: s.originalMaxPositions, name: `original_max_position_embeddings ${s.originalMaxPositions} (longrope's long_factor, for longer sequences, is not implemented)` };
  }
  return { max: cfg.maxPositions, name: `max_position_embeddings ${cfg.maxPositions}` };
}

/** Words for a log line or an error. */
export function describeRopeScaling(s: RopeScaling | null | undefined): string {
  if (!s) return 'default rotary embeddings';
  if (s.type === 'longrope') return `longrope (short_factor up to position ${s.originalMaxPositions}, attention factor ${+s.attentionFactor.toFixed(6)})`;
  if (s.type !== 'llama3') return `${s.type} rope scaling, factor ${s.factor}`;
  return `llama3 rope scaling (factor ${s.factor}, low/high frequency factors ${s.lowFreqFactor}/${s.highFreqFactor}, original context ${s.originalMaxPositions})`;
}
