// `srk eval`: preference metrics of a policy against a reference on a data file (../shared/notes/losses.md
// §5.1, src/report/eval-metrics.ts): mean margin beta*h, accuracy [h > 0], augmented accuracy
// [Delta > 0], mean implicit rewards, and, when every row carries judge scores (UltraFeedback's
// score_chosen / score_rejected), Pearson, Spearman and Kendall tau-b between the per-pair margins
// and the score differences.
//
// Both models score the same tokenized pairs (the policy's tokenizer), plain and augmented; the
// reference is scored first and freed before the policy is loaded, so only one model is on the GPU
// at a time. Without --ref-model the reference is the policy itself: margins are then exactly 0.
import path from 'node:path';
import { whyUncorrelated } from '../losses/correlation.js';
import { runReference, withRunSettings } from './run-settings.js';
import type { CommandModule } from 'yargs';
import type { Gpu } from '../engine/gpu.js';
import { isSftPair, type TokenizedPair } from '../data/tokenize-pairs.js';
import { dataFileList, dataLabel, type DataFiles } from '../data/data-files.js';
import { writeEvalPairsFile } from '../report/eval-pairs.js';
import { describeModel } from '../model/config.js';
import { loadModel } from '../model/load.js';
import { computeEvalMetrics, computeSftEvalMetrics, formatCell, formatEvalTable, type EvalMetrics } from '../report/eval-metrics.js';
import { checkReferenceFits, checkSameTokenizer, loadPairsForModel } from '../train/dataset.js';
import { checkOutFlag } from '../generate/resumable-output.js';
import { referenceLogps, savePartialReference } from '../train/reference.js';
import { signalExitCode } from '../train/trainer.js';
import { scorePairs, type PairLogps } from '../train/score.js';
import { Progress } from '../train/progress.js';
import { TRAIN_DEFAULTS } from '../train/options.js';
import { checkDirFlag, checkPathFlag, withGpu } from './run.js';
import { freeModel, scoringFlags, scoringSettingsFrom, type ScoringSettings } from './logprobs.js';
import { dataError, userError } from '../errors.js';

export interface EvalOptions extends ScoringSettings {
  refModel?: string; beta: number; json: boolean; skipBadRows: boolean; cacheDir?: string;
  /** A CSV of each pair's margin, augmented margin and judge scores (eval-pairs.ts; pairs only). */
  pairsOut?: string;
  /** Only the first this many usable pairs of the data (--max-pairs). */
  maxPairs?: number;
  /** Said in the notes: the settings taken from the run that trained --model (run-settings.ts). */
  runNote?: string;
}

export interface EvalReport {
  model: string;
  ref_model: string;
  /** The data file, or the files read as one. */
  data: DataFiles;
  beta: number;
  /** How the pairs were tokenized (the flags, or the run's where --model is a training checkpoint). */
  max_length: number; max_prompt_length: number; no_eos: boolean; in_context: boolean;
  n: number;
  margin: number | null;
  accuracy: number | null;
  aug_accuracy: number | null;
  /** Pairs with a margin (augmented margin) of exactly 0: wrong answers to the accuracies, as in TRL (null for
   *  SFT rows, which have no margins). */
  ties: number | null;
  aug_ties: number | null;
  /** Standard errors of margin, accuracy and aug_accuracy over the pairs (eval-metrics.ts). */
  margin_se: number | null;
  accuracy_se: number | null;
  aug_accuracy_se: number | null;
  aug_margin: number | null;
  reward_chosen: number | null;
  reward_rejected: number | null;
  /** The policy's negative log-likelihood per chosen token. */
  nll_chosen: number | null;
  pearson?: number | null;
  spearman?: number | null;
  kendall?: number | null;
  /** Pairs with judge scores (correlations need all of them). */
  scored_pairs: number;
  /** Lines of the data file skipped as bad (--skip-bad-rows): `n` counts only the usable pairs. */
  skipped_rows: number;
  reference_is_policy: boolean;
  /** The data were SFT rows (no rejected response): nll_chosen alone is defined. */
  sft_rows: boolean;
  notes: string[];
}

interface PlainAug { plain: PairLogps; aug: PairLogps }

async function scoreModel(gpu: Gpu, dir: string, pairs: readonly TokenizedPair[], microBatch: number, label: string, progress: Progress): Promise<PlainAug> {
  const lm = await loadModel(gpu, dir, { onProgress: progress.bytes(`load ${label} ${dir}`) });
  progress.log(`${label} ${dir}: ${describeModel(lm.cfg)}`); // what was read, as srk train says it
  try {
    const plain = await scorePairs(gpu, lm.model, pairs, { microBatch, ...progress.pass(label) });
    const aug = await scorePairs(gpu, lm.model, pairs, { microBatch, augmented: true, ...progress.pass(`${label} (augmented)`) });
    return { plain, aug };
  } finally {
    freeModel(gpu, lm);
  }
}

const fin = (v: number | null | undefined): number | null => (v === null || v === undefined || !Number.isFinite(v) ? null : v);

export function evalReport(m: EvalMetrics, o: EvalOptions, refDir: string, sameRef: boolean, scored: number, notes: string[], skipped = 0): EvalReport {
  const r: EvalReport = {
    model: o.model, ref_model: refDir, data: o.data, beta: o.beta,
    max_length: o.maxLength, max_prompt_length: o.maxPromptLength, no_eos: o.noEos, in_context: o.inContext, n: m.n,
    margin: fin(m.margin), accuracy: fin(m.accuracy), aug_accuracy: fin(m.aug_accuracy), ties: m.sft ? null : m.ties, aug_ties: m.sft ? null : m.aug_ties, aug_margin: fin(m.aug_margin),
    margin_se: fin(m.margin_se), accuracy_se: fin(m.accuracy_se), aug_accuracy_se: fin(m.aug_accuracy_se),
    reward_chosen: fin(m.reward_chosen), reward_rejected: fin(m.reward_rejected), nll_chosen: fin(m.nll_chosen),
    scored_pairs: scored, skipped_rows: skipped, reference_is_policy: sameRef, sft_rows: m.sft === true, notes,
  };
  if (m.pearson !== undefined) { r.pearson = fin(m.pearson); r.spearman = fin(m.spearman); r.kendall = fin(m.kendall); }
  // Ties, said in the notes (JSON's too): accuracy counts them as wrong.
  if (!r.sft_rows && !sameRef) {
    r.notes = [
      ...(m.ties ? [`${m.ties} of ${m.n} pairs have a margin of exactly 0 (the policy and the reference agree on both responses, or the responses are the same tokens): accuracy counts them as wrong, as TRL's rewards/accuracies does`] : []),
      ...(m.aug_ties ? [`${m.aug_ties} of ${m.n} augmented margins are exactly 0: aug acc counts them as wrong`] : []),
      ...notes,
    ];
  }
  return r;
}

export async function runEval(o: EvalOptions): Promise<EvalReport> {
  const progress = new Progress();
  const log = (s: string) => progress.log(s);
  const refDir = o.refModel ?? o.model;
  const sameRef = path.resolve(refDir) === path.resolve(o.model);
  const settings = {
    maxLength: o.maxLength, maxPromptLength: o.maxPromptLength, noEos: o.noEos, refinePrompt: o.refinePrompt, skipBadRows: o.skipBadRows, inContext: o.inContext,
  };
  let pairs: TokenizedPair[];
  let skipped = 0;
  try {
    pairs = await loadPairsForModel(o.model, o.data, settings, { augmented: true, sftIfAny: true, notes: true, ...(o.maxPairs ? { limit: { count: o.maxPairs, flag: '--max-pairs' } } : {}) }, log, (read) => { skipped = read.badRows; },
      (l, d, t) => progress.update(l, d, t));
    if (!sameRef && !isSftPair(pairs[0])) {
      await checkSameTokenizer(o.model, refDir);
      await checkReferenceFits(o.model, refDir, [{ pairs, augmented: true }]);
    }
  } catch (e) {
    throw dataError(e);
  }
  const notes: string[] = o.runNote ? [o.runNote] : [];
  if (skipped > 0) notes.push(`${skipped} bad lines of ${dataLabel(o.data)} skipped (--skip-bad-rows)${o.maxPairs ? '' : `; the metrics are over the other ${pairs.length} pairs`}`);
  if (isSftPair(pairs[0])) return evalSftRows(o, pairs, refDir, sameRef, notes, skipped, progress);
  return withGpu({ adapter: o.adapter }, async (gpu) => {
    const t0 = performance.now();
    let ref: PlainAug;
    let policy: PlainAug;
    if (sameRef) {
      policy = await scoreModel(gpu, o.model, pairs, o.microBatchSize, 'policy', progress);
      ref = policy;
      const theRunsRef = runReference(o.model);
      notes.push('the reference is the policy itself (no --ref-model): margins and rewards are 0 and accuracies 0 by construction' +
        (theRunsRef !== undefined ? `; the run that trained ${o.model} trained against ${theRunsRef}: --ref-model ${theRunsRef} scores its margins` : ''));
      if (o.cacheDir) notes.push(`--cache-dir ${o.cacheDir} unused: there is no separate reference to cache`);
    } else {
      if (o.cacheDir) {
        const r = await referenceLogps(gpu, {
          refDir, pairs, augmented: true, microBatch: o.microBatchSize, cacheDir: o.cacheDir, settings, label: 'eval',
          log, progress: (l, d, t) => progress.update(l, d, t), progressStart: (l, d) => progress.start(l, d),
        });
        ref = { plain: r.plain, aug: r.aug! };
      } else {
        ref = await scoreModel(gpu, refDir, pairs, o.microBatchSize, 'reference', progress);
      }
      policy = await scoreModel(gpu, o.model, pairs, o.microBatchSize, 'policy', progress);
    }
    const scored = pairs.filter((p) => p.scoreChosen !== undefined && p.scoreRejected !== undefined).length;
    const withScores = scored === pairs.length;
    if (scored > 0 && !withScores) notes.push(`only ${scored} of ${pairs.length} pairs carry judge scores: no correlations`);
    const m = computeEvalMetrics({
      policyChosen: policy.plain.chosen, policyRejected: policy.plain.rejected, refChosen: ref.plain.chosen, refRejected: ref.plain.rejected,
      policyChosenAug: policy.aug.chosen, policyRejectedAug: policy.aug.rejected, refChosenAug: ref.aug.chosen, refRejectedAug: ref.aug.rejected,
      beta: o.beta, chosenTokens: policy.plain.chosenTokens,
      ...(withScores ? { scoreChosen: pairs.map((p) => p.scoreChosen!), scoreRejected: pairs.map((p) => p.scoreRejected!) } : {}),
    });
    if (withScores) {
      // Null correlations, with why: one pair, every margin alike (0 where the model is its own reference), or
      // every judge score difference alike (UltraFeedback subsets can be).
      const diffs = pairs.map((p) => p.scoreChosen! - p.scoreRejected!);
      const why = whyUncorrelated(m.margins, diffs, sameRef ? 'margins (each 0: the model is its own reference)' : 'margins', 'judge score differences');
      if (why) notes.push(`correlations are undefined (null): ${why}`);
    }
    log(`${pairs.length} pairs evaluated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (o.pairsOut) {
      writeEvalPairsFile(o.pairsOut, undefined, m.margins, m.augMargins, pairs);
      log(`per-pair margins: ${o.pairsOut}`);
    }
    return evalReport(m, o, refDir, sameRef, scored, notes, skipped);
  });
}

/**
 * SFT rows (prompt + completion, no rejected response): the policy's NLL per completion token, the SFT
 * loss on them; nothing else is defined, so no reference is scored.
 */
async function evalSftRows(o: EvalOptions, rows: readonly TokenizedPair[], refDir: string, sameRef: boolean, notes: string[], skipped: number,
  progress: Progress): Promise<EvalReport> {
  notes.push(`${rows.length} SFT rows (no rejected response, prompt + chosen truncated alone as --loss sft does): ` +
    'the policy\'s NLL per completion token only; margins, accuracies and rewards need preference pairs');
  if (!sameRef) notes.push(`--ref-model ${refDir} unused: SFT rows have no margins`);
  if (o.cacheDir) notes.push(`--cache-dir ${o.cacheDir} unused: there is no reference to cache`);
  if (o.pairsOut) notes.push(`--pairs-out ${o.pairsOut} not written: SFT rows have no margins`);
  return withGpu({ adapter: o.adapter }, async (gpu) => {
    const t0 = performance.now();
    const lm = await loadModel(gpu, o.model, { onProgress: progress.bytes(`load policy ${o.model}`) });
    progress.log(`policy ${o.model}: ${describeModel(lm.cfg)}`);
    try {
      const s = await scorePairs(gpu, lm.model, rows, { microBatch: o.microBatchSize, ...progress.pass('policy') });
      progress.log(`${rows.length} SFT rows evaluated in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      return evalReport(computeSftEvalMetrics(s.chosen, s.chosenTokens), o, refDir, sameRef, 0, notes, skipped);
    } finally {
      freeModel(gpu, lm);
    }
  });
}

/**
 * A model directory's name for the table: its own, with its run's where a training run wrote it (every
 * run's is "checkpoint", and --keep-models' "models/step-N"): "sr-dpo/checkpoint", "sr-dpo/step-40".
 */
export function modelLabel(dir: string): string {
  const full = path.resolve(dir);
  const base = path.basename(full); const parent = path.dirname(full);
  if (base === 'checkpoint' || base === '.checkpoint-old') return `${path.basename(parent)}/${base}`;
  if (/^step-\d+$/.test(base) && path.basename(parent) === 'models') return `${path.basename(path.dirname(parent))}/${base}`;
  return base;
}

/** The terminal form: the shared evaluation table plus rewards and notes. */
export function formatEvalReport(r: EvalReport): string {
  const table = formatEvalTable([{
    name: modelLabel(r.model), margin: r.margin, accuracy: r.accuracy, aug_accuracy: r.aug_accuracy, nll_chosen: r.nll_chosen,
    pearson: r.pearson ?? null, spearman: r.spearman ?? null, kendall: r.kendall ?? null, n: r.n,
    // (the standard errors beside their means, and the ties, as srk report's table has them)
    margin_se: r.margin_se, accuracy_se: r.accuracy_se, aug_accuracy_se: r.aug_accuracy_se, ties: r.ties,
  }]);
  const f = (v: number | null) => formatCell(v, 4);
  const lines = [
    table,
    '',
    r.sft_rows ? `policy NLL ${f(r.nll_chosen)} per completion token over ${r.n} SFT rows` : `reference ${r.ref_model}, beta ${r.beta}: reward chosen ${f(r.reward_chosen)}, reward rejected ${f(r.reward_rejected)}, ` +
      `aug margin ${f(r.aug_margin)}; policy NLL ${f(r.nll_chosen)} per chosen token; ${r.scored_pairs} of ${r.n} pairs with judge scores`,
    ...r.notes.map((s) => `note: ${s}`),
  ];
  return lines.join('\n');
}

export const evalCommand: CommandModule = {
  command: 'eval',
  describe: 'evaluate a policy against a reference on preference data: mean margin (beta h, the chosen reward less the rejected), accuracy, augmented accuracy, reward means, ' +
    'the policy\'s negative log-likelihood per chosen token (nll_chosen; on SFT rows without a rejected response, that alone), ' +
    'and Pearson/Spearman/Kendall between margins and judge score differences (score_chosen/score_rejected, chosen_rating/rejected_rating or chosen_score/rejected_score) when the data has them. ' +
    'A --model that is an srk train checkpoint is scored with its run\'s beta, lengths, refinement prompt, EOS and --completions-in-context where those flags are not given (a note says which)',
  builder: (y) => scoringFlags(y).options({
    data: { type: 'string', demandOption: true, describe: 'preference data (JSON Lines or a JSON array of rows, gzipped or not, or a Parquet file; several are read as one: the flag again for each, or a quoted pattern such as "data/test-*.parquet"): ' +
      '{prompt, chosen, rejected}, HH-RLHF dialogues, UltraFeedback or chat rows; or a file of SFT rows without rejected ' +
      '({prompt, completion}, {prompt, chosen}, HH dialogues {chosen}, {messages}): their nll_chosen alone' },
    'ref-model': { type: 'string', describe: 'reference model directory (default: the policy itself, which makes every margin 0)' },
    beta: { type: 'number', default: TRAIN_DEFAULTS.beta, describe: 'beta of the implicit reward beta * log(pi/ref)' },
    json: { type: 'boolean', default: false, describe: 'print one JSON object instead of the table' },
    'skip-bad-rows': { type: 'boolean', default: false, describe: 'skip and count malformed data lines instead of stopping' },
    'cache-dir': { type: 'string', describe: 'cache the reference log-probs in this directory (reused while the reference, data and settings stay the same)' },
    'max-pairs': { type: 'number', describe: 'evaluate the first N usable pairs of --data only, in the file\'s order (transformers\' max_eval_samples)' },
    'pairs-out': { type: 'string', describe: 'write each pair\'s margin and augmented margin (beta h), judge scores, file and line to this CSV (pair: its index among the usable pairs; as a training run\'s eval-pairs.csv)' },
  }),
  handler: async (a) => {
    // A checkpoint of srk train is evaluated with its run's settings where no flag says otherwise.
    const { args, note: runNote } = withRunSettings(a as Record<string, unknown>);
    const s = scoringSettingsFrom(args);
    if (!((args.beta as number) > 0)) throw userError('--beta must be > 0');
    const refModel = args['ref-model'] as string | undefined;
    if (refModel !== undefined) checkPathFlag('ref-model', refModel, 'model directory');
    if (args['cache-dir'] !== undefined) checkDirFlag('cache-dir', args['cache-dir'] as string);
    const pairsOut = args['pairs-out'] as string | undefined;
    checkOutFlag(pairsOut, dataFileList(s.data), '--pairs-out');
    const maxPairs = args['max-pairs'] as number | undefined;
    if (maxPairs !== undefined && !(Number.isInteger(maxPairs) && maxPairs > 0)) throw userError(`--max-pairs must be a positive integer (got ${args['max-pairs']})`);
    const o: EvalOptions = {
      ...s, refModel, beta: args.beta as number, json: Boolean(args.json), skipBadRows: Boolean(args['skip-bad-rows']),
      cacheDir: args['cache-dir'] as string | undefined, pairsOut: args['pairs-out'] as string | undefined,
      ...(maxPairs !== undefined ? { maxPairs } : {}), ...(runNote ? { runNote } : {}),
    };
    // Ctrl-C or SIGTERM while the reference is scored into --cache-dir: what it has is kept (reference.ts),
    // and the same command takes it up.
    const onSignal = (sig: NodeJS.Signals) => {
      const partial = savePartialReference();
      if (partial) process.stderr.write(`\n${partial}\n`);
      process.exit(signalExitCode(sig === 'SIGTERM' ? 'SIGTERM' : 'SIGINT'));
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let r: EvalReport;
    try { r = await runEval(o); } finally { process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal); }
    if (o.json) {
      for (const n of r.notes) process.stderr.write(`note: ${n}\n`);
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      process.stdout.write(`${formatEvalReport(r)}\n`);
    }
  },
};
