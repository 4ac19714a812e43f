// `srk train` end to end, first optimizer step against the Hugging Face golden fixtures: with
// --lr 0 and one batch of all 6 pairs, the first metrics line is the fixture's mean loss, margin
// and accuracy (computed by transformers in float64).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, readMetrics, safetensorsNorm, tempDir, train } from './helpers.js';

const FIXTURES = ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied'] as const;
/** Pairs per forward/backward: the batch of 6 in one piece, as 4 + 2, and as 3 x 2 (gradients and metrics accumulate). */
const MICRO: Record<(typeof FIXTURES)[number], number> = { 'gpt-neox-tiny': 6, 'mistral-tiny': 4, 'llama-tiny-tied': 2 };
const LOSSES = ['dpo', 'ipo', 'sr-dpo', 'sr-ipo'] as const;

interface Expected {
  beta: number; losses_mean: Record<string, number>; logratio_diff: number[]; delta: number[];
  logps: { policy_chosen: number[]; chosen_tokens: number[] };
}

const relClose = (got: number, want: number, rel: number, floor = 1e-6) =>
  Math.abs(got - want) <= rel * Math.max(Math.abs(want), floor);

describe('srk train: the first metrics line equals the transformers fixtures (loss, margin, accuracies, gradient norm)', () => {
  const tmp = tempDir();
  for (const name of FIXTURES) {
    const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
    const h = exp.logratio_diff;
    const margin = h.reduce((s, x) => s + exp.beta * x, 0) / h.length;
    const accuracy = h.filter((x) => x > 0).length / h.length;
    const augAccuracy = exp.delta.filter((x) => x > 0).length / exp.delta.length;
    for (const loss of LOSSES) {
      it(`${name} ${loss} (micro-batches of ${MICRO[name]}): loss == losses_mean, margin == mean(beta*h), accuracy == mean(h > 0), aug_accuracy == mean(delta > 0), grad_norm == |grads|`, async () => {
        const out = join(tmp, `${name}-${loss}`);
        const r = await train([...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', String(MICRO[name]), '--lr', '0', '--max-steps', '1', '--loss', loss, '--out', out]);
        expect(r.code, describeRun(r)).toBe(0);
        const rows = readMetrics(out);
        expect(rows).toHaveLength(1);
        const m = rows[0];
        expect(m.step).toBe(1);
        expect(m.pairs_seen).toBe(6);
        expect(m.lr).toBe(0);
        const want = exp.losses_mean[loss];
        expect(relClose(m.loss!, want, 1e-4), `loss ${m.loss} vs ${want}`).toBe(true);
        // margin is an f32 mean of differences of sums of ~100 log-probs: 1e-4 of the scale of h.
        expect(Math.abs(m.margin! - margin), `margin ${m.margin} vs ${margin}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(margin)));
        expect(m.accuracy).toBeCloseTo(accuracy, 6);
        if (loss.startsWith('sr-')) expect(m.aug_accuracy).toBeCloseTo(augAccuracy, 6);
        else expect(m.aug_accuracy).toBeNull();
        // The gradient of the batch mean, accumulated over the micro-batches: its global norm is that
        // of the fixture's d(mean loss)/d(parameter) (grads_LOSS.safetensors).
        const gn = safetensorsNorm(join(fixture(name), `grads_${loss}.safetensors`));
        expect(relClose(m.grad_norm!, gn, 1e-4), `grad_norm ${m.grad_norm} vs ${gn}`).toBe(true);
      });
    }
  }
});

describe('srk train --label-smoothing (cDPO): the first loss is the smoothed loss of the fixtures\' log-ratios', () => {
  const tmp = tempDir();
  const name = 'gpt-neox-tiny';
  const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
  const softplus = (x: number) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
  for (const [loss, eps] of [['dpo', 0.2], ['sr-dpo', 0.35]] as const) {
    it(`${loss} eps ${eps}: mean of (1-eps) softplus(-z) + eps softplus(z), z = beta h${loss === 'sr-dpo' ? ' - lambda delta' : ''}`, async () => {
      const out = join(tmp, `${loss}-ls`);
      const r = await train([...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', '4', '--lr', '0', '--max-steps', '1',
        '--loss', loss, '--label-smoothing', String(eps), '--out', out]);
      expect(r.code, describeRun(r)).toBe(0);
      const [m] = readMetrics(out);
      const z = exp.logratio_diff.map((h, i) => exp.beta * h - (loss === 'sr-dpo' ? 0.5 * exp.delta[i] : 0));
      const want = z.reduce((s, x) => s + (1 - eps) * softplus(-x) + eps * softplus(x), 0) / z.length;
      expect(relClose(m.loss!, want, 1e-4), `loss ${m.loss} vs ${want}`).toBe(true);
      // Not the plain loss: the smoothing reached the step.
      expect(relClose(m.loss!, exp.losses_mean[loss], 1e-3)).toBe(false);
    });
  }
});

describe('srk train --loss sft: the first metrics line is the mean NLL per chosen token of the fixtures', () => {
  const tmp = tempDir();
  for (const name of FIXTURES) {
    it(`${name} (micro-batches of ${MICRO[name]}): loss == -sum(policy_chosen) / sum(chosen_tokens), logp_chosen == mean(policy_chosen)`, async () => {
      const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
      const out = join(tmp, `${name}-sft`);
      const r = await train([...fixtureArgs(name, { ref: false }), '--batch-size', '6', '--micro-batch-size', String(MICRO[name]), '--lr', '0', '--max-steps', '1', '--loss', 'sft', '--out', out]);
      expect(r.code, describeRun(r)).toBe(0);
      const [m] = readMetrics(out);
      const lp = exp.logps.policy_chosen;
      const nll = -lp.reduce((a, b) => a + b, 0) / exp.logps.chosen_tokens.reduce((a, b) => a + b, 0);
      expect(relClose(m.loss!, nll, 1e-4), `loss ${m.loss} vs ${nll}`).toBe(true);
      const mean = lp.reduce((a, b) => a + b, 0) / lp.length;
      expect(relClose(m.logp_chosen!, mean, 1e-4), `logp_chosen ${m.logp_chosen} vs ${mean}`).toBe(true);
      expect(m.margin).toBeNull();
      expect(m.accuracy).toBeNull();
    });
  }
});

describe('srk train --precision mixed: the first step near the transformers fixtures', () => {
  const tmp = tempDir();
  const name = 'gpt-neox-tiny';
  const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
  const args = (out: string) => [...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', '6', '--lr', '0', '--max-steps', '1',
    '--loss', 'sr-dpo', '--precision', 'mixed', '--out', out];

  it('on an adapter without f16 subgroup matrices: a note, then f32 (the fixture loss within 1e-4)', async (ctx) => {
    const out = join(tmp, 'fallback');
    const r = await train(args(out));
    expect(r.code, describeRun(r)).toBe(0);
    if (!/falls back to f32/.test(r.stdout + r.stderr)) { ctx.skip(); return; } // a tensor-core adapter runs mixed
    expect(relClose(readMetrics(out)[0].loss!, exp.losses_mean['sr-dpo'], 1e-4)).toBe(true);
    // The run's settings say what was asked and what ran; no name (srk report names the run by its directory).
    const cfg = JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'));
    expect(cfg).toMatchObject({ precision: 'mixed', precisionUsed: 'f32', plannedSteps: 1 });
    expect(cfg.name).toBeUndefined();
  });

  it('with f16 operands (tensor cores, or SRK_MIXED=emulate): loss within 1e-3 and gradient norm within 5e-3 of float64', async () => {
    const out = join(tmp, 'mixed');
    const r = await train(args(out), { SRK_MIXED: 'emulate' });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout + r.stderr).not.toMatch(/falls back to f32/);
    expect(r.stdout + r.stderr).toMatch(/mixed precision.*f16/); // emulated, or on tensor cores
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ precision: 'mixed', precisionUsed: 'mixed' });
    const m = readMetrics(out)[0];
    const want = exp.losses_mean['sr-dpo'];
    expect(relClose(m.loss!, want, 1e-3), `loss ${m.loss} vs ${want}`).toBe(true);
    const gn = safetensorsNorm(join(fixture(name), 'grads_sr-dpo.safetensors'));
    expect(relClose(m.grad_norm!, gn, 5e-3), `grad_norm ${m.grad_norm} vs ${gn}`).toBe(true);
  });

  it('a resume in another precision is said, and the earlier precision kept in train_config.json', async () => {
    const out = join(tmp, 'switch');
    const first = await train([...args(out).filter((a) => a !== 'mixed' && a !== '--precision')]); // f32, one step
    expect(first.code, describeRun(first)).toBe(0);
    expect(first.stderr).toMatch(/done: 1 step; model in/);
    const more = (n: number) => args(out).map((a) => (a === '1' ? String(n) : a));
    const r = await train([...more(2), '--resume'], { SRK_MIXED: 'emulate' });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/note: --resume: this run's last process \(to step 1\) ran in f32 precision; from here it runs in mixed/);
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ precisionUsed: 'mixed', earlierPrecisionUsed: 'f32 to step 1' });
    // Resumed again in the same precision: nothing to say, the record kept.
    const again = await train([...more(3), '--resume'], { SRK_MIXED: 'emulate' });
    expect(again.code, describeRun(again)).toBe(0);
    expect(again.stderr).not.toMatch(/ran in .* precision; from here/);
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ precisionUsed: 'mixed', earlierPrecisionUsed: 'f32 to step 1' });
    // And back to f32: both earlier ones kept, in order.
    const back = await train([...more(4).filter((a) => a !== 'mixed' && a !== '--precision'), '--resume']);
    expect(back.code, describeRun(back)).toBe(0);
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ precisionUsed: 'f32', earlierPrecisionUsed: 'f32 to step 1; mixed to step 3' });
  });
});

describe('srk train --precision f32 --aug-precision mixed: only the augmented pass in f16', () => {
  const tmp = tempDir();
  const name = 'gpt-neox-tiny';
  const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
  const h = exp.logratio_diff;
  const margin = h.reduce((s, x) => s + exp.beta * x, 0) / h.length;
  const args = (out: string) => [...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', '6', '--lr', '0', '--max-steps', '1',
    '--loss', 'sr-dpo', '--aug-precision', 'mixed', '--out', out];

  it('with f16 operands (tensor cores, or SRK_MIXED=emulate): the plain margin as f32 (1e-4), loss within 1e-3 and gradient norm within 5e-3 of float64', async () => {
    const out = join(tmp, 'aug-mixed');
    const r = await train(args(out), { SRK_MIXED: 'emulate' });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/augmented pass.*(f16|mixed precision emulated)/);
    expect(r.stdout + r.stderr).not.toMatch(/falls back to f32/);
    const m = readMetrics(out)[0];
    expect(Math.abs(m.margin! - margin), `margin ${m.margin} vs ${margin}`).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(margin)));
    const want = exp.losses_mean['sr-dpo'];
    expect(relClose(m.loss!, want, 1e-3), `loss ${m.loss} vs ${want}`).toBe(true);
    const gn = safetensorsNorm(join(fixture(name), 'grads_sr-dpo.safetensors'));
    expect(relClose(m.grad_norm!, gn, 5e-3), `grad_norm ${m.grad_norm} vs ${gn}`).toBe(true);
  });

  it('with a loss that has no augmented pass and no --eval-data: a note that it changes nothing, and the f32 numbers', async () => {
    const out = join(tmp, 'aug-dpo');
    const r = await train([...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', '6', '--lr', '0', '--max-steps', '1',
      '--loss', 'dpo', '--aug-precision', 'mixed', '--out', out], { SRK_MIXED: 'emulate' });
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/--aug-precision mixed: dpo has no augmented pass .* changes nothing here/);
    expect(relClose(readMetrics(out)[0].loss!, exp.losses_mean.dpo, 1e-4)).toBe(true);
  });

  it('on an adapter without f16 subgroup matrices: a note naming --aug-precision, then f32 (the fixture loss within 1e-4)', async (ctx) => {
    const out = join(tmp, 'aug-fallback');
    const r = await train(args(out));
    expect(r.code, describeRun(r)).toBe(0);
    if (!/falls back to f32/.test(r.stdout + r.stderr)) { ctx.skip(); return; } // a tensor-core adapter runs mixed
    expect(r.stdout + r.stderr).toMatch(/augmented pass \(policy and reference, no gradients\): .*--aug-precision mixed falls back to f32/);
    expect(relClose(readMetrics(out)[0].loss!, exp.losses_mean['sr-dpo'], 1e-4)).toBe(true);
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ precision: 'f32', augPrecision: 'mixed', precisionUsed: 'f32', augPrecisionUsed: 'f32' });
  });
});
