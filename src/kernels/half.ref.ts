// Reference for half.ts: the f16 copy of an operand, f16(x * scale) with scale 1 or absmax.ref.ts's
// power of two for max |x|, as float64 values (ties to even, overflow to +-inf, NaN kept).
import { absmaxRef, f16ScaleRef, roundF16 } from './absmax.ref.js';

export function halfCopyRef(x: ArrayLike<number>, scaled: boolean): Float64Array {
  const s = scaled ? f16ScaleRef(absmaxRef(x)) : 1;
  return Float64Array.from(x, (v) => roundF16(Math.fround(v * s)));
}
