// `srk train --weight-decay`: torch.optim's weight_decay reaches the optimizer of a real run, for
// both optimizers, and is pinned on --resume. One step on the gpt-neox fixture (no warm-up, no
// clipping), its saved weights against float64 arithmetic on the fixture's own weights and gradients.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, f32Tensors, fixture, fixtureArgs, tempDir, train } from './helpers.js';

const tensors = f32Tensors;

const name = 'gpt-neox-tiny';
const initial = tensors(join(fixture(name), 'model.safetensors'));
// The fixture names the untied output layer's gradient as transformers' lm_head.
const gradOf = (() => {
  const g = tensors(join(fixture(name), 'grads_dpo.safetensors'));
  return (param: string) => g.get(param === 'embed_out.weight' ? 'lm_head.weight' : param)!;
})();
const oneStep = ['--batch-size', '6', '--micro-batch-size', '6', '--loss', 'dpo', '--warmup-steps', '0', '--grad-clip', '0', '--max-steps', '1'];

describe('srk train --weight-decay', () => {
  const tmp = tempDir();
  const run = async (out: string, extra: string[]) => {
    const r = await train([...fixtureArgs(name), ...oneStep, ...extra, '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    return { r, weights: tensors(join(out, 'checkpoint', 'model.safetensors')) };
  };

  it('adamw: the step with decay wd is the step without it, less lr * wd * p (decoupled, every tensor)', async () => {
    const lr = 1e-2, wd = 0.5;
    const plain = await run(join(tmp, 'adamw-0'), ['--optimizer', 'adamw', '--lr', String(lr), '--weight-decay', '0']);
    const decayed = await run(join(tmp, 'adamw-wd'), ['--optimizer', 'adamw', '--lr', String(lr), '--weight-decay', String(wd)]);
    expect(decayed.r.stdout + decayed.r.stderr).toMatch(/adamw lr 0.01, weight decay 0.5/);
    let checked = 0;
    for (const [param, p0] of initial) {
      const a = plain.weights.get(param)!, b = decayed.weights.get(param)!;
      for (let i = 0; i < p0.length; i++) {
        const want = -lr * wd * p0[i];
        // Each side is an f32 weight near p0: a few of its ulps.
        expect(Math.abs(b[i] - a[i] - want), `${param}[${i}]: ${b[i] - a[i]} vs ${want}`).toBeLessThanOrEqual(4e-7 * Math.max(1, Math.abs(p0[i])));
        checked++;
      }
    }
    expect(checked).toBe([...initial.values()].reduce((s, t) => s + t.length, 0));
  });

  it('rmsprop: wd * p joins the gradient (torch\'s coupled L2), so the first step follows g + wd * p', async () => {
    const lr = 1e-3, wd = 0.5, alpha = 0.99, eps = 1e-8;
    const { weights } = await run(join(tmp, 'rmsprop-wd'), ['--lr', String(lr), '--weight-decay', String(wd)]);
    let compared = 0, flipped = 0;
    for (const [param, p0] of initial) {
      const g = gradOf(param), got = weights.get(param)!;
      for (let i = 0; i < p0.length; i++) {
        const gd = g[i] + wd * p0[i];
        // Where g + wd p is near 0 the step hangs on the last bits of the gradient: not compared.
        if (Math.abs(gd) < 1e-4) continue;
        const want = p0[i] - (lr * gd) / (Math.sqrt((1 - alpha) * gd * gd) + eps);
        expect(Math.abs(got[i] - want), `${param}[${i}]: ${got[i]} vs ${want}`).toBeLessThanOrEqual(1e-6);
        compared++;
        if (Math.sign(gd) !== Math.sign(g[i])) flipped++;
      }
    }
    expect(compared).toBeGreaterThan(100_000);
    // The decay turned the step of many weights around (without it they move the other way).
    expect(flipped).toBeGreaterThan(10_000);
  });

  it('is pinned on --resume; a run saved before the flag resumes with its optimizer\'s default', async () => {
    const out = join(tmp, 'pinned');
    const args = [...fixtureArgs(name), '--batch-size', '3', '--loss', 'dpo', '--optimizer', 'adamw', '--lr', '1e-3', '--out', out];
    const r0 = await train([...args, '--max-steps', '1']);
    expect(r0.code, describeRun(r0)).toBe(0);
    const stateFile = join(out, 'checkpoint', 'trainer_state.json');
    expect(JSON.parse(readFileSync(stateFile, 'utf8')).options.weightDecay).toBe(0.01);
    expect(JSON.parse(readFileSync(join(out, 'train_config.json'), 'utf8'))).toMatchObject({ weightDecay: 0.01, plannedSteps: 1 }); // (the steps it plans: the report's "N of M")

    const other = await train([...args, '--weight-decay', '0', '--max-steps', '2', '--resume']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--resume: --weight-decay is 0 but the run in .* used 0.01/);

    // Written before --weight-decay existed: no weightDecay recorded, AdamW's 0.01 ran.
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    delete state.options.weightDecay;
    writeFileSync(stateFile, JSON.stringify(state));
    const refused = await train([...args, '--weight-decay', '0', '--max-steps', '2', '--resume']);
    expect(refused.stderr).toMatch(/--resume: --weight-decay is 0 but the run in .* used 0.01/);
    const resumed = await train([...args, '--max-steps', '2', '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
  }, 120_000);
});
