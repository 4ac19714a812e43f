// `srk report RUN...`: one report (report.html, report.csv, report-eval.csv) over several `srk train`
// run directories, their curves overlaid and their settings side by side: DPO against Sr-DPO, or
// lambdas against each other, as the paper's Figure 1. A run still training is read as far as it got.
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { runsFromDirs, writeReport } from '../report/html.js';
import { METRICS_FILE } from '../report/metrics-log.js';
import { evalTableFromRows, formatEvalTable } from '../report/eval-metrics.js';
import { userError } from '../errors.js';

interface ReportArgs { runs: string[]; out: string; title?: string; name?: string[]; smoothing: number | 'auto'; 'x-axis': 'pairs_seen' | 'step' }

/** Each run's name: --name where given, else the `name` its train_config.json records, else its directory's
 *  name; names that would repeat get their directory added, so no two curves share a legend entry. */
export function runNames(dirs: readonly string[], given: readonly string[] = [], recorded: readonly (string | undefined)[] = []): string[] {
  if (given.length > dirs.length) {
    throw userError(`--name: ${given.length} names (${given.join(', ')}) for ${dirs.length} run${dirs.length === 1 ? '' : 's'} (${dirs.join(', ')}): ` +
      '--name takes every word after it up to the next flag: give it after the runs (srk report RUN1 RUN2 --name A B)');
  }
  const names = dirs.map((d, i) => given[i] ?? recorded[i] ?? path.basename(path.resolve(d)));
  return names.map((n, i) => (names.indexOf(n) !== names.lastIndexOf(n) && given[i] === undefined ? `${n} (${dirs[i]})` : n));
}

/** --smoothing as typed: a number where it reads as one; other text stays as typed, for the error to show. */
function smoothingValue(v: string): string | number {
  return v === 'auto' || !/^\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*$/i.test(String(v)) ? v : Number(v);
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <runs..>',
  describe: 'one report over several srk train runs: report.html (loss, margin, accuracy, augmented accuracy against pairs seen, runs overlaid, evaluations with their standard errors; diagnostics: rewards, gradient norm, learning rate, eval NLL and Pearson r; eval table; settings side by side), report.csv, report-eval.csv',
  builder: (y) => y
    .positional('runs', { type: 'string', array: true, default: undefined, describe: 'run directories (each an srk train --out)' })
    .options({
      out: { type: 'string', default: 'runs/report', describe: 'directory for report.html, report.csv and report-eval.csv' },
      title: { type: 'string', describe: 'page title (default: the run names)' },
      name: { type: 'string', array: true, describe: 'a name per run, in order (default: the name the run recorded, as the demo\'s stages do, else its directory\'s name)' },
      smoothing: { type: 'string', default: 'auto', describe: 'EMA weight in [0, 1) for the training curves, raw values drawn faintly behind (auto: none below 30 steps, else 1 - 20/steps, at most 0.98; 0: none)',
        // (Typed twice, yargs hands the list over: each taken alike, refuseRepeatedTyped keeps one.)
        coerce: (v: string | string[]) => (Array.isArray(v) ? v.map(smoothingValue) : smoothingValue(v)) },
      'x-axis': { choices: ['pairs_seen', 'step'], default: 'pairs_seen', describe: 'x axis of the curves' },
    }) as never,
  handler: async (a) => {
    if (a.smoothing !== 'auto' && !(typeof a.smoothing === 'number' && a.smoothing >= 0 && a.smoothing < 1)) throw userError(`--smoothing must be auto or a number in [0, 1) (got ${a.smoothing})`);
    for (const d of a.runs) {
      if (!existsSync(d) || !statSync(d).isDirectory()) throw userError(`${d}: not a directory`);
      if (!existsSync(path.join(d, METRICS_FILE))) throw userError(`${d}: no ${METRICS_FILE} (not an srk train run directory, or no step finished yet)`);
    }
    const twice = a.runs.find((d, i) => a.runs.findIndex((e) => path.resolve(e) === path.resolve(d)) !== i);
    if (twice !== undefined) throw userError(`${twice}: given twice (one run, drawn over itself)`);
    const read = runsFromDirs(a.runs.map((dir) => ({ name: dir, dir })));
    // Every line srk train writes has its step: a file without one is someone else's.
    read.forEach((r, i) => {
      const k = r.metrics.findIndex((m) => typeof m.step !== 'number' || !Number.isFinite(m.step));
      if (k >= 0) throw userError(`${path.join(a.runs[i], METRICS_FILE)}: its record ${k + 1} has no "step" (not the metrics of an srk train run)`);
    });
    const names = runNames(a.runs, a.name ?? [], read.map((r) => (typeof r.config?.name === 'string' ? r.config.name : undefined)));
    const runs = read.map((r, i) => ({ ...r, name: names[i]! }));
    const rep = writeReport(a.out, {
      title: a.title ?? `srk report: ${names.join(', ')}`, runs, smoothing: a.smoothing, x: a['x-axis'],
    });
    const table = evalTableFromRows(runs);
    for (const r of runs) process.stderr.write(`${r.name}: ${r.metrics.length} steps, ${r.eval?.length ?? 0} evaluations\n`);
    if (table.length) process.stdout.write(`${formatEvalTable(table)}\n`);
    process.stdout.write(`report: ${rep.html}\n`);
  },
};
