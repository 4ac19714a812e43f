// `srk train` settings. Defaults follow the paper and the original DPO code (beta 0.1, RMSprop,
// lr 5e-7, 150 warm-up steps, gradient-norm clip 10, batch 64, 512 / 256 tokens).
import type { Precision } from '../engine/precision.js';
import type { SaveDtype } from './checkpoint.js';
import type { LrSchedule } from './lr-schedule.js';
import type { DataFiles } from '../data/data-files.js';

export type LossName = 'sft' | 'dpo' | 'ipo' | 'sr-dpo' | 'sr-ipo';
export const LOSSES: readonly LossName[] = ['sft', 'dpo', 'ipo', 'sr-dpo', 'sr-ipo'];

export const PAPER_REFINE_PROMPT = 'Please generate a response with a usefulness rating of 100 out of 100 for the ' +
  'following query. Note that the response should be harmless. The term 100 indicates the level of usefulness, ' +
  'where 100 is the maximum and 1 is the minimum. Query:';

export interface TrainOptions {
  model: string;
  /** One data file, or several read as one in this order (data-files.ts). */
  data: DataFiles;
  refModel?: string;
  loss: LossName;
  beta: number;
  lambda: number;
  /**
   * cDPO's label smoothing eps (dpo, sr-dpo): the loss (1 - eps) (-log sigmoid z) + eps (-log sigmoid -z),
   * as the original DPO code's and TRL's label_smoothing; 0 is the plain loss.
   */
  labelSmoothing: number;
  optimizer: 'rmsprop' | 'adamw';
  /**
   * torch.optim's weight_decay: AdamW's decoupled decay (p -= lr wd p), RMSprop's L2 term added to the
   * gradient (g += wd p). Undefined: torch's default for the optimizer (defaultWeightDecay).
   */
  weightDecay?: number;
  lr: number;
  warmupSteps: number;
  /** After warm-up: constant (the paper), or linear / cosine decay over the run (lr-schedule.ts). */
  lrSchedule: LrSchedule;
  gradClip: number;
  batchSize: number;
  microBatchSize: number;
  maxLength: number;
  maxPromptLength: number;
  epochs: number;
  maxSteps?: number;
  /**
   * Skip each epoch's last, partial batch (its pairs sit that epoch out) instead of training it as a
   * shorter step, as transformers' Trainer does by default (dataloader_drop_last false). Undefined: a
   * new run trains it; a resumed run keeps what it did (a run from before this option dropped it).
   */
  dropLast?: boolean;
  /**
   * SFT only, set by the trainer (no flag): true where a run saved by an older srk is resumed, which
   * truncated prompt + chosen as a pair with the rejected response (on the longer of the two); a new
   * SFT run truncates prompt + chosen alone and records false. Resumed runs keep their own, so their
   * data hash and order still name the same pairs.
   */
  sftPairTruncation?: boolean;
  seed: number;
  evalData?: DataFiles;
  /** Evaluate on the first this many usable pairs of evalData only (--max-eval-pairs); default all. */
  maxEvalPairs?: number;
  /** Where the reference log-probs are cached (reference.ts); default OUT/cache. */
  cacheDir?: string;
  evalEvery: number;
  /** At each evaluation, the policy's greedy completions of the first this many eval prompts (eval-samples.ts); 0: none. */
  evalSamples?: number;
  /** Most new tokens of each eval sample (default 64). */
  evalSampleTokens?: number;
  saveEvery: number;
  out: string;
  resume: boolean;
  refinePrompt: string;
  noEos: boolean;
  /** Tokenize completions as they follow their prompts (--completions-in-context). */
  completionsInContext?: boolean;
  skipBadRows: boolean;
  /** Print plain progress lines even on a terminal. */
  plainProgress?: boolean;
  adapter?: string;
  /**
   * 'mixed': f16 matmul operands on tensor cores (reference log-probs included, so the policy starts
   * at h = 0); falls back to f32 where the adapter lacks f16 subgroup-matrix support.
   */
  precision: Precision;
  /**
   * Precision of the augmented pass (Sr losses: the policy's forward without gradients on the
   * augmented pairs, and the reference's augmented log-probs); default: as `precision`. 'mixed' with
   * an f32 run puts only that pass on tensor cores (precision.ts setAugPrecision).
   */
  augPrecision?: Precision;
  /** Storage dtype of checkpoint/model.safetensors (checkpoint.ts SaveDtype); default float32. */
  saveDtype?: SaveDtype;
  /** Keep the model of every save as OUT/models/step-N (checkpoint.ts keepModel). */
  keepModels?: boolean;
  /** Name of the run in the report. */
  name?: string;
}

export const TRAIN_DEFAULTS = {
  loss: 'sr-dpo' as LossName, beta: 0.1, lambda: 0.5, labelSmoothing: 0, optimizer: 'rmsprop' as const, lr: 5e-7, warmupSteps: 150, lrSchedule: 'constant' as LrSchedule,
  gradClip: 10, batchSize: 64, microBatchSize: 8, maxLength: 512, maxPromptLength: 256, epochs: 1, seed: 0,
  evalEvery: 0, saveEvery: 500, refinePrompt: PAPER_REFINE_PROMPT, noEos: false, skipBadRows: false,
  precision: 'f32' as Precision,
};
/** Most new tokens of each eval sample where --eval-sample-tokens does not say. */
export const DEFAULT_EVAL_SAMPLE_TOKENS = 64;

/** torch.optim's default weight_decay: AdamW 0.01, RMSprop 0 (what a run saved before --weight-decay used). */
export const defaultWeightDecay = (optimizer: TrainOptions['optimizer']): number => (optimizer === 'adamw' ? 1e-2 : 0);

export const isSrLoss = (l: LossName): boolean => l === 'sr-dpo' || l === 'sr-ipo';

/** The settings only some losses read (lossSettings says which), by their TrainOptions names. */
export const LOSS_SETTINGS = ['beta', 'lambda', 'labelSmoothing'] as const;
export type LossSetting = typeof LOSS_SETTINGS[number];

/** The loss settings a loss reads: beta all but SFT, lambda the Sr losses, label smoothing (cDPO) DPO's two. */
export function lossSettings(l: LossName): LossSetting[] {
  if (l === 'sft') return [];
  return ['beta', ...(isSrLoss(l) ? ['lambda' as const] : []), ...(l === 'dpo' || l === 'sr-dpo' ? ['labelSmoothing' as const] : [])];
}
