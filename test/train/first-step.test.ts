// `srk train` end to end, first optimizer step against the Hugging Face golden fixtures: with
// --lr 0 and one batch of all 6 pairs, the first metrics line is the fixture's mean loss, margin
// and accuracy (computed by transformers in float64).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixture, fixtureArgs, readMetrics, tempDir, train } from './helpers.js';

const FIXTURES = ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied'] as const;
const LOSSES = ['dpo', 'ipo', 'sr-dpo', 'sr-ipo'] as const;

interface Expected { beta: number; losses_mean: Record<string, number>; logratio_diff: number[]; delta: number[] }

const relClose = (got: number, want: number, rel: number, floor = 1e-6) =>
  Math.abs(got - want) <= rel * Math.max(Math.abs(want), floor);

describe('srk train: the first metrics line equals the transformers fixtures (loss, margin, accuracy)', () => {
  const tmp = tempDir();
  for (const name of FIXTURES) {
    const exp = JSON.parse(readFileSync(join(fixture(name), 'expected.json'), 'utf8')) as Expected;
    const h = exp.logratio_diff;
    const margin = h.reduce((s, x) => s + exp.beta * x, 0) / h.length;
    const accuracy = h.filter((x) => x > 0).length / h.length;
    const augAccuracy = exp.delta.filter((x) => x > 0).length / exp.delta.length;
    for (const loss of LOSSES) {
      it(`${name} ${loss}: loss == losses_mean, margin == mean(beta*h), accuracy == mean(h > 0), aug_accuracy == mean(delta > 0)`, async () => {
        const out = join(tmp, `${name}-${loss}`);
        const r = await train([...fixtureArgs(name), '--batch-size', '6', '--lr', '0', '--max-steps', '1', '--loss', loss, '--out', out]);
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
        expect(Number.isFinite(m.grad_norm)).toBe(true);
        expect(m.grad_norm!).toBeGreaterThan(0);
      });
    }
  }
});
