// Training precision: 'f32' everywhere, or 'mixed': every large matmul takes f16 operands on tensor
// cores (f32 accumulation; gradients' operands scaled per tensor, see matmul.ts scaleA) while
// weights, optimizer state, activations, norms, softmax, attention and losses stay f32.
import type { Gpu } from './gpu.js';
import { envSwitch } from './env.js';

export type Precision = 'f32' | 'mixed';
export const PRECISIONS: readonly Precision[] = ['f32', 'mixed'];

export interface PrecisionChoice {
  /** What runs: 'mixed' only where the adapter has tensor-core f16 (or SRK_MIXED=emulate). */
  precision: Precision;
  /** Why the request was not honoured as asked, or how it runs (for the log); undefined if as asked. */
  note?: string;
}

/**
 * Sets gpu.matmulPrecision for `wanted`. 'mixed' needs an f16 16x16x16 -> f32 subgroup-matrix config
 * (gpu.smxF16); elsewhere it falls back to f32 with a note, unless SRK_MIXED=emulate asks for the f32
 * kernels with f16-rounded operands (same numerics, no speed-up: for checking precision on any adapter)
 * or SRK_MIXED=emulate-tc for the tensor-core kernels themselves with emulated subgroup matrices
 * (gpu.emulateSmx; for checking them on adapters with f16 and subgroups, e.g. lavapipe).
 */
export function setPrecision(gpu: Gpu, wanted: Precision): PrecisionChoice {
  const choice = precisionFor(gpu, wanted);
  gpu.matmulPrecision = matmulPrecisionOf(choice.precision);
  emulateIfAsked(gpu, choice);
  return choice;
}

/** SRK_MIXED=emulate-tc: a mixed choice without tensor cores runs their kernels emulated. */
function emulateIfAsked(gpu: Gpu, choice: PrecisionChoice): void {
  if (choice.precision === 'mixed' && !gpu.smxF16 && envSwitch('SRK_MIXED') === 'emulate-tc') gpu.emulateSmx = true;
}

/** What setPrecision(gpu, wanted) would choose, without setting it. `flag`: the option named in notes. */
export function precisionFor(gpu: Gpu, wanted: Precision, flag = '--precision'): PrecisionChoice {
  // A malformed SRK_MIXED is refused whatever runs (as the other variables), not only where it would act.
  const mode = envSwitch('SRK_MIXED');
  if (wanted === 'f32') return { precision: 'f32' };
  if (gpu.smxF16) return { precision: 'mixed' };
  if (mode === 'emulate') {
    return { precision: 'mixed', note: 'mixed precision emulated (SRK_MIXED=emulate): f16-rounded operands in the f32 kernels, no speed-up' };
  }
  if (mode === 'emulate-tc') {
    if (gpu.features.shaderF16 && gpu.features.subgroups && gpu.fixedSubgroupSize) {
      return { precision: 'mixed', note: 'mixed precision emulated (SRK_MIXED=emulate-tc): the tensor-core kernels with subgroup matrices emulated in plain WGSL, much slower' };
    }
    return { precision: 'f32', note: 'SRK_MIXED=emulate-tc needs shader-f16, subgroups and one subgroup size (see `srk info`); running f32' };
  }
  return {
    precision: 'f32',
    note: `this adapter has no f16 subgroup-matrix (tensor core) support (see \`srk info\`); ${flag} mixed falls back to f32`,
  };
}

/** The matmul operand precision (gpu.matmulPrecision) a precision choice runs as. */
export function matmulPrecisionOf(p: Precision): 'f32' | 'f16' {
  return p === 'mixed' ? 'f16' : 'f32';
}

/** The augmented pass's own precision (setAugPrecision). */
export interface AugPrecisionChoice extends PrecisionChoice {
  /** Its gpu.matmulPrecision. */
  matmul: 'f32' | 'f16';
  /** What runs, for the log: the fallback's note, or the operands. */
  description: string;
}

/**
 * The precision of the augmented pass (Sr losses): the policy's forward without gradients on the
 * augmented pairs, whose log-probs reach the loss only through sg[Delta], and the reference's
 * augmented log-probs, computed the same way so that Delta starts at 0. 'mixed' runs that pass on
 * tensor cores even when the rest of the step (`main`) is f32: a forward-only pass is ~a third of a
 * step's products, and f16 operands with f32 sums move a sequence's log-prob by ~1e-4 per token,
 * which lambda * beta (0.05 at the paper's settings) scales down further. Undefined when the pass
 * runs as the rest (`wanted` absent or the same); otherwise chosen as precisionFor chooses (f32 where
 * the adapter lacks tensor-core f16, with a note naming --aug-precision), turning on the emulated
 * subgroup matrices for SRK_MIXED=emulate-tc as setPrecision does.
 */
export function setAugPrecision(gpu: Gpu, main: Precision, wanted: Precision | undefined): AugPrecisionChoice | undefined {
  if (wanted === undefined || wanted === main) return undefined;
  const choice = precisionFor(gpu, wanted, '--aug-precision');
  emulateIfAsked(gpu, choice);
  const description = choice.note ?? (choice.precision === 'mixed' ? 'f16 matmul operands on tensor cores, f32 accumulation' : 'f32');
  return { ...choice, matmul: matmulPrecisionOf(choice.precision), description };
}

/**
 * Records fn's work with gpu.matmulPrecision set to `p`, then restores it (also when fn throws).
 * fn must record synchronously: the setting is read as each kernel is recorded.
 */
export function withMatmulPrecision<T>(gpu: Gpu, p: 'f32' | 'f16' | undefined, fn: () => T): T {
  if (p === undefined || p === gpu.matmulPrecision) return fn();
  const before = gpu.matmulPrecision;
  gpu.matmulPrecision = p;
  try { return fn(); } finally { gpu.matmulPrecision = before; }
}
