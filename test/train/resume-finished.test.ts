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
  }, 120_000);
});
