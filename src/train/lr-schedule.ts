// The learning rate of each optimizer step: the paper's (and the original DPO code's) linear warm-up,
// min(1, (step + 1) / (warmup + 1)) (warmupFactor), then constant, or decaying to 0
// at the end of the run as transformers' get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup
// do from the end of warm-up on (TRL's DPOTrainer decays linearly by default; the alignment-handbook
// recipes use cosine).

/**
 * The original DPO code's LambdaLR factor: min(1, (step + 1) / (warmupSteps + 1)).
 * `step` = number of scheduler steps taken so far = number of optimizer steps already done, so the
 * first optimizer step (step 0) uses lr * 1/(warmupSteps + 1). warmupSteps = 0 gives 1 always.
 */
export function warmupFactor(step: number, warmupSteps: number): number {
  return Math.min(1, (step + 1) / (warmupSteps + 1));
}

export type LrSchedule = 'constant' | 'linear' | 'cosine';
export const LR_SCHEDULES: readonly LrSchedule[] = ['constant', 'linear', 'cosine'];

/**
 * The factor on the peak lr of the optimizer step that follows `step` steps already taken, in a run of
 * `totalSteps` with `warmupSteps` of warm-up: after warm-up, linear (total - step) / (total - warmup)
 * or cosine 0.5 (1 + cos(pi (step - warmup) / (total - warmup))); neither reaches 0 within the run.
 */
export function lrFactor(step: number, warmupSteps: number, schedule: LrSchedule, totalSteps: number): number {
  const warm = warmupFactor(step, warmupSteps);
  if (schedule === 'constant' || step < warmupSteps) return warm;
  const span = Math.max(1, totalSteps - warmupSteps);
  const done = Math.min(step - warmupSteps, span);
  return warm * (schedule === 'linear' ? (span - done) / span : 0.5 * (1 + Math.cos(Math.PI * done / span)));
}
