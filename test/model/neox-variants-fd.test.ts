// GPT-NeoX settings that no Hugging Face fixture covers (the fixture is parallel residual, exact GELU,
// with attention biases, no rope scaling, untied): sequential residual, the tanh GELU, no attention
// biases, linear rope scaling, tied embeddings. The whole model's gradient against finite differences
// of its own f32 forward (test/helpers/model-fd.ts says how). The fixture's own settings run first, as
// the control (its gradients match transformers' in hf-fixtures.test.ts).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { modelGradientFd } from '../helpers/model-fd.js';
import type { ModelConfig } from '../../src/model/config.js';

const rng = makeRng();

describe(`GPT-NeoX variants: gradient against finite differences (seed ${rng.seed})`, () => {
  const variants: [string, Partial<ModelConfig>][] = [
    ['the fixture as it is (checked against transformers elsewhere: the control)', {}],
    ['sequential residual, tanh GELU', { parallelResidual: false, act: 'gelu_tanh' }],
    ['sequential residual, no attention biases', { parallelResidual: false, attentionBias: false }],
    ['parallel residual, no attention biases, full rotary', { attentionBias: false, rotaryDim: 16 }],
    ['linear rope scaling, factor 4, full rotary', { ropeScaling: { type: 'linear', factor: 4 }, rotaryDim: 16 }],
    ['tied embeddings (embed_out is embed_in: both uses add to one gradient)', { tiedEmbeddings: true }],
  ];
  for (const [name, change] of variants) {
    it(name, async () => {
      const { fd, analytic, drawn } = await modelGradientFd(await getGpu(), resolve(FIXTURES_HF, 'gpt-neox-tiny'), change, rng);
      expect(drawn).toEqual([]); // every weight is the fixture's
      expect(Math.abs(fd)).toBeGreaterThan(1e-2); // a direction the loss depends on
      expect(Math.abs(analytic - fd) / Math.max(1, Math.abs(fd))).toBeLessThan(5e-4);
    });
  }
});
