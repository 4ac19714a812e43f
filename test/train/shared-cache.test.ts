// Reference log-probs shared through --cache-dir: the cache is keyed by content (reference weights,
// tokenized pairs, settings, precision), so DPO beside Sr-DPO, or a sweep over lambda, scores the
// reference once. A plain request takes the plain half of an augmented file; an augmented request
// with only the plain file scores the augmented pass alone. Either way the run's numbers are those of
// a run with a cache of its own.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, readMetrics, tempDir, train } from './helpers.js';

describe('srk train --cache-dir', () => {
  const tmp = tempDir('srk-shared-cache-');
  const run = (loss: string, out: string, cache?: string) =>
    train([...fixtureArgs('gpt-neox-tiny'), '--loss', loss, '--batch-size', '3', '--max-steps', '2', '--lr', '1e-4', '--out', join(tmp, out),
      ...(cache ? ['--cache-dir', join(tmp, cache)] : [])]);
  const values = (out: string) => readMetrics(join(tmp, out)).map((m) => [m.loss, m.margin, m.aug_accuracy, m.grad_norm]);

  it('Sr-DPO then DPO: DPO takes the plain half of the augmented file, with the numbers of its own', async () => {
    const sr = await run('sr-dpo', 'sr', 'shared');
    expect(sr.code, describeRun(sr)).toBe(0);
    expect(sr.stderr).toMatch(/reference log-probs \(train\): 6 pairs in [\d.]+ s, cached in .*shared\/ref-logps-train-\w+\.json/);
    const dpo = await run('dpo', 'dpo', 'shared');
    expect(dpo.code, describeRun(dpo)).toBe(0);
    expect(dpo.stderr).toMatch(/reference log-probs \(train\): cached in .*shared\/ref-logps-train-\w+\.json/);
    expect(readdirSync(join(tmp, 'shared'))).toHaveLength(1);
    const own = await run('dpo', 'dpo-own');
    expect(own.code, describeRun(own)).toBe(0);
    expect(own.stderr).toMatch(/reference log-probs \(train\): 6 pairs in/);
    expect(values('dpo')).toEqual(values('dpo-own'));
  });

  it('DPO then Sr-DPO: Sr-DPO scores the augmented pass alone, with the numbers of its own; other settings, another key', async () => {
    const dpo = await run('dpo', 'dpo-first', 'shared2');
    expect(dpo.code, describeRun(dpo)).toBe(0);
    const sr = await run('sr-dpo', 'sr-second', 'shared2');
    expect(sr.code, describeRun(sr)).toBe(0);
    expect(sr.stderr).toMatch(/reference log-probs \(train\): 6 pairs in [\d.]+ s \(the plain ones from .*shared2\/ref-logps-train-\w+\.json; the augmented pass alone scored\), cached in/);
    expect(readdirSync(join(tmp, 'shared2'))).toHaveLength(2);
    const own = await run('sr-dpo', 'sr-own');
    expect(own.code, describeRun(own)).toBe(0);
    expect(values('sr-second')).toEqual(values('sr-own'));
    expect(values('sr-second').every((v) => v.every((x) => typeof x === 'number'))).toBe(true);
    // Shorter sequences are other pairs: scored anew, beside the files of the others.
    const short = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--max-length', '24', '--max-prompt-length', '12', '--max-steps', '1',
      '--out', join(tmp, 'short'), '--cache-dir', join(tmp, 'shared2')]);
    expect(short.code, describeRun(short)).toBe(0);
    expect(short.stderr).toMatch(/reference log-probs \(train\): 6 pairs in [\d.]+ s, cached in/);
    expect(readdirSync(join(tmp, 'shared2'))).toHaveLength(3);
    // f16 operands (SRK_MIXED=emulate: f16-rounded, on any adapter) are another reference: scored anew.
    const mixed = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '3', '--max-steps', '2', '--lr', '1e-4',
      '--precision', 'mixed', '--out', join(tmp, 'dpo-mixed'), '--cache-dir', join(tmp, 'shared2')], { SRK_MIXED: 'emulate' });
    expect(mixed.code, describeRun(mixed)).toBe(0);
    expect(mixed.stderr).toMatch(/reference log-probs \(train\): 6 pairs in [\d.]+ s, cached in/);
    expect(readdirSync(join(tmp, 'shared2'))).toHaveLength(4);
  });

  it('the plain log-probs do not depend on the refinement prompt: DPO runs given different --refine-prompt share them, and so does an Sr run', async () => {
    const dpo = (out: string, refine: string, loss = 'dpo') => train([...fixtureArgs('gpt-neox-tiny'), '--loss', loss, '--batch-size', '3', '--max-steps', '2',
      '--lr', '1e-4', '--refine-prompt', refine, '--out', join(tmp, out), '--cache-dir', join(tmp, 'refine')]);
    const a = await dpo('refine-a', 'Rate this:');
    expect(a.code, describeRun(a)).toBe(0);
    expect(a.stderr).toMatch(/reference log-probs \(train\): 6 pairs in/);
    const b = await dpo('refine-b', 'Q:');
    expect(b.code, describeRun(b)).toBe(0);
    expect(b.stderr).toMatch(/reference log-probs \(train\): cached in .*refine\/ref-logps-train-\w+\.json/);
    const sr = await dpo('refine-sr', 'Usefulness 100:', 'sr-dpo');
    expect(sr.code, describeRun(sr)).toBe(0);
    expect(sr.stderr).toMatch(/the plain ones from .*refine\/ref-logps-train-\w+\.json; the augmented pass alone scored/);
    expect(readdirSync(join(tmp, 'refine'))).toHaveLength(2);
    expect(values('refine-b')).toEqual(values('refine-a'));
  });

  it('a run of fewer steps than an epoch scores the pairs it trains on; a longer run takes them up, to the numbers of a whole pass', async () => {
    const short = (out: string, steps: number, more: string[] = []) => train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'sr-dpo', '--batch-size', '2',
      '--max-steps', String(steps), '--lr', '1e-4', '--out', join(tmp, out), '--cache-dir', join(tmp, 'part'), ...more]);
    const first = await short('part-1', 1);
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stderr).toMatch(/reference log-probs \(train\): the 2 of 6 pairs this run's steps train on in [\d.]+ s, cached in .*part\/ref-logps-\w+\.partial\.json/);
    expect(readdirSync(join(tmp, 'part'))).toEqual([expect.stringMatching(/\.partial\.json$/)]);
    // The same steps again: nothing to score.
    const again = await short('part-again', 1);
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stderr).toMatch(/reference log-probs \(train\): the 2 of 6 pairs this run's steps train on cached in .*\.partial\.json/);
    expect(again.stderr).not.toMatch(/load reference/);
    // Resumed to three steps (the whole epoch): the other four pairs are scored, and the file is whole.
    const rest = await short('part-1', 3, ['--resume']);
    expect(rest.code, describeRun(rest)).toBe(0);
    expect(rest.stderr).toMatch(/taking up .*\.partial\.json: 2 of 6 pairs, 2 augmented scored before/);
    expect(rest.stderr).toMatch(/reference log-probs \(train\): 6 pairs in [\d.]+ s, cached in .*part\/ref-logps-train-\w+\.json/);
    expect(readdirSync(join(tmp, 'part'))).toEqual([expect.stringMatching(/^ref-logps-train-\w+\.json$/)]);
    const whole = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'sr-dpo', '--batch-size', '2', '--max-steps', '3', '--lr', '1e-4',
      '--out', join(tmp, 'part-whole')]);
    expect(whole.code, describeRun(whole)).toBe(0);
    expect(values('part-1')).toEqual(values('part-whole'));
    expect(values('part-1')).toHaveLength(3);
  });

  it('a file in the way is refused by the flag', async () => {
    writeFileSync(join(tmp, 'a-file'), '');
    const r = await run('dpo', 'refused', 'a-file');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--cache-dir .*a-file: not a directory/);
  });
});
