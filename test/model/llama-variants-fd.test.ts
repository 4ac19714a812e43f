// Llama / Mistral settings that no Hugging Face fixture covers: the fixtures are a Mistral with two
// query heads per key/value head and no sliding window, and a tied Llama with one query head per
// key/value head, neither with biases. Here: a sliding window shorter than the sequences, four query
// heads sharing one key/value head, heads narrower than hidden / heads (q_proj not square), Llama's
// attention and MLP biases, an untied Llama, Qwen2 (q/k/v biases), Qwen3 (q/k norms), Gemma, Gemma 2 and Gemma 3, Phi-3 (fused projections, partial rotary), and Llama 3's rope scaling. The whole model's gradient against finite
// differences of its own f32 forward (test/helpers/model-fd.ts says how); each fixture as it is runs
// first, as the control (their gradients match transformers' in hf-fixtures.test.ts).
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { modelGradientFd } from '../helpers/model-fd.js';
import type { ModelConfig } from '../../src/model/config.js';

const rng = makeRng();

describe(`Llama and Mistral variants: gradient against finite differences (seed ${rng.seed})`, () => {
  // [name, fixture, config change, how many parameters the change draws afresh]
  const variants: [string, string, Partial<ModelConfig>, RegExp | null][] = [
    ['Mistral as it is (the control)', 'mistral-tiny', {}, null],
    ['Mistral, sliding window of 4 keys over sequences of up to 15 tokens', 'mistral-tiny', { slidingWindow: 4 }, null],
    ['Mistral, four query heads a key/value head, window 6', 'mistral-tiny', { numKvHeads: 1, slidingWindow: 6 }, /\.(k|v)_proj\.weight$/],
    ['Mistral, heads of 8 channels (q_proj 32 x 64)', 'mistral-tiny', { headDim: 8, rotaryDim: 8 }, /\.(q|k|v|o)_proj\.weight$/],
    ['Llama tied as it is (the control)', 'llama-tiny-tied', {}, null],
    ['Llama, 9 query heads sharing 3 key/value heads of 8 channels (SmolLM2\'s grouping)', 'llama-tiny-tied',
      { numHeads: 9, numKvHeads: 3, headDim: 8, rotaryDim: 8 }, /\.(q|k|v|o)_proj\.weight$/],
    ['Llama, attention and MLP biases', 'llama-tiny-tied', { attentionBias: true, mlpBias: true }, /\.bias$/],
    ['Llama, untied output layer', 'llama-tiny-tied', { tiedEmbeddings: false }, /^lm_head\.weight$/],
    ['Qwen2: biases on q/k/v_proj, none on o_proj', 'llama-tiny-tied', { arch: 'qwen2', attentionBias: true }, /\.(q|k|v)_proj\.bias$/],
    ['Qwen3: q_norm / k_norm over each head, biases on all four projections, two query heads a key/value head', 'llama-tiny-tied',
      { arch: 'qwen3', attentionBias: true, numKvHeads: 2 }, /\.(q_norm\.weight|k_norm\.weight|[qkvo]_proj\.bias|[kv]_proj\.weight)$/],
    ['Gemma: embeddings times sqrt(hidden), RMSNorm gains 1 + w, a tanh-GELU gate (GeGLU)', 'llama-tiny-tied', { arch: 'gemma', act: 'gelu_tanh' }, null],
    ['Gemma 3: q/k norms, norms after attention and MLP, layer 0 sliding (4 keys, rope base 50), layer 1 full with linear rope scaling, ' +
      'query_pre_attn_scalar 24, an erf-GELU gate', 'llama-tiny-tied',
      // (The fixture's heads, one key/value head each: a k_proj drawn afresh at std 0.02 under k_norm's gain of ~1 is curved enough to
      // leave 2e-3 in the differences. The golden gemma3-tiny fixture has two query heads a key/value head.)
      { arch: 'gemma3', act: 'gelu', slidingWindow: 4, windowLayers: [true, false], slidingRope: { theta: 50, scaling: null },
        ropeScaling: { type: 'linear', factor: 2 }, queryPreAttnScalar: 24 },
      /\.(q_norm|k_norm|pre_feedforward_layernorm|post_feedforward_layernorm)\.weight$/],
    ['Gemma 2: norms after attention and MLP, layer 0 sliding (4 keys), layer 1 full, query_pre_attn_scalar 24, the scores soft-capped ' +
      'at 1.5 and the logits at 3 (caps small enough that tanh bends)', 'llama-tiny-tied',
      { arch: 'gemma2', act: 'gelu_tanh', slidingWindow: 4, windowLayers: [true, false], queryPreAttnScalar: 24, attnSoftcap: 1.5, finalSoftcap: 3 },
      /\.(pre_feedforward_layernorm|post_feedforward_layernorm)\.weight$/],
    // (Its q/k/v and gate/up weights are rows of two fused tensors: those are drawn afresh, so the check runs through the views.)
    ['Phi-3: q/k/v_proj as one qkv_proj, gate/up_proj as one gate_up_proj, half of each head rotated (Phi-4-mini\'s partial rotary), window 6',
      'mistral-tiny', { arch: 'phi3', rotaryDim: 8, slidingWindow: 6 }, /\.(self_attn\.qkv_proj|mlp\.gate_up_proj)\.weight$/],
    ['Phi-3 with LongRoPE (Phi-3.5-mini\'s): short factors 1.5 to 6 and cos / sin times an attention factor of 1.3, partial rotary',
      'mistral-tiny', { arch: 'phi3', rotaryDim: 8, ropeScaling: { type: 'longrope', shortFactor: [1.5, 2, 4, 6], longFactor: [3, 4, 8, 12],
        originalMaxPositions: 64, attentionFactor: 1.3 } }, /\.(self_attn\.qkv_proj|mlp\.gate_up_proj)\.weight$/],
    ['Llama, llama3 rope scaling over an original context of 8 (one frequency blended, the rest divided by 4)', 'llama-tiny-tied',
      { ropeScaling: { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8 } }, null],
  ];
  for (const [name, fixture, change, fresh] of variants) {
    it(name, async () => {
      // Gemma stores norm gains as gain - 1: the fixture's gains (~1) taken as they are would double every norm's output and
      // sharpen the log-probs, whose curvature then shows in the differences (4e-4 off a right gradient in one seed of six).
      const gemma = change.arch === 'gemma' || change.arch === 'gemma2' || change.arch === 'gemma3';
      const adjust = gemma ? (n: string, x: Float32Array) => (/norm\.weight$/.test(n) ? x.map((v) => v - 1) : x) : undefined;
      // Gemma 2 / 3 draw only norm gains (2 / 4 a layer): along them, steps of 0.01 moved the loss by under 1e-2 for one seed in 14.
      // Qwen2 draws only the q/k/v biases, and a key bias hardly moves the scores (q . b_k is the same for every key but for
      // the rotation): steps of 0.01 moved the loss by 4e-3 with seed 785219062.
      const drawnScale = change.arch === 'gemma2' || change.arch === 'gemma3' || change.arch === 'qwen2' ? 0.05 : 0.01;
      const { fd, analytic, drawn, drawnOnly } = await modelGradientFd(await getGpu(), resolve(FIXTURES_HF, fixture), change, rng,
        [[7, 8, 5], [4, 11, 3]], adjust, drawnScale);
      // The change took effect: exactly the parameters it reshapes or adds are drawn afresh.
      if (fresh === null) expect(drawn).toEqual([]);
      else {
        expect(drawn.length).toBeGreaterThan(0);
        for (const n of drawn) expect(n).toMatch(fresh);
      }
      expect(Math.abs(fd)).toBeGreaterThan(1e-2); // a direction the loss depends on
      expect(Math.abs(analytic - fd) / Math.max(1, Math.abs(fd))).toBeLessThan(5e-4);
      // And along the drawn parameters alone, where an error of theirs is not diluted by the others.
      expect(drawnOnly === undefined).toBe(fresh === null);
      if (drawnOnly) {
        expect(Math.abs(drawnOnly.fd), 'drawn parameters: a direction the loss depends on').toBeGreaterThan(1e-2);
        expect(Math.abs(drawnOnly.analytic - drawnOnly.fd) / Math.max(1, Math.abs(drawnOnly.fd)), 'drawn parameters').toBeLessThan(5e-4);
      }
    });
  }
});
