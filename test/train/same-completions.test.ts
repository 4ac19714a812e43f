// A pair whose chosen and rejected responses are the same tokens (a few rows of HH-RLHF and UltraFeedback
// are): its margin is 0 and its gradient nothing, exactly, as computations alike give them (TRL scores
// the two sequences the same way; a tie counts as wrong). Computed at two places of a packed row, the
// sums differed by rounding, and a margin of 1e-5 counted as a correct pair, not a tie.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, readMetrics, root, srk, tempDir, train } from './helpers.js';

/** Rows with long, varied responses (sums of hundreds of tokens round differently at other places). */
function rows(n: number, same: boolean, from = 0): string {
  const words = 'the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches'.split(' ');
  const text = (seed: number, len: number) => Array.from({ length: len }, (_, i) => words[(seed * 7 + i * (seed + 3)) % words.length]).join(' ');
  return Array.from({ length: n }, (_, j) => {
    const i = from + j;
    const chosen = ` ${text(i + 1, 40 + 13 * i)}.`;
    return JSON.stringify({ prompt: `Question ${i}: ${text(i + 2, 8)}?`, chosen, rejected: same ? chosen : ` ${text(i + 5, 30 + 11 * i)}.` });
  }).join('\n') + '\n';
}

describe('pairs of the same tokens twice', () => {
  it('srk eval: every margin exactly 0, each a tie (plain and augmented)', () => {
    const dir = tempDir('srk-same-');
    const data = join(dir, 'same.jsonl');
    // The 4 longest of 8 (without one sum for both, two or more of these were counted correct, not ties).
    writeFileSync(data, rows(4, true, 4));
    const pairsOut = join(dir, 'pairs.csv');
    const r = spawnSync(process.execPath, [srk, 'eval', '--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'),
      '--data', data, '--json', '--pairs-out', pairsOut], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout);
    expect([m.n, m.ties, m.aug_ties, m.accuracy, m.aug_accuracy, m.margin]).toEqual([4, 4, 4, 0, 0, 0]);
    expect(m.notes.join('\n')).toMatch(/^4 of 4 pairs have a margin of exactly 0 \(.*or the responses are the same tokens\): accuracy counts them as wrong/m);
    const lines = readFileSync(pairsOut, 'utf8').trim().split('\n').slice(1);
    expect(lines).toHaveLength(4);
  }, 120_000);

  it('srk eval --cache-dir: a reference cache written before (two sums apart by rounding) still gives ties', () => {
    const dir = tempDir('srk-same-');
    const data = join(dir, 'same.jsonl');
    writeFileSync(data, rows(3, true));
    const cache = join(dir, 'cache');
    const evalRun = () => {
      const r = spawnSync(process.execPath, [srk, 'eval', '--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'),
        '--data', data, '--json', '--cache-dir', cache], { cwd: root, encoding: 'utf8', timeout: 120_000 });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout);
    };
    expect(evalRun().ties).toBe(3);
    // As an older build's file: each rejected sum 1e-5 from its chosen one.
    const [file] = readdirSync(cache).filter((f) => /^ref-logps-.*\.json$/.test(f) && !f.includes('partial'));
    const j = JSON.parse(readFileSync(join(cache, file), 'utf8'));
    for (const pass of [j.plain, j.aug]) pass.rejected = pass.rejected.map((v: number) => v + 1e-5);
    writeFileSync(join(cache, file), JSON.stringify(j));
    const again = evalRun();
    expect([again.ties, again.aug_ties, again.accuracy]).toEqual([3, 3, 0]);
  }, 120_000);

  it('srk train: beside other pairs they add nothing to the gradient, and log 2 each to the loss', async () => {
    const dir = tempDir('srk-same-');
    const only = join(dir, 'only.jsonl'); const mixed = join(dir, 'mixed.jsonl');
    writeFileSync(only, rows(2, false));
    writeFileSync(mixed, rows(2, false) + rows(2, true, 2));
    const step = async (data: string, batch: number) => {
      const out = join(dir, `run-${batch}`);
      const r = await train(['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', data, '--loss', 'dpo',
        '--batch-size', String(batch), '--micro-batch-size', '2', '--max-steps', '1', '--out', out]);
      expect(r.code, describeRun(r)).toBe(0);
      return readMetrics(out)[0];
    };
    const a = await step(only, 2);
    const b = await step(mixed, 4);
    // The mean over 4 pairs: the 2 others' gradient over twice the pairs (micro-batches of 2 mix the kinds).
    expect(b.grad_norm! * 2).toBeCloseTo(a.grad_norm!, 4);
    expect(b.loss!).toBeCloseTo((2 * Math.LN2 + 2 * a.loss!) / 4, 5);
  }, 120_000);

  it('srk train: a batch of them has loss log 2, margin and accuracy 0, and a gradient of exactly 0', async () => {
    const dir = tempDir('srk-same-');
    const data = join(dir, 'same.jsonl');
    writeFileSync(data, rows(4, true));
    const out = join(dir, 'run');
    const r = await train(['--model', fixture('gpt-neox-tiny'), '--ref-model', fixture('gpt-neox-tiny_ref'), '--data', data, '--loss', 'sr-dpo',
      '--batch-size', '4', '--micro-batch-size', '2', '--max-steps', '1', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    const [m] = readMetrics(out);
    expect(m.grad_norm).toBe(0);
    expect([m.margin, m.accuracy, m.aug_accuracy]).toEqual([0, 0, 0]);
    expect(m.loss).toBeCloseTo(Math.LN2, 6);
  }, 120_000);
});
