// Gemma's and Gemma 3's config reading and writing, rotary tables per layer type, checkpoint-name notes and presets, in
// the cases the model fixtures do not reach (a mutation round found each of these unchecked): scaled rope on sliding
// layers, layer_types against the pattern, non-default configs written and read back, refusals and the model's line.
import { describe, expect, it } from 'vitest';
import { describeModel, parseModelConfig, toHfConfigJson, type ModelConfig } from '../../src/model/config.js';
import { layerRope, scaledInvFreq } from '../../src/model/rope.js';
import type { ModelShape } from '../../src/model/context.js';
import { checkCheckpointNames, expectedParameters } from '../../src/model/tensor-names.js';
import { ARCHS, presetConfig } from '../../src/init/presets.js';

const withoutRaw = (c: ModelConfig) => { const { raw: _r, ...rest } = c; return rest; };
const roundTrip = (c: ModelConfig) => expect(withoutRaw(parseModelConfig(toHfConfigJson(c), 'mem'))).toEqual(withoutRaw(c));

const g = {
  architectures: ['GemmaForCausalLM'], attention_bias: false, bos_token_id: 2, eos_token_id: 1, head_dim: 256,
  hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: 3072, intermediate_size: 24576,
  max_position_embeddings: 8192, model_type: 'gemma', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 16, pad_token_id: 0,
  rms_norm_eps: 1e-06, rope_scaling: null, rope_theta: 10000.0, torch_dtype: 'bfloat16', vocab_size: 256000,
};
const g3 = {
  architectures: ['Gemma3ForCausalLM'], attention_bias: false, attn_logit_softcapping: null, bos_token_id: 2,
  cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh',
  hidden_size: 1152, intermediate_size: 6912, max_position_embeddings: 32768, model_type: 'gemma3_text',
  num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-06,
  rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6,
  torch_dtype: 'bfloat16', vocab_size: 262144,
};
const full = [5, 11, 17, 23];
const v5types = Array.from({ length: 26 }, (_, l) => (full.includes(l) ? 'full_attention' : 'sliding_attention'));

describe('Gemma and Gemma 3 configs beyond the fixtures', () => {
  it('layerRope: a sliding layer with its own scaled rope takes its own table, the full layer the model\'s', () => {
    const shape = { arch: 'gemma3', rotaryDim: 16, headDim: 16, ropeTheta: 1e6, ropeScaling: { type: 'linear', factor: 8 }, slidingWindow: 4,
      windowLayers: [true, false], slidingRope: { theta: 1e4, scaling: { type: 'linear', factor: 2 } } } as unknown as ModelShape;
    expect(Array.from(layerRope(shape, 0).invFreq!)).toEqual(Array.from(scaledInvFreq(16, 1e4, { type: 'linear', factor: 2 })!));
    expect(Array.from(layerRope(shape, 1).invFreq!)).toEqual(Array.from(scaledInvFreq(16, 1e6, { type: 'linear', factor: 8 })!));
  });

  it('non-default Gemma and Gemma 3 configs round-trip through config.json; what the Gemmas cannot say is refused', () => {
    const gc = parseModelConfig(g, 'g');
    roundTrip({ ...gc, act: 'gelu', ropeTheta: 5e5, ropeScaling: { type: 'linear', factor: 4 }, attentionBias: true });
    const c3 = parseModelConfig(g3, 'g3');
    const odd = { ...c3, act: 'gelu' as const, ropeTheta: 5e5, slidingRope: { theta: 2e4, scaling: null }, queryPreAttnScalar: 168, attentionBias: true };
    roundTrip(odd);
    roundTrip({ ...odd, slidingRope: { theta: 2e4, scaling: { type: 'linear', factor: 2 } } });
    roundTrip(parseModelConfig({ ...g3, sliding_window_pattern: 1 }, 'p'));
    expect(() => toHfConfigJson({ ...gc, slidingWindow: 8 })).toThrow(/has no sliding window/);
    expect(() => toHfConfigJson({ ...gc, act: 'silu' })).toThrow(/a GELU gate/);
    expect(() => toHfConfigJson({ ...gc, mlpBias: true })).toThrow(/no MLP biases/);
  });

  it('config reading: activation names, defaults, biases, layer types against the pattern, rope objects and refusals', () => {
    expect(parseModelConfig({ ...g, hidden_activation: 'gelu_new' }, 'g').act).toBe('gelu_tanh');
    expect(() => parseModelConfig({ ...g, hidden_activation: ['gelu_pytorch_tanh'] }, 'g')).toThrow(/disagrees/);
    expect(() => parseModelConfig({ ...g3, hidden_act: 'gelu' }, 'q')).toThrow(/Gemma 3 reads hidden_activation/);
    const { max_position_embeddings: _m, ...noMax } = g;
    expect(parseModelConfig(noMax, 'g').maxPositions).toBe(8192);
    expect(() => parseModelConfig({ ...g3, attn_logit_softcapping: 0 }, 'q')).toThrow(/"attn_logit_softcapping" must be a positive number/);
    expect(parseModelConfig({ ...g, attention_bias: true }, 'g').attentionBias).toBe(true);
    expect(parseModelConfig({ ...g3, num_hidden_layers: 5 }, 'g').windowLayers).toBeUndefined();
    expect(parseModelConfig({ ...g3, layer_types: Array(26).fill('full_attention') }, 'q').slidingWindow).toBeNull();
    expect(() => parseModelConfig({ ...g3, layer_types: v5types.slice(1) }, 'q')).toThrow(/each of the 26 layers \(25 entries\)/);
    expect(() => parseModelConfig({ ...g3, rope_scaling: { rope_type: 'linear', factor: 8 },
      rope_parameters: { full_attention: { rope_type: 'linear', factor: 4, rope_theta: 1e6 } } }, 'q')).toThrow(/"rope_scaling" = .* contradicts "rope_parameters.full_attention"/);
    expect(() => parseModelConfig({ ...g3, rope_local_base_freq: -1 }, 'q')).toThrow(/"rope_local_base_freq" must be positive/);
    expect(() => parseModelConfig({ ...g3, rope_parameters: { sliding_attention: { rope_type: 'default', rope_theta: 10000, partial_rotary_factor: 0.5 } } }, 'q'))
      .toThrow(/"rope_parameters.sliding_attention.partial_rotary_factor" = 0.5 is not supported for gemma3/);
    expect(() => parseModelConfig({ ...g3, _sliding_window_pattern: 6 }, 'q')).not.toThrow();
    expect(() => parseModelConfig({ ...g3, rope_parameters: { full_attention: 5 } }, 'q')).toThrow(/"rope_parameters.full_attention" must be an object/);
    expect(() => parseModelConfig({ ...g3, hidden_activation: 'silu' }, 'q')).toThrow(/"hidden_activation" = "silu" is not supported for gemma3/);
  });

  it('the model\'s line: the erf GELU, a scaled sliding rope, no per-layer-type rope where nothing slides', () => {
    const { hidden_activation: _h, ...one } = g;
    expect(describeModel(parseModelConfig({ ...one, hidden_act: 'gelu' }, 'g'))).toMatch(/GeGLU, erf GELU/);
    const c3 = parseModelConfig(g3, 'g3');
    expect(describeModel({ ...c3, slidingRope: { theta: 1e4, scaling: { type: 'linear', factor: 2 } } }))
      .toMatch(/rope theta 10000, linear rope scaling, factor 2 on sliding layers/);
    expect(describeModel(parseModelConfig({ ...g3, sliding_window_pattern: 1 }, 'p'))).not.toMatch(/sliding layers|full-attention layers/);
  });

  it('checkpoint-name notes: Gemma\'s MLP biases, Gemma 3\'s norms under a Gemma config only', () => {
    const base = { vocab_size: 64, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, head_dim: 16 };
    const gemma3 = parseModelConfig({ model_type: 'gemma3_text', ...base }, 'g3/config.json');
    const gemma3two = parseModelConfig({ model_type: 'gemma3_text', ...base, num_hidden_layers: 2 }, 'g3/config.json');
    const gemma = parseModelConfig({ model_type: 'gemma', ...base }, 'g/config.json');
    const msg = (cfg: ModelConfig, specs: { name: string; shape: number[] }[]) => {
      try { checkCheckpointNames(cfg, specs); } catch (e) { return (e as Error).message; } return '';
    };
    expect(msg(gemma, expectedParameters(gemma3))).toContain("model.layers.0.post_feedforward_layernorm.weight [64] (Gemma 2's or 3's: their configs say model_type gemma2 or gemma3_text)");
    expect(msg(gemma, [...expectedParameters(gemma), { name: 'model.layers.0.mlp.up_proj.bias', shape: [96] }])).toContain("(Gemma's MLP has no biases)");
    expect(msg(gemma3, expectedParameters(gemma3two))).not.toContain("their configs say");
  });

  it('presets: Gemma\'s tanh-GELU gate, Gemma 3\'s layer pattern, window, rope bases and query_pre_attn_scalar', () => {
    expect(ARCHS).toEqual(expect.arrayContaining(['gemma', 'gemma3'])); // (the init tests run over ARCHS)
    expect(presetConfig('gemma', 'tiny')).toMatchObject({ act: 'gelu_tanh', normEps: 1e-6 });
    const p3 = presetConfig('gemma3', 'tiny');
    expect(p3).toMatchObject({ act: 'gelu_tanh', normEps: 1e-6, slidingWindow: 128, windowLayers: [true, false], ropeTheta: 1e6,
      slidingRope: { theta: 1e4, scaling: null }, queryPreAttnScalar: p3.headDim });
  });
});
