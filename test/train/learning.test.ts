// `srk train` learns: a short Sr-DPO run on gpt-neox-tiny's 6 pairs, with the initial policy as
// the reference, drives the training margin and accuracy up from their start (margin 0, since
// policy == reference at step 1) and the loss down from log 2.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, readMetrics, tempDir, train } from './helpers.js';

describe('srk train sr-dpo on gpt-neox-tiny (adamw, 6 steps): training margin and accuracy rise, loss falls', () => {
  const tmp = tempDir();

  it('the last metrics line beats the first; warm-up scales lr; evaluations agree with the training metrics; the model is saved', async () => {
    const out = join(tmp, 'learn');
    const steps = 6;
    const r = await train([...fixtureArgs('gpt-neox-tiny', { ref: false }), '--loss', 'sr-dpo', '--optimizer', 'adamw',
      '--lr', '1e-3', '--warmup-steps', '2', '--batch-size', '6', '--max-steps', String(steps), '--out', out,
      '--eval-data', join(fixture('gpt-neox-tiny'), 'pairs.jsonl'), '--eval-every', '3']);
    expect(r.code, describeRun(r)).toBe(0);
    const rows = readMetrics(out);
    expect(rows.map((m) => m.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(rows.map((m) => m.pairs_seen)).toEqual([6, 12, 18, 24, 30, 36]);
    // Linear warm-up: lr * min(1, (step + 1) / (warmup + 1)) for 0-based step.
    rows.forEach((m, i) => expect(m.lr).toBeCloseTo(1e-3 * Math.min(1, (i + 1) / 3), 12));

    const first = rows[0]; const last = rows[rows.length - 1];
    // Policy == reference before the first update: h = 0 for every pair.
    expect(Math.abs(first.margin!)).toBeLessThan(1e-3);
    expect(first.loss).toBeCloseTo(Math.LN2, 3);
    // After training: every pair (and its augmented version) is ranked right, by a wide margin.
    expect(last.accuracy).toBe(1);
    expect(last.aug_accuracy).toBe(1);
    expect(last.margin!).toBeGreaterThan(first.margin! + 1);
    expect(last.loss!).toBeLessThan(0.5 * first.loss!);
    expect(last.reward_chosen!).toBeGreaterThan(last.reward_rejected!);
    for (const m of rows) expect(Number.isFinite(m.grad_norm)).toBe(true);

    // Evaluation (on the same 6 pairs) at the start, every 3 steps and at the end. The batch is the
    // whole data set, so the evaluation after step 3 scores the weights that the metrics line of
    // step 4 was computed with (before its update): the same margin and accuracies.
    const evals = readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    expect(evals.map((e) => e.step)).toEqual([0, 3, 6]);
    expect(evals.every((e) => e.n === 6)).toBe(true);
    expect(Math.abs(evals[0].margin)).toBeLessThan(1e-3);
    expect(Math.abs(evals[1].margin - rows[3].margin!)).toBeLessThan(1e-4 * Math.max(1, Math.abs(evals[1].margin)));
    expect(evals[1].accuracy).toBe(rows[3].accuracy);
    expect(evals[1].aug_accuracy).toBe(rows[3].aug_accuracy);
    expect(evals[2].margin).toBeGreaterThan(last.margin!);
    expect(evals[2].accuracy).toBe(1);
    expect(existsSync(join(out, 'checkpoint', 'model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'report.html'))).toBe(true);
    expect(r.stderr).toMatch(/done: 6 steps/);
    // The GPU memory the run took, said after the first step and at the end: at least the parameters, their
    // gradients and AdamW's two moments (f32 each), and no more held than the pool's buffers.
    const mem = /GPU memory after this process's first step: ([\d.]+) MiB in use at most, ([\d.]+) MiB held in buffers\n/.exec(r.stderr);
    expect(mem, r.stderr).not.toBeNull();
    expect(r.stderr.match(/GPU memory after this process's first step/g)).toHaveLength(1); // once, not every step
    const paramMiB = statSync(join(fixture('gpt-neox-tiny'), 'model.safetensors')).size / 2 ** 20; // f32 weights
    expect(Number(mem![1])).toBeGreaterThan(4 * paramMiB * 0.95);
    expect(Number(mem![2])).toBeGreaterThanOrEqual(Number(mem![1]));
    expect(r.stderr).toMatch(/done: 6 steps; .*; GPU memory [\d.]+ MiB in use at most, [\d.]+ MiB held in buffers\n/);
    // What was read, in the log: the fixture's settings.
    expect(r.stderr).toMatch(/policy .*gpt-neox-tiny: gpt-neox, 2 layers, hidden 64, 4 heads of 16 \(4 rotary\), .*parallel residual, rope theta 10000\n/);
  });
});

describe('srk train --precision mixed (f16 operands, SRK_MIXED=emulate where no tensor cores) follows f32', () => {
  const tmp = tempDir();

  it('RMSprop Sr-DPO, 8 steps: every step\'s loss and margin within 0.5% of the f32 run, and it learns the same', async () => {
    const run = async (precision: string) => {
      const out = join(tmp, precision);
      const r = await train([...fixtureArgs('gpt-neox-tiny', { ref: false }), '--loss', 'sr-dpo', '--optimizer', 'rmsprop',
        '--lr', '3e-4', '--warmup-steps', '0', '--batch-size', '6', '--max-steps', '8', '--precision', precision, '--out', out],
        { SRK_MIXED: 'emulate' });
      expect(r.code, describeRun(r)).toBe(0);
      return readMetrics(out);
    };
    const f32 = await run('f32');
    const mixed = await run('mixed');
    expect(mixed).toHaveLength(8);
    // RMSprop divides every gradient by its running RMS, so a gradient that f16 had rounded away would
    // show up as a different update and drift the run; per-tensor scaling keeps them.
    for (let i = 0; i < 8; i++) {
      expect(Math.abs(mixed[i].loss! - f32[i].loss!), `step ${i + 1} loss`).toBeLessThan(0.005 * f32[i].loss!);
      expect(Math.abs(mixed[i].margin! - f32[i].margin!), `step ${i + 1} margin`).toBeLessThan(0.005 * Math.max(0.1, Math.abs(f32[i].margin!)));
    }
    expect(f32[7].loss!).toBeLessThan(0.8 * f32[0].loss!); // the run does learn
    expect(mixed[7].accuracy).toBe(f32[7].accuracy);
  });
});
