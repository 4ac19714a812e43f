// The precisions a run uses, chosen once for `srk train` and `srk bench step` alike: the step's
// (precision.ts setPrecision), the augmented pass's where it differs (setAugPrecision), then the
// tensor-core matmul's self-check wherever either puts products on native tensor cores
// (matmul-selfcheck.ts checkedPrecision), each with its line for the log.
import type { Gpu } from '../engine/gpu.js';
import { setAugPrecision, setPrecision, type AugPrecisionChoice, type Precision, type PrecisionChoice } from '../engine/precision.js';
import { checkedPrecision } from '../kernels/matmul-selfcheck.js';

export interface PrecisionRequest {
  precision: Precision;
  /** --aug-precision; undefined: as `precision`. */
  augPrecision?: Precision;
  /** Whether anything runs the augmented pass (an Sr loss, or evaluation's augmented accuracy). */
  augmented: boolean;
  /** Why nothing does, for the note when --aug-precision is given anyway. */
  whyNotAugmented?: string;
}

export interface PrecisionChoices {
  main: PrecisionChoice;
  /** The augmented pass's own choice; undefined where it runs as the rest. */
  aug?: AugPrecisionChoice;
  /** The self-check's line, where it ran. */
  check?: string;
}

export async function choosePrecisions(gpu: Gpu, r: PrecisionRequest, log: (line: string) => void): Promise<PrecisionChoices> {
  const main = setPrecision(gpu, r.precision);
  if (main.note) log(main.note);
  else if (main.precision === 'mixed') log('mixed precision: f16 matmul operands on tensor cores, f32 accumulation, weights and optimizer');
  let aug: AugPrecisionChoice | undefined;
  if (!r.augmented) {
    if (r.augPrecision !== undefined && r.augPrecision !== r.precision) log(`--aug-precision ${r.augPrecision}: ${r.whyNotAugmented ?? 'nothing here runs the augmented pass'}; it changes nothing here`);
  } else {
    aug = setAugPrecision(gpu, main.precision, r.augPrecision);
    if (aug) log(`augmented pass (policy and reference, no gradients): ${aug.description}`);
  }
  let check: string | undefined;
  const checked = await checkedPrecision(gpu, main, aug, (l) => { check = l; log(l); });
  return { main: checked.main, aug: checked.aug, check };
}
