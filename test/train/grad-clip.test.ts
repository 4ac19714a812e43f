// `srk train --grad-clip c`: torch's clip_grad_norm_ (g * c / (|g| + 1e-6) where |g| > c) reaches the
// optimizer of a real run. One RMSprop step on the gpt-neox fixture, its saved weights against float64
// arithmetic on the fixture's own weights and gradients: with a clip that leaves the clipped gradient near
// RMSprop's eps, the step depends on the clipped size (unclipped, the first step is lr g / (0.1 |g|)).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, f32Tensors, fixture, fixtureArgs, tempDir, train } from './helpers.js';

const name = 'gpt-neox-tiny';
const initial = f32Tensors(join(fixture(name), 'model.safetensors'));
const grads = f32Tensors(join(fixture(name), 'grads_dpo.safetensors'));
// The fixture names the untied output layer's gradient as transformers' lm_head.
const gradOf = (param: string) => grads.get(param === 'embed_out.weight' ? 'lm_head.weight' : param)!;

describe('srk train --grad-clip', () => {
  it('scales the step\'s gradient to the clip norm before RMSprop, as torch clip_grad_norm_', async () => {
    let sq = 0;
    for (const param of initial.keys()) for (const g of gradOf(param)) sq += g * g;
    const norm = Math.sqrt(sq);
    const lr = 1e-3, alpha = 0.99, eps = 1e-8;
    const clip = 4e-5; // a typical clipped element ~ clip / sqrt(149k) ~ 1e-7: 0.1 |g'| near eps
    expect(norm).toBeGreaterThan(clip * 1e3);
    const coef = clip / (norm + 1e-6);
    const out = join(tempDir('srk-grad-clip-'), 'run');
    const r = await train([...fixtureArgs(name), '--batch-size', '6', '--micro-batch-size', '6', '--loss', 'dpo', '--warmup-steps', '0',
      '--max-steps', '1', '--lr', String(lr), '--grad-clip', String(clip), '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    const weights = f32Tensors(join(out, 'checkpoint', 'model.safetensors'));
    let compared = 0, slowed = 0;
    for (const [param, p0] of initial) {
      const g = gradOf(param), got = weights.get(param)!;
      for (let i = 0; i < p0.length; i++) {
        const gc = g[i] * coef;
        const step = (lr * gc) / (Math.sqrt(1 - alpha) * Math.abs(gc) + eps);
        // The step is linear in the gradient's last bits where gc << eps: f32 noise of 1e-6 |g| there is 4e-5 of lr.
        expect(Math.abs(got[i] - (p0[i] - step)), `${param}[${i}]: ${got[i] - p0[i]} vs ${-step}`).toBeLessThanOrEqual(1e-7 + 1e-3 * Math.abs(step));
        compared++;
        if (Math.abs(step) < 0.5 * lr / Math.sqrt(1 - alpha)) slowed++; // a step the clip made at least 2x smaller
      }
    }
    expect(compared).toBeGreaterThan(100_000);
    expect(slowed).toBeGreaterThan(compared / 4);
  }, 120_000);
});
