// References for absmax.ts and the f16 operand rounding of the mixed-precision matmul.

/** max |x[i]| over x (0 for an empty array; NaN if any element is NaN). */
export function absmaxRef(x: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) {
    const v = Math.abs(x[i]);
    if (Number.isNaN(v)) return NaN;
    if (v > m) m = v;
  }
  return m;
}

const SCALE_TARGET_LOG2 = 14;

/**
 * The power-of-two factor the f16 matmul multiplies a dynamically scaled operand by before rounding
 * it to f16: the largest 2^k with amax * 2^k <= 2^SCALE_TARGET_LOG2 (2^14, a quarter of f16's range,
 * so no element overflows and the smallest ones stay out of f16's subnormals). 1 for amax 0.
 */
export function f16ScaleRef(amax: number): number {
  if (!(amax > 0) || !Number.isFinite(amax)) return 1;
  let e = Math.floor(Math.log2(amax));
  if (2 ** e > amax) e--; else if (2 ** (e + 1) <= amax) e++;
  // amax in [2^e, 2^(e+1)): exact, where Math.log2 of a quotient could round.
  const k = amax === 2 ** e ? SCALE_TARGET_LOG2 - e : SCALE_TARGET_LOG2 - 1 - e;
  // At most 2^64: a tensor of near-zero values gains nothing from more, and the tensor-core
  // epilogue divides an accumulated C by the scale (C * 2^64 stays finite for any sane C).
  return 2 ** Math.min(64, Math.max(-126, k));
}

/** Rounds a number to the nearest IEEE binary16 value (ties to even); overflow gives +-Infinity. */
export function roundF16(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  if (2 ** e > ax) e--; else if (2 ** (e + 1) <= ax) e++;
  const quantum = 2 ** (Math.max(e, -14) - 10); // spacing of f16 values near x (subnormals: 2^-24)
  const q = ax / quantum;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r++;
  const v = r * quantum;
  return Math.sign(x) * (v >= 65520 ? Infinity : v);
}
