// Evaluation metrics over a set of preference pairs (../shared/notes/losses.md §5.1; CPU, float64).
//
// Per pair i, with log-probs summed over response tokens:
//   h_i     = (logpi(y+|x) - logref(y+|x)) - (logpi(y-|x) - logref(y-|x))
//   Delta_i = beta * [same on p⊕x]                       (only when the augmented log-probs are given)
//   margin  = mean beta*h_i,  accuracy = mean [h_i > 0],  aug_accuracy = mean [Delta_i > 0]
//   (a tie, h_i = 0, counts as wrong, as in TRL's rewards/accuracies; `ties` counts them: every pair at
//   step 0, where the policy is the reference, and pairs whose responses tokenize alike)
//   reward_chosen = mean beta*(logpi(y+|x) - logref(y+|x)), reward_rejected likewise.
//   nll_chosen = -sum_i logpi(y+_i|x_i) / sum_i |y+_i|: the policy's negative log-likelihood per chosen
//   token (an SFT run's held-out loss, TRL's SFTTrainer's eval_loss but for its mean of per-batch means, over the eval pairs as they are
//   tokenized: a chosen response cut to fit beside a longer rejected one counts as cut); with the token counts only.
// With judge scores, Pearson / Spearman (average ranks) / Kendall tau-b between the per-pair margins
// beta*h_i and the score differences score_chosen_i - score_rejected_i (the paper's Table 4 style).

import { kendallTauB, pearson, spearman } from '../losses/correlation.js';
import type { EvalRow } from './metrics-log.js';

export interface EvalInputs {
  /** Summed log-probs per pair [n] under the policy and the reference, on the plain prompt x. */
  policyChosen: ArrayLike<number>;
  policyRejected: ArrayLike<number>;
  refChosen: ArrayLike<number>;
  refRejected: ArrayLike<number>;
  /** The same on the augmented prompt p⊕x (all four, or none). */
  policyChosenAug?: ArrayLike<number>;
  policyRejectedAug?: ArrayLike<number>;
  refChosenAug?: ArrayLike<number>;
  refRejectedAug?: ArrayLike<number>;
  beta: number;
  /** Tokens of each chosen response [n] (scorePairs' chosenTokens), for nll_chosen. */
  chosenTokens?: ArrayLike<number>;
  /** Judge scores per pair [n] (e.g. GPT-4 / UltraFeedback scores): both, or `scoreDiff` directly. */
  scoreChosen?: ArrayLike<number>;
  scoreRejected?: ArrayLike<number>;
  scoreDiff?: ArrayLike<number>;
}

export interface EvalMetrics {
  n: number;
  margin: number;                 // mean beta*h
  accuracy: number;               // mean [h > 0]
  aug_accuracy: number | null;    // mean [Delta > 0]; null without augmented log-probs
  /** Pairs with h = 0 exactly (Delta = 0 exactly), counted wrong by accuracy (aug_accuracy). */
  ties: number;
  aug_ties: number | null;
  /**
   * Standard errors of those means over the pairs (how far another sample of as many pairs could move
   * them): the margins' sample standard deviation / sqrt(n), and sqrt(p (1 - p) / n) for an accuracy p.
   * NaN below 2 pairs.
   */
  margin_se: number;
  accuracy_se: number;
  aug_accuracy_se: number | null;
  aug_margin: number | null;      // mean Delta; null without augmented log-probs
  reward_chosen: number;
  reward_rejected: number;
  /** The policy's mean negative log-likelihood per chosen token; null without chosenTokens. */
  nll_chosen: number | null;
  /** Correlations between beta*h and the score differences; absent without scores, NaN if undefined. */
  pearson?: number;
  spearman?: number;
  kendall?: number;
  /** Per-pair margins beta*h_i [n], for plots and further statistics (NaN for SFT rows). */
  margins: Float64Array;
  /** Per-pair Delta_i [n], with the augmented log-probs. */
  augMargins?: Float64Array;
  /** SFT rows (no rejected response): nll_chosen alone is defined, and it is the SFT loss on them. */
  sft?: true;
}

function need(name: string, a: ArrayLike<number> | undefined, n: number): ArrayLike<number> {
  if (!a) throw new Error(`computeEvalMetrics: ${name} missing`);
  if (a.length !== n) throw new Error(`computeEvalMetrics: ${name} has length ${a.length}, expected ${n}`);
  return a;
}

/** Computes the evaluation metrics of one split (see the header). Empty input gives NaN means. */
export function computeEvalMetrics(inp: EvalInputs): EvalMetrics {
  const n = inp.policyChosen.length;
  const pc = need('policyChosen', inp.policyChosen, n), pr = need('policyRejected', inp.policyRejected, n);
  const rc = need('refChosen', inp.refChosen, n), rr = need('refRejected', inp.refRejected, n);
  const beta = inp.beta;
  if (!(beta > 0)) throw new Error(`computeEvalMetrics: beta must be > 0, got ${beta}`);

  const augGiven = [inp.policyChosenAug, inp.policyRejectedAug, inp.refChosenAug, inp.refRejectedAug].filter((a) => a !== undefined).length;
  if (augGiven !== 0 && augGiven !== 4) throw new Error('computeEvalMetrics: give all four augmented log-prob arrays or none');

  const margins = new Float64Array(n);
  let sumMargin = 0, correct = 0, ties = 0, sumRc = 0, sumRr = 0;
  for (let i = 0; i < n; i++) {
    const lc = pc[i] - rc[i], lr = pr[i] - rr[i];
    const h = lc - lr;
    margins[i] = beta * h;
    sumMargin += beta * h;
    if (h > 0) correct++;
    else if (h === 0) ties++;
    sumRc += beta * lc;
    sumRr += beta * lr;
  }

  let augAccuracy: number | null = null, augMargin: number | null = null, augTies: number | null = null;
  let augMargins: Float64Array | undefined;
  if (augGiven === 4) {
    const pca = need('policyChosenAug', inp.policyChosenAug, n), pra = need('policyRejectedAug', inp.policyRejectedAug, n);
    const rca = need('refChosenAug', inp.refChosenAug, n), rra = need('refRejectedAug', inp.refRejectedAug, n);
    let augCorrect = 0, sumDelta = 0;
    augTies = 0;
    augMargins = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const delta = beta * ((pca[i] - rca[i]) - (pra[i] - rra[i]));
      augMargins[i] = delta;
      if (delta > 0) augCorrect++;
      else if (delta === 0) augTies++;
      sumDelta += delta;
    }
    augAccuracy = augCorrect / n;
    augMargin = sumDelta / n;
  }

  const nllChosen = inp.chosenTokens ? nllPerToken(pc, need('chosenTokens', inp.chosenTokens, n)) : null;

  const meanMargin = sumMargin / n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (margins[i] - meanMargin) ** 2;
  const out: EvalMetrics = {
    n,
    margin: meanMargin,
    accuracy: correct / n,
    aug_accuracy: augAccuracy,
    ties,
    aug_ties: augTies,
    margin_se: n > 1 ? Math.sqrt(ss / (n - 1) / n) : NaN,
    accuracy_se: proportionSe(correct / n, n),
    aug_accuracy_se: augAccuracy === null ? null : proportionSe(augAccuracy, n),
    aug_margin: augMargin,
    reward_chosen: sumRc / n,
    reward_rejected: sumRr / n,
    nll_chosen: nllChosen,
    margins,
    ...(augMargins ? { augMargins } : {}),
  };

  let diff: ArrayLike<number> | undefined = inp.scoreDiff;
  if (diff) need('scoreDiff', diff, n);
  else if (inp.scoreChosen || inp.scoreRejected) {
    const sc = need('scoreChosen', inp.scoreChosen, n), sr = need('scoreRejected', inp.scoreRejected, n);
    const d = new Float64Array(n);
    for (let i = 0; i < n; i++) d[i] = sc[i] - sr[i];
    diff = d;
  }
  if (diff) {
    out.pearson = pearson(margins, diff);
    out.spearman = spearman(margins, diff);
    out.kendall = kendallTauB(margins, diff);
  }
  return out;
}

/** The standard error of a proportion p of n: sqrt(p (1 - p) / n); NaN below 2. */
function proportionSe(p: number, n: number): number {
  return n > 1 ? Math.sqrt((p * (1 - p)) / n) : NaN;
}

/** -sum_i logp_i / sum_i tokens_i: the negative log-likelihood per scored token. */
function nllPerToken(logp: ArrayLike<number>, tokens: ArrayLike<number>): number {
  let sum = 0, count = 0;
  for (let i = 0; i < logp.length; i++) { sum += logp[i]; count += tokens[i]; }
  return -sum / count;
}

/**
 * Metrics of SFT rows (prompt + completion, no rejected response): the policy's NLL per completion token,
 * which is the SFT loss on them (TRL's SFTTrainer's eval_loss). Without a rejected response there is no
 * margin, accuracy or reward: those are NaN (null in eval.jsonl).
 */
export function computeSftEvalMetrics(policyChosen: ArrayLike<number>, chosenTokens: ArrayLike<number>): EvalMetrics {
  const n = policyChosen.length;
  need('chosenTokens', chosenTokens, n);
  return {
    n, margin: NaN, accuracy: NaN, aug_accuracy: null, ties: 0, aug_ties: null, aug_margin: null, reward_chosen: NaN, reward_rejected: NaN,
    margin_se: NaN, accuracy_se: NaN, aug_accuracy_se: null,
    nll_chosen: nllPerToken(policyChosen, chosenTokens), margins: new Float64Array(n).fill(NaN), sft: true,
  };
}

/** The eval.jsonl line for metrics of one split (per-pair margins left out; NaN becomes null). */
export function toEvalRow(m: EvalMetrics, at: { step: number; pairs_seen: number; split: string }): EvalRow {
  const fin = (v: number | null | undefined): number | null => (v === null || v === undefined || !Number.isFinite(v) ? null : v);
  const row: EvalRow = {
    step: at.step,
    pairs_seen: at.pairs_seen,
    split: at.split,
    margin: fin(m.margin),
    accuracy: fin(m.accuracy),
    aug_accuracy: fin(m.aug_accuracy),
    reward_chosen: fin(m.reward_chosen),
    reward_rejected: fin(m.reward_rejected),
    margin_se: fin(m.margin_se),
    accuracy_se: fin(m.accuracy_se),
    aug_accuracy_se: fin(m.aug_accuracy_se),
    n: m.n,
  };
  if (!m.sft) row.ties = m.ties;
  if (m.aug_ties !== null) row.aug_ties = m.aug_ties;
  if (m.nll_chosen !== null) row.nll_chosen = fin(m.nll_chosen);
  // SFT rows: their NLL is the training loss's quantity, so the report marks it on the loss chart.
  if (m.sft) row.loss = fin(m.nll_chosen);
  if (m.pearson !== undefined) row.pearson = fin(m.pearson);
  if (m.spearman !== undefined) row.spearman = fin(m.spearman);
  if (m.kendall !== undefined) row.kendall = fin(m.kendall);
  // (Last: a field added after the others, so files' and report.csv's earlier columns keep their places.)
  if (m.aug_margin !== null) row.aug_margin = fin(m.aug_margin);
  return row;
}

/** One row of an evaluation table: a run (or model) name and its metrics. */
export interface EvalTableRow {
  name: string;
  split?: string;
  step?: number;
  pairs_seen?: number;
  margin?: number | null;
  accuracy?: number | null;
  aug_accuracy?: number | null;
  /** Standard errors of margin, accuracy and aug_accuracy over the pairs (absent in rows written before them). */
  margin_se?: number | null;
  accuracy_se?: number | null;
  aug_accuracy_se?: number | null;
  /** The policy's NLL per chosen (completion) token. */
  nll_chosen?: number | null;
  pearson?: number | null;
  spearman?: number | null;
  kendall?: number | null;
  n?: number | null;
  /** Pairs whose margin is exactly 0 (counted wrong by the accuracy: every pair at step 0). */
  ties?: number | null;
}

/** Columns of the evaluation table, in order (shared by the terminal and HTML tables). */
export const EVAL_COLUMNS: ReadonlyArray<{ key: keyof EvalTableRow & string; label: string; digits: number }> = [
  { key: 'margin', label: 'margin', digits: 4 },
  { key: 'accuracy', label: 'accuracy', digits: 4 },
  { key: 'aug_accuracy', label: 'aug acc', digits: 4 },
  { key: 'nll_chosen', label: 'chosen NLL', digits: 4 },
  { key: 'pearson', label: 'Pearson', digits: 4 },
  { key: 'spearman', label: 'Spearman', digits: 4 },
  { key: 'kendall', label: 'Kendall', digits: 4 },
  { key: 'n', label: 'n', digits: 0 },
  { key: 'ties', label: 'ties', digits: 0 },
];

/**
 * Formats a table cell: fixed digits, '-' for a missing or non-finite value. A value too small for them
 * (an early margin at lr 5e-7 is ~1e-5) goes in mantissa and exponent rather than reading 0.0000.
 */
export function formatCell(v: unknown, digits: number): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '-';
  if (digits === 0) return String(Math.round(v));
  if (v !== 0 && Math.abs(v) < 0.5 * 10 ** -digits) return v.toExponential(2);
  return v.toFixed(digits);
}

/** The latest eval row of each run as a table row (preferring `split` when given). */
export function evalTableFromRows(runs: ReadonlyArray<{ name: string; eval?: ReadonlyArray<EvalRow> }>, split?: string): EvalTableRow[] {
  const out: EvalTableRow[] = [];
  for (const r of runs) {
    const rows = (r.eval ?? []).filter((e) => split === undefined || e.split === split);
    if (rows.length === 0) continue;
    let last = rows[0];
    for (const e of rows) if (e.step >= last.step) last = e;
    out.push({
      name: r.name, split: last.split, step: last.step, pairs_seen: last.pairs_seen,
      margin: last.margin, accuracy: last.accuracy, aug_accuracy: last.aug_accuracy, nll_chosen: last.nll_chosen ?? null,
      margin_se: last.margin_se ?? null, accuracy_se: last.accuracy_se ?? null, aug_accuracy_se: last.aug_accuracy_se ?? null,
      pearson: last.pearson ?? null, spearman: last.spearman ?? null, kendall: last.kendall ?? null, n: last.n, ties: last.ties ?? null,
    });
  }
  return out;
}

/** A cell with its standard error (± se) where the row has one for that column. */
function withSe(r: EvalTableRow, key: keyof EvalTableRow, digits: number): string {
  const v = formatCell(r[key], digits);
  const se = key === 'margin' ? r.margin_se : key === 'accuracy' ? r.accuracy_se : key === 'aug_accuracy' ? r.aug_accuracy_se : undefined;
  return v !== '-' && typeof se === 'number' && Number.isFinite(se) ? `${v} ±${formatCell(se, digits)}` : v;
}

/**
 * A plain-text table (monospace terminal): one row per run, columns as EVAL_COLUMNS (margin and the
 * accuracies with their standard errors, as the HTML table has them); a step column where the rows come
 * from different steps (a run still training beside a finished one is not like for like).
 */
export function formatEvalTable(rows: EvalTableRow[]): string {
  const showSplit = rows.some((r) => r.split !== undefined);
  const showStep = new Set(rows.map((r) => r.step)).size > 1;
  const header = ['run', ...(showSplit ? ['split'] : []), ...(showStep ? ['step'] : []), ...EVAL_COLUMNS.map((c) => c.label)];
  const body = rows.map((r) => [
    r.name,
    ...(showSplit ? [r.split ?? '-'] : []),
    ...(showStep ? [formatCell(r.step, 0)] : []),
    ...EVAL_COLUMNS.map((c) => withSe(r, c.key, c.digits)),
  ]);
  const widths = header.map((h, j) => Math.max(h.length, ...body.map((b) => b[j].length)));
  const textCols = showSplit ? 2 : 1;
  const fmt = (cells: string[]) => cells.map((c, j) => (j < textCols ? c.padEnd(widths[j]) : c.padStart(widths[j]))).join('  ').trimEnd();
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [fmt(header), sep, ...body.map(fmt)].join('\n');
}
