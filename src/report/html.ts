// Self-contained training report: OUT/report.html (inline CSS, inline SVG charts, a small inline
// script for hover read-outs; nothing loaded from the network) and CSV files with the same data:
// OUT/report.csv (every train and eval row of every run, all points) and OUT/report-eval.csv (the
// eval table). Charts follow the paper's Figure 1: loss, margin, accuracy and prompt-augmented
// accuracy against pairs seen, several runs overlaid, eval results as markers.

import * as path from 'node:path';
import * as fs from 'node:fs';
import { EVAL_COLUMNS, evalTableFromRows, formatCell, type EvalTableRow } from './eval-metrics.js';
import { readSamples, type SampleRow } from './samples-log.js';
import { readRunConfig, readRunDir, writeFileAtomic, type EvalRow, type MetricsRow } from './metrics-log.js';
import { readEvalPairs, type EvalPairs } from './eval-pairs.js';
import { PALETTE, escapeXml, formatValue, renderLineChart, type MarkerSeries, type MarkerShape } from './svg-chart.js';
import { LOSSES, LOSS_SETTINGS, lossSettings, type LossName } from '../train/options.js';

export interface ReportRun {
  name: string;
  /** Training rows (metrics.jsonl); fields may be missing or null. */
  metrics: ReadonlyArray<Partial<MetricsRow>>;
  /** Eval rows (eval.jsonl), drawn as markers where the chart's metric exists in them. */
  eval?: ReadonlyArray<EvalRow>;
  /** This run's configuration (shown side by side with the other runs'). */
  config?: Record<string, unknown>;
  /** Per-pair numbers of its latest evaluation (eval-pairs.csv): the margin against score scatter. */
  evalPairs?: EvalPairs;
  /** Its eval samples (samples.jsonl, --eval-samples): each prompt's first and latest completion. */
  samples?: SampleRow[];
  color?: string;
}

export interface ChartSpec {
  /** Field of the metrics / eval rows. */
  key: string;
  title: string;
  yLabel: string;
  yDomain?: [number, number];
  /** false: never smoothed (a schedule, as the learning rate, is drawn as it was). */
  smooth?: false;
  /**
   * A chart per loss family where the runs span several (the training loss, the gradient norm): IPO's
   * loss starts at 1/(2β)^2 = 25 and its gradients are ~100x DPO's, so on one axis the DPO runs lie flat.
   */
  byObjective?: true;
}

export interface ReportOptions {
  title: string;
  runs: ReportRun[];
  /** Eval table rows; default: the latest eval row of each run (of `evalSplit` when given). */
  evalTable?: EvalTableRow[];
  evalSplit?: string;
  /** Shared configuration (e.g. the command line), shown as a key/value table. */
  config?: Record<string, unknown>;
  /** Charts to draw; default DEFAULT_CHARTS. */
  charts?: ChartSpec[];
  /** x axis field; default 'pairs_seen' (falls back to 'step' for rows without it). */
  x?: 'pairs_seen' | 'step';
  /** Most points drawn per series (all points still go to the CSV); default 2000. */
  maxPoints?: number;
  /** EMA weight in [0, 1) for the training curves (raw values drawn faintly behind); default 'auto' (autoSmoothing). */
  smoothing?: number | 'auto';
  /** Shown under the title (e.g. a timestamp); default: none, so the output is reproducible. */
  subtitle?: string;
}

/**
 * Below the headline curves: what explains them, each drawn only where some run has values (no note for
 * the others): the rewards apart (both falling is a known DPO failure), the step's gradient norm (before
 * clipping) and learning rate (warm-up, schedule), and the evaluations' chosen NLL and correlation with
 * judge scores over time (the eval table has only the latest).
 */
export const DIAGNOSTIC_CHARTS: ChartSpec[] = [
  { key: 'reward_chosen', title: 'Chosen reward (mean β·log π/ref)', yLabel: 'reward' },
  { key: 'reward_rejected', title: 'Rejected reward (mean β·log π/ref)', yLabel: 'reward' },
  { key: 'grad_norm', title: 'Gradient norm (before clipping)', yLabel: 'norm', byObjective: true },
  { key: 'lr', title: 'Learning rate', yLabel: 'lr', smooth: false },
  { key: 'nll_chosen', title: 'Chosen NLL per token (evaluations)', yLabel: 'NLL' },
  { key: 'pearson', title: 'Pearson r, margins against judge scores (evaluations)', yLabel: 'Pearson r', yDomain: [-1, 1] },
];

export const DEFAULT_CHARTS: ChartSpec[] = [
  { key: 'loss', title: 'Training loss', yLabel: 'loss', byObjective: true },
  { key: 'margin', title: 'Reward margin (mean β·h)', yLabel: 'margin' },
  { key: 'accuracy', title: 'Accuracy (h > 0)', yLabel: 'accuracy', yDomain: [0, 1] },
  { key: 'aug_accuracy', title: 'Prompt-augmented accuracy (Δ > 0)', yLabel: 'aug accuracy', yDomain: [0, 1] },
];

const SHAPES: MarkerShape[] = ['circle', 'square', 'triangle', 'diamond'];
/** The marker shape of run i's evaluations of split si (several runs: a shape per run and split, one run: per split). */
const markerShape = (i: number, si: number, splits: number, several: boolean): MarkerShape =>
  SHAPES[(several ? i * Math.max(1, splits) + si : si) % SHAPES.length];
// Line patterns by run (solid first), so that runs drawn on top of each other stay apart.
const DASHES = ['', '7,4', '2,3', '10,3,2,3'];

function num(row: object, key: string): number {
  const v = (row as Record<string, unknown>)[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : NaN;
}

function xOf(row: object, xKey: string): number {
  const v = num(row, xKey);
  return Number.isFinite(v) ? v : num(row, 'step');
}

const esc = escapeXml;

export interface WrittenReport {
  html: string;
  csv: string;
  evalCsv: string;
}

/** Writes OUT/report.html, OUT/report.csv and OUT/report-eval.csv atomically; returns their paths. */
export function writeReport(outDir: string, opts: ReportOptions): WrittenReport {
  fs.mkdirSync(outDir, { recursive: true });
  const files: WrittenReport = {
    html: path.join(outDir, 'report.html'),
    csv: path.join(outDir, 'report.csv'),
    evalCsv: path.join(outDir, 'report-eval.csv'),
  };
  const table = opts.evalTable ?? evalTableFromRows(opts.runs, opts.evalSplit);
  writeFileAtomic(files.csv, reportCsv(opts.runs));
  writeFileAtomic(files.evalCsv, evalTableCsv(table, opts.runs));
  writeFileAtomic(files.html, renderReportHtml({ ...opts, evalTable: table }));
  return files;
}

/** Builds report options from run directories holding metrics.jsonl / eval.jsonl / train_config.json. */
export function runsFromDirs(dirs: Array<{ name: string; dir: string }>): ReportRun[] {
  return dirs.map(({ name, dir }) => {
    const { metrics, eval: ev } = readRunDir(dir);
    const config = readRunConfig(dir);
    // The per-pair numbers belong to an evaluation of this run: eval.jsonl has a row at their step (a file
    // left by another run in this directory is not drawn as this one's).
    const pairs = readEvalPairs(dir);
    const evalPairs = pairs && (ev ?? []).some((e) => e.step === pairs.step) ? pairs : undefined;
    const samples = readSamples(dir);
    return { name, metrics, eval: ev, config, ...(evalPairs ? { evalPairs } : {}), ...(samples ? { samples } : {}) };
  });
}

function runColor(run: ReportRun, i: number): string {
  return esc(run.color ?? PALETTE[i % PALETTE.length]);
}

/**
 * A loss's family, of one scale (DPO's logistic loss with Sr-DPO's and cDPO's, IPO's squared one with
 * Sr-IPO's, SFT's NLL): its name without the self-refinement prefix; and its name as the report writes it.
 */
const lossFamily = (loss: string) => ({
  family: loss.replace(/^sr-/, ''),
  label: loss.startsWith('sr-') ? `Sr-${loss.slice(3).toUpperCase()}` : loss.toUpperCase(),
});

/**
 * The runs (their indices) by loss family, in order of first appearance, each group with its losses'
 * names; one group where the runs whose loss is recorded share a family. (Runs that record none, from
 * files without a train_config.json, make a group of their own only beside several families.)
 */
export function objectiveGroups(runs: readonly ReportRun[]): Array<{ members: number[]; label: string }> {
  const groups = new Map<string, { members: number[]; losses: string[] }>();
  runs.forEach((r, i) => {
    const loss = typeof r.config?.loss === 'string' && r.config.loss !== '' ? r.config.loss : undefined;
    const f = loss !== undefined ? lossFamily(loss) : undefined;
    const key = f !== undefined ? `loss ${f.family}` : 'unrecorded';
    const label = f?.label ?? 'loss not recorded';
    const g = groups.get(key) ?? { members: [], losses: [] };
    g.members.push(i);
    if (!g.losses.includes(label)) g.losses.push(label);
    groups.set(key, g);
  });
  if ([...groups.keys()].filter((k) => k !== 'unrecorded').length <= 1) return [{ members: runs.map((_, i) => i), label: '' }];
  return [...groups.values()].map((g) => ({ members: g.members, label: g.losses.join(', ') }));
}

/** The most training steps any run has. */
function longestRun(runs: readonly ReportRun[]): number {
  return runs.reduce((n, r) => Math.max(n, r.metrics.length), 0);
}

/**
 * The EMA weight for curves of `runs` when none is asked for: none below 30 steps (every point is readable);
 * above, a window of about a twentieth of the run (1 - 20/n: 0.67 at 60 steps, 0.9 at 200, at most 0.98),
 * so a long run's per-batch noise does not hide its trend or one run's from another's. The raw values stay
 * drawn faintly behind.
 */
export function autoSmoothing(runs: readonly ReportRun[]): number {
  const n = longestRun(runs);
  return n < 30 ? 0 : Math.min(0.98, Math.round((1 - 20 / n) * 100) / 100);
}

/** The report page as one HTML string. */
export function renderReportHtml(opts: ReportOptions): string {
  const xKey = opts.x ?? 'pairs_seen';
  const xLabel = xKey === 'pairs_seen' ? 'pairs seen' : 'step';
  const charts = opts.charts ?? DEFAULT_CHARTS;
  const table = opts.evalTable ?? evalTableFromRows(opts.runs, opts.evalSplit);

  const splits = splitsOf(opts.runs);

  const chartData: Record<string, Array<{ name: string; color: string; x: number[]; y: number[] }>> = {};
  const auto = opts.smoothing === undefined || opts.smoothing === 'auto';
  const smoothing = auto ? autoSmoothing(opts.runs) : opts.smoothing as number;
  const smoothNote = smoothing > 0
    ? `<p class="note">Curves: exponential moving average (weight ${smoothing}${auto ? `, chosen for ${longestRun(opts.runs)} steps; srk report --smoothing sets it` : ''}) of the per-step values; raw values drawn faintly behind. Markers: evaluation results, with their standard errors over the pairs.</p>`
    : '<p class="note">Curves: per-step training values. Markers: evaluation results, with their standard errors over the pairs.</p>';
  const several = opts.runs.length > 1;
  const groups = objectiveGroups(opts.runs);
  /** The charts of `specs` as figures; those without a value in any run are left out (their titles in `leftOut`). */
  const renderCharts = (specs: ChartSpec[], idPrefix: string, keepFirst: boolean) => {
    const chartHtml: string[] = [];
    const leftOut: string[] = [];
    specs.forEach((c, ci) => {
      // A chart per loss family where the runs span several (byObjective); a run keeps its colour and dash.
      if (c.byObjective && groups.length > 1) {
        groups.forEach((g, gi) => renderOne({ ...c, title: `${c.title}: ${g.label}` }, ci, `${idPrefix}-${ci}-g${gi}`, g.members));
      } else renderOne(c, ci, `${idPrefix}-${ci}`, opts.runs.map((_, i) => i));
    });
    /** One chart of spec c over the runs `members` (their indices in opts.runs). */
    function renderOne(c: ChartSpec, ci: number, idBase: string, members: number[]): void {
      const series = opts.runs.map((r, i) => ({
        name: r.name,
        color: runColor(r, i),
        x: r.metrics.map((m) => xOf(m, xKey)),
        y: r.metrics.map((m) => num(m, c.key)),
        smooth: c.smooth === false ? 0 : smoothing,
        dash: several ? DASHES[i % DASHES.length] : '',
      }));
      // Eval markers: a shape per run and split (several runs: each run's its own, named in the legend),
      // with the standard error over the pairs as a whisker where the row has one.
      const markers: MarkerSeries[] = [];
      const inChart = new Set(members);
      opts.runs.forEach((r, i) => {
        if (!inChart.has(i)) return;
        splits.forEach((split, si) => {
          const pts = (r.eval ?? []).filter((e) => e.split === split).map((e) => {
            const se = num(e, `${c.key}_se`);
            return {
              x: xOf(e, xKey), y: num(e, c.key), ...(Number.isFinite(se) ? { err: se } : {}),
              tip: `${r.name} · eval ${split} · step ${e.step}: ${c.yLabel} ${formatValue(num(e, c.key))}${Number.isFinite(se) ? ` ± ${formatValue(se)} (standard error)` : ''}`,
            };
          });
          if (pts.some((p) => Number.isFinite(p.y))) {
            // "eval" alone for the split srk train writes (never "eval (eval)"); another split by its name.
            const what = split === 'eval' ? 'eval' : `eval (${split})`;
            // Joined by a line where the run has no curve here (eval-only charts), in its curve's dash.
            const ownCurve = series[i].y.some(Number.isFinite);
            markers.push({ label: several ? `${r.name} ${what}` : what, shape: markerShape(i, si, splits.length, several),
              color: runColor(r, i), runName: r.name, points: pts, ...(ownCurve ? {} : { connect: series[i].dash }) });
          }
        });
      });
      // A metric no run has, at a step or an eval (SFT's margins, DPO's augmented accuracy): no empty
      // frame, a line below the charts instead. The first chart (the loss) always stands.
      const drawnSeries = series.filter((_, i) => inChart.has(i));
      if ((ci > 0 || !keepFirst) && markers.length === 0 && !drawnSeries.some((x) => x.y.some(Number.isFinite))) { leftOut.push(c.title); return; }
      const id = `${idBase}-${c.key.replace(/[^A-Za-z0-9_-]/g, '_')}`;
      const rendered = renderLineChart({ id, title: c.title, xLabel, yLabel: c.yLabel, series: drawnSeries, markers, yDomain: c.yDomain, maxPoints: opts.maxPoints, integerX: true });
      chartData[id] = rendered.drawn.map((d) => ({ name: d.smooth ? `${d.name} (smoothed)` : d.name, color: d.color, x: d.x, y: d.y }));
      chartHtml.push(`<figure class="chart-box">${rendered.svg}</figure>`);
    }
    return { chartHtml, leftOut };
  };
  const { chartHtml, leftOut } = renderCharts(charts, 'chart', true);
  const diagnostics = opts.charts ? [] : renderCharts(DIAGNOSTIC_CHARTS, 'diag', false).chartHtml;

  const parts: string[] = [];
  parts.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${esc(opts.title)}</title>`, `<style>${CSS}</style>`, '</head>', '<body>');
  parts.push(`<h1>${esc(opts.title)}</h1>`);
  if (opts.subtitle) parts.push(`<p class="subtitle">${esc(opts.subtitle)}</p>`);
  parts.push(runSummary(opts.runs, xKey));
  parts.push('<h2>Training curves</h2>', smoothNote, `<div class="charts">${chartHtml.join('\n')}</div>`);
  const objectives = objectivesDiffer(opts.runs);
  if (objectives) parts.push(`<p class="note">${esc(objectives)}</p>`);
  const evalSets = evalSetsDiffer(opts.runs);
  if (evalSets) parts.push(`<p class="note">${esc(evalSets)}</p>`);
  if (leftOut.length) parts.push(`<p class="note">No values in any run, so not drawn: ${leftOut.map(esc).join('; ')}.</p>`);
  if (diagnostics.length) parts.push('<h2>Diagnostics</h2>', `<div class="charts diagnostics">${diagnostics.join('\n')}</div>`);
  parts.push('<h2>Evaluation</h2>', evalTableHtml(table));
  const scatter = marginScatter(opts.runs);
  if (scatter) parts.push(`<figure class="chart-box">${scatter}</figure>`);
  const samples = samplesHtml(opts.runs);
  if (samples) parts.push('<h2>Samples</h2>', samples);
  const cfg = configHtml(opts);
  if (cfg) parts.push('<h2>Configuration</h2>', cfg);
  parts.push('<p class="foot">Data: report.csv (all points of every run), report-eval.csv (the evaluation table).</p>');
  parts.push('<div id="tip" class="tip" hidden></div>');
  // JSON inside a non-executed script element; '<' is escaped so the data cannot close the element.
  parts.push(`<script type="application/json" id="chart-data">${JSON.stringify(chartData).replace(/</g, '\\u003c')}</script>`);
  parts.push(`<script>${HOVER_JS}</script>`);
  parts.push('</body>', '</html>');
  return parts.join('\n') + '\n';
}

/**
 * A note where the runs' training objectives differ (their train_config.json: loss, beta, lambda, label
 * smoothing): their loss curves are of different functions, not better and worse values of one.
 */
function objectivesDiffer(runs: ReportRun[]): string | undefined {
  const of = (r: ReportRun) => {
    const loss = String(r.config?.loss ?? '');
    const keys = lossSettingsRead(r.config ?? {});
    return { loss, reads: (k: string) => keys.includes(k), value: (k: string) => String(r.config?.[k] ?? '') };
  };
  const seen = runs.filter((r) => r.config).map(of);
  // A setting differs where the runs whose loss reads it disagree on it.
  const differs = ['loss', ...LOSS_SETTINGS].filter((k) => k === 'loss'
    ? new Set(seen.map((v) => v.loss)).size > 1
    : new Set(seen.filter((v) => v.reads(k)).map((v) => v.value(k))).size > 1);
  if (differs.length === 0) return undefined;
  const compare = seen.some((v) => v.loss === 'sft') ? 'compare their held-out chosen NLL'
    : differs.includes('beta') ? 'compare their accuracies (margins, β·h, scale with β)' : 'compare their margins and accuracies';
  return `The runs' objectives differ (${differs.join(', ')}): their training losses are values of different functions, ` +
    `not better and worse values of one; ${compare}.`;
}

/**
 * A note where the runs evaluated on different held-out sets: another --eval-data (by file name), or (from
 * the evaluations themselves: another --max-eval-pairs, say) another number of pairs. Their eval numbers are
 * then over other pairs.
 */
function evalSetsDiffer(runs: ReportRun[]): string | undefined {
  const withEval = runs.filter((r) => (r.eval ?? []).length > 0);
  if (withEval.length < 2) return undefined;
  const last = (r: ReportRun) => r.eval![r.eval!.length - 1];
  const sizes = new Set(withEval.map((r) => Number(last(r).n)));
  // The files by name (the same file given by another path, from another directory, is the same set).
  const names = (data: unknown) => (Array.isArray(data) ? data : [data]).map((f) => path.basename(String(f)));
  // (--max-eval-pairs as such is not compared: a limit past the file's pairs leaves the same set; the pairs counted are.)
  const sets = new Set(withEval.filter((r) => r.config?.evalData !== undefined).map((r) => JSON.stringify(names(r.config!.evalData))));
  if (sizes.size <= 1 && sets.size <= 1) return undefined;
  const each = withEval.map((r) => {
    const data = r.config?.evalData;
    const files = data === undefined ? '' : ` of ${names(data).join(' + ')}`;
    return `${r.name} ${last(r).n} pairs${files}`;
  });
  return `The runs evaluated on different held-out sets (${each.join('; ')}): their eval numbers are over different pairs, not measurements of one set.`;
}

/** The eval splits of the runs, in order of appearance (the curves' marker shapes follow them). */
function splitsOf(runs: ReportRun[]): string[] {
  const splits: string[] = [];
  for (const r of runs) for (const e of r.eval ?? []) if (!splits.includes(e.split)) splits.push(e.split);
  return splits;
}

/**
 * Each run's per-pair margins of its latest evaluation against the judge's score differences (the
 * points behind the eval table's correlations); undefined where no run has pairs with scores. At most
 * 2000 points a run (evenly spaced among its pairs).
 */
function marginScatter(runs: ReportRun[]): string | undefined {
  const markers: MarkerSeries[] = [];
  // Judge scores are few values (UltraFeedback's 1-10 in halves): at each, the points of every run fall on
  // one vertical line, one run's hidden behind another's. Where the differences are that few, each run
  // takes its own band beside the value and its points spread across it (by pair, the same every time);
  // the tips give the true difference.
  // (Differences rounded for the count: 7.3 - 6.1 and 4.2 - 3.0 are one value.)
  const pointsOf = (r: ReportRun) => (r.evalPairs
    ? r.evalPairs.margin.map((m, k) => ({ k, x: r.evalPairs!.scoreChosen[k] - r.evalPairs!.scoreRejected[k], y: m })).filter((q) => Number.isFinite(q.x) && Number.isFinite(q.y))
    : []);
  const drawn = runs.map(pointsOf);
  const diffs = drawn.flat().map((q) => Math.round(q.x * 1e9) / 1e9);
  const distinct = [...new Set(diffs)].sort((a, b) => a - b);
  const gap = distinct.length > 1 ? Math.min(...distinct.slice(1).map((v, j) => v - distinct[j])) : 1;
  const spread = distinct.length <= 40 && diffs.length > 2 * distinct.length ? 0.6 * gap : 0;
  const withPoints = drawn.filter((d) => d.length > 0).length;
  let band = 0;
  runs.forEach((r, i) => {
    const p = r.evalPairs;
    const all = drawn[i];
    if (!p || all.length === 0) return;
    const every = Math.ceil(all.length / 2000);
    // The correlation that evaluation found (eval.jsonl at that step), beside the points it comes from.
    const ev = (r.eval ?? []).find((e) => e.step === p.step && typeof e.pearson === 'number');
    // This run's band of the spread, and a point's place in it from its pair (a fixed scramble of k).
    const width = spread / withPoints; const left = -spread / 2 + width * band++;
    const place = (k: number) => (spread === 0 ? 0 : left + width * (0.15 + 0.7 * (((k * 2654435761) >>> 0) % 1000) / 999));
    markers.push({
      label: `${r.name} (step ${p.step}${ev ? `, Pearson r ${formatValue(ev.pearson as number)}` : ''})`, shape: markerShape(i, 0, splitsOf(runs).length, runs.length > 1), color: runColor(r, i), runName: r.name,
      points: all.filter((_, j) => j % every === 0).map((q) => ({ x: q.x + place(q.k), y: q.y, tip: `${r.name} · pair ${q.k}: score difference ${formatValue(q.x)}, margin ${formatValue(q.y)}` })),
    });
  });
  if (markers.length === 0) return undefined;
  return renderLineChart({ id: 'margin-scatter', title: 'Margin β·h against judge score difference (latest evaluation)',
    xLabel: `score chosen − score rejected${spread > 0 ? ' (points spread beside each value, a band per run)' : ''}`,
    yLabel: 'margin', series: [], markers, pad: true }).svg;
}

/** Characters of a prompt shown (its end: what the completion follows) and of a completion. */
const PROMPT_CHARS = 600; const COMPLETION_CHARS = 2000;

/** The first n characters (code points: a surrogate pair is never split), with … where cut. */
function cutText(t: string, n: number): string {
  const chars = [...t];
  return chars.length > n ? `${chars.slice(0, n).join('')}…` : t;
}

/**
 * Each sampled prompt (samples.jsonl) with every run's completions of it: its first evaluation's and its
 * latest, greedy; undefined where no run has samples.
 */
function samplesHtml(runs: ReportRun[]): string | undefined {
  const prompts = new Map<string, { prompt: string; where: string; chosen?: string; rows: string[] }>();
  runs.forEach((r, i) => {
    const byPrompt = new Map<string, SampleRow[]>();
    for (const x of r.samples ?? []) {
      const key = `${x.file ?? ''}\u0000${x.line ?? ''}\u0000${x.prompt}`;
      byPrompt.set(key, [...(byPrompt.get(key) ?? []), x]);
    }
    for (const [key, xs] of byPrompt) {
      const sorted = [...xs].sort((a, b) => a.step - b.step);
      const first = sorted[0]; const last = sorted[sorted.length - 1];
      let p = prompts.get(key);
      if (!p) {
        p = { prompt: first.prompt, where: first.file ? `${first.file}:${first.line}` : '', chosen: last.chosen, rows: [] };
        prompts.set(key, p);
      }
      p.chosen ??= last.chosen; // (a run written before samples named it has none)
      const cut = (t: string, n: number) => cutText(t, n);
      const row = (x: SampleRow, label: string) => `<tr><th scope="row"><span class="swatch" style="background:${runColor(r, i)}"></span>${esc(r.name)}</th>` +
        `<td>${label} ${x.step}</td><td class="completion"><pre>${esc(cut(x.completion, COMPLETION_CHARS))}</pre>` +
        `<span class="se">${typeof x.completion_tokens === 'number' ? `${x.completion_tokens} token${x.completion_tokens === 1 ? '' : 's'}, ` : ''}` +
        `${x.finish_reason === 'stop' ? 'ended by a stop token' : 'at the token limit'}</span></td></tr>`;
      if (first !== last) p.rows.push(row(first, 'step'));
      p.rows.push(row(last, first !== last ? 'latest, step' : 'step'));
    }
  });
  if (prompts.size === 0) return undefined;
  const blocks = [...prompts.values()].map((p) => {
    const chars = [...p.prompt];
    const shown = chars.length > PROMPT_CHARS ? `…${chars.slice(chars.length - PROMPT_CHARS).join('')}` : p.prompt;
    const chosen = p.chosen !== undefined
      ? `<p class="note">the data's chosen response</p><pre class="chosen">${esc(cutText(p.chosen, COMPLETION_CHARS))}</pre>` : '';
    return `<div class="sample"><p class="note">prompt${p.where ? ` (${esc(p.where)})` : ''}</p><pre class="prompt">${esc(shown)}</pre>${chosen}` +
      `<table class="samples"><tbody>${p.rows.join('')}</tbody></table></div>`;
  });
  return '<p class="note">Greedy completions of the first --eval-data prompts at each evaluation (samples.jsonl): each run\'s first and latest.</p>' +
    blocks.join('\n');
}

function runSummary(runs: ReportRun[], xKey: string): string {
  if (runs.length === 0) return '<p class="empty">No runs.</p>';
  const rows = runs.map((r, i) => {
    const last = r.metrics.length ? r.metrics[r.metrics.length - 1] : undefined;
    const mean = (k: string) => {
      let s = 0, c = 0;
      for (const m of r.metrics) { const v = num(m, k); if (Number.isFinite(v)) { s += v; c++; } }
      return c ? s / c : NaN;
    };
    const lastFinite = (k: string) => {
      for (let j = r.metrics.length - 1; j >= 0; j--) { const v = num(r.metrics[j], k); if (Number.isFinite(v)) return v; }
      return NaN;
    };
    // A run short of the steps it planned (train_config.json's plannedSteps): stopped, or still training.
    const planned = typeof r.config?.plannedSteps === 'number' ? r.config.plannedSteps : NaN;
    const steps = last ? num(last, 'step') : NaN;
    const cells = [
      formatCell(steps, 0) + (steps < planned ? ` of ${formatCell(planned, 0)}` : ''),
      formatCell(last ? xOf(last, xKey === 'step' ? 'pairs_seen' : xKey) : NaN, 0),
      formatCell(lastFinite('loss'), 4), formatCell(lastFinite('margin'), 4),
      formatCell(lastFinite('accuracy'), 4), formatCell(lastFinite('aug_accuracy'), 4),
      formatCell(mean('tokens_per_s'), 0), formatCell(mean('pairs_per_s'), 2),
    ];
    return `<tr><th scope="row"><span class="swatch" style="background:${runColor(r, i)}"></span>${esc(r.name)}</th>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return '<table class="summary"><thead><tr><th>run</th><th>steps</th><th>pairs seen</th><th>last loss</th><th>last margin</th>' +
    '<th>last accuracy</th><th>last aug acc</th><th>mean tokens/s</th><th>mean pairs/s</th></tr></thead><tbody>' +
    rows.join('') + '</tbody></table>';
}

function evalTableHtml(table: EvalTableRow[]): string {
  if (table.length === 0) return '<p class="empty">No evaluation results.</p>';
  const head = ['run', 'split', 'step', 'pairs seen', ...EVAL_COLUMNS.map((c) => c.label)];
  const rows = table.map((r) => {
    // margin, accuracy and aug acc with their standard errors over the pairs, where the row has them.
    const se: Partial<Record<string, number | null | undefined>> = { margin: r.margin_se, accuracy: r.accuracy_se, aug_accuracy: r.aug_accuracy_se };
    const cell = (key: string, digits: number) => {
      const v = formatCell(r[key as keyof EvalTableRow], digits);
      const e = se[key];
      return v !== '-' && typeof e === 'number' && Number.isFinite(e) ? `${v} <span class="se">± ${formatCell(e, digits)}</span>` : v;
    };
    const cells = [formatCell(r.step, 0), formatCell(r.pairs_seen, 0), ...EVAL_COLUMNS.map((c) => cell(c.key, c.digits))];
    return `<tr><th scope="row">${esc(r.name)}</th><td class="text">${esc(r.split ?? '-')}</td>${cells.map((c) => `<td>${c}</td>`).join('')}</tr>`;
  });
  return `<table class="eval"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>` +
    '<p class="note">margin = mean β·h; accuracy = mean [h &gt; 0]; aug acc = mean [Δ &gt; 0] on the prompt-augmented input ' +
    '(± their standard errors over the pairs; an accuracy\'s is the binomial √(p(1−p)/n), 0 where every pair agrees); ' +
    'chosen NLL = the policy\'s negative log-likelihood per chosen-response token (on SFT rows, the SFT loss; also marked on the loss chart); ' +
    'Pearson, Spearman (average ranks) and Kendall τ-b between per-pair margins β·h and judge score differences; ' +
    'ties = pairs whose margin is exactly 0, which the accuracy counts as wrong (before the first step, every pair where the reference is the initial policy).</p>';
}

/** Flattens nested plain objects to dotted keys; arrays and other values become display strings. */
export function flattenConfig(obj: Record<string, unknown>, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype) {
      flattenConfig(v as Record<string, unknown>, key, out);
    } else {
      out[key] = typeof v === 'string' ? v : JSON.stringify(v) ?? String(v);
    }
  }
  return out;
}

/**
 * Which of LOSS_SETTINGS a run (its train_config.json) reads: its loss's, every one for a loss this
 * srk does not know; `evaluated`: also beta where an SFT run's evaluations score margins with it.
 */
function lossSettingsRead(config: Record<string, unknown>, evaluated = false): string[] {
  const loss = String(config.loss ?? '');
  if (!LOSSES.includes(loss as LossName)) return [...LOSS_SETTINGS];
  const keys: string[] = lossSettings(loss as LossName);
  return evaluated && loss === 'sft' && config.evalData !== undefined ? [...keys, 'beta'] : keys;
}

function configHtml(opts: ReportOptions): string {
  const parts: string[] = [];
  if (opts.config && Object.keys(opts.config).length) {
    const flat = flattenConfig(opts.config);
    parts.push('<table class="config"><tbody>' +
      Object.entries(flat).map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td class="text">${esc(v)}</td></tr>`).join('') + '</tbody></table>');
  }
  const withCfg = opts.runs.filter((r) => r.config && Object.keys(r.config).length);
  if (withCfg.length) {
    const flats = withCfg.map((r) => flattenConfig(r.config!));
    const keys: string[] = [];
    for (const f of flats) for (const k of Object.keys(f)) if (!keys.includes(k)) keys.push(k);
    // A loss setting the run's loss does not read (DPO's lambda, SFT's beta) is shown as such, and two runs
    // differ on it only where both read it.
    // (An SFT run's evaluations of preference pairs score their margins with beta.)
    const unread = withCfg.map((r) => {
      const reads = lossSettingsRead(r.config!, true);
      return (k: string) => ((LOSS_SETTINGS as readonly string[]).includes(k) && !reads.includes(k) ? String(r.config!.loss) : undefined);
    });
    const rows = keys.map((k) => {
      const vals = flats.map((f) => f[k] ?? '');
      const read = vals.filter((_, i) => !unread[i](k));
      const differs = read.some((v) => v !== read[0]);
      const cell = (v: string, i: number) => { const by = unread[i](k); return by ? `${v} (${by} does not read it)` : v; };
      // A long value every run shares (the paper's refinement prompt, a data path): once, across the runs' columns.
      if (vals.length > 1 && vals[0].length > 40 && vals.every((v, i) => v === vals[0] && !unread[i](k))) {
        return `<tr><th scope="row">${esc(k)}</th><td class="text same" colspan="${vals.length}">${esc(vals[0])}</td></tr>`;
      }
      return `<tr${differs ? ' class="differs"' : ''}><th scope="row">${esc(k)}</th>${vals.map((v, i) => `<td class="text${unread[i](k) ? ' unread' : ''}">${esc(cell(v, i))}</td>`).join('')}</tr>`;
    });
    parts.push(`<table class="config runs"><thead><tr><th>key</th>${withCfg.map((r) => `<th>${esc(r.name)}</th>`).join('')}</tr></thead><tbody>${rows.join('')}</tbody></table>`);
  }
  return parts.join('\n');
}

// ---------------------------------------------------------------------------------------------
// CSV

/** RFC 4180 field: quoted when it holds a comma, quote or line break; non-finite numbers empty. */
export function csvField(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

const LEADING = ['step', 'pairs_seen', 'loss', 'margin', 'accuracy', 'aug_accuracy', 'reward_chosen', 'reward_rejected',
  'logp_chosen', 'logp_rejected', 'grad_norm', 'lr', 'tokens_per_s', 'pairs_per_s', 'pearson', 'spearman', 'kendall', 'n'];

/**
 * A run's objective settings as CSV cells, last in every row of both files (so a sweep's metric can be
 * plotted against lambda without joining train_config.json): its loss, and beta and lambda where the
 * loss reads them (empty otherwise: DPO's lambda, say; also where the run recorded no config).
 */
const SETTING_COLUMNS = ['objective', 'beta', 'lambda'] as const;
function settingCells(run: ReportRun | undefined): string[] {
  const cfg = run?.config;
  if (!cfg) return SETTING_COLUMNS.map(() => '');
  const reads = lossSettingsRead(cfg, true);
  return [csvField(cfg.loss), reads.includes('beta') ? csvField(cfg.beta) : '', reads.includes('lambda') ? csvField(cfg.lambda) : ''];
}

/** All rows of all runs: columns run, kind (train|eval), split, then every field seen, then the objective settings. */
export function reportCsv(runs: ReadonlyArray<ReportRun>): string {
  const keys = new Set<string>();
  for (const r of runs) {
    for (const m of r.metrics) for (const k of Object.keys(m)) keys.add(k);
    for (const e of r.eval ?? []) for (const k of Object.keys(e)) keys.add(k);
  }
  keys.delete('split');
  const cols = [...LEADING.filter((k) => keys.has(k)), ...[...keys].filter((k) => !LEADING.includes(k))];
  const lines = [['run', 'kind', 'split', ...cols, ...SETTING_COLUMNS].join(',')];
  for (const r of runs) {
    const settings = settingCells(r);
    for (const m of r.metrics) lines.push([csvField(r.name), 'train', '', ...cols.map((k) => csvField((m as Record<string, unknown>)[k])), ...settings].join(','));
    for (const e of r.eval ?? []) lines.push([csvField(r.name), 'eval', csvField(e.split), ...cols.map((k) => csvField((e as Record<string, unknown>)[k])), ...settings].join(','));
  }
  return lines.join('\n') + '\n';
}

/** The eval table; `runs` (by name) give each row's objective settings, last. */
export function evalTableCsv(table: ReadonlyArray<EvalTableRow>, runs: ReadonlyArray<ReportRun> = []): string {
  // ties, then the settings, last: added after the standard errors, so that the earlier columns keep their places for readers by position.
  const cols = ['split', 'step', 'pairs_seen', ...EVAL_COLUMNS.map((c) => c.key).filter((k) => k !== 'ties'), 'margin_se', 'accuracy_se', 'aug_accuracy_se', 'ties'] as const;
  const lines = [['run', ...cols, ...SETTING_COLUMNS].join(',')];
  for (const r of table) lines.push([csvField(r.name), ...cols.map((k) => csvField(r[k])), ...settingCells(runs.find((x) => x.name === r.name))].join(','));
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Inline CSS and hover script

const CSS = `
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; color: #222; margin: 20px 28px; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 6px; }
h2 { font-size: 17px; margin: 26px 0 10px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.subtitle { color: #666; margin: 0 0 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 14px; }
.chart-box { margin: 0; background: #fff; border: 1px solid #ddd; border-radius: 4px; padding: 4px; }
.chart-box svg { width: 100%; height: auto; display: block; font-family: inherit; }
table { border-collapse: collapse; background: #fff; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #ddd; padding: 4px 9px; }
thead th { background: #f0f0f0; }
td { text-align: right; font-variant-numeric: tabular-nums; }
td.text { text-align: left; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; max-width: 560px; }
tbody th { text-align: left; font-weight: 600; }
tr.differs th { color: #b35900; }
td.unread { color: #999; }
td.same { color: #555; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
.note, .foot, .empty { color: #666; font-size: 12px; }
.se { color: #777; font-size: 11px; white-space: nowrap; }
.sample { margin: 10px 0 18px; }
.sample pre { white-space: pre-wrap; word-break: break-word; margin: 2px 0; font-size: 12px; }
pre.prompt { background: #f0f0f0; padding: 6px 8px; border-radius: 3px; }
pre.chosen { background: #eef6ee; padding: 4px 8px; border-radius: 3px; }
table.samples td.completion { text-align: left; min-width: 420px; }
.tip { position: fixed; pointer-events: none; background: rgba(255,255,255,0.96); border: 1px solid #999; border-radius: 3px; padding: 4px 7px; font-size: 12px; box-shadow: 0 1px 4px rgba(0,0,0,0.2); white-space: nowrap; }
`;

// Hover read-out: nearest drawn point of each series at the mouse's x (plain DOM, no libraries).
const HOVER_JS = `
(function () {
  var el = document.getElementById('chart-data');
  if (!el) return;
  var data = JSON.parse(el.textContent || '{}');
  var tip = document.getElementById('tip');
  function fmt(v) { return Math.abs(v) >= 1e6 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : String(Number(v.toPrecision(4))); }
  function nearest(xs, x) {
    var lo = 0, hi = xs.length - 1;
    while (hi - lo > 1) { var mid = (lo + hi) >> 1; if (xs[mid] < x) lo = mid; else hi = mid; }
    return Math.abs(xs[lo] - x) <= Math.abs(xs[hi] - x) ? lo : hi;
  }
  document.querySelectorAll('svg.chart').forEach(function (svg) {
    var series = data[svg.id] || [];
    var d = svg.dataset, left = +d.left, top = +d.top, pw = +d.pw, ph = +d.ph, x0 = +d.x0, x1 = +d.x1;
    var guide = svg.querySelector('line.hover');
    svg.addEventListener('mousemove', function (ev) {
      var pt = svg.createSVGPoint(); pt.x = ev.clientX; pt.y = ev.clientY;
      var p = pt.matrixTransform(svg.getScreenCTM().inverse());
      if (p.x < left || p.x > left + pw || p.y < top || p.y > top + ph) { tip.hidden = true; guide.setAttribute('visibility', 'hidden'); return; }
      var x = x0 + (p.x - left) / pw * (x1 - x0);
      var lines = [];
      series.forEach(function (s) {
        if (!s.x.length) return;
        var i = nearest(s.x, x);
        lines.push('<span style="color:' + s.color + '">\\u25A0</span> ' + s.name.replace(/[&<>]/g, function (c) { return {'&':'&amp;','<':'&lt;','>':'&gt;'}[c]; }) + ': ' + fmt(s.y[i]) + ' @ ' + fmt(s.x[i]));
      });
      if (!lines.length) return;
      tip.innerHTML = lines.join('<br>');
      tip.hidden = false;
      tip.style.left = (ev.clientX + 14) + 'px'; tip.style.top = (ev.clientY + 10) + 'px';
      guide.setAttribute('x1', p.x); guide.setAttribute('x2', p.x); guide.setAttribute('visibility', 'visible');
    });
    svg.addEventListener('mouseleave', function () { tip.hidden = true; guide.setAttribute('visibility', 'hidden'); });
  });
})();
`;
