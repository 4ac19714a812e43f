import { describe, expect, it } from 'vitest';
import { makeRng } from '../helpers/random.js';
import { computeEvalMetrics, computeSftEvalMetrics, evalTableFromRows, formatCell, formatEvalTable, toEvalRow } from '../../src/report/eval-metrics.js';

// Straightforward re-implementations, written independently of src/losses/correlation.ts.
function naivePearson(x: number[], y: number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n, my = y.reduce((a, b) => a + b, 0) / n;
  let c = 0, vx = 0, vy = 0;
  for (let i = 0; i < n; i++) { c += (x[i] - mx) * (y[i] - my); vx += (x[i] - mx) ** 2; vy += (y[i] - my) ** 2; }
  return c / Math.sqrt(vx * vy);
}
function naiveRanks(x: number[]): number[] {
  // Average rank = 1 + (#smaller) + (#equal - 1) / 2.
  return x.map((v) => 1 + x.filter((w) => w < v).length + (x.filter((w) => w === v).length - 1) / 2);
}
function naiveKendallB(x: number[], y: number[]): number {
  let c = 0, d = 0, tx = 0, ty = 0;
  const n = x.length;
  for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) {
    const a = x[i] - x[j], b = y[i] - y[j];
    if (a === 0 && b === 0) continue;
    if (a === 0) tx++;
    else if (b === 0) ty++;
    else if (a * b > 0) c++;
    else d++;
  }
  return (c - d) / Math.sqrt((c + d + tx) * (c + d + ty));
}

describe('computeEvalMetrics', () => {
  it('hand-computed margin, accuracy, aug accuracy, rewards', () => {
    // beta = 0.5; h = (pc - rc) - (pr - rr)
    //  pair 0: (-10 - -12) - (-20 - -19) = 2 - (-1) = 3
    //  pair 1: (-15 - -14) - (-18 - -18) = -1 - 0 = -1
    //  pair 2: (-11 - -11) - (-13 - -13) = 0            (tie counts as wrong: strict >)
    //  pair 3: (-9 - -10) - (-30 - -32) = 1 - 2 = -1
    const m = computeEvalMetrics({
      beta: 0.5,
      policyChosen: [-10, -15, -11, -9], refChosen: [-12, -14, -11, -10],
      policyRejected: [-20, -18, -13, -30], refRejected: [-19, -18, -13, -32],
      // augmented h: [1, 2, -3, 0.5] -> Delta = 0.5*h: [0.5, 1, -1.5, 0.25]
      policyChosenAug: [1, 2, 0, 0.5], refChosenAug: [0, 0, 0, 0], policyRejectedAug: [0, 0, 3, 0], refRejectedAug: [0, 0, 0, 0],
    });
    expect(m.n).toBe(4);
    expect(Array.from(m.margins)).toEqual([1.5, -0.5, 0, -0.5]);
    expect(m.margin).toBeCloseTo(0.5 * (3 - 1 + 0 - 1) / 4, 15);
    expect(m.accuracy).toBe(0.25);
    expect(m.aug_accuracy).toBe(0.75);
    expect(m.aug_margin).toBeCloseTo((0.5 + 1 - 1.5 + 0.25) / 4, 15);
    // Pair 2's tie is counted (and is wrong to accuracy); no augmented margin is exactly 0.
    expect([m.ties, m.aug_ties]).toEqual([1, 0]);
    expect(toEvalRow(m, { step: 1, pairs_seen: 4, split: 'eval' })).toMatchObject({ ties: 1, aug_ties: 0 });
    // rewards: 0.5 * mean(pc - rc) = 0.5 * (2 - 1 + 0 + 1)/4 ; 0.5 * mean(pr - rr) = 0.5 * (-1 + 0 + 0 + 2)/4
    expect(m.reward_chosen).toBeCloseTo(0.25, 15);
    expect(m.reward_rejected).toBeCloseTo(0.125, 15);
    expect(m.reward_chosen - m.reward_rejected).toBeCloseTo(m.margin, 15);
    expect(m.pearson).toBeUndefined();
    expect(m.spearman).toBeUndefined();
    expect(m.nll_chosen).toBeNull(); // no token counts given
    // With them: -(sum of the policy's chosen log-probs) / (their tokens) = 45 / 15.
    const withTokens = computeEvalMetrics({ beta: 0.5, policyChosen: [-10, -15, -11, -9], refChosen: [0, 0, 0, 0],
      policyRejected: [0, 0, 0, 0], refRejected: [0, 0, 0, 0], chosenTokens: [2, 5, 4, 4] });
    expect(withTokens.nll_chosen).toBeCloseTo(3, 15);
    expect(toEvalRow(withTokens, { step: 1, pairs_seen: 4, split: 'eval' }).nll_chosen).toBeCloseTo(3, 15);
    expect(toEvalRow(m, { step: 1, pairs_seen: 4, split: 'eval' })).not.toHaveProperty('nll_chosen');
  });

  it('no augmented inputs -> aug accuracy null; partial augmented inputs rejected; bad lengths rejected', () => {
    const base = { beta: 0.1, policyChosen: [1, 2], policyRejected: [0, 3], refChosen: [0, 0], refRejected: [0, 0] };
    const m = computeEvalMetrics(base);
    expect(m.aug_accuracy).toBeNull();
    expect(m.accuracy).toBe(0.5);
    expect(() => computeEvalMetrics({ ...base, policyChosenAug: [1, 2] })).toThrow(/all four/);
    // An augmented margin of exactly 0 is a tie, not a correct pair (as h = 0 for accuracy).
    const tie = computeEvalMetrics({ ...base, policyChosenAug: [2, 1], policyRejectedAug: [1, 1], refChosenAug: [0, 0], refRejectedAug: [0, 0] });
    expect([tie.aug_accuracy, tie.aug_ties]).toEqual([0.5, 1]);
    expect(() => computeEvalMetrics({ ...base, refRejected: [0] })).toThrow(/length/);
    expect(() => computeEvalMetrics({ ...base, beta: 0 })).toThrow(/beta/);
    expect(() => computeEvalMetrics({ ...base, scoreChosen: [1, 2] })).toThrow(/scoreRejected/);
  });

  it('correlations between beta*h and score differences match scipy (notes §5.2) and naive versions', () => {
    // margins = beta*h with beta = 1, h = a; score diffs = b (scipy 1.17.1 values from ../shared/notes/losses.md).
    const a = [3, 1, 4, 1, 5, 9, 2, 6], b = [2, 7, 1, 8, 2, 8, 1, 8];
    const zeros = a.map(() => 0);
    const m = computeEvalMetrics({
      beta: 1, policyChosen: a, policyRejected: zeros, refChosen: zeros, refRejected: zeros,
      scoreChosen: b.map((v) => v + 10), scoreRejected: b.map(() => 10),
    });
    expect(m.pearson).toBeCloseTo(0.2096553190730121, 12);
    expect(m.spearman).toBeCloseTo(0.19885368120992467, 12);
    expect(m.kendall).toBeCloseTo(0.16051447078102563, 12);

    const rng = makeRng();
    const n = 60, beta = 0.1;
    const pc = Array.from(rng.array(n, 5)), pr = Array.from(rng.array(n, 5));
    const rc = Array.from(rng.array(n, 5)), rr = Array.from(rng.array(n, 5));
    // Integer judge scores 1..10: many ties in the score differences.
    const sc = pc.map(() => 1 + rng.int(10)), sr = pc.map(() => 1 + rng.int(10));
    const r = computeEvalMetrics({ beta, policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr, scoreChosen: sc, scoreRejected: sr });
    const margins = pc.map((_, i) => beta * ((pc[i] - rc[i]) - (pr[i] - rr[i])));
    const diffs = sc.map((v, i) => v - sr[i]);
    const msg = `seed ${rng.seed}`;
    expect(r.pearson!, msg).toBeCloseTo(naivePearson(margins, diffs), 10);
    expect(r.spearman!, msg).toBeCloseTo(naivePearson(naiveRanks(margins), naiveRanks(diffs)), 10);
    expect(r.kendall!, msg).toBeCloseTo(naiveKendallB(margins, diffs), 10);
    // scoreDiff given directly gives the same numbers.
    const r2 = computeEvalMetrics({ beta, policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr, scoreDiff: diffs });
    expect([r2.pearson, r2.spearman, r2.kendall]).toEqual([r.pearson, r.spearman, r.kendall]);
  });

  it('SFT rows: the NLL per completion token alone, also as the eval row\'s loss; the table shows it', () => {
    const m = computeSftEvalMetrics([-6, -3, -9], [2, 1, 3]);
    expect(m.nll_chosen).toBeCloseTo(3, 15);
    expect(m.sft).toBe(true);
    const row = toEvalRow(m, { step: 5, pairs_seen: 20, split: 'eval' });
    expect(row).toEqual({ step: 5, pairs_seen: 20, split: 'eval', margin: null, accuracy: null, aug_accuracy: null,
      reward_chosen: null, reward_rejected: null, margin_se: null, accuracy_se: null, aug_accuracy_se: null, n: 3, nll_chosen: 3, loss: 3 });
    // A preference eval's row has no loss: its NLL is over chosen responses cut beside rejected ones.
    const pref = computeEvalMetrics({ beta: 1, policyChosen: [-6], policyRejected: [-7], refChosen: [0], refRejected: [0], chosenTokens: [2] });
    expect(toEvalRow(pref, { step: 5, pairs_seen: 20, split: 'eval' })).not.toHaveProperty('loss');
    const line = formatEvalTable(evalTableFromRows([{ name: 'sft', eval: [row] }])).split('\n')[2];
    expect(line).toMatch(/^sft\s+eval\s+-\s+-\s+-\s+3\.0000\s+-\s+-\s+-\s+3\s+-$/); // (no ties on SFT rows)
    expect(() => computeSftEvalMetrics([-1, -2], [1])).toThrow(/chosenTokens has length 1, expected 2/);
  });

  it('standard errors of the means: the margins\' sample sd / sqrt(n), sqrt(p (1 - p) / n) for accuracies', () => {
    const pc = [3, -1, 2, 0.5, 4], pr = [1, 1, -2, 0.5, 1], zeros = [0, 0, 0, 0, 0];
    const m = computeEvalMetrics({ beta: 0.5, policyChosen: pc, policyRejected: pr, refChosen: zeros, refRejected: zeros,
      policyChosenAug: pc, policyRejectedAug: [0, 0, 9, 9, 9], refChosenAug: zeros, refRejectedAug: zeros });
    const margins = pc.map((v, i) => 0.5 * (v - pr[i])); // 1, -1, 2, 0, 1.5
    const mean = margins.reduce((a, b) => a + b, 0) / 5;
    const sd = Math.sqrt(margins.reduce((a, v) => a + (v - mean) ** 2, 0) / 4);
    expect(m.margin_se).toBeCloseTo(sd / Math.sqrt(5), 14);
    expect(m.accuracy_se).toBeCloseTo(Math.sqrt(0.6 * 0.4 / 5), 14); // 3 of 5 above 0
    expect(m.aug_accuracy_se).toBeCloseTo(Math.sqrt(0.2 * 0.8 / 5), 14); // 1 of 5: Delta = 0.5 (pc - [0, 0, 9, 9, 9]) = 1.5, -0.5, -3.5, -4.25, -2.5
    expect(toEvalRow(m, { step: 1, pairs_seen: 5, split: 'eval' })).toMatchObject({ margin_se: m.margin_se, accuracy_se: m.accuracy_se });
    // eval.jsonl keeps the augmented margin srk eval prints (mean beta Delta: 1.5, -0.5, -3.5, -4.25, -2.5).
    expect(toEvalRow(m, { step: 1, pairs_seen: 5, split: 'eval' }).aug_margin).toBeCloseTo(-9.25 / 5, 14);
    const one = computeEvalMetrics({ beta: 1, policyChosen: [1], policyRejected: [0], refChosen: [0], refRejected: [0] });
    expect([one.margin_se, one.accuracy_se, one.aug_accuracy_se]).toEqual([NaN, NaN, null]);
  });

  it('eval rows and the terminal table', () => {
    const zeros = [0, 0, 0];
    const m = computeEvalMetrics({ beta: 1, policyChosen: [1, 2, 3], policyRejected: zeros, refChosen: zeros, refRejected: zeros, scoreDiff: [5, 5, 5] });
    expect(Number.isNaN(m.pearson)).toBe(true); // constant scores: undefined
    const row = toEvalRow(m, { step: 10, pairs_seen: 640, split: 'test' });
    expect(row).toMatchObject({ step: 10, pairs_seen: 640, split: 'test', margin: 2, accuracy: 1, aug_accuracy: null, pearson: null, n: 3 });
    expect(JSON.parse(JSON.stringify(row))).toEqual(row);

    const table = evalTableFromRows([
      { name: 'Sr-DPO', eval: [row, { ...row, step: 20, margin: 2.5, pearson: 0.41234 }] },
      { name: 'DPO', eval: [{ ...row, split: 'train' }] },
      { name: 'none', eval: [] },
    ], 'test');
    expect(table.map((t) => [t.name, t.step])).toEqual([['Sr-DPO', 20]]);
    const all = evalTableFromRows([{ name: 'Sr-DPO', eval: [row] }, { name: 'DPO', eval: [{ ...row, accuracy: 0.5 }] }]);
    const text = formatEvalTable(all);
    const lines = text.split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^run\s+split\s+margin\s+accuracy\s+aug acc\s+chosen NLL\s+Pearson\s+Spearman\s+Kendall\s+n\s+ties$/);
    // Margin and accuracy with their standard errors (margins 1, 2, 3: sd 1, / sqrt 3), as the HTML table.
    expect(lines[2]).toMatch(/^Sr-DPO\s+test\s+2\.0000 ±0\.5774\s+1\.0000 ±0\.0000\s+-\s+-\s+-\s+-\s+-\s+3\s+0$/);
    expect(lines[3]).toMatch(/^DPO\s+test\s+2\.0000 ±0\.5774\s+0\.5000 ±0\.0000/);
    // Columns line up: every line has the same length up to trailing spaces of the header.
    expect(new Set(lines.map((l) => l.length)).size).toBe(1);
    // Rows from different steps (a run still training beside a finished one) say which.
    const apart = formatEvalTable(evalTableFromRows([{ name: 'done', eval: [row] }, { name: 'early', eval: [{ ...row, step: 2 }] }])).split('\n');
    expect(apart[0]).toMatch(/^run\s+split\s+step\s+margin/);
    expect(apart[2]).toMatch(/^done\s+test\s+10\s+2\.0000/);
    expect(apart[3]).toMatch(/^early\s+test\s+2\s+2\.0000/);
    // A margin too small for four decimals (early training at lr 5e-7) is not shown as zero.
    const tiny = formatEvalTable(evalTableFromRows([{ name: 'early', eval: [{ ...row, margin: -3.2e-5, accuracy: 0 }] }])).split('\n')[2];
    expect(tiny).toMatch(/^early\s+test\s+-3\.20e-5 ±0\.5774\s+0\.0000 ±0\.0000\s/);
    // Ties (step 0: every pair) beside the accuracy that counts them wrong.
    const tied = formatEvalTable(evalTableFromRows([{ name: 'start', eval: [{ ...row, step: 0, margin: 0, accuracy: 0, ties: 3 }] }])).split('\n')[2];
    expect(tied).toMatch(/\s3\s+3$/);
  });
});

describe('formatCell', () => {
  it('fixed digits down to half a unit of the last digit, then three significant digits; rounding and non-finite values', () => {
    expect(formatCell(0.00006, 4)).toBe('0.0001'); // 6e-5 >= 0.5e-4: rounds to the last digit
    expect(formatCell(0.00004, 4)).toBe('4.00e-5'); // below half a unit: would print 0.0000
    expect(formatCell(-0.00004, 4)).toBe('-4.00e-5');
    expect(formatCell(0, 4)).toBe('0.0000');
    expect(formatCell(0.123456, 4)).toBe('0.1235');
    expect(formatCell(12.6, 0)).toBe('13');
    expect([formatCell(NaN, 4), formatCell(Infinity, 4), formatCell(null, 4), formatCell('1', 4)]).toEqual(['-', '-', '-', '-']);
  });
});
