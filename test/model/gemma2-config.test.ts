// Gemma 2's config reading and writing (model_type gemma2, Gemma2ForCausalLM): the hub's files as downloaded, the config
// class's defaults (soft caps 50 / 30, every other layer sliding from the first), what it refuses, the model's line, the
// checkpoint-name notes between the Gemmas, and the preset. The computation itself is checked by the gemma2-tiny fixture.
import { describe, expect, it } from 'vitest';
import { describeModel, hfConfigText, parseModelConfig, toHfConfigJson, type ModelConfig } from '../../src/model/config.js';
import { layerWindow } from '../../src/model/context.js';
import { checkCheckpointNames, expectedParameters } from '../../src/model/tensor-names.js';
import { presetConfig } from '../../src/init/presets.js';

const withoutRaw = (c: ModelConfig) => { const { raw: _r, ...rest } = c; return rest; };
const roundTrip = (c: ModelConfig) => expect(withoutRaw(parseModelConfig(toHfConfigJson(c), 'mem'))).toEqual(withoutRaw(c));
const slides = (c: ModelConfig) => Array.from({ length: c.numLayers }, (_, l) => layerWindow(c, l) > 0);

// google/gemma-2-2b-it's config.json (transformers 4.42 wrote it).
const g2 = {
  architectures: ['Gemma2ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: 50.0, bos_token_id: 2,
  cache_implementation: 'hybrid', eos_token_id: [1, 107], final_logit_softcapping: 30.0, head_dim: 256, hidden_act: 'gelu_pytorch_tanh',
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 2304, initializer_range: 0.02, intermediate_size: 9216, max_position_embeddings: 8192,
  model_type: 'gemma2', num_attention_heads: 8, num_hidden_layers: 26, num_key_value_heads: 4, pad_token_id: 0, query_pre_attn_scalar: 256,
  rms_norm_eps: 1e-06, rope_theta: 10000.0, sliding_window: 4096, torch_dtype: 'float32', transformers_version: '4.42.4', use_cache: true,
  vocab_size: 256000,
};

describe('Gemma 2 configs', () => {
  it('gemma-2-2b-it\'s config.json is read whole: sliding layers 0, 2, 4, ..., both soft caps, query_pre_attn_scalar, Gemma\'s defaults', () => {
    const c = parseModelConfig(g2, 'g2/config.json');
    expect(c).toMatchObject({ arch: 'gemma2', hiddenSize: 2304, numLayers: 26, numHeads: 8, numKvHeads: 4, headDim: 256, act: 'gelu_tanh',
      norm: 'rmsnorm', normEps: 1e-6, ropeTheta: 10000, ropeScaling: null, slidingWindow: 4096, queryPreAttnScalar: 256,
      attnSoftcap: 50, finalSoftcap: 30, tiedEmbeddings: true, embedPaddingIdx: 0, bosTokenId: 2, eosTokenId: [1, 107] });
    expect(slides(c)).toEqual(Array.from({ length: 26 }, (_, l) => l % 2 === 0));
    expect(describeModel(c)).toMatch(/gemma2, 26 layers.*sliding window 4096 on layers 0, 2, 4.*norms after attention and MLP.*attention scores soft-capped at 50 .*logits soft-capped at 30/);
    roundTrip(c);
    // Written as the hub writes it: no layer_types where the layers follow the default rule (transformers 4.4x does not read it).
    expect(toHfConfigJson(c)).not.toHaveProperty('layer_types');
    expect(toHfConfigJson(c)).toMatchObject({ model_type: 'gemma2', hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh',
      attn_logit_softcapping: 50, final_logit_softcapping: 30, query_pre_attn_scalar: 256 });
  });

  it('the class defaults where keys are absent, null caps mean none, and other layer types, caps and windows round-trip', () => {
    const { attn_logit_softcapping: _a, final_logit_softcapping: _f, query_pre_attn_scalar: _q, sliding_window: _s, head_dim: _h,
      num_key_value_heads: _k, pad_token_id: _p, bos_token_id: _b, eos_token_id: _e, hidden_activation: _ha, hidden_act: _hb, tie_word_embeddings: _t, ...bare } = g2 as Record<string, unknown>;
    const d = parseModelConfig(bare, 'bare');
    expect(d).toMatchObject({ attnSoftcap: 50, finalSoftcap: 30, queryPreAttnScalar: 256, slidingWindow: 4096, headDim: 256, numKvHeads: 4,
      embedPaddingIdx: 0, bosTokenId: 2, eosTokenId: 1, act: 'gelu_tanh', tiedEmbeddings: true });
    const none = parseModelConfig({ ...g2, attn_logit_softcapping: null, final_logit_softcapping: null }, 'n');
    expect(none.attnSoftcap).toBeUndefined();
    expect(none.finalSoftcap).toBeUndefined();
    expect(describeModel(none)).toMatch(/attention scores not soft-capped .*logits not soft-capped/);
    roundTrip(none);
    // gemma-2-27b: query_pre_attn_scalar 144 (hidden / heads), heads of 128.
    const big = parseModelConfig({ ...g2, hidden_size: 4608, num_attention_heads: 32, num_key_value_heads: 16, head_dim: 128, query_pre_attn_scalar: 144 }, 'b');
    expect(describeModel(big)).toMatch(/scores scaled by query_pre_attn_scalar 144\^-1\/2/);
    roundTrip({ ...big, attnSoftcap: 7.5, finalSoftcap: undefined, act: 'gelu', ropeTheta: 5e5, ropeScaling: { type: 'linear', factor: 2 } });
    // Explicit layer_types (transformers 5), also other than the rule: read, and written back.
    const types = Array.from({ length: 26 }, (_, l) => (l % 3 === 0 ? 'full_attention' : 'sliding_attention'));
    const t = parseModelConfig({ ...g2, layer_types: types }, 't');
    expect(slides(t)).toEqual(types.map((x) => x === 'sliding_attention'));
    expect(toHfConfigJson(t).layer_types).toEqual(types);
    roundTrip(t);
    const full = parseModelConfig({ ...g2, sliding_window: null, layer_types: Array(26).fill('full_attention') }, 'f');
    expect(full.slidingWindow).toBeNull();
    roundTrip(full);
    // The early gemma-2-9b files' sliding_window_size, equal to the window, changes nothing.
    expect(withoutRaw(parseModelConfig({ ...g2, sliding_window_size: 4096 }, 's'))).toEqual(withoutRaw(parseModelConfig(g2, 's')));
  });

  it('refusals name the field and the reason', () => {
    expect(() => parseModelConfig({ ...g2, attn_logit_softcapping: 0 }, 'c')).toThrow(/config c: "attn_logit_softcapping" must be a positive number or null \(got 0\)/);
    expect(() => parseModelConfig({ ...g2, final_logit_softcapping: '30' }, 'c')).toThrow(/"final_logit_softcapping" must be a positive number or null \(got "30"\)/);
    expect(() => parseModelConfig({ ...g2, hidden_act: 'gelu' }, 'c')).toThrow(/"hidden_act" = "gelu" disagrees with hidden_activation = "gelu_pytorch_tanh".*Gemma 2 reads hidden_activation alone/);
    expect(() => parseModelConfig({ ...g2, sliding_window_size: 2048 }, 'c')).toThrow(/"sliding_window_size" = 2048 differs from sliding_window = 4096/);
    expect(() => parseModelConfig({ ...g2, sliding_window: null }, 'c')).toThrow(/"sliding_window" is null, but Gemma 2's default layer_types \(every other layer\) make sliding layers/);
    expect(() => parseModelConfig({ ...g2, sliding_window_pattern: 2 }, 'c')).toThrow(/"sliding_window_pattern" is not a known gemma2 setting/);
    expect(() => parseModelConfig({ ...g2, use_bidirectional_attention: true }, 'c')).toThrow(/"use_bidirectional_attention" = true is not supported/);
    expect(() => parseModelConfig({ ...g2, architectures: ['Gemma3ForCausalLM'] }, 'c')).toThrow(/expected \["Gemma2ForCausalLM"\]/);
    expect(() => parseModelConfig({ ...g2, layer_types: ['full_attention'] }, 'c')).toThrow(/each of the 26 layers \(1 entries\)/);
    // transformers refuses a null query_pre_attn_scalar (an int field) rather than taking its default.
    expect(() => parseModelConfig({ ...g2, query_pre_attn_scalar: null }, 'c')).toThrow(/"query_pre_attn_scalar" must be an integer >= 1 \(got null/);
    // The activation key left to its default is said to be one.
    const { hidden_activation: _ha, ...onlyAct } = g2;
    expect(() => parseModelConfig({ ...onlyAct, hidden_act: 'gelu' }, 'c')).toThrow(/disagrees with hidden_activation = "gelu_pytorch_tanh" \(its default\)/);
    // The other Gemmas cannot say a cap.
    const gemma3 = parseModelConfig({ model_type: 'gemma3_text', vocab_size: 64, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 96 }, 'g3');
    expect(() => toHfConfigJson({ ...gemma3, attnSoftcap: 50 })).toThrow(/has no attention soft-capping/);
    const gemma = parseModelConfig({ model_type: 'gemma', vocab_size: 64, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96 }, 'g');
    expect(() => toHfConfigJson({ ...gemma, finalSoftcap: 30 })).toThrow(/has no logit soft-capping/);
    // Gemma 3 caps its logits where final_logit_softcapping says (Gemma3ForCausalLM), and writes it back.
    const g3cap = { ...gemma3, finalSoftcap: 30 };
    roundTrip(g3cap);
    expect(describeModel(g3cap)).toMatch(/logits soft-capped at 30/);
    expect(() => toHfConfigJson({ ...parseModelConfig(g2, 'g'), slidingRope: { theta: 1e4, scaling: null } })).toThrow(/one rotary embedding/);
  });

  it('checkpoint names: Gemma 2 holds the four norms and no head norms; the other Gemmas\' weights under its config, and its own under Gemma 3\'s, are named', () => {
    const base = { vocab_size: 64, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, head_dim: 16 };
    const gemma2 = parseModelConfig({ model_type: 'gemma2', ...base }, 'g2/config.json');
    const gemma3 = parseModelConfig({ model_type: 'gemma3_text', ...base }, 'g3/config.json');
    const gemma = parseModelConfig({ model_type: 'gemma', ...base }, 'g/config.json');
    const names = expectedParameters(gemma2).map((p) => p.name.replace(/^model\.layers\.0\./, ''));
    expect(names).toEqual(expect.arrayContaining(['input_layernorm.weight', 'post_attention_layernorm.weight', 'pre_feedforward_layernorm.weight', 'post_feedforward_layernorm.weight']));
    expect(names.some((n) => /_norm\.weight$/.test(n) && /self_attn/.test(n))).toBe(false);
    const msg = (cfg: ModelConfig, specs: { name: string; shape: number[] }[]) => {
      try { checkCheckpointNames(cfg, specs); } catch (e) { return (e as Error).message; } return '';
    };
    expect(msg(gemma2, expectedParameters(gemma2))).toBe('');
    expect(msg(gemma2, expectedParameters(gemma))).toContain("(weights without Gemma 2's pre/post-feedforward norms: Gemma's, whose config says model_type gemma?)");
    expect(msg(gemma3, expectedParameters(gemma2))).toContain("(weights without Gemma 3's q/k norms: Gemma 2's, whose config says model_type gemma2?)");
    expect(msg(gemma3, expectedParameters(gemma))).toContain("(weights without Gemma 3's q/k and pre/post-feedforward norms: Gemma's");
    expect(msg(gemma, expectedParameters(gemma2))).toContain("(Gemma 2's or 3's: their configs say model_type gemma2 or gemma3_text)");
    expect(msg(gemma2, expectedParameters(gemma3))).toContain("(head norms: Qwen3's or Gemma 3's)");
    expect(msg(gemma2, expectedParameters(gemma3))).not.toContain('their configs say');
    // Only the pre-feedforward norms gone (a broken file, not Gemma's weights): no hint.
    const noPre = expectedParameters(gemma2).filter((p) => !p.name.endsWith('pre_feedforward_layernorm.weight'));
    expect(msg(gemma2, noPre)).toMatch(/missing \(2\):/);
    expect(msg(gemma2, noPre)).not.toContain("Gemma's, whose config");
  });

  it('the preset: every other layer sliding from the first, gemma-2\'s caps, query_pre_attn_scalar = head_dim; written as a hub file', () => {
    const p = presetConfig('gemma2', 'small');
    expect(p).toMatchObject({ arch: 'gemma2', act: 'gelu_tanh', normEps: 1e-6, slidingWindow: 128, windowLayers: [true, false, true, false],
      attnSoftcap: 50, finalSoftcap: 30, queryPreAttnScalar: p.headDim });
    const back = parseModelConfig(toHfConfigJson(p), 'p');
    expect(back).toMatchObject({ attnSoftcap: 50, finalSoftcap: 30, slidingWindow: 128, queryPreAttnScalar: p.headDim });
    expect(slides(back)).toEqual([true, false, true, false]);
  });

  it('config.json text: the caps (float fields in transformers 5.17, which refuses 30 for 30.0) are written as floats, other numbers as they are', () => {
    const text = hfConfigText(toHfConfigJson(parseModelConfig(g2, 'g2')));
    expect(text).toMatch(/"final_logit_softcapping": 30\.0,/);
    expect(text).toMatch(/"attn_logit_softcapping": 50\.0,/);
    expect(text).toMatch(/"num_hidden_layers": 26,/);
    expect(text).toMatch(/"query_pre_attn_scalar": 256,/);
    expect(text.endsWith('}\n')).toBe(true);
    expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(toHfConfigJson(parseModelConfig(g2, 'g2')))));
    expect(hfConfigText({ final_logit_softcapping: 2.5, rms_norm_eps: 1, initializer_range: 0.02, attn_logit_softcapping: null, nested: { rms_norm_eps: 1 } }))
      .toBe('{\n  "final_logit_softcapping": 2.5,\n  "rms_norm_eps": 1.0,\n  "initializer_range": 0.02,\n  "attn_logit_softcapping": null,\n  "nested": {\n    "rms_norm_eps": 1.0\n  }\n}\n');
  });
});
