// `srk train`: the run loop. Reference log-probs first (cached), then optimizer steps over a
// seeded data order, a metrics line per step, periodic evaluation and checkpoints, SIGINT / SIGTERM and
// NaN handling, and the report at the end.
import { existsSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { Gpu } from '../engine/gpu.js';
import { Optimizer, type OptimizerConfig } from '../kernels/optimizer.js';
import { loadModel, type LoadedModel } from '../model/load.js';
import { EVAL_FILE, METRICS_FILE, RUN_CONFIG_FILE, MetricsLog, readEval, readRunConfig, writeFileAtomic, type MetricsRow } from '../report/metrics-log.js';
import { computeEvalMetrics, computeSftEvalMetrics, toEvalRow } from '../report/eval-metrics.js';
import { EVAL_PAIRS_FILE, readEvalPairs, writeEvalPairs } from '../report/eval-pairs.js';
import { runsFromDirs, writeReport } from '../report/html.js';
import { isSftPair, type TokenizedPair } from '../data/tokenize-pairs.js';
import { lrFactor } from './lr-schedule.js';
import { checkSaveTargets, findCheckpoint, keepModel, keptModelDir, loadOptimizerState, readTrainerState, saveCheckpoint, savedDtype, settleCheckpoint, type TrainerState } from './checkpoint.js';
import { checkReferenceFits, checkSameTokenizer, loadPairsForModel } from './dataset.js';
import { choosePrecisions } from './precision-choice.js';
import { describeModel, loadModelConfig } from '../model/config.js';
import { positionLimit } from '../model/rope.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { generationDefaults } from '../generate/generation-config.js';
import { EvalSampler } from './eval-samples.js';
import { SAMPLES_FILE, appendSamples, readSamples, trimSamples } from '../report/samples-log.js';
import { pairsHash, plainPairsHash, referenceLogps, savePartialReference, weightsHash, type ReferenceLogps } from './reference.js';
import { ScoringStopped, mixedHint, scorePairs } from './score.js';
import { trainStep } from './step.js';
import { TUNING_FILE, adapterName, loadTuning, saveTuning } from './tuning-file.js';
import { batchStart, epochOrder, pairsUsed } from './shuffle.js';
import { Progress, dueFrom, describeGpuMemory } from './progress.js';
import { acquireRunLock } from './run-lock.js';
import { sweepStaleTemps } from './stale-temps.js';
import { DEFAULT_EVAL_SAMPLE_TOKENS, defaultWeightDecay, isSrLoss, type TrainOptions } from './options.js';
import { isUserFacing } from '../errors.js';
import { dataFileList, dataLabel, type DataFiles } from '../data/data-files.js';

export class TrainingError extends Error { readonly userFacing = true; }

/** The reference's scoring failed (a non-finite log-prob: its pairs are named by index in the file's usable pairs). */
function refError(e: unknown, refDir: string, data: DataFiles): unknown {
  if (!(e instanceof Error) || !isUserFacing(e)) return e;
  return new TrainingError(`reference ${refDir} on ${dataLabel(data)}: ${e.message}`);
}

/**
 * An error of a run's evaluation or step, said with `what` failed and what is kept (`kept`). A TrainingError
 * says so itself; a bug in srk (a TypeError) keeps its stack, which cli/run.ts fail() shows.
 */
function runError(e: unknown, what: string, kept: string): unknown {
  if (e instanceof TrainingError || ((e instanceof TypeError || e instanceof ReferenceError) && !isUserFacing(e))) return e;
  return new TrainingError(`${what}: ${e instanceof Error ? e.message : String(e)}${kept ? `; ${kept}` : ''}`);
}
/** An evaluation that failed, named by its data and step, with where the weights are. */
const evalError = (e: unknown, data: DataFiles, step: number, saved: string | undefined): unknown =>
  runError(e, `eval on ${dataLabel(data)} at step ${step}`, saved ? `the weights of step ${step} are saved in ${saved}` : '');
/** A step that failed (a GPU error, a device lost, a tensor too large): what is kept, and how to go on from it. */
const stepError = (e: unknown, step: number, saved: string | undefined): unknown =>
  runError(e, `step ${step}`, saved ? `the last checkpoint, ${saved}, is intact: --resume continues from it` : 'no checkpoint was saved yet');

export interface TrainResult {
  out: string; steps: number; checkpoint: string; report: string; lastEval?: Record<string, unknown>;
  /** The signal that stopped the run early (its checkpoint saved): the CLI then exits 130 / 143, not 0. */
  interrupted?: 'SIGINT' | 'SIGTERM';
}

/** The exit status of a run stopped by a signal, as a shell reports one (128 + the signal's number). */
export const signalExitCode = (sig: 'SIGINT' | 'SIGTERM'): number => (sig === 'SIGTERM' ? 143 : 130);

/** A correlation for the log: '-' where it is undefined (NaN: judge scores all alike, say), as srk eval's table. */
const fixed3 = (v: number | undefined): string => (v !== undefined && Number.isFinite(v) ? v.toFixed(3) : '-');

/** A SIGTERM this soon after the first is the same request (sent twice: timeout(1), process-group signals). */
const SAME_SIGTERM_MS = 2000;

/** Options that must match for --resume to continue a run (others, like eval cadence, may change). */
export const PINNED = ['loss', 'beta', 'lambda', 'labelSmoothing', 'optimizer', 'weightDecay', 'lr', 'warmupSteps', 'lrSchedule', 'gradClip', 'batchSize', 'maxLength',
  'maxPromptLength', 'seed', 'refinePrompt', 'noEos', 'data', 'dropLast', 'sftPairTruncation', 'completionsInContext'] as const;
/** What a pinned option was in a run saved by an older srk (before it existed), from what that run recorded. */
const PINNED_BEFORE: Partial<Record<(typeof PINNED)[number], (recorded: Record<string, unknown>) => unknown>> = {
  lrSchedule: () => 'constant', dropLast: () => true, labelSmoothing: () => 0,
  weightDecay: (r) => defaultWeightDecay(r.optimizer as TrainOptions['optimizer']),
};
/** A pinned option as the resumed run recorded it (or as an srk from before the option ran it). */
function recordedOption(state: TrainerState, k: (typeof PINNED)[number]): unknown {
  return Object.hasOwn(state.options, k) ? state.options[k] : PINNED_BEFORE[k]?.(state.options);
}
/** A TrainOptions key as its flag: warmupSteps -> --warmup-steps. */
const flagName = (k: string) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/**
 * Refuses a --resume whose options differ from the run's on what its steps so far depended on (PINNED), by
 * flag. `o`: the options with the run's defaults settled (dropLast, weightDecay, sftPairTruncation).
 */
export function checkPinned(o: TrainOptions, state: TrainerState): void {
  for (const k of PINNED) {
    // The data file's content is checked by its pairs' hash (trainInDir): the same file by another path
    // (./x.jsonl, an absolute path, a moved copy) is the same run.
    if (k === 'data' && state.dataHash !== undefined) continue;
    if (k === 'sftPairTruncation') continue; // no flag: taken from the state
    // A run saved before it was recorded: its pairs' hash tells whether they tokenize alike.
    if (k === 'completionsInContext' && !Object.hasOwn(state.options, k)) continue;
    // SFT trains without them (they shape only --eval-data's margins, which may change between evals),
    // except the refine prompt of a run that tokenized its pairs with it (sftPairTruncation: in its data hash).
    if (o.loss === 'sft' && (k === 'beta' || k === 'lambda' || (k === 'refinePrompt' && !o.sftPairTruncation))) continue;
    const was = recordedOption(state, k);
    if (JSON.stringify(was) !== JSON.stringify(o[k])) {
      throw new TrainingError(`--resume: ${flagName(k)} is ${JSON.stringify(o[k])} but the run in ${o.out} used ${JSON.stringify(was)}`);
    }
  }
}

export async function train(o: TrainOptions, gpuIn?: Gpu): Promise<TrainResult> {
  mkdirSync(o.out, { recursive: true });
  const release = acquireRunLock(o.out); // one run per directory (run-lock.ts)
  try {
    return await trainInDir(o, gpuIn);
  } finally {
    release();
  }
}

async function trainInDir(o: TrainOptions, gpuIn?: Gpu): Promise<TrainResult> {
  // Recorded (trainer_state.json) as true or false, so srk eval and srk logprobs of the checkpoint tokenize as it did.
  o = { ...o, completionsInContext: o.completionsInContext === true };
  const progress = new Progress(o.plainProgress);
  const log = (s: string) => progress.log(s);
  checkSaveTargets(o.out, [{ flag: 'model', dir: o.model }, ...(o.refModel !== undefined ? [{ flag: 'ref-model', dir: o.refModel }] : [])]);
  const existing = o.resume ? settleCheckpoint(o.out) : findCheckpoint(o.out);
  if (existing && !o.resume) {
    throw new TrainingError(`${o.out} already holds a checkpoint (${existing}); pass --resume to continue it, or choose another --out`);
  }
  // A run that stopped before its first save (a crash, a NaN at step 3) left its metrics: what one
  // reads to see why. A new run there would start them over.
  // (An evaluation of the initial policy alone, a run stopped in its step-0 eval or samples, is nothing to keep.)
  const trainedBefore = (f: string) => f === METRICS_FILE ? statSync(path.join(o.out, f)).size > 0
    : readEval(path.join(o.out, f), { lenient: true, missingOk: true }).some((e) => e.step !== 0);
  const earlierMetrics = [METRICS_FILE, EVAL_FILE].filter((f) => existsSync(path.join(o.out, f)) && trainedBefore(f)).map((f) => path.join(o.out, f))[0];
  if (!existing && earlierMetrics && !o.resume) {
    throw new TrainingError(`${o.out} holds ${path.basename(earlierMetrics)} of an earlier run that saved no checkpoint; ` +
      'remove it (or the directory) to start over there, or choose another --out (--resume starts over, keeping them aside)');
  }
  // --resume of a run stopped before its first save (a job requeued after a kill): there is nothing to
  // continue, so it starts over; what the earlier attempt logged is kept aside, not overwritten (once the
  // run has passed its checks, where its files are opened: a refused run changes nothing).
  const keepEarlierAside = !existing && earlierMetrics !== undefined;
  const state: TrainerState | undefined = o.resume && existing ? readTrainerState(existing) : undefined;
  // --drop-last not given: a new run trains the partial batch; a resumed run keeps its own choice (one
  // from before the option dropped it).
  const recorded = state && recordedOption(state, 'dropLast');
  o = { ...o, dropLast: o.dropLast ?? (recorded as boolean | undefined) ?? false };
  const dropLast = o.dropLast;
  o = { ...o, weightDecay: o.weightDecay ?? defaultWeightDecay(o.optimizer) };
  // SFT truncation: prompt + chosen alone, except in a resumed SFT run of an srk before that (options.ts).
  if (o.loss === 'sft') {
    o = { ...o, sftPairTruncation: state ? (Object.hasOwn(state.options, 'sftPairTruncation') ? state.options.sftPairTruncation === true : true) : false };
  }
  // --max-eval-pairs: one eval.jsonl series is one set of held-out pairs, so a resume that evaluates keeps
  // the run's own N where not given (a different set is refused below, by the pairs' hash).
  const evalLimit = state?.evalHash !== undefined ? state.options.maxEvalPairs as number | undefined : undefined;
  const evalLimitGiven = o.maxEvalPairs;
  if (o.evalData && o.maxEvalPairs === undefined && evalLimit !== undefined) o = { ...o, maxEvalPairs: evalLimit };
  if (state && existing) {
    checkPinned(o, state);
    log(`resuming from ${existing} at step ${state.step}`);
  } else if (o.resume && !keepEarlierAside) {
    log(`--resume: no checkpoint in ${o.out}; starting a new run`);
  }

  const gpu = gpuIn ?? await Gpu.create({ adapter: o.adapter });
  let policy: LoadedModel | undefined;
  let optimizer: Optimizer | undefined;
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined;
  // From here on the device is destroyed on every way out (Dawn keeps a process alive until then).
  try {
    // The tuner's choices of an earlier run in this directory (same adapter): a resumed run dispatches
    // the same kernels, so its numbers continue the interrupted ones exactly (tuning-file.ts).
    const tuningFile = path.join(o.out, TUNING_FILE);
    const adapter = adapterName(gpu.adapterInfo);
    let tuneLoaded = 0;
    if (gpu.tuner) {
      const loaded = loadTuning(gpu.tuner.table, tuningFile, adapter, gpu.dawnSettings);
      if (typeof loaded === 'number') tuneLoaded = loaded;
      if (loaded !== undefined) log(typeof loaded === 'number' ? `tuner: ${loaded} kernel choices from ${tuningFile}` : `tuner: ${loaded}`);
    } else if (existsSync(tuningFile)) {
      log(`tuner off (SRK_TUNE=0, or no timestamps): ${tuningFile}'s choices are not used; the built-in tilings run`);
    }
    // Ctrl-C, and SIGTERM as a scheduler sends it before it kills a job (SLURM, Kubernetes, systemd): the
    // step finishes and a checkpoint is saved; the same signal again quits without saving.
    let interrupted: 'SIGINT' | 'SIGTERM' | undefined;
    let interruptedAt = 0;
    let training = false;
    // What a signal stops: a step finishes, an evaluation stops (its step's resumed run does it), its samples
    // finish; after the last step nothing is left to stop (the run ends as finished).
    let doing: 'step' | 'eval' | 'samples' | 'end' = 'step';
    let evalStopped = false;
    let lastSavedHere: string | undefined; // the last checkpoint, for the message of a run that quits without saving
    onSignal = (signal: NodeJS.Signals) => {
      const sig = signal === 'SIGTERM' ? 'SIGTERM' : 'SIGINT';
      if (!training) {
        // Reading data, hashing and scoring the reference, loading the policy, the first eval: nothing
        // is trained yet, so there is nothing to save and no reason to wait (the reference cache is
        // written whole or not at all; a pass under way saves its results so far to take up later).
        // A reference pass under way keeps what it has scored: the same command takes it up (reference.ts).
        const partial = savePartialReference();
        log(`${sig === 'SIGTERM' ? 'SIGTERM' : 'interrupt'} before this run's first step: nothing trained to save${partial ? `; ${partial}` : ''}; stopping`);
        process.exit(signalExitCode(sig));
      }
      if (interrupted) {
        // timeout(1) sends SIGTERM to the process and then to its process group, and a scheduler may signal every
        // process of a job: a SIGTERM close behind the first is the same request, not a second one.
        if (sig === 'SIGTERM' && interrupted === 'SIGTERM' && performance.now() - interruptedAt < SAME_SIGTERM_MS) return;
        log(`${sig === 'SIGTERM' ? 'SIGTERM' : 'interrupt'} again: quitting without saving; the last checkpoint is ${lastSavedHere ?? 'none (none was saved yet)'}`);
        process.exit(signalExitCode(sig));
      }
      interrupted = sig;
      interruptedAt = performance.now();
      const what = { step: 'finishing this step', eval: 'stopping the evaluation under way (a resumed run does it)', samples: 'finishing this evaluation\'s samples',
        end: 'finishing the run (its last step is done)' }[doing];
      log(`${sig === 'SIGTERM' ? 'SIGTERM' : 'interrupt'}: ${what}, ` +
        `then saving a checkpoint (${sig === 'SIGTERM' ? `a second SIGTERM, ${SAME_SIGTERM_MS / 1000} s or more after this one,` : 'Ctrl-C again'} quits without saving)`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const settings = { maxLength: o.maxLength, maxPromptLength: o.maxPromptLength, noEos: o.noEos, refinePrompt: o.refinePrompt, skipBadRows: o.skipBadRows,
      inContext: o.completionsInContext === true };
    const dataProgress = (l: string, d: number, t: number) => progress.update(l, d, t);
    const sr = isSrLoss(o.loss);
    const pairs = await loadPairsForModel(o.model, o.data, settings, { sft: o.loss === 'sft' && !o.sftPairTruncation, augmented: sr, notes: true },
      log, undefined, dataProgress);
    const dataHash = pairsHash(pairs);
    if (state?.dataHash !== undefined && state.dataHash !== dataHash) {
      throw new TrainingError(`--resume: the pairs read from ${dataLabel(o.data)} are not the ones the run in ${o.out} trained on ` +
        '(the file changed, or the files\' order, or what tokenizes it: the tokenizer, --max-length, --max-prompt-length, --refine-prompt, --no-eos, --completions-in-context, ' +
        'or a newer srk\'s prompts: a chat template\'s rendering without the tokenizer\'s special tokens, a prompt without the EOS add_eos_token appends); ' +
        'its data order and position would not mean the same pairs');
    }
    // Eval pairs: always augmented (the augmented accuracy). An SFT run's may be SFT rows (no rejected
    // response): then it scores their NLL alone, with no reference (computeSftEvalMetrics).
    const evalPairs = o.evalData
      ? await loadPairsForModel(o.model, o.evalData, settings, { augmented: true, sftIfAny: o.loss === 'sft', ...(o.maxEvalPairs ? { limit: { count: o.maxEvalPairs, flag: '--max-eval-pairs' } } : {}) },
        log, undefined, dataProgress) : undefined;
    const evalSft = evalPairs !== undefined && isSftPair(evalPairs[0]);
    // One eval.jsonl series is one set of held-out pairs: a resumed run evaluates on the pairs it did, or on
    // none (the series stops); other pairs would continue the curves as if they were the same measurement.
    // (The plain sequences only: an SFT run may change --refine-prompt, which shapes only the augmented ones.)
    const evalHash = evalPairs ? plainPairsHash(evalPairs) : state?.evalHash;
    if (evalPairs && state?.evalHash !== undefined && state.evalHash !== evalHash) {
      if (evalLimitGiven !== undefined && evalLimitGiven !== evalLimit) {
        throw new TrainingError(`--resume: with --max-eval-pairs ${evalLimitGiven} the pairs of --eval-data are not the ones the run in ${o.out} evaluated on ` +
          `(${evalLimit === undefined ? 'every usable pair of its --eval-data' : `its first ${evalLimit}`}): its eval.jsonl curves would join two sets as one; ` +
          `give ${evalLimit === undefined ? 'no --max-eval-pairs' : `--max-eval-pairs ${evalLimit}, or none`}`);
      }
      throw new TrainingError(`--resume: the pairs read from --eval-data ${dataLabel(o.evalData!)} are not the ones the run in ${o.out} evaluated on ` +
        '(another file, or the file changed, or what tokenizes it, a newer srk\'s prompt tokenization included: its eval.jsonl curves would join two sets as one); ' +
        `give the same --eval-data, or none, and score other data with srk eval --model ${existing}`);
    }
    // --eval-samples: greedy completions of the first eval prompts at each evaluation, stopped as the
    // checkpoint's generation_config.json says (eval-samples.ts).
    let sampler: EvalSampler | undefined;
    if (o.evalSamples && evalPairs) {
      const tok = await loadTokenizer(o.model);
      const { stopIds } = await generationDefaults(o.model, tok.eosTokenId);
      sampler = new EvalSampler(evalPairs, o.evalSamples, {
        maxNewTokens: o.evalSampleTokens ?? DEFAULT_EVAL_SAMPLE_TOKENS, stopIds, maxPositions: positionLimit(await loadModelConfig(o.model)).max,
        decode: (ids, skip) => tok.decode(ids, { skipSpecialTokens: skip }),
      });
      if (sampler.count < o.evalSamples) {
        log(`note: --eval-samples ${o.evalSamples}, and ${o.maxEvalPairs === evalPairs.length ? `--max-eval-pairs keeps ${sampler.count}` : `--eval-data has ${sampler.count}`} rows: sampling those`);
      }
    }
    const both = o.evalData ? dataFileList(o.evalData).filter((f) => dataFileList(o.data).some((d) => path.resolve(d) === path.resolve(f))) : [];
    if (both.length) log(`note: ${both.join(', ')} ${both.length > 1 ? 'are' : 'is'} in --data and --eval-data: the evaluation is on training data`);
    // The step's precision, the augmented pass's (Sr losses, and the augmented accuracy of --eval-data pairs)
    // where --aug-precision differs, and the tensor-core matmul's self-check (precision-choice.ts).
    const { main: precision, aug } = await choosePrecisions(gpu,
      { precision: o.precision ?? 'f32', augPrecision: o.augPrecision, augmented: isSrLoss(o.loss) || (evalPairs !== undefined && !evalSft),
        whyNotAugmented: `${o.loss} has no augmented pass and there is no --eval-data of pairs` }, log);
    const augMatmulPrecision = aug?.matmul;
    // The reference is the initial policy unless --ref-model; never a resumed checkpoint.
    const refDir = o.refModel ?? o.model;
    // The reference scores the training pairs (not for SFT) and the eval pairs: it must read their ids as the policy does.
    if (o.loss !== 'sft' || (evalPairs && !evalSft)) await checkSameTokenizer(o.model, refDir);
    if (path.resolve(refDir) !== path.resolve(o.model)) {
      await checkReferenceFits(o.model, refDir, [...(o.loss !== 'sft' ? [{ pairs, augmented: sr }] : []), ...(evalPairs && !evalSft ? [{ pairs: evalPairs, augmented: true }] : [])]);
    }
    const refReq = {
      refDir, microBatch: o.microBatchSize, cacheDir: o.cacheDir ?? path.join(o.out, 'cache'),
      settings, log, progress: (l: string, d: number, t: number) => progress.update(l, d, t), progressStart: (l: string, d: number) => progress.start(l, d), augMatmulPrecision,
    };
    // The reference's weights (hashed for its log-prob cache anyway, once per process): a resumed run
    // must keep the reference it started with, wherever its directory now is.
    const refHash = o.loss === 'sft' ? undefined : await weightsHash(refDir, progress.bytes(`hash reference ${refDir}`));
    if (refHash !== undefined && state?.refHash !== undefined && state.refHash !== refHash) {
      throw new TrainingError(`--resume: the reference ${refDir} is not the model the run in ${o.out} started with (its weights differ)`);
    }
    // Written once the run is known to be what it says (a refused --resume leaves the directory as it was).
    // The options as given, and the precisions that ran where a fall back (no tensor cores, a failed
    // self-check) changed them: the report's settings table shows both.
    const ran: Record<string, unknown> = { precisionUsed: precision.precision, ...(aug ? { augPrecisionUsed: aug.precision } : {}) };
    // A resume in another precision (another machine, --precision or SRK_MIXED changed: precision is not pinned)
    // is said, and the earlier steps' precision kept beside this process's (the report shows both).
    const before = state ? readRunConfig(o.out) : undefined;
    const earlier = before?.earlierPrecisionUsed;
    const changed = before && ['precisionUsed', 'augPrecisionUsed'].filter((k) => before[k] !== undefined && ran[k] !== undefined && before[k] !== ran[k]);
    if (before && changed && changed.length) {
      const what = (c: Record<string, unknown>) => changed.map((k) => `${k === 'precisionUsed' ? '' : 'augmented pass '}${String(c[k])}`).join(', ');
      log(`note: --resume: this run's last process (to step ${state!.step}) ran in ${what(before)} precision; from here it runs in ${what(ran)} ` +
        '(the reference log-probs are scored again in it): the run\'s steps and evaluations differ in precision');
      ran.earlierPrecisionUsed = `${typeof earlier === 'string' ? `${earlier}; ` : ''}${what(before)} to step ${state!.step}`;
    } else if (typeof earlier === 'string') ran.earlierPrecisionUsed = earlier;
    const P = pairs.length;
    const B = Math.min(o.batchSize, P);
    if (B < o.batchSize) log(`only ${P} pairs: batch size ${B}`);
    // transformers' Trainer trains an epoch's last, partial batch (dataloader_drop_last false): a
    // shorter step whose loss is the mean over its own pairs; --drop-last skips it.
    const stepsPerEpoch = dropLast ? Math.max(1, Math.floor(P / B)) : Math.ceil(P / B);
    const totalSteps = o.maxSteps ?? o.epochs * stepsPerEpoch;
    if (state && state.step > totalSteps) {
      throw new TrainingError(`--resume: the run in ${o.out} is at step ${state.step}, past the ${totalSteps} steps asked ` +
        `(${o.maxSteps !== undefined ? `--max-steps ${o.maxSteps}` : `--epochs ${o.epochs} of ${stepsPerEpoch} steps`}): nothing to train; its model is in ${existing}`);
    }
    // Temp files of writes a killed srk left (stale-temps.ts), once the run has passed its checks and before
    // it writes anything (on a disk they filled, the first write would fail): the run directory is this
    // run's (its lock keeps other runs out); a --cache-dir may be shared with live runs.
    const cacheDir = o.cacheDir ?? path.join(o.out, 'cache');
    const stale = [...sweepStaleTemps(o.out, true).map((f) => path.join(o.out, f)),
      ...sweepStaleTemps(cacheDir, o.cacheDir === undefined).map((f) => path.join(cacheDir, f))];
    if (stale.length) log(`removed ${stale.length} temp file(s) a killed srk left: ${stale.join(', ')}`);
    // With the steps the run plans (plannedSteps): the report reads a run that ended short of them
    // (stopped, or still training) as such. Atomic: a run killed meanwhile leaves the old file or the new.
    // A name only where one was given (the demo's stages): srk report names other runs by their directories,
    // which tell a sweep's runs apart where their loss does not.
    writeFileAtomic(path.join(o.out, RUN_CONFIG_FILE), `${JSON.stringify({ ...o, ...ran, plannedSteps: totalSteps }, null, 2)}\n`);
    // The pairs the steps to run train on: every one, unless --max-steps ends the run inside its first epoch
    // (or a resumed run is near its end). The reference scores those alone: a run of a few steps on a large
    // data set does not wait for all of it first.
    const used = pairsUsed(P, B, dropLast, o.seed, { epoch: state?.epoch ?? 0, position: state?.position ?? 0 }, state?.step ?? 0, totalSteps);
    const ref: ReferenceLogps | undefined = o.loss === 'sft' ? undefined
      : await referenceLogps(gpu, { ...refReq, pairs, augmented: sr, label: 'train', needed: used }).catch((e: unknown) => { throw refError(e, refDir, o.data); });
    const evalRef = evalPairs && !evalSft
      ? await referenceLogps(gpu, { ...refReq, pairs: evalPairs, augmented: true, label: 'eval' }).catch((e: unknown) => { throw refError(e, refDir, o.evalData!); })
      : undefined;

    const startDir = state && existing ? existing : o.model;
    policy = await loadModel(gpu, startDir, { grads: true, onProgress: progress.bytes(`load policy ${startDir}`) });
    log(`policy ${startDir}: ${describeModel(policy.cfg)}`);
    const rawConfig = policy.cfg.raw;
    const optCfg: OptimizerConfig = { type: o.optimizer, weightDecay: o.weightDecay };
    const paramList = policy.params.specs.map((s) => policy!.params.get(s.name));
    const gradList = policy.params.specs.map((s) => policy!.params.grad(s.name));
    optimizer = new Optimizer(gpu, optCfg, paramList, { maxGradNorm: o.gradClip > 0 ? o.gradClip : undefined });
    if (state && existing) await loadOptimizerState(gpu, existing, policy.params, optimizer);

    let step = state?.step ?? 0;
    let epoch = state?.epoch ?? 0;
    let position = state?.position ?? 0;
    let pairsSeen = state?.pairsSeen ?? 0;
    let tuneSaved = tuneLoaded; // tuner choices in tuning.json so far (engine/tuner.ts)
    let tuneLogged = false;
    let tuneProgress = -1; // the tuner's progress after the last step (TuneTable.progress)
    if (keepEarlierAside) {
      const stamp = new Date().toISOString().replace(/[:.]/g, '-');
      const kept = [METRICS_FILE, EVAL_FILE, SAMPLES_FILE, EVAL_PAIRS_FILE].filter((f) => existsSync(path.join(o.out, f)));
      for (const f of kept) renameSync(path.join(o.out, f), path.join(o.out, `${f}.unsaved-${stamp}`));
      log(`--resume: the earlier run in ${o.out} saved no checkpoint; it starts over, its ${kept.join(', ')} kept as *.unsaved-${stamp}`);
    }
    // A run killed between a save and linking its model (--keep-models) links it now.
    if (state && existing && o.keepModels && !existsSync(keptModelDir(o.out, state.step))) keepModel(o.out, existing, state.step);
    const metrics = MetricsLog.open(o.out, state ? { resumeStep: step } : { fresh: true });
    // The per-pair numbers of an evaluation past the checkpoint go the way of its eval.jsonl line.
    if (state && (readEvalPairs(o.out)?.step ?? -1) > step) rmSync(path.join(o.out, EVAL_PAIRS_FILE), { force: true });
    if (state) trimSamples(o.out, step); else for (const f of [SAMPLES_FILE, EVAL_PAIRS_FILE]) rmSync(path.join(o.out, f), { force: true });
    const evalMaxRecord = evalPairs ? o.maxEvalPairs : evalLimit;
    const snapshot = (): TrainerState => ({
      step, pairsSeen, epoch, position, seed: o.seed, dataHash, refHash, totalSteps, savedAt: new Date().toISOString(),
      ...(evalHash ? { evalHash } : {}),
      // The held-out set's --max-eval-pairs goes with its hash: kept by a resume without --eval-data too.
      options: { ...Object.fromEntries(PINNED.map((k) => [k, o[k]])), ...(evalMaxRecord !== undefined ? { maxEvalPairs: evalMaxRecord } : {}) },
    });
    let lastSaved = existing && state ? existing : undefined;
    lastSavedHere = lastSaved;
    let lastSavedStep = state?.step;
    // How long the last save and evaluation took: the training ETA adds those still due (dueSeconds).
    let saveSeconds = 0; let evalSeconds = 0;
    const save = async (): Promise<string> => {
      // This step's weights are saved already (a finished run resumed): saved again only in another
      // --save-dtype, and linked under OUT/models where --keep-models is new.
      if (lastSaved && lastSavedStep === step && savedDtype(lastSaved) === (o.saveDtype ?? 'float32')) {
        if (o.keepModels && !existsSync(keptModelDir(o.out, step))) keepModel(o.out, lastSaved, step);
        return lastSaved;
      }
      metrics.flush(); // the checkpoint's metrics lines are on disk before it is
      const t0 = performance.now();
      try {
        lastSaved = await saveCheckpoint(gpu, { out: o.out, params: policy!.params, optimizer, rawConfig, sourceDir: o.model, state: snapshot(), dtype: o.saveDtype, log,
          onProgress: progress.bytes('save checkpoint') });
      } catch (e) {
        throw new TrainingError(`saving the checkpoint of step ${step} in ${o.out} failed: ${e instanceof Error ? e.message : String(e)}; ` +
          (lastSaved ? `${lastSaved} (step ${lastSavedStep}) is intact` : 'no checkpoint was saved before'));
      }
      lastSavedStep = step;
      lastSavedHere = lastSaved;
      saveSeconds = (performance.now() - t0) / 1000;
      if (o.keepModels) keepModel(o.out, lastSaved, step);
      return lastSaved;
    };
    let lastEval: Record<string, unknown> | undefined;
    // An evaluation stopped by a signal (scorePairs `stop`) writes nothing: the resumed run evaluates that step.
    const evaluate = async () => {
      const was = doing;
      doing = 'eval';
      const t0 = performance.now();
      try {
        await evaluateMetrics();
        doing = 'samples';
        await sampleNow();
        evalSeconds = (performance.now() - t0) / 1000;
      } catch (e) {
        if (!(e instanceof ScoringStopped)) throw e;
        evalStopped = true;
        log(`the evaluation at step ${step} stopped; a resumed run does it`);
      } finally {
        doing = was;
      }
    };
    const stop = () => interrupted !== undefined;
    const sampleNow = async () => {
      if (!sampler) return;
      const rows = await sampler.sample(gpu, policy!.cfg, policy!.params, step, pairsSeen);
      appendSamples(o.out, rows);
      // Whitespace runs as one space, on one line; a completion of whitespace alone as it is ("\n\n\n", not "").
      const raw = rows[0].completion;
      const first = raw.trim() === '' ? raw : raw.replace(/\s+/g, ' ').trim();
      log(`samples at step ${step}: ${rows.length} greedy completions in ${path.join(o.out, SAMPLES_FILE)} (the first: ${JSON.stringify(first.length > 60 ? `${first.slice(0, 60)}...` : first)})`);
    };
    const evaluateMetrics = async () => {
      if (evalPairs && evalSft) {
        const plain = await scorePairs(gpu, policy!.model, evalPairs, { microBatch: o.microBatchSize, ...progress.pass('eval'), stop });
        const m = computeSftEvalMetrics(plain.chosen, plain.chosenTokens);
        const row = toEvalRow(m, { step, pairs_seen: pairsSeen, split: 'eval' });
        metrics.eval(row);
        lastEval = row as unknown as Record<string, unknown>;
        log(`eval at step ${step}: chosen NLL ${m.nll_chosen!.toFixed(4)} per token (${m.n} SFT rows)`);
        return;
      }
      if (!evalPairs || !evalRef) return;
      const plain = await scorePairs(gpu, policy!.model, evalPairs, { microBatch: o.microBatchSize, ...progress.pass('eval'), stop });
      const aug = await scorePairs(gpu, policy!.model, evalPairs, { microBatch: o.microBatchSize, augmented: true, matmulPrecision: augMatmulPrecision,
        ...progress.pass('eval (augmented)'), stop });
      const hasScores = evalPairs.every((p) => p.scoreChosen !== undefined && p.scoreRejected !== undefined);
      const m = computeEvalMetrics({
        policyChosen: plain.chosen, policyRejected: plain.rejected, refChosen: evalRef.plain.chosen, refRejected: evalRef.plain.rejected,
        policyChosenAug: aug.chosen, policyRejectedAug: aug.rejected, refChosenAug: evalRef.aug!.chosen, refRejectedAug: evalRef.aug!.rejected,
        beta: o.beta, chosenTokens: plain.chosenTokens,
        ...(hasScores ? { scoreChosen: evalPairs.map((p) => p.scoreChosen!), scoreRejected: evalPairs.map((p) => p.scoreRejected!) } : {}),
      });
      const row = toEvalRow(m, { step, pairs_seen: pairsSeen, split: 'eval' });
      metrics.eval(row);
      writeEvalPairs(o.out, step, m.margins, m.augMargins, evalPairs);
      lastEval = row as unknown as Record<string, unknown>;
      // (Ties count as wrong: at step 0, where the policy is the reference, every pair is one.)
      const ties = m.ties ? `; ${m.ties} of ${m.n} margins exactly 0, counted wrong` : '';
      log(`eval at step ${step}: margin ${m.margin.toFixed(4)} (±${m.margin_se.toFixed(4)}), accuracy ${m.accuracy.toFixed(3)} (±${m.accuracy_se.toFixed(3)}${ties}), aug accuracy ${m.aug_accuracy?.toFixed(3) ?? '-'}, ` +
        `chosen NLL ${m.nll_chosen?.toFixed(4) ?? '-'} per token` +
        (m.pearson !== undefined ? `, pearson ${fixed3(m.pearson)}, spearman ${fixed3(m.spearman)}, kendall ${fixed3(m.kendall)}` : ''));
    };

    const unit = o.loss === 'sft' ? 'rows' : 'pairs';
    log(`training ${o.loss} on ${P} ${unit}: ${totalSteps} steps of ${B} ${unit} (micro-batches of ${Math.min(o.microBatchSize, B)}), ` +
      `${o.optimizer} lr ${o.lr}${o.weightDecay ? `, weight decay ${o.weightDecay}` : ''}${o.loss === 'sft' ? '' : `, beta ${o.beta}`}${sr ? `, lambda ${o.lambda}` : ''}${o.labelSmoothing ? `, label smoothing ${o.labelSmoothing}` : ''}; ${policy.params.count.toLocaleString()} parameters`);
    // A half-precision model saved as float32 (--save-dtype's default) doubles on disk: said, with the flag that keeps it.
    const sourceDtype = rawConfig.dtype ?? rawConfig.torch_dtype;
    if (o.saveDtype === undefined && (sourceDtype === 'bfloat16' || sourceDtype === 'float16')) {
      log(`note: checkpoints are saved as float32 (--save-dtype's default, which keeps every update), twice the size of the ${sourceDtype} model; ` +
        `--save-dtype ${sourceDtype} keeps its dtype`);
    }
    if (state?.totalSteps !== undefined && state.totalSteps !== totalSteps && (o.lrSchedule ?? 'constant') !== 'constant') {
      log(`note: this run now ends at step ${totalSteps} (it planned ${state.totalSteps}); the ${o.lrSchedule} lr decay follows the new end from here`);
    }
    if (P % B !== 0) {
      log(dropLast ? `${P % B} of the ${P} ${unit} sit out each epoch (its last, partial batch, --drop-last; a new permutation every epoch)`
        : `each epoch's last step trains the ${P % B} ${unit} left (a shorter batch; --drop-last skips it)`);
    }
    // The initial policy's evaluation; and in a resumed run, one its cadence owed at the checkpoint's step
    // (a run stopped by a signal saves before it evaluates: a scheduler's grace period is for the save).
    const evalDue = step === 0 || (o.evalEvery > 0 && step % o.evalEvery === 0);
    if (evalPairs && evalDue && step < totalSteps && !readEval(path.join(o.out, EVAL_FILE), { lenient: true, missingOk: true }).some((e) => e.step === step)) {
      try { await evaluate(); } catch (e) { throw evalError(e, o.evalData!, step, step === 0 ? undefined : lastSaved); }
    } else if (state && sampler && step < totalSteps && readEval(path.join(o.out, EVAL_FILE), { lenient: true, missingOk: true }).some((e) => e.step === step)) {
      // The checkpoint's evaluation is done, but its samples were cut short (a full disk, a kill while they
      // were written): taken again, so the step has all of them.
      const here = (readSamples(o.out) ?? []).filter((r) => r.step === step).length;
      if (here < sampler.count) {
        trimSamples(o.out, step - 1);
        try { await sampleNow(); } catch (e) { throw evalError(e, o.evalData!, step, lastSaved); }
      }
    }
    // The evaluations and saves still due when a step is reported (the step's own, before they run, and the
    // later ones: dueFrom), at the last one's duration: an ETA from the steps' rate alone ran short by all of them.
    const dueSeconds = () => (evalPairs ? dueFrom(step, totalSteps, o.evalEvery) * evalSeconds : 0) + dueFrom(step, totalSteps, o.saveEvery) * saveSeconds;
    training = true;
    let memoryLogged = false;
    progress.start(`train ${o.name ?? o.loss}`, step); // its first report counts the first step's time
    let order = epochOrder(P, o.seed, epoch);
    while (step < totalSteps && !interrupted) {
      const at = batchStart(P, B, dropLast, { epoch, position });
      if (at.epoch !== epoch) { ({ epoch, position } = at); order = epochOrder(P, o.seed, epoch); }
      const end = Math.min(position + B, P);
      const indices = order.slice(position, end);
      const batchPairs: TokenizedPair[] = Array.from(indices, (i) => pairs[i]);
      const lr = o.lr * lrFactor(step, o.warmupSteps, o.lrSchedule ?? 'constant', totalSteps);
      const t0 = performance.now();
      const r = await trainStep(gpu, policy.model, optimizer, gradList, { pairs: batchPairs, indices, ref },
        { loss: o.loss, beta: o.beta, lambda: o.lambda, labelSmoothing: o.labelSmoothing, microBatchSize: o.microBatchSize, lr, t: step + 1, augMatmulPrecision })
        .catch((e: unknown) => { throw stepError(e, step + 1, lastSaved); });
      const secs = (performance.now() - t0) / 1000;
      if (!Number.isFinite(r.loss) || !Number.isFinite(r.gradNorm)) {
        throw new TrainingError(`step ${step + 1}: the loss is ${r.loss} and the gradient norm ${r.gradNorm}; stopping. ` +
          `The weights of this step were not saved; the last good checkpoint is ${lastSaved ?? 'none (no checkpoint was saved yet)'}.` +
          mixedHint(gpu, isSrLoss(o.loss) ? augMatmulPrecision : undefined));
      }
      step++; pairsSeen += end - position; position = end;
      if (gpu.tuner) {
        // Saved whenever new choices are made (a choice can open others, and a longer micro-batch can
        // bring a new shape bucket); logged once the first round of choices is complete: nothing open,
        // and a step that opened or closed no key (a closed choice opens its inner keys a step later).
        const d = gpu.tuner.table.decisions();
        if (d.length > tuneSaved) tuneSaved = saveTuning(gpu.tuner.table, tuningFile, adapter, gpu.dawnSettings);
        const tuneNow = gpu.tuner.table.progress;
        const settled = !gpu.tuner.open && tuneNow === tuneProgress;
        tuneProgress = tuneNow;
        if (settled && !tuneLogged && d.length > tuneLoaded) {
          tuneLogged = true;
          log(`tuner: ${d.length} kernel choices, ${d.filter((x) => x.chosen !== 0).length} differ from the built-in rule (${tuningFile})`);
        }
      }
      const row: MetricsRow = {
        step, pairs_seen: pairsSeen, loss: r.loss, margin: r.margin, accuracy: r.accuracy, aug_accuracy: r.augAccuracy,
        reward_chosen: r.rewardChosen, reward_rejected: r.rewardRejected, logp_chosen: r.logpChosen, logp_rejected: r.logpRejected,
        grad_norm: r.gradNorm, lr, tokens_per_s: r.tokens / secs, pairs_per_s: batchPairs.length / secs,
      };
      // (A line that cannot be written, a full disk: the step's weights are not saved, the last checkpoint stands.)
      try { metrics.step(row); } catch (e) { throw stepError(e, step, lastSaved); }
      progress.update(`train ${o.name ?? o.loss}`, step, totalSteps,
        `loss ${r.loss.toFixed(4)}${r.accuracy !== null ? ` acc ${r.accuracy.toFixed(2)}` : ''}${r.margin !== null ? ` margin ${r.margin.toFixed(3)}` : ''}`,
        step < totalSteps ? dueSeconds() : 0);
      // How much GPU memory the run takes, once its shapes have all run (the reference pass, a step): what
      // tells a user with a smaller card before a long run whether it fits, and which flags to turn.
      if (!memoryLogged) { memoryLogged = true; log(`GPU memory after this process's first step: ${describeGpuMemory(gpu.pool)}`); }
      if (o.evalEvery > 0 && step % o.evalEvery === 0 && step < totalSteps && !interrupted) {
        // A pair the trained policy scores as non-finite on the eval data (f16 overflow, say) ends the
        // run, but the weights that trained with finite losses are saved first.
        try { await evaluate(); } catch (e) { throw evalError(e, o.evalData!, step, await save()); }
      }
      if (o.saveEvery > 0 && step % o.saveEvery === 0 && step < totalSteps) log(`checkpoint at step ${step}: ${await save()}`);
    }
    // Past the last step: a signal now leaves a finished run (unless it stops the final evaluation).
    if (step >= totalSteps) doing = 'end';
    // A run resumed after its final save has already evaluated this step: do not log it twice.
    const evaluatedHere = readEval(path.join(o.out, EVAL_FILE), { lenient: true, missingOk: true }).some((e) => e.step === step);
    if (interrupted) {
      // Stopped before or in the last step: its evaluation, if owed, is left to the resumed run.
      if (evalPairs && !evaluatedHere) evalStopped = true;
    } else if (evalPairs && !evaluatedHere) {
      try { await evaluate(); } catch (e) { throw evalError(e, o.evalData!, step, await save()); }
    } else if (sampler && !(readSamples(o.out) ?? []).some((r) => r.step === step)) {
      // Evaluated here before (a finished run resumed), but without --eval-samples then: its samples now.
      try { await sampleNow(); } catch (e) { throw evalError(e, o.evalData!, step, await save()); }
    }
    const dir = await save();
    metrics.close();
    // The report is drawn from files already saved: one that cannot be written (a full disk) is said, and
    // the run, its checkpoint saved, still ends as it did (srk report draws it later).
    let report: string;
    try {
      report = writeReport(o.out, { title: `srk train: ${o.name ?? o.loss}`, runs: runsFromDirs([{ name: o.name ?? o.loss, dir: o.out }]) }).html;
    } catch (e) {
      if (!isUserFacing(e)) throw e;
      log(`warning: ${(e as Error).message}: no report; srk report ${o.out} --out ${o.out} draws it`);
      report = '(not written)';
    }
    if (interrupted && (step < totalSteps || evalStopped)) {
      log(`interrupted at step ${step}: checkpoint saved in ${dir}; continue with --resume${evalStopped && step >= totalSteps ? ' (it evaluates this step)' : ''}; report ${report}`);
      return { out: o.out, steps: step, checkpoint: dir, report, interrupted };
    }
    log(`done: ${step} step${step === 1 ? '' : 's'}; model in ${dir}; report ${report}; GPU memory ${describeGpuMemory(gpu.pool)}`);
    return { out: o.out, steps: step, checkpoint: dir, report, lastEval };
  } finally {
    if (onSignal) { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
    try {
      optimizer?.release();
      if (policy) { policy.model.destroy(); policy.params.free(); }
    } finally {
      // Whatever the release threw: Dawn keeps a process alive until its device is destroyed.
      if (!gpuIn) await gpu.destroy();
    }
  }
}
