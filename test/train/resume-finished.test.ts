// Resuming a run that already finished (killed after its final save, before the report) adds
// no step and no second evaluation of the final step, and still writes the report.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, tempDir, train } from './helpers.js';

describe('--resume of a finished run', () => {
  it('adds no metrics or eval lines and writes the report', async () => {
    const out = tempDir();
    const args = [...fixtureArgs('gpt-neox-tiny'), '--eval-data', path.join(fixture('gpt-neox-tiny'), 'pairs.jsonl'),
      '--batch-size', '3', '--max-steps', '2', '--loss', 'dpo', '--lr', '1e-4', '--out', out];
    const first = await train(args);
    expect(first.code, describeRun(first)).toBe(0);
    const lines = (f: string) => readFileSync(path.join(out, f), 'utf8').trim().split('\n');
    const evals = lines('eval.jsonl');
    expect(evals.map((l) => JSON.parse(l).step)).toEqual([0, 2]);
    const again = await train([...args, '--resume']);
    expect(again.code, describeRun(again)).toBe(0);
    expect(lines('eval.jsonl')).toEqual(evals);
    expect(lines('metrics.jsonl')).toHaveLength(2);
    expect(existsSync(path.join(out, 'report.html'))).toBe(true);
    // Fewer steps than it has run: nothing to train, refused (its train_config.json's plan left as it was).
    const config = readFileSync(path.join(out, 'train_config.json'), 'utf8');
    const fewer = await train([...args.map((a, i) => (args[i - 1] === '--max-steps' ? '1' : a)), '--resume']);
    expect(fewer.code).toBe(1);
    expect(fewer.stderr).toMatch(/--resume: the run in .* is at step 2, past the 1 steps asked \(--max-steps 1\): nothing to train; its model is in .*checkpoint/);
    expect(readFileSync(path.join(out, 'train_config.json'), 'utf8')).toBe(config);
    expect(lines('metrics.jsonl')).toHaveLength(2);
  }, 120_000);
});
