// OUT/eval-pairs.csv: the per-pair numbers of a run's latest evaluation on preference pairs, rewritten
// (atomically) at each one: step, pair (its index among the eval data's usable pairs), margin beta*h,
// aug_margin Delta (empty without the augmented pass), score_chosen, score_rejected (empty without judge
// scores), and the pair's file and line in the data (its row number in Parquet or a JSON array). The
// report draws margin against the score difference from it (the scatter behind the correlations of the
// eval table), and a reader can take any other statistic from it, or find a pair to read.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileAtomic } from './metrics-log.js';

export const EVAL_PAIRS_FILE = 'eval-pairs.csv';
const HEADER = 'step,pair,margin,aug_margin,score_chosen,score_rejected,file,line';
/** The columns before file and line were added (a run written then still reads). */
const HEADER_V1 = 'step,pair,margin,aug_margin,score_chosen,score_rejected';

export interface EvalPairs {
  step: number;
  margin: number[];
  /** Per pair; NaN where not computed. */
  augMargin: number[];
  scoreChosen: number[];
  scoreRejected: number[];
}

const cell = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? '' : String(v));

/** The judge scores of each pair, where it has them (TokenizedPair fits). */
type Scored = ReadonlyArray<{ scoreChosen?: number; scoreRejected?: number; source?: { file: string; line: number } }>;

/** A CSV field: quoted where it holds a comma, quote or line break. */
const text = (v: string | undefined): string => (v === undefined ? '' : /[",\r\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);

/** A run's OUT/eval-pairs.csv for its evaluation at `step`. */
export function writeEvalPairs(outDir: string, step: number, margins: ArrayLike<number>, augMargins: ArrayLike<number> | undefined, pairs: Scored): void {
  writeEvalPairsFile(path.join(outDir, EVAL_PAIRS_FILE), step, margins, augMargins, pairs);
}

/** The same columns in any file (`srk eval --pairs-out`, whose step is empty). */
export function writeEvalPairsFile(file: string, step: number | undefined, margins: ArrayLike<number>, augMargins: ArrayLike<number> | undefined,
  pairs: Scored): void {
  const lines = [HEADER];
  for (let i = 0; i < margins.length; i++) {
    const src = pairs[i].source;
    lines.push(`${cell(step)},${i},${cell(margins[i])},${cell(augMargins?.[i])},${cell(pairs[i].scoreChosen)},${cell(pairs[i].scoreRejected)},` +
      `${text(src?.file)},${cell(src?.line)}`);
  }
  writeFileAtomic(file, `${lines.join('\n')}\n`);
}

/** The run's eval-pairs.csv, or undefined where there is none or it is not one (a report still renders). */
export function readEvalPairs(outDir: string): EvalPairs | undefined {
  const file = path.join(outDir, EVAL_PAIRS_FILE);
  let text: string;
  try { text = fs.readFileSync(file, 'utf8'); } catch { return undefined; }
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines[0] !== HEADER && lines[0] !== HEADER_V1) return undefined;
  const num = (s: string) => (s === '' ? NaN : Number(s));
  const out: EvalPairs = { step: NaN, margin: [], augMargin: [], scoreChosen: [], scoreRejected: [] };
  for (const l of lines.slice(1)) {
    const c = l.split(','); // (the first six are numbers; a file name after them may hold commas)
    if (c.length < 6) return undefined;
    out.step = num(c[0]);
    out.margin.push(num(c[2])); out.augMargin.push(num(c[3])); out.scoreChosen.push(num(c[4])); out.scoreRejected.push(num(c[5]));
  }
  return out.margin.length ? out : undefined;
}
