// Float64 reference for rotary position embeddings, Hugging Face "rotate_half" convention
// (GPT-NeoX with partial rotary, Llama/Mistral with rotaryDim = headDim).
//
// Within the first r = rotaryDim channels of every head, channel j < r/2 pairs with j + r/2
// (half split, not interleaved even/odd); channels >= r pass through unchanged.
//   inv_freq[j] = theta^(-2j/r),  angle = pos * inv_freq[j]
//   out_j       = x_j cos(angle) - x_{j+r/2} sin(angle)
//   out_{j+r/2} = x_{j+r/2} cos(angle) + x_j sin(angle)
// which is HF's x * cos(emb) + rotate_half(x) * sin(emb) with emb = cat(freqs, freqs).
// HF computes inv_freq and pos * inv_freq in float32 (autocast disabled) before cos/sin; this
// reference uses float64 throughout, so at large positions HF's angles differ from these by
// ~pos * 6e-8 rad (e.g. ~2.4e-4 rad at position 4096). Scaled RoPE variants (linear, llama3, ...)
// only change inv_freq: pass it explicitly as `invFreq`. LongRoPE also scales cos and sin by its
// attention factor (`scale`, on the rotated channels; the backward's transpose takes it too).

/** -> inv_freq [rotaryDim / 2], inv_freq[j] = 1 / theta^(2j / rotaryDim). */
export function rotaryInvFreq(rotaryDim: number, theta: number): Float64Array {
  if (rotaryDim % 2 !== 0 || rotaryDim <= 0) throw new RangeError(`rotary: rotaryDim ${rotaryDim} must be even and > 0`);
  return Float64Array.from({ length: rotaryDim / 2 }, (_, j) => 1 / Math.pow(theta, (2 * j) / rotaryDim));
}

/** Rotates every head by +angle (sign = 1) or -angle (sign = -1). x [T, H, headDim] -> [T, H, headDim]. */
function rotate(
  x: ArrayLike<number>, positions: ArrayLike<number>, T: number, H: number, headDim: number,
  rotaryDim: number, theta: number, invFreq: ArrayLike<number> | undefined, sign: 1 | -1, scale = 1,
): Float64Array {
  if (rotaryDim > headDim) throw new RangeError(`rotary: rotaryDim ${rotaryDim} > headDim ${headDim}`);
  if (x.length !== T * H * headDim) throw new RangeError(`rotary: x has ${x.length} elements, expected ${T * H * headDim}`);
  if (positions.length !== T) throw new RangeError(`rotary: positions has ${positions.length} entries, expected ${T}`);
  const inv = invFreq ?? rotaryInvFreq(rotaryDim, theta);
  const half = rotaryDim / 2;
  if (inv.length !== half) throw new RangeError(`rotary: invFreq has ${inv.length} entries, expected ${half}`);
  const out = Float64Array.from(x); // pass-through channels keep their values
  for (let t = 0; t < T; t++) {
    for (let j = 0; j < half; j++) {
      const a = positions[t] * inv[j], c = scale * Math.cos(a), s = sign * scale * Math.sin(a);
      for (let h = 0; h < H; h++) {
        const o = (t * H + h) * headDim;
        const x1 = x[o + j], x2 = x[o + j + half];
        out[o + j] = x1 * c - x2 * s;
        out[o + j + half] = x2 * c + x1 * s;
      }
    }
  }
  return out;
}

/**
 * x [T, H, headDim], positions [T] -> y [T, H, headDim]. For batches, flatten [B, T] into T
 * (positions [B * T]). rotaryDim even, <= headDim; invFreq [rotaryDim / 2] overrides theta.
 */
export function rotaryForward(
  x: ArrayLike<number>, positions: ArrayLike<number>, T: number, H: number, headDim: number,
  rotaryDim: number, theta: number, invFreq?: ArrayLike<number>, scale = 1,
): Float64Array {
  return rotate(x, positions, T, H, headDim, rotaryDim, theta, invFreq, 1, scale);
}

/**
 * dy [T, H, headDim], positions [T] -> dx [T, H, headDim]: the inverse (= transposed) rotation of dy;
 * pass-through channels copy dy.
 */
export function rotaryBackward(
  dy: ArrayLike<number>, positions: ArrayLike<number>, T: number, H: number, headDim: number,
  rotaryDim: number, theta: number, invFreq?: ArrayLike<number>, scale = 1,
): Float64Array {
  return rotate(dy, positions, T, H, headDim, rotaryDim, theta, invFreq, -1, scale);
}
