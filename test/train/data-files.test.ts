// --data and --eval-data with several files (a split's shards, subsets side by side): read as one in the
// order given, so a run on the pieces is the run on their concatenation, and resumes from them.
import { readFileSync, writeFileSync } from 'node:fs';
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
    '--data', ...data, '--eval-data', ...evalData];
  const values = (out: string) => readMetrics(join(tmp, out)).map((m) => [m.loss, m.margin, m.grad_norm]);
  const evals = (out: string) => readFileSync(join(tmp, out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));

  it('the pieces train and evaluate as their concatenation, and the run resumes from them but not from another order', async () => {
    const one = await train(args('one', [whole], [whole]));
    expect(one.code, describeRun(one)).toBe(0);
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
    // eval-pairs.csv: the latest evaluation's pairs, whose means are its row's.
    const csv = readFileSync(join(tmp, 'one', 'eval-pairs.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('step,pair,margin,aug_margin,score_chosen,score_rejected');
    const cols = csv.slice(1).map((l) => l.split(','));
    expect(cols.map((c) => [c[0], c[1], c[4], c[5]])).toEqual(lines.map((_, i) => ['2', String(i), '', '']));
    const last = evals('one').at(-1);
    const mean = (k: number) => cols.reduce((t, c) => t + Number(c[k]), 0) / cols.length;
    expect(mean(2)).toBeCloseTo(last.margin, 12);
    expect(cols.filter((c) => Number(c[2]) > 0).length / cols.length).toBe(last.accuracy);
    expect(cols.filter((c) => Number(c[3]) > 0).length / cols.length).toBe(last.aug_accuracy);
    const reordered = await train([...args('two', [b, a], [b, a], 3), '--resume']);
    expect(reordered.code).toBe(1);
    expect(reordered.stderr).toMatch(/--resume: the pairs read from .*b\.jsonl \+ .*a\.jsonl are not the ones the run in .* trained on/);
  });
});
