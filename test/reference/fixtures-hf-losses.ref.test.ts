// Golden check of the preference-loss references against the Hugging Face fixtures (expected.json):
// feed the fixture's sequence log-probs and reproduce h, delta, per-pair losses and mean losses.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { relErr1 } from './losses-fd.js';
import { PREFERENCE_LOSS_TYPES, preferenceLossRef, preferenceMetricsRef, type PreferenceLogps } from '../../src/losses/preference.ref.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MODELS = ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied'] as const;

interface Expected {
  beta: number; lambda: number;
  logps: Record<string, number[]>;
  logratio_diff: number[]; delta: number[];
  per_pair: Record<string, number[]>; losses_mean: Record<string, number>;
}

/** The project's copy (test/fixtures/hf) first, else the shared folder beside the clone. */
function fixturePath(name: string): string | null {
  const own = path.join(repoRoot, 'test/fixtures/hf', name, 'expected.json');
  if (existsSync(own)) return own;
  const shared = path.join(path.resolve(repoRoot, '../shared/fixtures/hf'), name, 'expected.json');
  return existsSync(shared) ? shared : null;
}

describe('HF fixture losses', () => {
  for (const name of MODELS) {
    const file = fixturePath(name);
    it.skipIf(!file)(`${name}: h, delta, per-pair and mean losses for dpo, ipo, sr-dpo, sr-ipo`, () => {
      const e = JSON.parse(readFileSync(file!, 'utf8')) as Expected;
      const L = e.logps;
      const logps: PreferenceLogps = {
        policyChosen: L.policy_chosen, policyRejected: L.policy_rejected, refChosen: L.ref_chosen, refRejected: L.ref_rejected,
        policyChosenAug: L.policy_chosen_aug, policyRejectedAug: L.policy_rejected_aug,
        refChosenAug: L.ref_chosen_aug, refRejectedAug: L.ref_rejected_aug,
      };
      const P = L.policy_chosen.length;
      expect(P).toBeGreaterThan(0);
      const opts = { beta: e.beta, lambda: e.lambda };
      for (const type of PREFERENCE_LOSS_TYPES) {
        const r = preferenceLossRef(type, logps, opts);
        for (let i = 0; i < P; i++) {
          expect(relErr1(r.h[i], e.logratio_diff[i]), `${type} h[${i}]`).toBeLessThan(1e-9);
          expect(relErr1(r.delta![i], e.delta[i]), `${type} delta[${i}]`).toBeLessThan(1e-9);
          expect(relErr1(r.perPair[i], e.per_pair[type][i]), `${type} per_pair[${i}]`).toBeLessThan(1e-9);
        }
        expect(relErr1(r.loss, e.losses_mean[type]), `${type} mean`).toBeLessThan(1e-9);
      }
      const m = preferenceMetricsRef(logps, e.beta);
      expect(m.accuracy).toBe(e.logratio_diff.filter((h) => h > 0).length / P);
      expect(m.augAccuracy).toBe(e.delta.filter((d) => d > 0).length / P);
      expect(relErr1(m.margin, e.beta * e.logratio_diff.reduce((a, b) => a + b, 0) / P)).toBeLessThan(1e-9);
    });
  }

  it('the project copies equal the shared fixtures (when the shared folder is present)', () => {
    for (const name of MODELS) {
      const own = path.join(repoRoot, 'test/fixtures/hf', name, 'expected.json');
      const shared = path.join(path.resolve(repoRoot, '../shared/fixtures/hf'), name, 'expected.json');
      expect(existsSync(own)).toBe(true);
      if (existsSync(shared)) expect(readFileSync(own, 'utf8')).toBe(readFileSync(shared, 'utf8'));
    }
  });
});
