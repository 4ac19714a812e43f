// Pieces shared by the matmul kernel families (matmul.ts: f32 simple and register-tiled;
// matmul-smx.ts: tensor cores), kept apart so those two files do not import each other.

// The uniform parameters of both kernel families, in the order run() packs them.
export const PARAMS_WGSL = /* wgsl */ `struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aBase: u32, bBase: u32, cBase: u32, biasBase: u32,
  strideA: u32, strideB: u32, strideC: u32,
  accumulate: u32, hasBias: u32, alpha: f32, partsBase: u32,
};`;

/**
 * Operand rounding of the f16 precision in the f32 kernels (adapters without tensor-core f16, and
 * tests): values are rounded to f16 as they are staged, A after its dynamic scale; the sums stay f32.
 */
export interface F16Staging { scaleA: boolean }

/** Kernel-name suffix of an f16 staging. */
export function f16Suffix(f16: F16Staging | undefined): string { return f16 ? (f16.scaleA ? '_h16s' : '_h16') : ''; }

/** Which operands a kernel accesses as vec4 (matmul.ts vecFlags). */
export interface VecFlags { a: boolean; b: boolean; c: boolean }
