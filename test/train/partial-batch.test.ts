// An epoch's last, partial batch: trained as a shorter step by default (transformers' Trainer,
// dataloader_drop_last false), skipped with --drop-last; a run saved before the option existed (it
// dropped the batch) keeps dropping it when resumed.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, readMetrics, tempDir, train } from './helpers.js';

describe('the last, partial batch of an epoch (6 pairs, batch 4)', () => {
  const tmp = tempDir();
  const base = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--lr', '1e-4', '--batch-size', '4', '--micro-batch-size', '2'];

  it('is a step of its own pairs by default: 2 steps an epoch (4 + 2 pairs)', async () => {
    const out = join(tmp, 'keep');
    const r = await train([...base, '--epochs', '2', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toContain('each epoch\'s last step trains the 2 pairs left');
    const m = readMetrics(out);
    expect(m.map((x) => x.pairs_seen)).toEqual([4, 6, 10, 12]);
    expect(m.every((x) => Number.isFinite(x.loss))).toBe(true);
    const state = JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8'));
    expect(state.options.dropLast).toBe(false);
    expect(state.totalSteps).toBe(4);
  });

  it('--drop-last: 1 step an epoch; a run without the option recorded resumes dropping it, and --no-drop-last is refused there', async () => {
    const out = join(tmp, 'drop');
    const r = await train([...base, '--drop-last', '--epochs', '2', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toContain('2 of the 6 pairs sit out each epoch');
    expect(readMetrics(out).map((x) => x.pairs_seen)).toEqual([4, 8]);

    // As an srk from before --drop-last saved it: no dropLast among the pinned options.
    const old = join(tmp, 'old');
    const r1 = await train([...base, '--drop-last', '--max-steps', '1', '--out', old]);
    expect(r1.code, describeRun(r1)).toBe(0);
    const stateFile = join(old, 'checkpoint', 'trainer_state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    delete state.options.dropLast;
    writeFileSync(stateFile, JSON.stringify(state));
    const refused = await train([...base, '--no-drop-last', '--max-steps', '2', '--resume', '--out', old]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/--resume: --drop-last is false but the run in .* used true/);
    const r2 = await train([...base, '--max-steps', '2', '--resume', '--out', old]);
    expect(r2.code, describeRun(r2)).toBe(0);
    expect(readMetrics(old).map((x) => x.pairs_seen)).toEqual([4, 8]);
  });
});
