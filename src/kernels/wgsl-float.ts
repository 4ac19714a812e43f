// WGSL float tests that hold whatever the shader compiler assumes. WGSL lets a compiler take every float
// as finite (lavapipe folds `x != x` to false, and `max` may drop a NaN), so a NaN is found by its bits.
// Used where a NaN must come out as NaN: the f16 operand maxima (absmax.ts), the optimizer's clip factor.

/** A WGSL bool expression: the f32 `x` (a WGSL expression, used once) is a NaN. */
export const isNanWgsl = (x: string): string => `((bitcast<u32>(${x}) & 0x7fffffffu) > 0x7f800000u)`;
