// `srk train` flags -> TrainOptions. With neither --model nor --data it runs the built-in demo.
import type { Argv } from 'yargs';
import { checkDirFlag, checkPathFlag, checkPromptBelowMaxLength, dataFilesFlag, typedFlags, ADAPTER_FLAG } from './run.js';
import { dataFileList } from '../data/data-files.js';
import { PRECISIONS, type Precision } from '../engine/precision.js';
import { DEFAULT_EVAL_SAMPLE_TOKENS, LOSSES, TRAIN_DEFAULTS, isSrLoss, lossSettings, type LossName, type TrainOptions } from '../train/options.js';
import { SAVE_DTYPES, type SaveDtype } from '../train/checkpoint.js';
import { LR_SCHEDULES, type LrSchedule } from '../train/lr-schedule.js';
import { userError } from '../errors.js';

export function trainFlags<T>(y: Argv<T>) {
  const d = TRAIN_DEFAULTS;
  return y.options({
    model: { type: 'string', describe: 'Hugging Face checkpoint directory of the policy (config.json, *.safetensors, tokenizer.json or tokenizer.model)' },
    data: { type: 'string', describe: 'preference data (JSON Lines or a JSON array of rows, gzipped or not, or a Parquet file, e.g. a Hugging Face dataset\'s; several, such as a split\'s shards, read as one in the order given: the flag again for each, or a quoted pattern such as "data/train-*.parquet"): {prompt, chosen, rejected}, HH-RLHF dialogues, UltraFeedback or chat rows; for --loss sft also rows without rejected: {prompt, completion}, {prompt, chosen}, HH dialogues {chosen}, {messages}' },
    'ref-model': { type: 'string', describe: 'reference model directory (default: the initial policy)' },
    loss: { choices: LOSSES as string[], default: d.loss, describe: 'training objective (log-probs summed over completion tokens for every loss, IPO too: the paper\'s and the DPO code\'s, not TRL\'s per-token IPO)' },
    beta: { type: 'number', default: d.beta, describe: 'beta of DPO/IPO and the Sr variants' },
    lambda: { type: 'number', default: d.lambda, describe: 'weight of the self-refinement term (Sr-DPO, Sr-IPO)' },
    'label-smoothing': { type: 'number', default: d.labelSmoothing,
      describe: 'cDPO (dpo, sr-dpo): the loss (1-eps) * -log sigmoid(z) + eps * -log sigmoid(-z) for label noise eps < 0.5, as the DPO code\'s and TRL\'s label_smoothing; 0: the plain loss' },
    optimizer: { choices: ['rmsprop', 'adamw'], default: d.optimizer, describe: 'torch.optim semantics and defaults (adamw: weight decay 0.01 on every tensor)' },
    'weight-decay': { type: 'number',
      describe: 'torch.optim\'s weight_decay, on every tensor: adamw decays weights directly (p -= lr * wd * p), rmsprop adds wd * p to the gradient; default: torch\'s (adamw 0.01, rmsprop 0; transformers\' Trainer uses 0)' },
    lr: { type: 'number', default: d.lr, describe: 'peak learning rate' },
    'warmup-steps': { type: 'number', default: d.warmupSteps, describe: 'linear warm-up: lr * min(1, (step+1)/(warmup+1))' },
    'lr-schedule': { choices: LR_SCHEDULES as string[], default: d.lrSchedule,
      describe: 'after warm-up: constant (the paper, the DPO code), or linear / cosine decay toward 0 at the run\'s last step (transformers\' decays; the warm-up stays the one above)' },
    'grad-clip': { type: 'number', default: d.gradClip, describe: 'clip the global gradient norm to this (0 = off)' },
    'batch-size': { type: 'number', default: d.batchSize, describe: 'pairs per optimizer step' },
    'micro-batch-size': { type: 'number', default: d.microBatchSize, describe: 'pairs per forward/backward (gradients accumulate)' },
    'max-length': { type: 'number', default: d.maxLength, describe: 'longest prompt + completion, in tokens' },
    'max-prompt-length': { type: 'number', default: d.maxPromptLength, describe: 'prompt tokens kept when a pair is too long' },
    epochs: { type: 'number', default: d.epochs, describe: 'passes over the data (unless --max-steps)' },
    'max-steps': { type: 'number', describe: 'optimizer steps to run (overrides --epochs)' },
    'drop-last': { type: 'boolean',
      describe: 'skip each epoch\'s last, partial batch (its pairs sit that epoch out); default: train it as a shorter step, as transformers\' Trainer does (a resumed run keeps its own choice)' },
    seed: { type: 'number', default: d.seed, describe: 'data order seed' },
    'eval-data': { type: 'string', describe: 'held-out pairs (one file or several, as for --data): margin, accuracy, augmented accuracy, chosen NLL, and correlations with judge scores; with --loss sft also SFT rows without a rejected response (their NLL per completion token)' },
    'max-eval-pairs': { type: 'number', describe: 'evaluate on the first N usable pairs of --eval-data only, in the file\'s order (transformers\' max_eval_samples): quicker evaluations of a large held-out set' },
    'eval-every': { type: 'number', default: d.evalEvery, describe: 'evaluate every N steps (0: at the start and the end only)' },
    'eval-samples': { type: 'number', default: 0, describe: 'at each evaluation, also write the policy\'s greedy completions of the first N --eval-data prompts to OUT/samples.jsonl (the report shows them)' },
    'eval-sample-tokens': { type: 'number', default: DEFAULT_EVAL_SAMPLE_TOKENS, describe: 'most new tokens of each --eval-samples completion' },
    'save-every': { type: 'number', default: d.saveEvery, describe: 'checkpoint every N steps, as transformers\' Trainer (a job killed without warning loses at most that many); 0: only at the end and on Ctrl-C or SIGTERM' },
    'cache-dir': { type: 'string', describe: 'where the reference log-probs are cached (default OUT/cache); runs given one directory (DPO beside Sr-DPO, a sweep over lambda: the same reference and data) one after another compute them once' },
    out: { type: 'string', describe: 'run directory (metrics.jsonl, checkpoint/, report.html); default runs/<loss> (the demo: runs/demo)' },
    'save-dtype': { choices: SAVE_DTYPES as string[],
      describe: 'dtype of checkpoint/model.safetensors, named in its config.json; default float32 (a note says so where the model is half precision). float32 keeps every update (at lr 5e-7 most steps are below a half-precision step); float16 / bfloat16 halve the file, and optimizer.safetensors then keeps the float32 weights for --resume' },
    'keep-models': { type: 'boolean', default: false,
      describe: 'keep the model of every save (each --save-every and the last) as OUT/models/step-N: a Hugging Face directory (hard links, no copy) with the run\'s trainer_state.json, so srk eval and srk logprobs score it with the run\'s settings' },
    resume: { type: 'boolean', default: false, describe: 'continue the run in --out from its checkpoint' },
    'refine-prompt': { type: 'string', default: d.refinePrompt, defaultDescription: 'the paper\'s', describe: 'the self-refinement prompt p prepended to the query' },
    eos: { type: 'boolean', default: true, describe: 'append the EOS token to each completion (--no-eos: do not)' },
    'completions-in-context': { type: 'boolean', default: false, describe: 'tokenize each completion as it follows its prompt (TRL before 0.12 and since 0.29) instead of alone (the original DPO code, TRL 0.12-0.28, and this project\'s fixtures): with SentencePiece tokenizers (Llama, Mistral) a completion " Hello" then loses the lone "▁" it has alone; byte-level BPE (Pythia) gives the same ids either way' },
    'skip-bad-rows': { type: 'boolean', default: false, describe: 'skip and count malformed data lines instead of stopping' },
    'plain-progress': { type: 'boolean', default: false, describe: 'plain progress lines even on a terminal' },
    ...ADAPTER_FLAG,
    precision: { choices: PRECISIONS as string[], default: d.precision,
      describe: 'f32, or mixed: f16 matmul operands on tensor cores with f32 accumulation, weights and optimizer (f32 where the adapter lacks f16 subgroup-matrix support)' },
    'aug-precision': { choices: PRECISIONS as string[],
      describe: 'precision of the augmented pass (sr-dpo, sr-ipo: the no-gradient forward behind sg[Delta], and the reference\'s augmented log-probs); default: as --precision. mixed with --precision f32 puts only that pass on tensor cores' },
  });
}

/** The flags the built-in demo reads (src/train/demo.ts picks every other setting per stage). */
export const DEMO_FLAGS = ['out', 'seed', 'adapter', 'plain-progress', 'precision'];

/**
 * The train flags on a command line that the demo would not use (it runs SFT, Sr-DPO and DPO with
 * its own settings): `srk train --loss dpo` without --model/--data must not look as if it ran DPO.
 * `args` as typed (process.argv after the command), in any of yargs' spellings: --max-steps 3,
 * --max-steps=3, --maxSteps, --no-eos.
 */
export function demoIgnoredFlags(args: readonly string[]): string[] {
  // The flag names, as trainFlags declares them (an Argv that only records its options call).
  const known = new Set<string>();
  trainFlags({ options: (o: object) => { for (const k of Object.keys(o)) known.add(k); } } as unknown as Argv);
  return typedFlags(args, known).filter((name) => known.has(name) && !DEMO_FLAGS.includes(name));
}

/**
 * Settings given that the run will not read (a sweep script may pass them to every loss alike, so a note,
 * not a refusal): lambda beside a loss without the self-refinement term, --eval-every without --eval-data,
 * SFT's beta and reference without held-out pairs to score, the refinement prompt of a loss without the
 * term where no held-out augmented accuracy reads it, --eval-sample-tokens without --eval-samples.
 * `typed`: the flags the command line gave (run.ts typedFlags), for a setting the options keep only where read.
 */
export function unreadSettingNotes(o: TrainOptions, typed: readonly string[] = []): string[] {
  const notes: string[] = [];
  const heldOut = o.evalData !== undefined;
  // lambda: only the Sr losses' self-refinement term reads it (held-out metrics do not).
  if (!isSrLoss(o.loss) && o.lambda !== TRAIN_DEFAULTS.lambda) {
    notes.push(`--lambda ${o.lambda}: not read by ${o.loss} (only sr-dpo and sr-ipo have the self-refinement term)`);
  }
  if (o.loss === 'sft' && !heldOut) {
    const unread = [o.beta !== TRAIN_DEFAULTS.beta ? `--beta ${o.beta}` : '', o.refModel !== undefined ? `--ref-model ${o.refModel}` : ''].filter(Boolean);
    if (unread.length) notes.push(`${unread.join(', ')}: not read by sft without --eval-data (they shape only held-out margins)`);
  }
  if (!heldOut && o.evalEvery > 0) notes.push(`--eval-every ${o.evalEvery}: nothing to evaluate without --eval-data`);
  if (!isSrLoss(o.loss) && !heldOut && o.refinePrompt !== TRAIN_DEFAULTS.refinePrompt) {
    notes.push(`--refine-prompt: not read by ${o.loss} without --eval-data (it shapes only held-out augmented accuracy; a --resume of the run still expects the same one)`);
  }
  if (!o.evalSamples && typed.includes('eval-sample-tokens')) notes.push('--eval-sample-tokens: nothing is sampled without --eval-samples');
  return notes;
}

/**
 * The paths a run reads, checked before it creates its --out directory or starts the GPU: a missing
 * model, or a directory given as the data file, is named by its flag.
 */
export function checkTrainPaths(o: Pick<TrainOptions, 'model' | 'data' | 'refModel' | 'evalData' | 'cacheDir' | 'out'>): void {
  checkDirFlag('out', o.out);
  checkPathFlag('model', o.model, 'model directory');
  if (o.refModel !== undefined) checkPathFlag('ref-model', o.refModel, 'model directory');
  for (const f of dataFileList(o.data)) checkPathFlag('data', f, 'data file');
  if (o.evalData !== undefined) for (const f of dataFileList(o.evalData)) checkPathFlag('eval-data', f, 'data file');
  if (o.cacheDir !== undefined) checkDirFlag('cache-dir', o.cacheDir);
}

export function trainOptionsFrom(a: Record<string, unknown>): TrainOptions {
  const num = (k: string) => a[k] as number;
  const refuse = (msg: string) => { throw userError(msg); };
  const positive = (k: string) => { if (!(num(k) > 0) || !Number.isInteger(num(k))) refuse(`--${k} must be a positive integer (got ${a[k]})`); };
  const count = (k: string) => { if (!(num(k) >= 0) || !Number.isInteger(num(k))) refuse(`--${k} must be an integer >= 0 (got ${a[k]})`); };
  // These reach the GPU as float32: a value past its range would be Inf there, one below its normal
  // numbers 0 (a GPU flushes subnormals), neither what was asked.
  const float32Holds = (v: number) => v === 0 || (Number.isFinite(Math.fround(v)) && Math.abs(v) >= 2 ** -126);
  const inFloat32 = (k: string) => { if (!float32Holds(num(k))) refuse(`--${k} ${a[k]} is outside float32's range (about 1.2e-38 to 3.4e38), which the GPU computes in`); };
  const atLeastZero = (k: string, why: string) => {
    if (!(num(k) >= 0) || !Number.isFinite(num(k))) refuse(`--${k} must be a number >= 0${why} (got ${a[k]})`);
    inFloat32(k);
  };
  for (const k of ['batch-size', 'micro-batch-size', 'max-length', 'max-prompt-length', 'epochs']) positive(k);
  if (a['max-steps'] !== undefined) positive('max-steps');
  for (const k of ['warmup-steps', 'eval-every', 'save-every', 'seed', 'eval-samples']) count(k);
  positive('eval-sample-tokens');
  if (num('eval-samples') > 0 && a['eval-data'] === undefined) refuse('--eval-samples samples the prompts of --eval-data: give --eval-data too');
  if (a['max-eval-pairs'] !== undefined) {
    positive('max-eval-pairs');
    if (a['eval-data'] === undefined) refuse('--max-eval-pairs limits the pairs of --eval-data: give --eval-data too');
  }
  if (!(num('beta') > 0) || !Number.isFinite(num('beta'))) refuse(`--beta must be > 0 (got ${a.beta})`);
  inFloat32('beta');
  atLeastZero('lr', '');
  atLeastZero('lambda', ' (0 is DPO / IPO)');
  atLeastZero('grad-clip', ' (0: no clipping)');
  if (a['weight-decay'] !== undefined) atLeastZero('weight-decay', ' (0: no decay)');
  checkPromptBelowMaxLength(a, TRAIN_DEFAULTS.maxPromptLength);
  const loss = a.loss as LossName;
  const ls = num('label-smoothing');
  // At 0.5 and past it the smoothed loss no longer prefers the chosen response: a flipped label, not a smoothed one.
  if (!(ls >= 0 && ls < 0.5)) refuse(`--label-smoothing must be at least 0 and below 0.5 (got ${a['label-smoothing']})`);
  if (ls > 0 && !lossSettings(loss).includes('labelSmoothing')) refuse(`--label-smoothing applies to dpo and sr-dpo (cDPO), not ${loss}`);
  return {
    model: a.model as string, data: dataFilesFlag(a, 'data')!, refModel: a['ref-model'] as string | undefined, loss,
    beta: num('beta'), lambda: num('lambda'), labelSmoothing: ls, optimizer: a.optimizer as 'rmsprop' | 'adamw',
    ...(a['weight-decay'] !== undefined ? { weightDecay: num('weight-decay') } : {}), lr: num('lr'),
    warmupSteps: num('warmup-steps'), lrSchedule: a['lr-schedule'] as LrSchedule, gradClip: num('grad-clip'), batchSize: num('batch-size'),
    microBatchSize: Math.min(num('micro-batch-size'), num('batch-size')), maxLength: num('max-length'),
    maxPromptLength: num('max-prompt-length'), epochs: num('epochs'), maxSteps: a['max-steps'] as number | undefined,
    seed: num('seed'), evalData: dataFilesFlag(a, 'eval-data'), ...(a['max-eval-pairs'] !== undefined ? { maxEvalPairs: num('max-eval-pairs') } : {}), ...(a['cache-dir'] !== undefined ? { cacheDir: a['cache-dir'] as string } : {}), evalEvery: num('eval-every'),
    ...(num('eval-samples') > 0 ? { evalSamples: num('eval-samples'), evalSampleTokens: num('eval-sample-tokens') } : {}), saveEvery: num('save-every'),
    out: (a.out as string | undefined) ?? `runs/${loss}`, resume: Boolean(a.resume), refinePrompt: a['refine-prompt'] as string,
    noEos: a.eos === false, completionsInContext: Boolean(a['completions-in-context']), skipBadRows: Boolean(a['skip-bad-rows']), plainProgress: Boolean(a['plain-progress']),
    adapter: a.adapter as string | undefined, precision: a.precision as Precision,
    augPrecision: a['aug-precision'] as Precision | undefined, saveDtype: a['save-dtype'] as SaveDtype | undefined,
    keepModels: Boolean(a['keep-models']),
    ...(a['drop-last'] !== undefined ? { dropLast: Boolean(a['drop-last']) } : {}),
  };
}
