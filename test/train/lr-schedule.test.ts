// --lr-schedule: the paper's warm-up then constant, or linear / cosine decay as transformers'
// get_linear_schedule_with_warmup / get_cosine_schedule_with_warmup from the end of warm-up on; the lr
// each step used is in metrics.jsonl; a run's schedule is pinned on --resume, and a checkpoint from
// before the flag existed resumes as constant.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { lrFactor, warmupFactor } from '../../src/train/lr-schedule.js';
import { describeRun, fixtureArgs, readMetrics, tempDir, train } from './helpers.js';

/** transformers' lambdas for steps at or after warm-up (their warm-up ramp differs: step / warmup). */
const hfLinear = (s: number, w: number, t: number) => Math.max(0, (t - s) / Math.max(1, t - w));
const hfCosine = (s: number, w: number, t: number) => Math.max(0, 0.5 * (1 + Math.cos(Math.PI * (s - w) / Math.max(1, t - w))));

describe('the warm-up', () => {
  it('warm-up factor min(1, (step+1)/(warmup+1)), as the original DPO code\'s LambdaLR', () => {
    expect(warmupFactor(0, 150)).toBe(1 / 151);
    expect(warmupFactor(149, 150)).toBe(150 / 151);
    expect(warmupFactor(150, 150)).toBe(1);
    expect(warmupFactor(1000, 150)).toBe(1);
    expect(warmupFactor(0, 0)).toBe(1);
  });
});

describe('--lr-schedule', () => {
  it('lrFactor: the warm-up ramp, then constant, or transformers\' linear and cosine decay, never 0 within the run', () => {
    for (const [w, t] of [[0, 7], [3, 10], [150, 1000]]) {
      for (let s = 0; s < t; s++) {
        const warm = Math.min(1, (s + 1) / (w + 1));
        expect(lrFactor(s, w, 'constant', t)).toBe(warm);
        if (s < w) {
          expect(lrFactor(s, w, 'linear', t)).toBe(warm);
          expect(lrFactor(s, w, 'cosine', t)).toBe(warm);
        } else {
          expect(lrFactor(s, w, 'linear', t)).toBeCloseTo(hfLinear(s, w, t), 15);
          expect(lrFactor(s, w, 'cosine', t)).toBeCloseTo(hfCosine(s, w, t), 15);
        }
        expect(lrFactor(s, w, 'linear', t)).toBeGreaterThan(0);
        expect(lrFactor(s, w, 'cosine', t)).toBeGreaterThan(0);
      }
    }
    expect(lrFactor(3, 1, 'cosine', 4)).toBeCloseTo(0.25, 15);
    expect(lrFactor(2, 1, 'linear', 4)).toBeCloseTo(2 / 3, 15);
  });

  it('a run\'s metrics.jsonl holds the scheduled lr of each step; --resume keeps the schedule pinned', async () => {
    const out = tempDir();
    const args = [...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'dpo', '--lr', '1e-3', '--warmup-steps', '1',
      '--lr-schedule', 'cosine', '--out', out];
    const r = await train([...args, '--max-steps', '4']);
    expect(r.code, describeRun(r)).toBe(0);
    const lrs = readMetrics(out).map((m) => m.lr as number);
    [0.5, 1, 0.75, 0.25].forEach((f, i) => expect(lrs[i]).toBeCloseTo(1e-3 * f, 12));
    const other = await train([...args.filter((a) => a !== 'cosine').map((a) => (a === '--lr-schedule' ? '--lr-schedule=linear' : a)), '--max-steps', '5', '--resume']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--resume: --lr-schedule is "linear" but the run in .* used "cosine"/);
    // A checkpoint written before the flag existed (no lrSchedule recorded) continues as constant.
    const stateFile = path.join(out, 'checkpoint', 'trainer_state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    delete state.options.lrSchedule;
    writeFileSync(stateFile, JSON.stringify(state));
    const old = await train([...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'dpo', '--lr', '1e-3', '--warmup-steps', '1',
      '--out', out, '--max-steps', '5', '--resume']);
    expect(old.code, describeRun(old)).toBe(0);
    expect(readMetrics(out).map((m) => m.lr)).toEqual([...lrs, 1e-3]);
  }, 120_000);
});
