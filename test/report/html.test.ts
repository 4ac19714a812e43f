import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { demoReportOptions, writeDemo } from '../../src/report/demo.js';
import { computeEvalMetrics, computeSftEvalMetrics, toEvalRow, type EvalTableRow } from '../../src/report/eval-metrics.js';
import { autoSmoothing, csvField, renderReportHtml, runsFromDirs, writeReport, type ReportOptions, type ReportRun } from '../../src/report/html.js';
import { readRunDir, type EvalRow, type MetricsRow } from '../../src/report/metrics-log.js';
import { writeEvalPairs } from '../../src/report/eval-pairs.js';
import { appendSamples, readSamples, trimSamples } from '../../src/report/samples-log.js';
import { downsample, ema, finitePoints, formatTick, niceTicks, renderLineChart } from '../../src/report/svg-chart.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'srk-report-'));
afterAll(() => { if (!process.env.SRK_KEEP_REPORT) fs.rmSync(tmpRoot, { recursive: true, force: true }); });
let counter = 0;
const tmpDir = () => { const d = path.join(tmpRoot, String(counter++)); fs.mkdirSync(d); return d; };

/** Synthetic metrics rows: value(step) per field. */
function synthRun(name: string, steps: number, f: (s: number) => number, opts: { batch?: number; evalEvery?: number } = {}): ReportRun {
  const batch = opts.batch ?? 32, evalEvery = opts.evalEvery ?? 25;
  const metrics: Array<Partial<MetricsRow>> = [];
  const evals: EvalRow[] = [];
  for (let s = 1; s <= steps; s++) {
    metrics.push({ step: s, pairs_seen: s * batch, loss: 0.7 - 0.3 * f(s), margin: f(s), accuracy: 0.5 + 0.4 * f(s), aug_accuracy: 0.45 + 0.4 * f(s), lr: 1e-6, tokens_per_s: 1000, pairs_per_s: 5 });
    if (s % evalEvery === 0) evals.push({ step: s, pairs_seen: s * batch, split: 'test', margin: f(s) * 0.9, accuracy: 0.5 + 0.3 * f(s), aug_accuracy: 0.5 + 0.3 * f(s), pearson: 0.3, spearman: 0.25, kendall: 0.2, n: 200 });
  }
  return { name, metrics, eval: evals };
}

function count(s: string, re: RegExp): number { return (s.match(re) ?? []).length; }

/** The <svg>...</svg> blocks of a page. */
function allSvgs(html: string): string[] { return html.match(/<svg[\s\S]*?<\/svg>/g) ?? []; }
/** Those of the headline training curves (the first charts block; diagnostics and the scatter are apart). */
function svgs(html: string): string[] { return allSvgs(html.match(/<div class="charts">[\s\S]*?<\/div>/)?.[0] ?? ''); }
/** Those of the diagnostics block. */
function diagnosticSvgs(html: string): string[] { return allSvgs(html.match(/<div class="charts diagnostics">[\s\S]*?<\/div>/)?.[0] ?? ''); }

describe('svg chart helpers', () => {
  it('nice ticks, constant and single-value ranges, tick labels', () => {
    expect(niceTicks(0, 1)).toMatchObject({ min: 0, max: 1, step: 0.2 });
    expect(niceTicks(0.52, 0.68).ticks).toEqual([0.5, 0.55, 0.6, 0.65, 0.7]); // raw step 0.032 -> 0.05
    const c = niceTicks(3, 3);
    expect(c.max).toBeGreaterThan(c.min);
    expect(c.min).toBeLessThanOrEqual(3); expect(c.max).toBeGreaterThanOrEqual(3);
    const z = niceTicks(0, 0);
    expect(z.max - z.min).toBeGreaterThan(0);
    const nan = niceTicks(NaN, NaN);
    expect([nan.min, nan.max]).toEqual([0, 1]);
    expect(formatTick(12000, 2000)).toBe('12k');
    expect(formatTick(1500000, 500000)).toBe('1.5M');
    expect(formatTick(0.25, 0.05)).toBe('0.25');
    expect(formatTick(-0, 0.1)).toBe('0.0');
    expect(formatTick(-1e-17, 0.1)).toBe('0.0');
    expect(formatTick(0, 1)).toBe('0');
    expect(formatTick(3e-6, 1e-6)).toBe('3.0e-6');
    // Every axis reads: neighbouring ticks never share a label, one form per axis.
    const labels = (lo: number, hi: number) => { const t = niceTicks(lo, hi); const m = Math.max(...t.ticks.map(Math.abs)); return t.ticks.map((v) => formatTick(v, t.step, m)); };
    for (const [lo, hi] of [[0.6931452, 0.6931472], [1.2e-5, 1.25e-5], [2.3, 2.30004], [0, 2e-6], [-5e-5, 1e-4], [0.1, 0.9], [1e-7, 5e-7], [-3.2, 7.9]]) {
      const l = labels(lo, hi);
      expect(new Set(l).size, `${lo}..${hi}: ${l.join(' | ')}`).toBe(l.length);
      const sci = l.filter((x) => x !== '0' && /e/.test(x)).length;
      expect(sci === 0 || sci === l.filter((x) => x !== '0').length, `${lo}..${hi}: one form (${l.join(' | ')})`).toBe(true);
    }
    expect(labels(0.6931452, 0.6931472)).toContain('0.6931460');
    expect(labels(0, 2e-6)[0]).toBe('0');
  });

  it('finite points skip NaN and sort; downsampling keeps ends, extremes and the point limit', () => {
    expect(finitePoints([3, 1, NaN, 2], [30, 10, 5, NaN])).toEqual({ x: [1, 3], y: [10, 30] });
    const n = 100_000;
    const x = Array.from({ length: n }, (_, i) => i), y = x.map((i) => Math.sin(i / 1000));
    y[54_321] = 50; // a spike must survive
    const d = downsample(x, y, 2000);
    expect(d.x.length).toBe(2000);
    expect(d.x[0]).toBe(0); expect(d.x[1999]).toBe(n - 1);
    expect(d.y).toContain(50);
    for (let i = 1; i < d.x.length; i++) expect(d.x[i]).toBeGreaterThan(d.x[i - 1]);
    expect(downsample([1, 2], [3, 4], 2000)).toEqual({ x: [1, 2], y: [3, 4] });
  });

  it('EMA smoothing is debiased (a constant stays constant) and follows TensorBoard\'s recurrence', () => {
    expect(ema([2, 2, 2], 0.9).map((v) => Number(v.toFixed(12)))).toEqual([2, 2, 2]);
    const e = ema([1, 0], 0.5); // s1 = 0.5 / 0.5 = 1; s2 = (0.25 + 0) / 0.75 = 1/3
    expect(e[0]).toBeCloseTo(1, 15); expect(e[1]).toBeCloseTo(1 / 3, 15);
  });

  it('edge cases render without NaN coordinates: single point, all-NaN, constant series', () => {
    const single = renderLineChart({ id: 'a', title: 'one', xLabel: 'x', yLabel: 'y', series: [{ name: 'r', color: '#f00', x: [5], y: [0.3] }] });
    expect(single.svg).toContain('class="single"');
    const empty = renderLineChart({ id: 'b', title: 'none', xLabel: 'x', yLabel: 'y', series: [{ name: 'r', color: '#f00', x: [1, 2], y: [NaN, NaN] }] });
    expect(empty.svg).toContain('no data');
    expect(empty.svg).toContain('r (no data)');
    expect(count(empty.svg, /<polyline/g)).toBe(0);
    const flat = renderLineChart({ id: 'c', title: 'flat', xLabel: 'x', yLabel: 'y', series: [{ name: 'r', color: '#f00', x: [1, 2, 3], y: [2, 2, 2] }] });
    for (const s of [single.svg, empty.svg, flat.svg]) {
      expect(s).not.toMatch(/NaN|Infinity/);
    }
    const pts = flat.svg.match(/points="([^"]+)"/)![1].split(' ').map((p) => Number(p.split(',')[1]));
    expect(new Set(pts).size).toBe(1); // a horizontal line inside the plot
  });

  it('an x axis of counts (steps, pairs seen) has whole ticks, at one value too, and not below 0', () => {
    const chart = (x: number[], integerX = true) => renderLineChart({ id: 'i', title: 'i', xLabel: 'pairs seen', yLabel: 'y', integerX,
      series: [{ name: 'r', color: '#f00', x, y: x.map((v) => v / 10) }] });
    expect(chart([3]).xTicks.ticks).toEqual([2, 3, 4]);
    expect(chart([0]).xTicks.ticks).toEqual([0, 1]);
    expect(chart([0, 3]).xTicks.ticks).toEqual([0, 1, 2, 3]);
    expect(chart([0, 64, 128]).xTicks.ticks).toEqual([0, 20, 40, 60, 80, 100, 120, 140]);
    // Data starting within a quarter of their span from 0: the axis starts at 0; further away, at the data.
    expect(chart([12, 60]).xTicks.ticks[0]).toBe(0);
    expect(chart([20, 60]).xTicks.ticks[0]).toBe(20);
    // Without it (a scatter's score differences): fractions.
    expect(chart([0, 3], false).xTicks.ticks).toContain(0.5);
    expect(niceTicks(0, 3, 6, 1).step).toBe(1);
  });
});

describe('HTML report', () => {
  const runs = [
    synthRun('Sr-DPO', 200, (s) => 1 - Math.exp(-s / 50)),
    synthRun('DPO', 180, (s) => 0.8 * (1 - Math.exp(-s / 70))),
  ];
  const evalTable: EvalTableRow[] = [
    { name: 'Sr-DPO', split: 'test', step: 200, pairs_seen: 6400, margin: 0.61234, accuracy: 0.7125, aug_accuracy: 0.69, nll_chosen: 1.98761, pearson: 0.4321, spearman: 0.3987, kendall: 0.2876, n: 512 },
    { name: 'DPO', split: 'test', step: 180, pairs_seen: 5760, margin: 0.40111, accuracy: 0.655, aug_accuracy: 0.6, pearson: 0.3012, spearman: 0.2899, kendall: 0.2011, n: 512,
      margin_se: 0.0412, accuracy_se: 0.021, aug_accuracy_se: null },
  ];

  it('writes report.html with one svg per chart, one polyline per run, legends, eval markers and table', () => {
    const dir = tmpDir();
    const files = writeReport(dir, { title: 'Two runs <test>', runs, evalTable, smoothing: 0, config: { model: 'EleutherAI/pythia-70m', beta: 0.1, opt: { lr: 5e-7, name: 'rmsprop' } } });
    const html = fs.readFileSync(files.html, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<title>Two runs &lt;test&gt;</title>');
    const charts = svgs(html);
    expect(charts).toHaveLength(4);
    const titles = ['Training loss', 'Reward margin', 'Accuracy (h &gt; 0)', 'Prompt-augmented accuracy'];
    charts.forEach((svg, i) => {
      expect(svg).toContain(titles[i]);
      expect(count(svg, /<polyline/g)).toBe(runs.length);
      expect(svg).toMatch(/<g class="legend">[\s\S]*>Sr-DPO<\/text>[\s\S]*>DPO<\/text>/);
      expect(svg).toContain('>pairs seen</text>');
      expect(count(svg, /class="yticks"/g)).toBe(1);
      expect(svg).not.toMatch(/NaN|Infinity/);
      // Distinct colours per run.
      const strokes = [...svg.matchAll(/<polyline[^>]*stroke="([^"]+)"/g)].map((m) => m[1]);
      expect(new Set(strokes).size).toBe(runs.length);
    });
    // Eval markers on margin/accuracy/aug charts (8 + 7 evals), none on loss (no loss in eval rows).
    expect(count(charts[0], /class="marker"/g)).toBe(0);
    for (const i of [1, 2, 3]) expect(count(charts[i], /class="marker"/g)).toBe(8 + 7);
    expect(charts[1]).toContain('Sr-DPO · eval test · step 25');
    // X ticks reach the last pairs_seen (6400) with k labels.
    expect(charts[0]).toMatch(/>6\.4k<|>7k<|>6k</);

    // Eval table values.
    const table = html.match(/<table class="eval">[\s\S]*?<\/table>/)![0];
    for (const h of ['margin', 'accuracy', 'aug acc', 'chosen NLL', 'Pearson', 'Spearman', 'Kendall', 'n']) expect(table).toContain(`<th>${h}</th>`);
    expect(table).toMatch(/<th scope="row">Sr-DPO<\/th><td class="text">test<\/td><td>200<\/td><td>6400<\/td><td>0\.6123<\/td><td>0\.7125<\/td><td>0\.6900<\/td><td>1\.9876<\/td><td>0\.4321<\/td><td>0\.3987<\/td><td>0\.2876<\/td><td>512<\/td>/);
    expect(table).toContain('<th scope="row">DPO</th>');
    // Standard errors beside the means where a row has them (not for Sr-DPO's, written without).
    expect(table).toMatch(/<th scope="row">DPO<\/th>.*<td>0\.4011 <span class="se">± 0\.0412<\/span><\/td><td>0\.6550 <span class="se">± 0\.0210<\/span><\/td><td>0\.6000<\/td>/);
    // Config, flattened and escaped.
    expect(html).toContain('<th scope="row">opt.lr</th><td class="text">5e-7</td>');
    expect(html).toContain('EleutherAI/pythia-70m');
    // Self-contained: no external scripts, stylesheets, images or fonts.
    expect(html).not.toMatch(/<script[^>]*\ssrc=/i);
    expect(html).not.toMatch(/<link[^>]*href=/i);
    expect(html).not.toMatch(/(src|href)\s*=\s*["']?https?:/i);
    expect(html).not.toMatch(/@import|url\(\s*["']?http/i);
    // Only the SVG namespace URI contains "http".
    expect(html.replace(/xmlns="http:\/\/www\.w3\.org\/2000\/svg"/g, '')).not.toContain('http');
    // Atomic writes leave no temp files.
    expect(fs.readdirSync(dir).sort()).toEqual(['report-eval.csv', 'report.csv', 'report.html']);
  });

  it('smoothing by default: none below 30 steps, else an EMA of weight 1 - 20/steps (at most 0.98), said under the title', () => {
    const run = (n: number): ReportRun => ({ name: `r${n}`, metrics: Array.from({ length: n }, (_, i) => ({ step: i + 1, pairs_seen: 8 * (i + 1), loss: 0.7 - 0.001 * i + 0.05 * Math.sin(i) })) });
    expect([10, 29, 30, 60, 200, 1000, 5000].map((n) => autoSmoothing([run(n)]))).toEqual([0, 0, 0.33, 0.67, 0.9, 0.98, 0.98]);
    expect(autoSmoothing([run(10), run(200)])).toBe(0.9); // the longest run's
    const page = (o: Partial<ReportOptions>) => renderReportHtml({ title: 't', runs: [run(200)], ...o });
    const auto = page({});
    expect(auto).toContain('exponential moving average (weight 0.9, chosen for 200 steps; srk report --smoothing sets it)');
    expect(svgs(auto)[0]).toContain('r200 (EMA 0.9)');
    expect(page({ smoothing: 0.5 })).toContain('exponential moving average (weight 0.5) of the per-step values');
    expect(page({ smoothing: 0 })).toContain('Curves: per-step training values.');
    expect(renderReportHtml({ title: 't', runs: [run(12)] })).toContain('Curves: per-step training values.');
  });

  it('the summary\'s last values are the last finite ones; rows without pairs_seen are drawn at their step; each eval split its own markers', () => {
    const html = renderReportHtml({ title: 's', runs: [{
      name: 'r',
      metrics: [{ step: 1, loss: 1.0, margin: 0.1 }, { step: 2, loss: 0.5, margin: NaN }, { step: 3, loss: 0.25 }].map((m) => m as Partial<MetricsRow>),
      eval: [{ step: 3, split: 'test', margin: 0.7, n: 10 }, { step: 3, split: 'train', margin: -0.4, n: 10 }] as EvalRow[],
    }] });
    const summary = html.match(/<table class="summary">[\s\S]*?<\/table>/)![0];
    const cells = [...summary.matchAll(/<td>([^<]*)<\/td>/g)].map((m) => m[1]);
    expect(cells.slice(0, 4)).toEqual(['3', '3', '0.2500', '0.1000']); // steps, pairs seen (the step), last loss, last finite margin
    const lossChart = svgs(html).find((svg) => svg.includes('Training loss'))!;
    expect(lossChart.match(/points="([^"]+)"/)![1].split(' ')).toHaveLength(3);
    const marginChart = svgs(html).find((svg) => /<title>[^<]*margin/i.test(svg))!;
    const tips = [...marginChart.matchAll(/class="marker"[^>]*><title>([^<]*)<\/title>/g)].map((m) => m[1]);
    expect(tips.filter((t) => t.includes('eval test'))).toEqual([expect.stringMatching(/step 3: .* 0\.7\b/)]);
    expect(tips.filter((t) => t.includes('eval train'))).toEqual([expect.stringMatching(/step 3: .* -0\.4\b/)]);
  });

  it('settings a run\'s loss does not read are said so: DPO\'s lambda, SFT\'s beta without --eval-data (with it, its margins read beta)', () => {
    const run = (name: string, config: Record<string, unknown>): ReportRun => ({ name, metrics: [{ step: 1, pairs_seen: 2, loss: 0.7 }], config });
    const html = renderReportHtml({ title: 's', runs: [
      run('sr', { loss: 'sr-dpo', beta: 0.1, lambda: 0.5 }), run('dpo', { loss: 'dpo', beta: 0.1, lambda: 0.3 }),
      run('sft', { loss: 'sft', beta: 0.2, lambda: 0.5 }), run('sft-eval', { loss: 'sft', beta: 0.3, lambda: 0.5, evalData: 'held.jsonl' }),
    ] });
    const table = html.match(/<table class="config runs">[\s\S]*?<\/table>/)![0];
    expect(table).toContain('<tr class="differs"><th scope="row">beta</th><td class="text">0.1</td><td class="text">0.1</td>' +
      '<td class="text unread">0.2 (sft does not read it)</td><td class="text">0.3</td></tr>');
    expect(table).toContain('<tr><th scope="row">lambda</th><td class="text">0.5</td><td class="text unread">0.3 (dpo does not read it)</td>');
    // A long value every run shares is written once across their columns; a short one, or one that differs, per run.
    const prompt = 'Please generate a response with a usefulness rating of 100 out of 100. Query:';
    const shared = renderReportHtml({ title: 's', runs: [run('a', { loss: 'dpo', refinePrompt: prompt, seed: 1 }), run('b', { loss: 'sr-dpo', refinePrompt: prompt, seed: 1 })] });
    expect(shared).toContain(`<tr><th scope="row">refinePrompt</th><td class="text same" colspan="2">${prompt}</td></tr>`);
    expect(shared).toContain('<tr><th scope="row">seed</th><td class="text">1</td><td class="text">1</td></tr>');
    const apart = renderReportHtml({ title: 's', runs: [run('a', { loss: 'dpo', refinePrompt: prompt }), run('b', { loss: 'sr-dpo', refinePrompt: `${prompt} ` })] });
    expect(apart).not.toContain('colspan');
  });

  it('writes CSVs with every point of every run', () => {
    const dir = tmpDir();
    const files = writeReport(dir, { title: 't', runs, evalTable });
    const lines = fs.readFileSync(files.csv, 'utf8').trimEnd().split('\n');
    const header = lines[0].split(',');
    expect(header.slice(0, 7)).toEqual(['run', 'kind', 'split', 'step', 'pairs_seen', 'loss', 'margin']);
    const nEval = runs.reduce((a, r) => a + (r.eval?.length ?? 0), 0);
    expect(lines).toHaveLength(1 + 200 + 180 + nEval);
    const rec = (line: string) => Object.fromEntries(line.split(',').map((v, i) => [header[i], v]));
    const r0 = rec(lines[1]);
    expect(r0).toMatchObject({ run: 'Sr-DPO', kind: 'train', split: '', step: '1', pairs_seen: '32' });
    expect(Number(r0.margin)).toBe(runs[0].metrics[0].margin);
    const ev = lines.map(rec).filter((r) => r.kind === 'eval');
    expect(ev).toHaveLength(nEval);
    expect(ev[0]).toMatchObject({ run: 'Sr-DPO', split: 'test', step: '25', pearson: '0.3', n: '200' });
    expect(ev[0].loss).toBe('');
    const evalCsv = fs.readFileSync(files.evalCsv, 'utf8').trimEnd().split('\n');
    // (ties, then the objective settings, last: the columns before them keep their places for readers by position)
    expect(evalCsv[0]).toBe('run,split,step,pairs_seen,margin,accuracy,aug_accuracy,nll_chosen,pearson,spearman,kendall,n,margin_se,accuracy_se,aug_accuracy_se,ties,objective,beta,lambda');
    expect(evalCsv[1]).toBe('Sr-DPO,test,200,6400,0.61234,0.7125,0.69,1.98761,0.4321,0.3987,0.2876,512,,,,,,,');
    expect(evalCsv[2]).toBe('DPO,test,180,5760,0.40111,0.655,0.6,,0.3012,0.2899,0.2011,512,0.0412,0.021,,,,,');
    // With the runs' train_config.json: their loss, and beta and lambda where the loss reads them, last in
    // every row of both files (a sweep's metric against lambda without joining the configs).
    const withCfg = runs.map((r, i) => ({ ...r, config: { loss: i === 0 ? 'sr-dpo' : 'dpo', beta: 0.1, lambda: 0.3 } }));
    const f2 = writeReport(tmpDir(), { title: 't', runs: withCfg, evalTable });
    const csv2 = fs.readFileSync(f2.csv, 'utf8').trimEnd().split('\n');
    expect(csv2[0].endsWith(',objective,beta,lambda')).toBe(true);
    expect(csv2[1].endsWith(',sr-dpo,0.1,0.3')).toBe(true);
    expect(csv2.filter((l) => l.startsWith('DPO,')).every((l) => l.endsWith(',dpo,0.1,'))).toBe(true);
    const eval2 = fs.readFileSync(f2.evalCsv, 'utf8').trimEnd().split('\n');
    expect(eval2[1]).toBe('Sr-DPO,test,200,6400,0.61234,0.7125,0.69,1.98761,0.4321,0.3987,0.2876,512,,,,,sr-dpo,0.1,0.3');
    expect(eval2[2]).toBe('DPO,test,180,5760,0.40111,0.655,0.6,,0.3012,0.2899,0.2011,512,0.0412,0.021,,,dpo,0.1,');
    expect(csvField('a,"b"')).toBe('"a,""b"""');
    expect(csvField(NaN)).toBe('');
  });

  it('handles NaN/null values, a single-point run, a run without metrics, huge runs and HTML-hostile names', () => {
    const long: ReportRun = { name: 'long', metrics: [] };
    const m = long.metrics as Array<Partial<MetricsRow>>;
    for (let s = 1; s <= 50_000; s++) m.push({ step: s, pairs_seen: s * 64, loss: s % 1000 === 0 ? NaN : 1 / Math.sqrt(s), margin: s === 7 ? null : Math.log(s), accuracy: 0.6, aug_accuracy: null });
    const weird: ReportRun = { name: '<b>x&y</b>', metrics: [{ step: 1, pairs_seen: 8, loss: 0.5, margin: 0.1, accuracy: 1, aug_accuracy: 0 }] };
    const empty: ReportRun = { name: 'empty', metrics: [] };
    const dir = tmpDir();
    const files = writeReport(dir, { title: 'edge', runs: [long, weird, empty] });
    const html = fs.readFileSync(files.html, 'utf8');
    expect(html).not.toContain('<b>x&y</b>');
    expect(html).toContain('&lt;b&gt;x&amp;y&lt;/b&gt;');
    const charts = svgs(html);
    expect(charts).toHaveLength(4);
    for (const svg of charts) {
      expect(svg).not.toMatch(/NaN|Infinity/);
      for (const pl of svg.match(/points="[^"]*"/g) ?? []) expect(pl.split(' ').length).toBeLessThanOrEqual(2000);
    }
    // Aug accuracy: 'long' has only nulls -> no polyline for it; 'weird' is a single point.
    expect(count(charts[3], /<polyline/g)).toBe(1);
    expect(charts[3]).toContain('long (no data)');
    expect(charts[0]).toContain('class="single"');
    expect(html).toContain('No evaluation results.');
    // The CSV keeps every row.
    expect(fs.readFileSync(files.csv, 'utf8').trimEnd().split('\n')).toHaveLength(1 + 50_000 + 1);
    // Empty input does not crash.
    expect(renderReportHtml({ title: 'nothing', runs: [] })).toContain('No runs.');
  });

  // Two runs on one chart must both show where they overlap: a line pattern and a marker shape per run,
  // each run's markers named in the legend; evaluations carry their standard errors as whiskers (and in
  // their tips); smoothed curves say so; a run with eval markers but no curve reads "eval only"; runs of
  // different objectives get a note that their losses are not comparable.
  it('two runs apart: dashes and marker shapes per run, named markers, standard-error whiskers, EMA and eval-only labels, an objectives note', () => {
    const a = synthRun('Sr-DPO', 50, (x) => x / 50); const b = synthRun('DPO', 50, (x) => x / 50); // the same values: b covers a
    for (const r of [a, b]) for (const e of r.eval!) Object.assign(e, { margin_se: 0.05, accuracy_se: 0.02 });
    a.config = { loss: 'sr-dpo', beta: 0.1, lambda: 0.5 }; b.config = { loss: 'dpo', beta: 0.1, lambda: 0.5 };
    const html = renderReportHtml({ title: 't', runs: [a, b], smoothing: 0.6 });
    const [loss, margin, , aug] = svgs(html);
    const dashes = (margin.match(/<polyline[^>]*>/g) ?? []).map((tag) => tag.match(/stroke-dasharray="([^"]+)"/)?.[1] ?? '');
    expect(dashes).toHaveLength(2);
    expect(new Set(dashes).size).toBe(2); // one solid, one dashed
    // Each run's legend entry: its line pattern with its marker on it (one entry a run, not two).
    const legend = margin.match(/<g class="legend">[\s\S]*?<\/g>\n<\/g>/)![0];
    const entries = legend.split('<g class="legend-item">').slice(1);
    expect(entries).toHaveLength(2);
    for (const e of entries) expect(count(e, /<path d=/g)).toBe(1);
    expect(entries[1]).toContain('stroke-dasharray');
    // The markers of the two runs differ in shape (their paths at the same point differ).
    expect(margin.match(/class="marker" data-run="Sr-DPO" d="([^"]+)"/)![1]).not.toBe(margin.match(/class="marker" data-run="DPO" d="([^"]+)"/)![1]);
    expect(count(margin, /class="err"/g)).toBe(4); // two evals a run
    expect(margin).toContain('± 0.05 (standard error)');
    expect(loss).not.toContain('class="err"'); // no loss in eval rows
    // One smoothing for both runs: said once beside the title, not in each entry.
    expect(count(margin, /\(EMA 0\.6/g)).toBe(1);
    expect(margin).toMatch(/<text class="ctitle"[^>]*>[^<]*<tspan class="smoothing"[^>]*>\(EMA 0\.6, raw values faint\)<\/tspan><\/text>/);
    expect(legend).toContain('>Sr-DPO</text>');
    expect(html).toContain('"name":"Sr-DPO (smoothed)"');
    expect(html).toContain('The runs&#39; objectives differ (loss): their training losses are values of different functions, not better and worse values of one; compare their margins and accuracies.');
    // A run whose training rows lack aug accuracy but whose evaluations have it.
    for (const m of b.metrics as Array<Partial<MetricsRow>>) m.aug_accuracy = null;
    expect(svgs(renderReportHtml({ title: 't', runs: [a, b] }))[3]).toContain('DPO (eval only)');
    expect(aug).toContain('(EMA 0.6, raw values faint)');
    // Curves not smoothed alike (a run of one step has nothing to smooth): the entry of the smoothed one says so.
    const each = svgs(renderReportHtml({ title: 't', runs: [a, synthRun('DPO', 1, (x) => x)], smoothing: 0.6 }))[0];
    expect(each).toContain('Sr-DPO (EMA 0.6)'); expect(each).toContain('>DPO</text>'); expect(each).not.toContain('class="smoothing"');
    // Many runs with long names: the chart grows with its legend rather than the plot shrinking, and a
    // label wider than a row is cut in its middle, its end kept.
    const many = Array.from({ length: 8 }, (_, i) => ({ ...synthRun(`a-rather-long-run-name-for-a-sweep-number-${i}`, 20, (x) => x / 20) }));
    const tall = svgs(renderReportHtml({ title: 'm', runs: many, smoothing: 0.6 }))[1];
    const h = Number(tall.match(/height="(\d+)"/)![1]); const top = Number(tall.match(/data-top="(\d+)"/)![1]); const ph = Number(tall.match(/data-ph="([\d.]+)"/)![1]);
    expect(h).toBeGreaterThan(360);
    expect(ph).toBe(360 - (top - (h - 360)) - 46); // the plot keeps the height of a one-row legend's
    expect(count(tall, /\(EMA 0\.6/g)).toBe(1);
    const longName = 'x'.repeat(120);
    const cut = svgs(renderReportHtml({ title: 'c', runs: [synthRun(longName, 20, (x) => x / 20)], smoothing: 0.5 }))[1];
    expect(cut).not.toMatch(new RegExp(`<text[^>]*>${longName}`)); // (the full name stays in the line's title)
    expect(cut).toMatch(/x…x*x \(EMA 0\.5\)<\/text>/);
    // One run, or runs of one objective: solid lines, the markers named by split alone, no note.
    const one = renderReportHtml({ title: 't', runs: [a] });
    expect((svgs(one)[1].match(/<polyline[^>]*>/g) ?? []).some((tag) => tag.includes('stroke-dasharray'))).toBe(false);
    expect(svgs(one)[1]).toContain('>eval (test)</text>');
    // Evaluations on different held-out sets: said, by size and file (by name: another path to one file is one set).
    const sized = (r: ReportRun, n: number, evalData: string, maxEvalPairs?: number) => ({ ...r, config: { ...r.config, evalData, ...(maxEvalPairs ? { maxEvalPairs } : {}) },
      eval: r.eval!.map((e) => ({ ...e, n })) });
    expect(renderReportHtml({ title: 't', runs: [sized(a, 200, '/x/test.jsonl'), sized(b, 200, 'test.jsonl')] })).not.toContain('different held-out sets');
    expect(renderReportHtml({ title: 't', runs: [sized(a, 16, 'test.jsonl', 16), sized(b, 8, 'test.jsonl', 8)] }))
      .toContain('The runs evaluated on different held-out sets (Sr-DPO 16 pairs of test.jsonl; DPO 8 pairs of test.jsonl): their eval numbers are over different pairs');
    expect(renderReportHtml({ title: 't', runs: [sized(a, 200, 'a.jsonl'), sized(b, 200, 'b.jsonl')] })).toContain('Sr-DPO 200 pairs of a.jsonl; DPO 200 pairs of b.jsonl');
    // A limit past the file's pairs: the same set.
    expect(renderReportHtml({ title: 't', runs: [sized(a, 6, 'test.jsonl', 100), sized(b, 6, 'test.jsonl')] })).not.toContain('different held-out sets');
    // srk train's own split, "eval", is not named twice.
    const own = renderReportHtml({ title: 't', runs: [{ ...a, eval: a.eval!.map((e) => ({ ...e, split: 'eval' })) }] });
    expect(svgs(own)[1]).toContain('>eval</text>');
    expect(svgs(own)[1]).not.toContain('eval (eval)');
    // Margins scale with beta: where it differs, the accuracies; a setting a loss does not read (DPO's lambda) is no difference.
    b.config = { loss: 'dpo', beta: 0.5, lambda: 0.9 };
    expect(renderReportHtml({ title: 't', runs: [{ ...a, config: { loss: 'dpo', beta: 0.1, lambda: 0.5 } }, b] }))
      .toContain('objectives differ (beta): their training losses are values of different functions, not better and worse values of one; compare their accuracies (margins, β·h, scale with β).');
    b.config = { ...a.config };
    expect(renderReportHtml({ title: 't', runs: [a, b] })).not.toContain('objectives differ');
    // A run short of the steps it planned (stopped, or still training) says so in the summary.
    a.config.plannedSteps = 200; b.config.plannedSteps = 50;
    const summary = renderReportHtml({ title: 't', runs: [a, b] }).match(/<table class="summary">[\s\S]*?<\/table>/)![0];
    expect(summary).toMatch(/Sr-DPO<\/th><td>50 of 200<\/td>/);
    expect(summary).toMatch(/DPO<\/th><td>50<\/td>/);
  });

  // The paper's table puts DPO and IPO side by side: IPO's loss starts at 1/(2β)^2 = 25 and its gradients are
  // ~100x DPO's, so on one axis the DPO runs would lie flat. The loss and the gradient norm get a chart per
  // loss family; the margins and accuracies, comparable across losses, stay on one.
  it('a loss and a gradient-norm chart per loss family where the runs span several, each run in its own colour throughout', () => {
    const mk = (name: string, loss: string, scale: number) => {
      const r = synthRun(name, 40, (x) => x / 40);
      r.config = { loss, beta: 0.1, lambda: 0.5 };
      for (const m of r.metrics as Array<Partial<MetricsRow>>) { m.loss = scale * m.loss!; m.grad_norm = scale; }
      return r;
    };
    const runs = [mk('dpo', 'dpo', 1), mk('ipo', 'ipo', 36), mk('sr-dpo', 'sr-dpo', 1), mk('sr-ipo', 'sr-ipo', 36)];
    const html = renderReportHtml({ title: 't', runs, smoothing: 0 });
    const title = (svg: string) => svg.match(/<title>([^<]*)<\/title>/)![1];
    const drawnRuns = (svg: string) => [...svg.matchAll(/<polyline class="line" data-run="([^"]+)" stroke="([^"]+)"/g)].map((m) => `${m[1]} ${m[2]}`);
    const main = svgs(html);
    expect(main.map(title)).toEqual(['Training loss: DPO, Sr-DPO', 'Training loss: IPO, Sr-IPO', 'Reward margin (mean β·h)', 'Accuracy (h &gt; 0)', 'Prompt-augmented accuracy (Δ &gt; 0)']);
    const colour = Object.fromEntries(drawnRuns(main[2]).map((s) => s.split(' ')));
    expect(Object.keys(colour)).toEqual(['dpo', 'ipo', 'sr-dpo', 'sr-ipo']);
    expect(drawnRuns(main[0])).toEqual([`dpo ${colour.dpo}`, `sr-dpo ${colour['sr-dpo']}`]);
    expect(drawnRuns(main[1])).toEqual([`ipo ${colour.ipo}`, `sr-ipo ${colour['sr-ipo']}`]);
    // Each family's axis spans its own losses: the DPO chart's top tick is near 0.7, not 25.
    expect(Number(main[0].match(/data-y1="([^"]+)"/)![1])).toBeLessThan(1);
    // A long title keeps the smoothing note within the chart: the weight alone where the whole note would not fit.
    const smoothed = renderReportHtml({ title: 't', runs, smoothing: 0.8 });
    const gradTitle = diagnosticSvgs(smoothed).find((x) => x.includes('Gradient norm (before clipping): DPO, Sr-DPO'))!;
    expect(gradTitle).toContain('<tspan class="smoothing" dx="8" font-size="12" font-weight="400" fill="#666">(EMA 0.8)</tspan>');
    expect(svgs(smoothed)[0]).toContain('>(EMA 0.8, raw values faint)</tspan>');
    const diag = diagnosticSvgs(html).map(title);
    expect(diag.filter((t) => t.startsWith('Gradient norm'))).toEqual(['Gradient norm (before clipping): DPO, Sr-DPO', 'Gradient norm (before clipping): IPO, Sr-IPO']);
    // One family: one chart each, as before.
    expect(svgs(renderReportHtml({ title: 't', runs: [runs[0], runs[2]], smoothing: 0 })).map(title)[0]).toBe('Training loss');
  });

  // Below the headline curves, what explains them: the rewards apart, gradient norm, learning rate (from the
  // training rows), the evaluations' chosen NLL and Pearson r over time (from the eval rows); each only where
  // a run has values, and silently left out otherwise.
  it('diagnostics: rewards, gradient norm, learning rate, eval NLL and Pearson over time, only where some run has them', () => {
    const r = synthRun('Sr-DPO', 50, (x) => x / 50);
    for (const m of r.metrics as Array<Partial<MetricsRow>>) Object.assign(m, { reward_chosen: 0.01 * m.step!, reward_rejected: -0.02 * m.step!, grad_norm: 3 });
    for (const e of r.eval!) e.nll_chosen = 2 - e.step / 100;
    const d = diagnosticSvgs(renderReportHtml({ title: 'd', runs: [r], smoothing: 0.8 }));
    expect(d.map((x) => x.match(/<title>([^<]*)<\/title>/)![1])).toEqual(['Chosen reward (mean β·log π/ref)', 'Rejected reward (mean β·log π/ref)',
      'Gradient norm (before clipping)', 'Learning rate', 'Chosen NLL per token (evaluations)', 'Pearson r, margins against judge scores (evaluations)']);
    expect(count(d[0], /<polyline/g)).toBe(1);
    expect(d[0]).toContain('Sr-DPO (EMA 0.8)');
    // The learning rate is a schedule: drawn as it was, never smoothed.
    expect(d[3]).not.toContain('EMA'); expect(d[3]).not.toContain('class="raw"');
    expect(count(d[4], /class="marker"/g)).toBe(r.eval!.length); // eval markers alone
    expect(d[4]).toContain('Sr-DPO (eval only)');
    // ... joined in x order by a thin line of the run's own (a chart with its curve has none).
    const joined = [...d[4].matchAll(/<polyline class="eval-line" data-run="Sr-DPO"[^>]*points="([^"]+)"/g)];
    expect(joined).toHaveLength(1);
    const xs = joined[0][1].split(' ').map((p) => Number(p.split(',')[0]));
    expect(xs).toHaveLength(r.eval!.length);
    expect(xs).toEqual([...xs].sort((a, b) => a - b));
    expect(d[0]).not.toContain('eval-line');
    // Without them (nor judge scores): none drawn, none named.
    const bare: ReportRun = { name: 'x', metrics: [{ step: 1, pairs_seen: 4, loss: 0.7, margin: 0, accuracy: 0, aug_accuracy: null }] };
    const html = renderReportHtml({ title: 'b', runs: [bare] });
    expect(diagnosticSvgs(html)).toEqual([]);
    expect(html).not.toContain('Diagnostics');
    expect(html).not.toContain('Gradient norm');
  });

  it('an SFT run: the loss chart with its held-out NLL as eval markers; charts no run has values for are left out, named', () => {
    const metrics = Array.from({ length: 20 }, (_, i) => ({ step: i + 1, pairs_seen: 8 * (i + 1), loss: 3 - i / 10, margin: null, accuracy: null, aug_accuracy: null }));
    const evalRows = [0, 10, 20].map((step) =>
      toEvalRow(computeSftEvalMetrics([-30 + step, -20], [10, 10]), { step, pairs_seen: 8 * step, split: 'eval' }));
    const html = renderReportHtml({ title: 'sft', runs: [{ name: 'SFT', metrics, eval: evalRows }] });
    const charts = svgs(html);
    expect(charts).toHaveLength(1);
    expect(charts[0]).toContain('Training loss');
    expect(count(charts[0], /class="marker"/g)).toBe(3);
    expect(charts[0]).toContain('loss 2.5'); // step 0's tip: (30 + 20) / 20 tokens
    expect(html).toContain('No values in any run, so not drawn: Reward margin (mean β·h); Accuracy (h &gt; 0); Prompt-augmented accuracy (Δ &gt; 0).');
    // A DPO run's evaluation has augmented accuracy: that chart stands on its markers.
    const dpoEval = { ...evalRows[0], aug_accuracy: 0.5, margin: 0.1, accuracy: 0.5 };
    expect(svgs(renderReportHtml({ title: 'dpo', runs: [{ name: 'DPO', metrics, eval: [dpoEval] }] }))).toHaveLength(4);
  });

  it('the scatter over a few judge score values: each run in its own band beside each value, its points spread across it', () => {
    const pairs = (n: number, shift: number): NonNullable<ReportRun['evalPairs']> => ({
      step: 5, margin: Array.from({ length: n }, (_, k) => Math.sin(k + shift)), augMargin: Array.from({ length: n }, () => 0),
      scoreChosen: Array.from({ length: n }, (_, k) => 2 + 2 * (k % 4)), scoreRejected: Array.from({ length: n }, () => 0),
    });
    const run = (name: string, shift: number): ReportRun => ({ name, metrics: [], eval: [{ step: 5, pairs_seen: 40, split: 'eval', margin: 0, accuracy: 0, aug_accuracy: 0, n: 30 }], evalPairs: pairs(30, shift) });
    const scatter = (runs: ReportRun[]) => allSvgs(renderReportHtml({ title: 's', runs })).find((x) => x.includes('id="margin-scatter"'))!;
    const placed = (svg: string) => [...svg.matchAll(/class="marker" data-run="([^"]+)" d="M([\d.]+),[^"]*"[^>]*><title>[^<]*score difference ([-\d.]+)/g)]
      .map((m) => ({ run: m[1], px: Number(m[2]), diff: Number(m[3]) }));
    const two = scatter([run('a', 0), run('b', 1)]);
    expect(two).toContain('(points spread beside each value, a band per run)');
    const pts = placed(two);
    expect(pts).toHaveLength(60);
    for (const v of [2, 4, 6, 8]) {
      const a = pts.filter((p) => p.run === 'a' && p.diff === v).map((p) => p.px);
      const b = pts.filter((p) => p.run === 'b' && p.diff === v).map((p) => p.px);
      expect(Math.max(...a)).toBeLessThan(Math.min(...b)); // a's band left of b's
      expect(new Set(a).size).toBeGreaterThan(3); // spread, not stacked
    }
    // A run whose pairs have no finite score takes no band: the one drawn is centred on each value.
    const unscored: ReportRun = { ...run('u', 2), evalPairs: { ...pairs(30, 2), scoreRejected: Array.from({ length: 30 }, () => NaN) } };
    const alone = placed(scatter([run('a', 0), unscored]));
    for (const v of [2, 4, 6, 8]) {
      const centre = (Math.max(...pts.filter((p) => p.run === 'a' && p.diff === v).map((p) => p.px)) + Math.min(...pts.filter((p) => p.run === 'b' && p.diff === v).map((p) => p.px))) / 2;
      const a = alone.filter((p) => p.diff === v).map((p) => p.px);
      expect(Math.min(...a)).toBeLessThan(centre);
      expect(Math.max(...a)).toBeGreaterThan(centre);
    }
    // Differences equal but for rounding (7.3 - 6.1, 4.2 - 3.0) are one value.
    const rounding = (r: ReportRun) => ({ ...r, evalPairs: { ...r.evalPairs!, scoreChosen: r.evalPairs!.scoreChosen.map((_, k) => [7.3, 4.2, 8.5, 5.4][k % 4]),
      scoreRejected: r.evalPairs!.scoreRejected.map((_, k) => [6.1, 3.0, 7.3, 4.2][k % 4]) } });
    expect(scatter([rounding(run('a', 0)), rounding(run('b', 1))])).toContain('(points spread beside each value, a band per run)');
    // Differences of many values (a continuous judge): drawn where they are.
    const cont = (r: ReportRun) => ({ ...r, evalPairs: { ...r.evalPairs!, scoreChosen: r.evalPairs!.scoreChosen.map((c, k) => c + k / 100) } });
    const plain = scatter([cont(run('a', 0)), cont(run('b', 1))]);
    expect(plain).not.toContain('points spread');
    const byDiff = placed(plain);
    expect(new Set(byDiff.map((p) => p.diff)).size).toBe(30);
  });

  it('the margin against score scatter of each run\'s latest evaluation (eval-pairs.csv), where pairs carry scores', () => {
    const dir = tmpDir();
    const withScores = path.join(dir, 'scored');
    const without = path.join(dir, 'unscored');
    writeEvalPairs(withScores, 30, [0.5, -0.25, NaN, 1], [0.4, -0.1, 0, 2],
      [{ scoreChosen: 9, scoreRejected: 2, source: { file: 'data/a,"b".jsonl', line: 3 } }, { scoreChosen: 5, scoreRejected: 6, source: { file: 'x.parquet', line: 7 } },
        { scoreChosen: 7, scoreRejected: 1 }, { scoreChosen: 8 }]);
    writeEvalPairs(without, 30, [0.5, 0.1], undefined, [{}, {}]);
    // Drawn as the run's own where its eval.jsonl has an evaluation at that step.
    const evalAt = (d: string, step: number) => fs.writeFileSync(path.join(d, 'eval.jsonl'),
      `${JSON.stringify({ step, pairs_seen: step * 8, split: 'eval', margin: 0.1, accuracy: 0.5, aug_accuracy: 0.5, n: 4 })}\n`);
    for (const d of [withScores, without]) evalAt(d, 30);
    expect(fs.readFileSync(path.join(withScores, 'eval-pairs.csv'), 'utf8')).toBe(
      'step,pair,margin,aug_margin,score_chosen,score_rejected,file,line\n30,0,0.5,0.4,9,2,"data/a,""b"".jsonl",3\n30,1,-0.25,-0.1,5,6,x.parquet,7\n' +
      '30,2,,0,7,1,,\n30,3,1,2,8,,,\n');
    // A file written before the file and line columns reads as well.
    const old = path.join(dir, 'old');
    fs.mkdirSync(old);
    fs.writeFileSync(path.join(old, 'eval-pairs.csv'), 'step,pair,margin,aug_margin,score_chosen,score_rejected\n30,0,0.5,0.4,9,2\n');
    evalAt(old, 30);
    expect(runsFromDirs([{ name: 'old', dir: old }])[0].evalPairs).toMatchObject({ step: 30, margin: [0.5], scoreChosen: [9] });
    // Left by another run in the directory (no evaluation of this one at its step): not this run's scatter.
    evalAt(old, 20);
    expect(runsFromDirs([{ name: 'old', dir: old }])[0].evalPairs).toBeUndefined();
    const back = runsFromDirs([{ name: 'scored', dir: withScores }, { name: 'unscored', dir: without }]);
    expect(back[0].evalPairs).toMatchObject({ step: 30, margin: [0.5, -0.25, NaN, 1], scoreRejected: [2, 6, 1, NaN] });
    const html = renderReportHtml({ title: 's', runs: back });
    const scatter = allSvgs(html).find((x) => x.includes('id="margin-scatter"'))!;
    expect(scatter).toContain('Margin β·h against judge score difference');
    // Pairs 0 and 1 have a margin and both scores; 2 has no margin, 3 no rejected score.
    expect(count(scatter, /class="marker"/g)).toBe(2);
    expect(scatter).toContain('scored · pair 1: score difference -1, margin -0.25');
    expect(scatter).toContain('scored (step 30)');
    // The correlation of that evaluation, where its row has one, beside its points.
    back[0].eval![0].pearson = -0.4321;
    expect(allSvgs(renderReportHtml({ title: 's', runs: back })).find((x) => x.includes('id="margin-scatter"'))).toContain('scored (step 30, Pearson r -0.4321)');
    expect(renderReportHtml({ title: 'n', runs: [back[1]] })).not.toContain('margin-scatter');
    // Not a file of ours: no scatter, no error.
    fs.writeFileSync(path.join(without, 'eval-pairs.csv'), 'a,b\n1,2\n');
    expect(runsFromDirs([{ name: 'x', dir: without }])[0].evalPairs).toBeUndefined();
  });

  it('eval samples (samples.jsonl): each prompt with each run\'s first and latest completion, escaped; a resume drops those past its step', () => {
    const dir = tmpDir();
    const a = path.join(dir, 'a'); const b = path.join(dir, 'b');
    fs.mkdirSync(a); fs.mkdirSync(b);
    const row = (step: number, line: number, prompt: string, completion: string) =>
      ({ step, pairs_seen: step * 8, file: 'eval.jsonl', line, prompt, completion, finish_reason: 'stop' as const, completion_tokens: 3 });
    appendSamples(a, [row(0, 1, 'Q <b>1</b>', 'start'), row(0, 2, 'x'.repeat(700) + 'END', 'two')]);
    appendSamples(a, [row(5, 1, 'Q <b>1</b>', 'middle'), row(5, 2, 'x'.repeat(700) + 'END', 'two again')]);
    appendSamples(a, [row(9, 1, 'Q <b>1</b>', 'late <i>')]);
    fs.appendFileSync(path.join(a, 'samples.jsonl'), '{"step": 12, "pro'); // a line cut by a kill
    appendSamples(b, [{ ...row(3, 1, 'Q <b>1</b>', 'other run'), chosen: 'the <good> one' }]);
    const runs = runsFromDirs([{ name: 'A', dir: a }, { name: 'B', dir: b }]);
    expect(runs[0].samples!.map((x) => x.step)).toEqual([0, 0, 5, 5, 9]);
    const html = renderReportHtml({ title: 's', runs });
    const section = html.slice(html.indexOf('<h2>Samples</h2>'), html.indexOf('<h2>Configuration</h2>') >= 0 ? html.indexOf('<h2>Configuration</h2>') : undefined);
    expect(section).toContain('<pre class="prompt">Q &lt;b&gt;1&lt;/b&gt;</pre>');
    // Prompt 1: A's step 0 and latest (9), then B's only sample; the middle one (5) is not shown.
    expect(section).toMatch(/A<\/th><td>step 0<\/td><td class="completion"><pre>start<\/pre>.*A<\/th><td>latest, step 9<\/td><td class="completion"><pre>late &lt;i&gt;<\/pre>.*B<\/th><td>step 3<\/td><td class="completion"><pre>other run<\/pre>/s);
    expect(section).not.toContain('middle');
    expect(section).toContain('<pre class="chosen">the &lt;good&gt; one</pre>');
    // A long prompt shows its end.
    expect(section).toContain(`<pre class="prompt">…${'x'.repeat(597)}END</pre>`);
    // Resumed past every sample: the cut line goes, so the next lines start on their own.
    trimSamples(a, 100);
    expect(fs.readFileSync(path.join(a, 'samples.jsonl'), 'utf8').endsWith('"completion_tokens":3}\n')).toBe(true);
    // Resumed from step 5: the samples of step 9 go.
    trimSamples(a, 5);
    expect(readSamples(a)!.map((x) => x.step)).toEqual([0, 0, 5, 5]);
    expect(renderReportHtml({ title: 'none', runs: [{ name: 'n', metrics: [] }] })).not.toContain('<h2>Samples</h2>');
  });

  it('builds from run directories (metrics.jsonl/eval.jsonl) and computes the eval table from eval rows', () => {
    const out = tmpDir();
    const files = writeDemo(out, { steps: 120, evalEvery: 40 });
    const dirs = fs.readdirSync(path.join(out, 'runs')).sort();
    expect(dirs).toEqual(['DPO', 'Sr-DPO']);
    const back = runsFromDirs(['Sr-DPO', 'DPO'].map((name) => ({ name, dir: path.join(out, 'runs', name) })));
    expect(back[0].metrics).toHaveLength(120);
    expect(back[0].eval!.map((e) => e.step)).toEqual([40, 80, 120]);
    expect(readRunDir(path.join(out, 'runs', 'DPO')).metrics[0]).toEqual(demoReportOptions({ steps: 120, evalEvery: 40 }).runs[1].metrics[0]);
    const html = fs.readFileSync(files.html, 'utf8');
    // The demo smooths: per chart one smoothed polyline and one faint raw path per run.
    for (const svg of svgs(html)) {
      expect(count(svg, /<polyline class="line"/g)).toBe(2);
      expect(count(svg, /<path class="raw"/g)).toBe(2);
    }
    const table = html.match(/<table class="eval">[\s\S]*?<\/table>/)![0];
    expect(count(table, /<tr>/g)).toBe(3);
    expect(table).toMatch(/<th scope="row">Sr-DPO<\/th><td class="text">test<\/td><td>120<\/td>/);
    // Eval rows computed through computeEvalMetrics produce correlations in the table.
    const zeros = [0, 0, 0, 0];
    const row = toEvalRow(computeEvalMetrics({ beta: 1, policyChosen: [1, 2, 3, 4], policyRejected: zeros, refChosen: zeros, refRejected: zeros, scoreDiff: [1, 3, 2, 4] }), { step: 1, pairs_seen: 1, split: 'test' });
    const page = renderReportHtml({ title: 'x', runs: [{ name: 'r', metrics: [], eval: [row] }] });
    expect(page).toContain('<td>0.8000</td>'); // Pearson of [1,2,3,4] vs [1,3,2,4]
    expect(page).toContain('<td>0.6667</td>'); // Kendall tau-b: (5 - 1) / 6
  });
});

const CHROMIUM = '/usr/bin/chromium';
describe('rendering', () => {
  // Skipped (and reported as skipped) without /usr/bin/chromium: apt-get install -y chromium.
  it.skipIf(!fs.existsSync(CHROMIUM))('renders in headless Chromium (screenshot is non-trivial; needs /usr/bin/chromium)', () => {
    const dir = process.env.SRK_REPORT_SHOT_DIR ?? tmpDir();
    const files = writeDemo(dir);
    const png = path.join(dir, 'report.png');
    const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'srk-chromium-'));
    try {
      const res = spawnSync(CHROMIUM, [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
        '--disable-sync', '--no-first-run', '--hide-scrollbars', `--user-data-dir=${profile}`, `--screenshot=${png}`,
        '--window-size=1200,1600', pathToFileURL(path.resolve(files.html)).href,
      ], { timeout: 25_000, encoding: 'utf8' });
      expect(fs.existsSync(png), `chromium exit ${res.status}: ${res.stderr?.slice(-2000)}`).toBe(true);
      const buf = fs.readFileSync(png);
      expect(buf.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect(buf.readUInt32BE(16)).toBe(1200); // IHDR width
      expect(buf.length).toBeGreaterThan(60_000); // charts and text, not a blank page
    } finally {
      fs.rmSync(profile, { recursive: true, force: true });
    }
  }, 30_000);
});
