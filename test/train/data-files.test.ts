// --data and --eval-data with several files (a split's shards, subsets side by side): read as one in the
// order given, so a run on the pieces is the run on their concatenation, and resumes from them.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, readMetrics, tempDir, train } from './helpers.js';

describe('srk train with several data files', () => {
  const tmp = tempDir('srk-data-files-');
  const lines = readFileSync(join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), 'utf8').trim().split('\n');
  const write = (name: string, ls: string[]) => { const f = join(tmp, name); writeFileSync(f, ls.join('\n') + '\n'); return f; };
  const [a, b, whole] = [write('a.jsonl', lines.slice(0, 4)), write('b.jsonl', lines.slice(4)), write('whole.jsonl', lines)];
  const args = (out: string, data: string[], evalData: string[], steps = 2) => ['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'),
    '--no-eos', '--loss', 'sr-dpo', '--batch-size', '3', '--lr', '1e-4', '--max-steps', String(steps), '--out', join(tmp, out),
    ...data.flatMap((f) => ['--data', f]), ...evalData.flatMap((f) => ['--eval-data', f])];
  const values = (out: string) => readMetrics(join(tmp, out)).map((m) => [m.loss, m.margin, m.grad_norm]);
  const evals = (out: string) => readFileSync(join(tmp, out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('--max-eval-pairs: the first N pairs of --eval-data, evaluated as a file of those; a resume keeps to them', async () => {
    const first = await train([...args('first4', [whole], [whole], 1), '--max-eval-pairs', '4', '--eval-samples', '6', '--eval-sample-tokens', '2']);
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stderr).toMatch(/note: --eval-samples 6, and --max-eval-pairs keeps 4 rows: sampling those/);
    expect(first.stderr).toMatch(/whole\.jsonl: its first 4 usable pairs \(--max-eval-pairs; any rows after them not read\)/);
    const own = await train(args('only4', [whole], [a], 1));
    expect(own.code, describeRun(own)).toBe(0);
    for (const k of ['margin', 'accuracy', 'aug_accuracy', 'nll_chosen', 'n']) {
      expect(evals('first4').map((e) => e[k]), k).toEqual(evals('only4').map((e) => (k === 'n' ? 4 : expect.closeTo(e[k], 12))));
    }
    // Other eval pairs would join two sets in one eval.jsonl series: another N is refused by its flag; none keeps the run's.
    const other = await train([...args('first4', [whole], [whole], 2), '--max-eval-pairs', '5', '--resume']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--resume: with --max-eval-pairs 5 the pairs of --eval-data are not the ones the run in .*first4 evaluated on \(its first 4\).*give --max-eval-pairs 4, or none/);
    const kept = await train([...args('first4', [whole], [whole], 2), '--resume']);
    expect(kept.code, describeRun(kept)).toBe(0);
    expect(kept.stderr).toMatch(/whole\.jsonl: its first 4 usable pairs \(--max-eval-pairs; any rows after them not read\)/);
    expect(evals('first4').map((e) => [e.step, e.n])).toEqual([[0, 4], [1, 4], [2, 4]]);
    // A resume without --eval-data (no evaluations) keeps the run's N for the one after it, which evaluates again.
    const quiet = train(args('first4', [whole], [], 3).concat('--resume'));
    expect((await quiet).code).toBe(0);
    const back = await train([...args('first4', [whole], [whole], 4), '--resume']);
    expect(back.code, describeRun(back)).toBe(0);
    expect(evals('first4').map((e) => [e.step, e.n])).toEqual([[0, 4], [1, 4], [2, 4], [4, 4]]);
    // A run that evaluated on every pair: the flag on its resume is refused too.
    const every = await train([...args('only4', [whole], [a], 2), '--max-eval-pairs', '2', '--resume']);
    expect(every.code).toBe(1);
    expect(every.stderr).toMatch(/--resume: with --max-eval-pairs 2 the pairs of --eval-data are not the ones the run in .*only4 evaluated on \(every usable pair of its --eval-data\).*give no --max-eval-pairs/);
    // A limit past the file's pairs is the same set as the run's own (all 4): taken.
    const same = await train([...args('only4', [whole], [a], 1), '--max-eval-pairs', '100', '--resume']);
    expect(same.code, describeRun(same)).toBe(0);
  });

  it('the pieces train and evaluate as their concatenation, and the run resumes from them but not from another order', async () => {
    const one = await train(args('one', [whole], [whole]));
    expect(one.code, describeRun(one)).toBe(0);
    expect(one.stderr).toMatch(/note: .*whole\.jsonl is in --data and --eval-data: the evaluation is on training data/);
    const two = await train(args('two', [a, b], [b, a], 1));
    expect(two.code, describeRun(two)).toBe(0);
    expect(two.stderr).toMatch(/a\.jsonl \+ .*b\.jsonl: 6 rows/);
    const resumed = await train([...args('two', [a, b], [b, a]), '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(values('two')).toEqual(values('one'));
    // The eval set in another order: the same pairs, the same means (at steps 0 and 2; 'two' also evaluated when it stopped at 1).
    const atOneSteps = evals('two').filter((e) => e.step !== 1);
    expect(atOneSteps.map((e) => e.step)).toEqual([0, 2]);
    for (const k of ['margin', 'accuracy', 'aug_accuracy', 'nll_chosen', 'n']) {
      expect(atOneSteps.map((e) => e[k]), k).toEqual(evals('one').map((e) => (k === 'n' ? e[k] : expect.closeTo(e[k], 12))));
    }
    // A resumed run drops the per-pair numbers of an evaluation past its checkpoint (as eval.jsonl's line);
    // those of the checkpoint's own step stay (a finished run resumed: nothing to train or evaluate).
    const pairsFile = join(tmp, 'one', 'eval-pairs.csv');
    const kept = readFileSync(pairsFile, 'utf8');
    writeFileSync(pairsFile, kept.replace(/^2,/gm, '5,'));
    expect((await train([...args('one', [whole], [whole]), '--resume'])).code).toBe(0);
    expect(existsSync(pairsFile)).toBe(false);
    writeFileSync(pairsFile, kept);
    expect((await train([...args('one', [whole], [whole]), '--resume'])).code).toBe(0);
    expect(readFileSync(pairsFile, 'utf8')).toBe(kept);
    // eval-pairs.csv: the latest evaluation's pairs, whose means are its row's.
    const csv = readFileSync(join(tmp, 'one', 'eval-pairs.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,pair,margin,aug_margin,score_chosen,score_rejected,file,line');
    const cols = csv.slice(1).map((l) => l.split(','));
    expect(cols.map((c) => [c[0], c[1], c[4], c[5], c[6], c[7]])).toEqual(lines.map((_, i) => ['2', String(i), '', '', whole, String(i + 1)]));
    const last = evals('one').at(-1);
    const mean = (k: number) => cols.reduce((t, c) => t + Number(c[k]), 0) / cols.length;
    expect(mean(2)).toBeCloseTo(last.margin, 12);
    expect(cols.filter((c) => Number(c[2]) > 0).length / cols.length).toBe(last.accuracy);
    expect(cols.filter((c) => Number(c[3]) > 0).length / cols.length).toBe(last.aug_accuracy);
    // A quoted pattern names the same files in name order (a.jsonl, b.jsonl): the same run, taken up.
    const pattern = await train([...args('two', [join(tmp, '?.jsonl')], [b, a], 3), '--resume']);
    expect(pattern.code, describeRun(pattern)).toBe(0);
    expect(pattern.stderr).toMatch(/a\.jsonl \+ .*b\.jsonl: 6 rows/);
    // Refused, each by name: a file given twice, a pattern that matches nothing, two values after one flag.
    for (const [extra, re] of [
      [['--data', a, '--data', `${tmp}/./a.jsonl`], /--data: .*a\.jsonl is given twice \(also as .*a\.jsonl\): its rows would count twice/],
      [['--data', join(tmp, 'z*.jsonl')], /--data .*z\*\.jsonl: no file matches/],
      [['--data', a, b], /Unknown argument: .*b\.jsonl\nsrk: several data files: give --data \(or --eval-data\) again for each, or quote a pattern/],
    ] as const) {
      const r = await train(['--model', fixture('gpt-neox-tiny'), '--loss', 'dpo', '--out', join(tmp, 'refused'), ...extra]);
      expect(r.code, describeRun(r)).not.toBe(0); // 1, or 2 for the parser's own refusal
      expect(r.stderr).toMatch(re);
    }
    const reordered = await train([...args('two', [b, a], [b, a], 4), '--resume']);
    expect(reordered.code).toBe(1);
    expect(reordered.stderr).toMatch(/--resume: the pairs read from .*b\.jsonl \+ .*a\.jsonl are not the ones the run in .* trained on/);
  });
});
