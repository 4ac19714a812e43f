import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeModel, loadModelConfig, parseModelConfig, toHfConfigJson, writeHfConfig, type ModelConfig } from '../../src/model/config.js';
import { FIXTURES, MODELS } from './paths.js';
import { expectedParameters } from '../../src/model/tensor-names.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'srk-cfg-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const withoutRaw = ({ raw: _raw, ...rest }: ModelConfig) => rest;
const hub = (name: string) => JSON.parse(readFileSync(path.join(FIXTURES, name, 'config.json'), 'utf8')) as Record<string, unknown>;

describe('loadModelConfig on the fixtures', () => {
  it('normalizes the three fixture configs', async () => {
    expect(withoutRaw(await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny')))).toEqual({
      arch: 'gpt-neox', vocabSize: 384, hiddenSize: 64, intermediateSize: 256, numLayers: 2, numHeads: 4,
      numKvHeads: 4, headDim: 16, rotaryDim: 4, ropeTheta: 10000, ropeScaling: null, maxPositions: 2048, norm: 'layernorm',
      normEps: 1e-5, act: 'gelu', parallelResidual: true, attentionBias: true, mlpBias: true,
      tiedEmbeddings: false, slidingWindow: null, embedPaddingIdx: null, bosTokenId: 0, eosTokenId: 0, dtype: 'float32',
    });
    expect(withoutRaw(await loadModelConfig(path.join(FIXTURES, 'mistral-tiny')))).toEqual({
      arch: 'mistral', vocabSize: 384, hiddenSize: 64, intermediateSize: 160, numLayers: 2, numHeads: 4,
      numKvHeads: 2, headDim: 16, rotaryDim: 16, ropeTheta: 10000, ropeScaling: null, maxPositions: 4096, norm: 'rmsnorm',
      normEps: 1e-5, act: 'silu', parallelResidual: false, attentionBias: false, mlpBias: false,
      tiedEmbeddings: false, slidingWindow: null, embedPaddingIdx: null, bosTokenId: 1, eosTokenId: 2, dtype: 'float32',
    });
    const llama = await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'));
    expect(withoutRaw(llama)).toMatchObject({ arch: 'llama', headDim: 12, rotaryDim: 12, ropeTheta: 500000, tiedEmbeddings: true, numKvHeads: 4 });
    expect(llama.raw).toEqual(hub('llama-tiny-tied'));
  });

  it('hub style (config.json) and transformers-5 style (config.saved.json) normalize equally', async () => {
    for (const name of MODELS) {
      const a = await loadModelConfig(path.join(FIXTURES, name, 'config.json'));
      const b = await loadModelConfig(path.join(FIXTURES, name, 'config.saved.json'));
      expect(withoutRaw(b), name).toEqual(withoutRaw(a));
    }
  });

  it('toHfConfigJson round-trips (through a file as well)', async () => {
    for (const name of MODELS) {
      const cfg = await loadModelConfig(path.join(FIXTURES, name));
      const back = parseModelConfig(JSON.parse(JSON.stringify(toHfConfigJson(cfg))), 'mem');
      expect(withoutRaw(back), name).toEqual(withoutRaw(cfg));
      const dir = mkdtempSync(path.join(tmp, `${name}-`));
      await writeHfConfig(dir, cfg);
      expect(withoutRaw(await loadModelConfig(dir))).toEqual(withoutRaw(cfg));
    }
    // Variations that must survive too: GQA + sliding window + pad, tanh GELU + sequential residual, llama biases.
    const base = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    const variants: ModelConfig[] = [
      { ...base, slidingWindow: 8, embedPaddingIdx: 3, eosTokenId: [2, 5], dtype: null, bosTokenId: null },
      { ...(await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'))), act: 'gelu_tanh', parallelResidual: false, attentionBias: false, rotaryDim: 16 },
      { ...(await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'))), attentionBias: true, mlpBias: true, headDim: 16, rotaryDim: 16 },
      { ...(await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'))), ropeScaling: LLAMA31 },
      { ...(await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'))), ropeScaling: { type: 'linear', factor: 2 } },
      { ...base, ropeScaling: { type: 'dynamic', factor: 4 } },
    ];
    for (const v of variants) expect(withoutRaw(parseModelConfig(toHfConfigJson(v), 'mem'))).toEqual(withoutRaw(v));
    // Unrepresentable configs are refused.
    expect(() => toHfConfigJson({ ...base, attentionBias: true })).toThrow(/mistral has no biases/);
  });

  it('pythia-style defaults and spellings: rotary_pct / rotary_emb_base, gelu_new, pythia-1b shape', () => {
    const cfg = parseModelConfig({
      architectures: ['GPTNeoXForCausalLM'], bos_token_id: 0, eos_token_id: 0, hidden_act: 'gelu', hidden_size: 2048,
      initializer_range: 0.02, intermediate_size: 8192, layer_norm_eps: 1e-5, max_position_embeddings: 2048,
      model_type: 'gpt_neox', num_attention_heads: 8, num_hidden_layers: 16, rotary_emb_base: 10000, rotary_pct: 0.25,
      tie_word_embeddings: false, torch_dtype: 'float16', use_cache: true, use_parallel_residual: true, vocab_size: 50304,
    }, 'pythia-1b');
    expect(cfg).toMatchObject({ headDim: 256, rotaryDim: 64, dtype: 'float16', act: 'gelu' });
    const tanh = parseModelConfig({ ...hub('gpt-neox-tiny'), hidden_act: 'gelu_pytorch_tanh' }, 'x');
    expect(tanh.act).toBe('gelu_tanh');
    expect(parseModelConfig({ ...hub('gpt-neox-tiny'), hidden_act: 'gelu_fast' }, 'x').act).toBe('gelu_tanh'); // transformers' FastGELU: the same tanh form
    // Mistral-7B-like: a sliding window, as MistralConfig reads it: the key alone decides (null: none;
    // absent: 4096, the class's default), and use_sliding_window (Qwen2's switch) changes nothing.
    const { sliding_window: _sw, ...noWindowKey } = hub('mistral-tiny');
    expect(parseModelConfig({ ...hub('mistral-tiny'), sliding_window: 2048 }, 'x').slidingWindow).toBe(2048);
    expect(parseModelConfig(noWindowKey, 'x').slidingWindow).toBe(4096);
    expect(parseModelConfig({ ...hub('mistral-tiny'), sliding_window: 4096, use_sliding_window: false }, 'x').slidingWindow).toBe(4096);
    expect(() => parseModelConfig({ ...hub('mistral-tiny'), use_sliding_window: 'no' }, 'x')).toThrow(/"use_sliding_window" must be true or false/);
    // num_key_value_heads absent: MistralConfig's 8 (a shape error then, not a silent MHA), Llama's
    // heads; null: the heads.
    const { num_key_value_heads: _kv, ...noKv }: Record<string, unknown> = { ...hub('mistral-tiny'), num_attention_heads: 8, hidden_size: 128 };
    expect(parseModelConfig(noKv, 'x').numKvHeads).toBe(8);
    expect(parseModelConfig({ ...noKv, num_attention_heads: 16 }, 'x').numKvHeads).toBe(8); // MistralConfig's 8, not the heads
    // tie_word_embeddings absent: PretrainedConfig's default, untied (Mistral, Llama and GPT-NeoX alike).
    for (const m of ['mistral-tiny', 'llama-tiny-tied', 'gpt-neox-tiny']) {
      const { tie_word_embeddings: _t, ...untiedByDefault } = hub(m);
      expect(parseModelConfig(untiedByDefault, m).tiedEmbeddings, m).toBe(false);
    }
    expect(parseModelConfig({ ...noKv, num_attention_heads: 16, num_key_value_heads: null }, 'x').numKvHeads).toBe(16);
    const { num_key_value_heads: _kv2, ...llamaNoKv } = hub('llama-tiny-tied');
    expect(parseModelConfig(llamaNoKv, 'x').numKvHeads).toBe(llamaNoKv.num_attention_heads);
    // A rotary fraction inside rope_scaling must agree with rotary_pct.
    expect(() => parseModelConfig({ ...hub('gpt-neox-tiny'), rotary_pct: 0.25, rope_scaling: { rope_type: 'linear', factor: 2, partial_rotary_factor: 0.5 } }, 'x'))
      .toThrow(/"rope_scaling.partial_rotary_factor" = 0.5 contradicts/);
    expect(parseModelConfig({ ...hub('gpt-neox-tiny'), rotary_pct: 0.5, rope_scaling: { rope_type: 'linear', factor: 2, partial_rotary_factor: 0.5 } }, 'x').rotaryDim)
      .toBe(8);
    // transformers 4 saved GPT-NeoX configs with rope_theta / partial_rotary_factor copied from rotary_emb_base / rotary_pct.
    expect(parseModelConfig({ ...hub('gpt-neox-tiny'), rotary_emb_base: 50, rope_theta: 50, rotary_pct: 0.5, partial_rotary_factor: 0.5 }, 'x'))
      .toMatchObject({ ropeTheta: 50, rotaryDim: 8 });
    // Both dtype spellings (some tools write both): dtype wins, neither is refused.
    expect(parseModelConfig({ ...hub('mistral-tiny'), dtype: 'bfloat16', torch_dtype: 'float32' }, 'x').dtype).toBe('bfloat16');
    // rope_scaling of type default is the same computation.
    expect(parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: { rope_type: 'default' } }, 'x').ropeTheta).toBe(500000);
  });

  it('a SmolLM2-135M config (Llama with nanotron export keys, GQA 9:3, tied, head_dim 64) is read as transformers reads it', () => {
    const cfg = parseModelConfig({
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 0, eos_token_id: 0,
      head_dim: 64, hidden_act: 'silu', hidden_size: 576, initializer_range: 0.041666666666666664, intermediate_size: 1536,
      is_llama_config: true, max_position_embeddings: 8192, mlp_bias: false, model_type: 'llama', num_attention_heads: 9,
      num_hidden_layers: 30, num_key_value_heads: 3, pretraining_tp: 1, rms_norm_eps: 1e-05, rope_interleaved: false,
      rope_scaling: null, rope_theta: 100000, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.42.3',
      use_cache: true, vocab_size: 49152,
    }, 'smollm2');
    expect(withoutRaw(cfg)).toMatchObject({ arch: 'llama', numHeads: 9, numKvHeads: 3, headDim: 64, rotaryDim: 64, ropeTheta: 100000,
      ropeScaling: null, tiedEmbeddings: true, normEps: 1e-5, dtype: 'bfloat16' });
  });

  it('a Llama-3.2-1B-Instruct config (llama3 rope scaling, GQA 32:8, tied, eos list) is read whole', () => {
    const cfg = parseModelConfig({
      architectures: ['LlamaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 128000,
      eos_token_id: [128001, 128008, 128009], head_dim: 64, hidden_act: 'silu', hidden_size: 2048, initializer_range: 0.02,
      intermediate_size: 8192, max_position_embeddings: 131072, mlp_bias: false, model_type: 'llama', num_attention_heads: 32,
      num_hidden_layers: 16, num_key_value_heads: 8, pretraining_tp: 1, rms_norm_eps: 1e-05,
      rope_scaling: { factor: 32.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
      rope_theta: 500000.0, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.45.0.dev0', use_cache: true,
      vocab_size: 128256,
    }, 'llama-3.2-1b');
    expect(withoutRaw(cfg)).toMatchObject({ numKvHeads: 8, headDim: 64, eosTokenId: [128001, 128008, 128009], tiedEmbeddings: true,
      ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } });
  });

  it('a Qwen2.5-0.5B-Instruct config (q/k/v biases, GQA 14:2, tied, a window named but off) is read whole; what it cannot mean is refused', () => {
    const qwen = {
      architectures: ['Qwen2ForCausalLM'], attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645, hidden_act: 'silu',
      hidden_size: 896, initializer_range: 0.02, intermediate_size: 4864, max_position_embeddings: 32768, max_window_layers: 21,
      model_type: 'qwen2', num_attention_heads: 14, num_hidden_layers: 24, num_key_value_heads: 2, rms_norm_eps: 1e-06,
      rope_theta: 1000000.0, sliding_window: 32768, tie_word_embeddings: true, torch_dtype: 'bfloat16', transformers_version: '4.43.1',
      use_cache: true, use_sliding_window: false, vocab_size: 151936,
    };
    const cfg = parseModelConfig(qwen, 'qwen2.5-0.5b');
    expect(withoutRaw(cfg)).toEqual({
      arch: 'qwen2', vocabSize: 151936, hiddenSize: 896, intermediateSize: 4864, numLayers: 24, numHeads: 14, numKvHeads: 2,
      headDim: 64, rotaryDim: 64, ropeTheta: 1e6, ropeScaling: null, maxPositions: 32768, norm: 'rmsnorm', normEps: 1e-6, act: 'silu',
      parallelResidual: false, attentionBias: true, mlpBias: false, tiedEmbeddings: true, slidingWindow: null, embedPaddingIdx: null,
      bosTokenId: 151643, eosTokenId: 151645, dtype: 'bfloat16',
    });
    expect(describeModel(cfg)).toMatch(/^qwen2, 24 layers, hidden 896, 14 query \/ 2 key-value heads of 64, .*q\/k\/v biases, tied embeddings$/);
    expect(withoutRaw(parseModelConfig(toHfConfigJson(cfg), 'mem'))).toEqual(withoutRaw(cfg));
    // use_sliding_window: the layers from max_window_layers on slide (transformers 5.17's Qwen2Config), the others attend fully.
    const sw = parseModelConfig({ ...qwen, use_sliding_window: true }, 'q');
    expect([sw.slidingWindow, sw.windowLayers]).toEqual([32768, Array.from({ length: 24 }, (_, l) => l >= 21)]);
    expect(describeModel(sw)).toMatch(/sliding window 32768 on layers 21-23, q\/k\/v biases/);
    expect(withoutRaw(parseModelConfig(toHfConfigJson(sw), 'mem'))).toEqual(withoutRaw(sw));
    // Written back with layer_types, and max_window_layers where the sliding layers are the last ones (for readers without layer_types).
    expect(toHfConfigJson(sw)).toMatchObject({ use_sliding_window: true, sliding_window: 32768, max_window_layers: 21 });
    // Every layer: the window alone, as Mistral's; absent, Qwen2Config's default 4096.
    const all = parseModelConfig({ ...qwen, use_sliding_window: true, max_window_layers: 0 }, 'q');
    expect([all.slidingWindow, all.windowLayers]).toEqual([32768, undefined]);
    const { sliding_window: _w, ...noWindow } = qwen;
    expect(parseModelConfig({ ...noWindow, use_sliding_window: true, max_window_layers: 0 }, 'q').slidingWindow).toBe(4096);
    // A window on no layer (from max_window_layers on, at or past the last), or no window: every layer full.
    expect(parseModelConfig({ ...qwen, use_sliding_window: true, max_window_layers: 24 }, 'q').slidingWindow).toBeNull();
    expect(parseModelConfig({ ...qwen, use_sliding_window: true, sliding_window: null }, 'q').slidingWindow).toBeNull();
    // layer_types (transformers 5 writes it) decides where given; sliding layers without a window are refused, as transformers refuses them.
    const listed = parseModelConfig({ ...qwen, use_sliding_window: true, layer_types: Array.from({ length: 24 }, (_, l) => (l % 2 ? 'sliding_attention' : 'full_attention')) }, 'q');
    expect(listed.windowLayers).toEqual(Array.from({ length: 24 }, (_, l) => l % 2 === 1));
    expect(describeModel(listed)).toMatch(/sliding window 32768 on layers 1, 3, 5, .*, 23,/);
    expect(toHfConfigJson(listed).max_window_layers).toBeUndefined();
    expect(withoutRaw(parseModelConfig(toHfConfigJson(listed), 'mem'))).toEqual(withoutRaw(listed));
    expect(parseModelConfig({ ...qwen, use_sliding_window: true, layer_types: Array(24).fill('full_attention') }, 'q').slidingWindow).toBeNull();
    expect(() => parseModelConfig({ ...qwen, max_window_layers: -1 }, 'q')).toThrow(/"max_window_layers" must be an integer >= 0 \(got -1\)/);
    expect(() => parseModelConfig({ ...qwen, layer_types: Array(24).fill('chunked_attention') }, 'q')).toThrow(/"layer_types" must list "full_attention" or "sliding_attention" for each of the 24 layers \(entry 0 is "chunked_attention"\)/);
    expect(() => parseModelConfig({ ...qwen, layer_types: Array(3).fill('full_attention') }, 'q')).toThrow(/for each of the 24 layers \(3 entries\)/);
    // Switched on, sliding no layer: said in the model's line.
    expect(describeModel(parseModelConfig({ ...qwen, use_sliding_window: true, max_window_layers: 24 }, 'q'))).toMatch(/use_sliding_window on but no layer slides \(max_window_layers 24 >= 24 layers\)/);
    const { max_window_layers: _m, ...noMax } = qwen;
    expect(describeModel(parseModelConfig({ ...noMax, num_hidden_layers: 2, use_sliding_window: true }, 'q'))).toMatch(/no layer slides \(max_window_layers 28 \(the default\) >= 2 layers\)/);
    expect(describeModel(cfg)).not.toMatch(/use_sliding_window/);
    expect(() => parseModelConfig({ ...qwen, use_sliding_window: 'yes' }, 'q')).toThrow(/"use_sliding_window" must be true or false/);
    expect(() => parseModelConfig({ ...qwen, use_mrope: true }, 'q')).toThrow(/"use_mrope" = true is not supported/);
    expect(() => parseModelConfig({ ...qwen, attention_bias: false }, 'q')).toThrow(/"attention_bias" = false is not supported: Qwen2 has biases on q\/k\/v_proj/);
    expect(() => parseModelConfig({ ...qwen, architectures: ['LlamaForCausalLM'] }, 'q')).toThrow(/expected \["Qwen2ForCausalLM"\]/);
    expect(() => parseModelConfig({ ...qwen, layer_types: Array(24).fill('sliding_attention') }, 'q')).toThrow(/"layer_types" lists "sliding_attention" layers, but no window is set \(sliding_window with use_sliding_window\): transformers refuses them too/);
    expect(parseModelConfig({ ...qwen, layer_types: Array(24).fill('full_attention'), use_mrope: false }, 'q').arch).toBe('qwen2');
  });

  it('a Qwen3-0.6B config (q/k norms, head_dim 128 over hidden 1024, GQA 16:8, tied) is read whole, as is its transformers-5 spelling', () => {
    const qwen3 = {
      architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643, eos_token_id: 151645,
      head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02, intermediate_size: 3072, max_position_embeddings: 40960,
      max_window_layers: 28, model_type: 'qwen3', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, rms_norm_eps: 1e-06,
      rope_scaling: null, rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true, torch_dtype: 'bfloat16',
      transformers_version: '4.51.0', use_cache: true, use_sliding_window: false, vocab_size: 151936,
    };
    const cfg = parseModelConfig(qwen3, 'qwen3-0.6b');
    expect(withoutRaw(cfg)).toEqual({
      arch: 'qwen3', vocabSize: 151936, hiddenSize: 1024, intermediateSize: 3072, numLayers: 28, numHeads: 16, numKvHeads: 8,
      headDim: 128, rotaryDim: 128, ropeTheta: 1e6, ropeScaling: null, maxPositions: 40960, norm: 'rmsnorm', normEps: 1e-6, act: 'silu',
      parallelResidual: false, attentionBias: false, mlpBias: false, tiedEmbeddings: true, slidingWindow: null, embedPaddingIdx: null,
      bosTokenId: 151643, eosTokenId: 151645, dtype: 'bfloat16',
    });
    expect(describeModel(cfg)).toBe('qwen3, 28 layers, hidden 1024, 16 query / 8 key-value heads of 128, MLP 3072 (SwiGLU), vocab 151936, ' +
      'rope theta 1000000, q/k norms, tied embeddings');
    // The model card's sizes: 0.6B parameters, 0.44B without the embedding (q_norm / k_norm: 128 each a layer).
    const params = expectedParameters(cfg);
    const count = (ps: typeof params) => ps.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
    expect(count(params)).toBe(596049920);
    expect(count(params.filter((p) => p.name !== 'model.embed_tokens.weight'))).toBe(440467456);
    expect(params.filter((p) => /\.(q|k)_norm\.weight$/.test(p.name)).map((p) => p.shape)).toEqual(Array(56).fill([128]));
    expect(withoutRaw(parseModelConfig(toHfConfigJson(cfg), 'mem'))).toEqual(withoutRaw(cfg));
    // As transformers 5 saves it (dtype, rope_parameters, layer_types).
    const { rope_theta: _t, rope_scaling: _s, torch_dtype: _d, ...rest } = qwen3;
    const v5 = parseModelConfig({ ...rest, dtype: 'bfloat16', rope_parameters: { rope_theta: 1000000, rope_type: 'default' },
      layer_types: Array(28).fill('full_attention'), transformers_version: '5.17.0' }, 'v5');
    expect(withoutRaw(v5)).toEqual(withoutRaw(cfg));
    // attention_bias puts biases on all four projections, as Llama's; the MLP never has any.
    const biased = parseModelConfig({ ...qwen3, attention_bias: true }, 'b');
    expect(expectedParameters(biased).filter((p) => p.name.startsWith('model.layers.0.') && p.name.endsWith('.bias')).map((p) => p.name))
      .toEqual(['q', 'k', 'v', 'o'].map((x) => `model.layers.0.self_attn.${x}_proj.bias`));
    expect(describeModel(biased)).toMatch(/q\/k norms, attention biases, tied embeddings$/);
    // Without head_dim: Qwen3Config's default, 128 (not hidden / heads), whatever divides.
    const { head_dim: _hd, ...noHeadDim } = qwen3;
    expect(parseModelConfig({ ...noHeadDim, hidden_size: 64, num_attention_heads: 2, num_key_value_heads: 1 }, 'q').headDim).toBe(128);
    expect(parseModelConfig({ ...noHeadDim, hidden_size: 1000, num_attention_heads: 16 }, 'q').headDim).toBe(128);
    // Qwen3Config's other defaults: 32 KV heads, 32768 positions, no attention biases, the window off.
    const { num_key_value_heads: _kv, max_position_embeddings: _mp, attention_bias: _ab, use_sliding_window: _us, ...sparse } = qwen3;
    expect(withoutRaw(parseModelConfig({ ...sparse, num_attention_heads: 64, hidden_size: 4096 }, 'q')))
      .toMatchObject({ numKvHeads: 32, maxPositions: 32768, attentionBias: false, slidingWindow: null });
    expect(parseModelConfig({ ...sparse, num_attention_heads: 64, hidden_size: 4096, sliding_window: 4096, max_window_layers: 0 }, 'q').slidingWindow).toBeNull();
    // With the window on and no max_window_layers: from layer 28 on (Qwen3Config(num_hidden_layers=30, use_sliding_window=True)).
    const thirty = parseModelConfig({ ...qwen3, num_hidden_layers: 30, use_sliding_window: true, sliding_window: 4096, max_window_layers: undefined }, 'q');
    expect(thirty.windowLayers).toEqual(Array.from({ length: 30 }, (_, l) => l >= 28));
    expect(describeModel(thirty)).toMatch(/sliding window 4096 on layers 28-29,/);
    expect(() => parseModelConfig({ ...qwen3, use_sliding_window: true, sliding_window: 0 }, 'q')).toThrow(/"sliding_window" must be an integer >= 1 \(got 0\)/);
    expect(() => parseModelConfig({ ...qwen3, max_window_layers: 1.5 }, 'q')).toThrow(/"max_window_layers" must be an integer >= 0 \(got 1\.5\)/);
    expect(describeModel(parseModelConfig({ ...qwen3, use_sliding_window: true, sliding_window: null }, 'q'))).toMatch(/no layer slides \(sliding_window is null\)/);
    expect(describeModel(parseModelConfig({ ...qwen3, use_sliding_window: true, sliding_window: 64, layer_types: Array(28).fill('full_attention') }, 'q')))
      .toMatch(/no layer slides \(layer_types lists none\)/);
    expect(describeModel(parseModelConfig({ ...qwen3, num_hidden_layers: 2, use_sliding_window: true, sliding_window: 5, max_window_layers: 1 }, 'q')))
      .toMatch(/sliding window 5 on layer 1,/);
    expect(withoutRaw(parseModelConfig(toHfConfigJson(biased), 'mem'))).toEqual(withoutRaw(biased));
    expect(() => parseModelConfig({ ...qwen3, mlp_bias: true }, 'q')).toThrow(/"mlp_bias" = true is not supported: Qwen3's MLP has no biases/);
    const sw = parseModelConfig({ ...qwen3, use_sliding_window: true, sliding_window: 4096, max_window_layers: 20 }, 'q');
    expect(describeModel(sw)).toMatch(/sliding window 4096 on layers 20-27, q\/k norms/);
    expect(withoutRaw(parseModelConfig(toHfConfigJson(sw), 'mem'))).toEqual(withoutRaw(sw));
    expect(() => parseModelConfig({ ...qwen3, use_mrope: false }, 'q')).toThrow(/"use_mrope" is not a known qwen3 setting/);
    expect(() => parseModelConfig({ ...qwen3, architectures: ['Qwen2ForCausalLM'] }, 'q')).toThrow(/expected \["Qwen3ForCausalLM"\]/);
  });

  it('a gemma-3-1b-it config (Gemma 3 text: q/k norms, sandwich norms, 5 sliding layers to 1 full, local rope base) is read whole, and its transformers-5 spelling', () => {
    const g3 = {
      architectures: ['Gemma3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null, bos_token_id: 2,
      cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256, hidden_activation: 'gelu_pytorch_tanh',
      hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912, max_position_embeddings: 32768, model_type: 'gemma3_text',
      num_attention_heads: 4, num_hidden_layers: 26, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-06,
      rope_local_base_freq: 10000, rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6,
      torch_dtype: 'bfloat16', transformers_version: '4.50.0.dev0', use_cache: true, vocab_size: 262144,
    };
    const cfg = parseModelConfig(g3, 'gemma-3-1b-it');
    const full = [5, 11, 17, 23]; // (i + 1) % 6 == 0
    expect(withoutRaw(cfg)).toEqual({
      arch: 'gemma3', vocabSize: 262144, hiddenSize: 1152, intermediateSize: 6912, numLayers: 26, numHeads: 4, numKvHeads: 1,
      headDim: 256, rotaryDim: 256, ropeTheta: 1e6, ropeScaling: null, maxPositions: 32768, norm: 'rmsnorm', normEps: 1e-6, act: 'gelu_tanh',
      parallelResidual: false, attentionBias: false, mlpBias: false, tiedEmbeddings: true, slidingWindow: 512,
      windowLayers: Array.from({ length: 26 }, (_, l) => !full.includes(l)), embedPaddingIdx: 0, queryPreAttnScalar: 256,
      slidingRope: { theta: 10000, scaling: null }, bosTokenId: 2, eosTokenId: [1, 106], dtype: 'bfloat16',
    });
    expect(describeModel(cfg)).toBe('gemma3, 26 layers, hidden 1152, 4 query / 1 key-value heads of 256, MLP 6912 (GeGLU, tanh GELU), vocab 262144, ' +
      'rope theta 1000000 on full-attention layers, rope theta 10000 on sliding layers, sliding window 512 on layers 0-4, 6-10, 12-16, 18-22, 24-25, ' +
      'q/k norms, embeddings x sqrt(1152), norm gains 1 + w, norms after attention and MLP, tied embeddings');
    // The checkpoint's size: 999,885,952 parameters (262144 x 1152 of them the embedding), with four norms a layer.
    const params = expectedParameters(cfg);
    expect(params.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)).toBe(999885952);
    expect(params.filter((p) => p.name.startsWith('model.layers.0.')).map((p) => p.name.slice('model.layers.0.'.length)).sort()).toEqual([
      'input_layernorm.weight', 'mlp.down_proj.weight', 'mlp.gate_proj.weight', 'mlp.up_proj.weight', 'post_attention_layernorm.weight',
      'post_feedforward_layernorm.weight', 'pre_feedforward_layernorm.weight', 'self_attn.k_norm.weight', 'self_attn.k_proj.weight',
      'self_attn.o_proj.weight', 'self_attn.q_norm.weight', 'self_attn.q_proj.weight', 'self_attn.v_proj.weight']);
    expect(withoutRaw(parseModelConfig(toHfConfigJson(cfg), 'mem'))).toEqual(withoutRaw(cfg));
    // As transformers 5 writes it: rope_parameters per layer type, layer_types, dtype.
    const { rope_theta: _t, rope_scaling: _s, rope_local_base_freq: _l, sliding_window_pattern: _p, torch_dtype: _d, ...rest } = g3;
    const v5 = {
      ...rest, dtype: 'bfloat16', transformers_version: '5.17.0', layer_types: Array.from({ length: 26 }, (_, l) => (full.includes(l) ? 'full_attention' : 'sliding_attention')),
      rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1000000 }, sliding_attention: { rope_type: 'default', rope_theta: 10000 } },
    };
    expect(withoutRaw(parseModelConfig(v5, 'v5'))).toEqual(withoutRaw(cfg));
    // gemma-3-4b's linear rope scaling applies to the full-attention layers only; the two spellings agree on it.
    const scaled = parseModelConfig({ ...g3, rope_scaling: { rope_type: 'linear', factor: 8 } }, 's');
    expect([scaled.ropeScaling, scaled.slidingRope]).toEqual([{ type: 'linear', factor: 8 }, { theta: 10000, scaling: null }]);
    expect(withoutRaw(parseModelConfig({ ...v5, rope_parameters: { ...v5.rope_parameters, full_attention: { rope_type: 'linear', factor: 8, rope_theta: 1e6 } } }, 'v5')))
      .toEqual(withoutRaw(scaled));
    expect(withoutRaw(parseModelConfig(toHfConfigJson(scaled), 'mem'))).toEqual(withoutRaw(scaled));
    // A scaled sliding rope only transformers 5's spelling can say: written that way, read back the same.
    const slidingScaled = { ...cfg, slidingRope: { theta: 10000, scaling: { type: 'linear' as const, factor: 2 } } };
    expect(toHfConfigJson(slidingScaled).rope_parameters).toEqual({ full_attention: { rope_type: 'default', rope_theta: 1e6 },
      sliding_attention: { rope_type: 'linear', factor: 2, rope_theta: 10000 } });
    expect(withoutRaw(parseModelConfig(toHfConfigJson(slidingScaled), 'mem'))).toEqual(withoutRaw(slidingScaled));
    // Gemma3TextConfig's defaults: pattern 6, window 4096, local base 1e4, theta 1e6, query_pre_attn_scalar 256, pad 0, tied, 4 KV heads, 256-wide heads.
    const { sliding_window_pattern: _sp, sliding_window: _sw, rope_local_base_freq: _lb, rope_theta: _rt, query_pre_attn_scalar: _q, pad_token_id: _pt,
      num_key_value_heads: _kv, head_dim: _hd, hidden_activation: _ha, max_position_embeddings: _mp, ...sparse } = g3;
    expect(withoutRaw(parseModelConfig({ ...sparse, num_attention_heads: 8, num_hidden_layers: 7 }, 'd'))).toMatchObject({
      slidingWindow: 4096, windowLayers: [true, true, true, true, true, false, true], ropeTheta: 1e6, slidingRope: { theta: 1e4, scaling: null },
      queryPreAttnScalar: 256, embedPaddingIdx: 0, tiedEmbeddings: true, numKvHeads: 4, headDim: 256, act: 'gelu_tanh', maxPositions: 131072,
    });
    // A pattern of 1 slides no layer; a null window with sliding layers is refused.
    expect(parseModelConfig({ ...g3, sliding_window_pattern: 1 }, 'p').slidingWindow).toBeNull();
    expect(() => parseModelConfig({ ...g3, sliding_window: null }, 'p')).toThrow(/"sliding_window" is null, but sliding_window_pattern 6 makes sliding layers/);
    // query_pre_attn_scalar other than head_dim is said (Gemma 3 27B's 168 over heads of 128).
    expect(describeModel(parseModelConfig({ ...g3, query_pre_attn_scalar: 168 }, 'q'))).toMatch(/scores scaled by query_pre_attn_scalar 168\^-1\/2/);
    // What Gemma 3 computes otherwise is refused.
    // Gemma3ForCausalLM caps its logits where final_logit_softcapping is set (default none), as Gemma 2.
    expect(parseModelConfig({ ...g3, final_logit_softcapping: 30 }, 'q').finalSoftcap).toBe(30);
    expect(() => parseModelConfig({ ...g3, final_logit_softcapping: -1 }, 'q')).toThrow(/"final_logit_softcapping" must be a positive number or null/);
    // attn_logit_softcapping: transformers 5.17's Gemma 3 reads it and never passes it to the attention; so neither does srk, and says so.
    expect(describeModel(parseModelConfig({ ...g3, attn_logit_softcapping: 50 }, 'q'))).toMatch(/attn_logit_softcapping 50 not applied \(transformers 5.17's Gemma 3 does not apply it either\)/);
    expect(() => parseModelConfig({ ...g3, attn_logit_softcapping: 'x' }, 'q')).toThrow(/"attn_logit_softcapping" must be a positive number or null/);
    expect(() => parseModelConfig({ ...g3, use_bidirectional_attention: true }, 'q')).toThrow(/"use_bidirectional_attention" = true is not supported/);
    expect(() => parseModelConfig({ ...g3, hidden_act: 'gelu' }, 'q')).toThrow(/"hidden_act" = "gelu" disagrees with hidden_activation = "gelu_pytorch_tanh"/);
    expect(parseModelConfig({ ...g3, hidden_act: 'gelu_pytorch_tanh' }, 'q').act).toBe('gelu_tanh');
    expect(() => parseModelConfig({ ...g3, rope_parameters: { global: {} } }, 'q')).toThrow(/"rope_parameters.global" is not a Gemma 3 layer type/);
    expect(() => parseModelConfig({ ...g3, rope_local_base_freq: 5000, rope_parameters: { sliding_attention: { rope_theta: 10000 } } }, 'q'))
      .toThrow(/"rope_local_base_freq" = 5000 contradicts "rope_parameters.sliding_attention.rope_theta" = 10000/);
    expect(() => parseModelConfig({ ...g3, partial_rotary_factor: 0.5 }, 'q')).toThrow(/"partial_rotary_factor" = 0.5 is not supported for gemma3/);
    // rope_scaling with the old "type" key: transformers 5.17's Gemma 3 leaves it unread (4.5x applied it): refused.
    expect(() => parseModelConfig({ ...g3, rope_scaling: { type: 'linear', factor: 8 } }, 'q')).toThrow(/"rope_scaling" = .* names its type under the old key "type", which transformers 5.17's Gemma 3 does not read/);
    expect(parseModelConfig({ ...g3, rope_scaling: { type: 'linear', rope_type: 'linear', factor: 8 } }, 'q').ropeScaling).toEqual({ type: 'linear', factor: 8 });
    // query_pre_attn_scalar is an int in Gemma3TextConfig (transformers refuses 16.5).
    expect(() => parseModelConfig({ ...g3, query_pre_attn_scalar: 16.5 }, 'q')).toThrow(/"query_pre_attn_scalar" must be an integer >= 1 \(got 16.5\)/);
    expect(() => parseModelConfig({ ...g3, mlp_bias: true }, 'q')).toThrow(/"mlp_bias" = true is not supported: Gemma's MLP has no biases/);
    expect(() => parseModelConfig({ ...g3, model_type: 'gemma3' }, 'q')).toThrow(/Gemma 3's vision-language checkpoint .*model_type gemma3_text/);
    expect(() => parseModelConfig({ ...g3, model_type: 'gemma2' }, 'q')).toThrow(/"architectures" = \["Gemma3ForCausalLM"\]: expected \["Gemma2ForCausalLM"\] for model_type gemma2/);
  });

  it('a gemma-7b config (Gemma: embeddings x sqrt(hidden), gains 1 + w, GeGLU, heads of 256) is read whole; hidden_act and hidden_activation must agree', () => {
    const g = {
      architectures: ['GemmaForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 2, eos_token_id: 1, head_dim: 256,
      hidden_act: 'gelu_pytorch_tanh', hidden_activation: 'gelu_pytorch_tanh', hidden_size: 3072, initializer_range: 0.02, intermediate_size: 24576,
      max_position_embeddings: 8192, model_type: 'gemma', num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 16, pad_token_id: 0,
      rms_norm_eps: 1e-06, rope_scaling: null, rope_theta: 10000.0, torch_dtype: 'bfloat16', transformers_version: '4.38.0', use_cache: true, vocab_size: 256000,
    };
    const cfg = parseModelConfig(g, 'gemma-7b');
    expect(withoutRaw(cfg)).toEqual({
      arch: 'gemma', vocabSize: 256000, hiddenSize: 3072, intermediateSize: 24576, numLayers: 28, numHeads: 16, numKvHeads: 16,
      headDim: 256, rotaryDim: 256, ropeTheta: 10000, ropeScaling: null, maxPositions: 8192, norm: 'rmsnorm', normEps: 1e-6, act: 'gelu_tanh',
      parallelResidual: false, attentionBias: false, mlpBias: false, tiedEmbeddings: true, slidingWindow: null, embedPaddingIdx: 0,
      bosTokenId: 2, eosTokenId: 1, dtype: 'bfloat16',
    });
    expect(describeModel(cfg)).toBe('gemma, 28 layers, hidden 3072, 16 heads of 256, MLP 24576 (GeGLU, tanh GELU), vocab 256000, rope theta 10000, ' +
      'embeddings x sqrt(3072), norm gains 1 + w, tied embeddings');
    expect(expectedParameters(cfg).reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)).toBe(8537680896); // gemma-7b's 8.54B
    const { hidden_activation: _ha, ...one } = g;
    expect(withoutRaw(parseModelConfig(toHfConfigJson(cfg), 'mem'))).toEqual(withoutRaw(cfg));
    expect(parseModelConfig({ ...one, hidden_act: 'gelu' }, 'g').act).toBe('gelu'); // transformers 5 reads hidden_act alone: the exact GELU
    // gemma-2b's hub file once said hidden_act "gelu" beside hidden_activation "gelu_pytorch_tanh": the versions disagree, so it is refused.
    expect(() => parseModelConfig({ ...g, hidden_act: 'gelu' }, 'g')).toThrow(/"hidden_activation" = "gelu_pytorch_tanh" disagrees with hidden_act = "gelu".*transformers 4.38-4.5x computed with hidden_activation\): set hidden_act to "gelu_pytorch_tanh" to compute that/);
    // gemma-2b's original file: hidden_act "gelu" alone, the erf GELU under transformers 5 (as srk), said in the model's line.
    expect(describeModel(parseModelConfig({ ...one, hidden_act: 'gelu' }, 'g'))).toMatch(/MLP 24576 \(GeGLU, erf GELU\).*hidden_act "gelu": the erf GELU, as transformers 5 computes it \(4\.39-4\.5x computed the tanh GELU/);
    expect(() => parseModelConfig({ ...g, hidden_act: 'silu' }, 'g')).toThrow(/"hidden_act" = "silu" is not supported for gemma/);
    // GemmaConfig's defaults: heads of 256, 16 KV heads, pad 0, BOS 2, EOS 1, tied, tanh GELU.
    const { head_dim: _hd, num_key_value_heads: _kv, pad_token_id: _p, bos_token_id: _b, eos_token_id: _e, hidden_act: _a, ...sparse } = one;
    expect(withoutRaw(parseModelConfig({ ...sparse, num_attention_heads: 32, hidden_size: 2048 }, 'd'))).toMatchObject({
      headDim: 256, numKvHeads: 16, embedPaddingIdx: 0, bosTokenId: 2, eosTokenId: 1, tiedEmbeddings: true, act: 'gelu_tanh' });
    expect(parseModelConfig({ ...g, pad_token_id: null }, 'g').embedPaddingIdx).toBeNull();
    expect(() => parseModelConfig({ ...g, sliding_window: 4096 }, 'g')).toThrow(/"sliding_window" is not a known gemma setting/);
    expect(() => parseModelConfig({ ...g, query_pre_attn_scalar: 256 }, 'g')).toThrow(/"query_pre_attn_scalar" is not a known gemma setting/);
  });

  it('rope scaling: Llama 3.1 (hub rope_scaling and transformers-5 rope_parameters alike), linear, dynamic', () => {
    const llama31 = { rope_type: 'llama3', factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 };
    const a = parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: llama31, max_position_embeddings: 131072 }, 'hub');
    expect(a.ropeScaling).toEqual(LLAMA31);
    const { rope_theta: _t, ...rest } = hub('llama-tiny-tied');
    const b = parseModelConfig({ ...rest, rope_parameters: { ...llama31, rope_theta: 5e5 }, max_position_embeddings: 131072 }, 'v5');
    expect(withoutRaw(b)).toEqual(withoutRaw(a));
    // Both spellings in one file, saying the same: accepted.
    expect(parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: llama31, rope_parameters: { ...llama31, rope_theta: 5e5 } }, 'both').ropeScaling).toEqual(LLAMA31);
    // The older key `type`, and GPT-NeoX's linear / dynamic (HF GPT-NeoX reads rope_scaling too).
    expect(parseModelConfig({ ...hub('gpt-neox-tiny'), rope_scaling: { type: 'linear', factor: 4 } }, 'x').ropeScaling).toEqual({ type: 'linear', factor: 4 });
    expect(parseModelConfig({ ...hub('mistral-tiny'), rope_scaling: { type: 'dynamic', factor: 2, original_max_position_embeddings: 4096 } }, 'x').ropeScaling)
      .toEqual({ type: 'dynamic', factor: 2 });
    expect(parseModelConfig({ ...hub('mistral-tiny'), rope_scaling: null }, 'x').ropeScaling).toBe(null);
    // llama3 without original_max_position_embeddings: max_position_embeddings, as transformers 5.17's LlamaConfig
    // fills it (standardize_rope_params); a top-level original_max_position_embeddings, which LlamaConfig ignores
    // there, is refused as an unknown field rather than ignored; null, as transformers' validation refuses it.
    const { original_max_position_embeddings: _o, ...bare } = llama31;
    expect(parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: bare, max_position_embeddings: 8192 }, 'x').ropeScaling).toEqual(LLAMA31);
    expect(parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: bare, max_position_embeddings: 131072 }, 'x').ropeScaling).toEqual({ ...LLAMA31, originalMaxPositions: 131072 });
    expect(() => parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: { ...bare, original_max_position_embeddings: null } }, 'x'))
      .toThrow(/"rope_scaling.original_max_position_embeddings" is required for rope_type llama3/);
    expect(() => parseModelConfig({ ...hub('llama-tiny-tied'), rope_scaling: bare, original_max_position_embeddings: 8192, max_position_embeddings: 131072 }, 'x'))
      .toThrow(/"original_max_position_embeddings" is not a known llama setting/);
  });
});

describe('describeModel: the line a run logs', () => {
  it('names what decides the computation', async () => {
    expect(describeModel(await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny')))).toBe(
      'gpt-neox, 2 layers, hidden 64, 4 heads of 16 (4 rotary), MLP 256, vocab 384, parallel residual, rope theta 10000');
    const mistral = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    expect(describeModel({ ...mistral, slidingWindow: 4096 })).toBe(
      'mistral, 2 layers, hidden 64, 4 query / 2 key-value heads of 16, MLP 160 (SwiGLU), vocab 384, rope theta 10000, sliding window 4096');
    const llama = await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'));
    expect(describeModel({ ...llama, ropeScaling: LLAMA31, mlpBias: true })).toBe(
      'llama, 2 layers, hidden 48, 4 heads of 12, MLP 96 (SwiGLU), vocab 384, rope theta 500000, llama3 rope scaling ' +
      '(factor 8, low/high frequency factors 1/4, original context 8192), MLP biases, tied embeddings');
  });

  it('says that a config\'s non-zero dropout is not applied (zero rates say nothing)', async () => {
    const neox = await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'));
    expect(describeModel({ ...neox, raw: { ...neox.raw, attention_dropout: 0, hidden_dropout: 0 } })).not.toMatch(/dropout/);
    expect(describeModel({ ...neox, raw: { ...neox.raw, attention_dropout: 0.1, hidden_dropout: 0.2 } }))
      .toMatch(/, attention_dropout 0.1 and hidden_dropout 0.2 not applied \(no dropout, as TRL and the DPO code\)$/);
    const mistral = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    expect(describeModel({ ...mistral, raw: { ...mistral.raw, attention_dropout: 0.05 } })).toMatch(/, attention_dropout 0.05 not applied/);
  });
});

const LLAMA31 = { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 } as const;

describe('unsupported configs are errors naming the field and the file', () => {
  const cases: [string, string, Record<string, unknown>, RegExp][] = [
    ['model_type', 'gpt-neox-tiny', { model_type: 'gpt2' }, /"model_type" = "gpt2" is not supported/],
    ['model_type missing', 'gpt-neox-tiny', { model_type: undefined }, /"model_type" is required \(one of gpt_neox, mistral, llama, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3\)/],
    ['architectures', 'gpt-neox-tiny', { architectures: ['GPTNeoXForSequenceClassification'] }, /"architectures".*expected \["GPTNeoXForCausalLM"\]/],
    ['rope_scaling yarn', 'llama-tiny-tied', { rope_scaling: { type: 'yarn', factor: 2 } }, /"rope_scaling.rope_type" = "yarn" is not supported \(supported: default, linear, dynamic, llama3; yarn also scales attention and is not implemented; longrope is read for Phi-3 alone/],
    ['rope_type longrope', 'llama-tiny-tied', { rope_parameters: { rope_type: 'longrope', rope_theta: 5e5 } }, /"rope_parameters.rope_type" = "longrope" is not supported/],
    ['llama3 without its factors', 'llama-tiny-tied', { rope_parameters: { rope_type: 'llama3', rope_theta: 5e5, factor: 8 } }, /"rope_parameters.low_freq_factor" is required for rope_type llama3/],
    ['llama3 high <= low', 'llama-tiny-tied', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, /"rope_scaling.high_freq_factor" must be a number above low_freq_factor 4/],
    ['linear factor', 'llama-tiny-tied', { rope_scaling: { type: 'linear', factor: 0 } }, /"rope_scaling.factor" must be a positive number \(got 0\)/],
    ['linear without factor', 'gpt-neox-tiny', { rope_scaling: { type: 'linear' } }, /"rope_scaling.factor" is required for rope_type linear/],
    ['rope params extra', 'llama-tiny-tied', { rope_parameters: { rope_type: 'default', rope_theta: 5e5, factor: 2 } }, /"rope_parameters.factor" is not a default rope setting/],
    ['llama3 unknown key', 'llama-tiny-tied', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192, beta_fast: 32 } }, /"rope_scaling.beta_fast" is not a llama3 rope setting/],
    ['rope_scaling not an object', 'llama-tiny-tied', { rope_scaling: 2 }, /"rope_scaling" must be an object or null/],
    ['two spellings disagree', 'llama-tiny-tied', { rope_scaling: { type: 'linear', factor: 2 }, rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 5e5 } }, /"rope_scaling" = .* contradicts "rope_parameters"/],
    ['theta contradiction', 'llama-tiny-tied', { rope_parameters: { rope_theta: 1e4 } }, /"rope_theta" = 500000 contradicts "rope_parameters.rope_theta" = 10000/],
    ['rotary_pct contradiction', 'gpt-neox-tiny', { rope_parameters: { partial_rotary_factor: 0.5 } }, /"rotary_pct" = 0.25 contradicts/],
    // GPTNeoXConfig ignores these two (it reads rotary_emb_base / rotary_pct): another value would be a silent wrong rotation.
    ['neox top-level rope_theta', 'gpt-neox-tiny', { rotary_emb_base: undefined, rope_theta: 50 }, /"rope_theta" = 50 is not read by transformers' GPT-NeoX, which computes with 10000 \(rotary_emb_base or rope_parameters, here its default\)/],
    ['neox rope_theta beside rotary_emb_base', 'gpt-neox-tiny', { rope_theta: 50 }, /"rope_theta" = 50 is not read .* computes with 10000 \(rotary_emb_base or rope_parameters\)/],
    ['neox rope_theta beside rope_parameters (transformers 5.17 computes with 20000)', 'gpt-neox-tiny', { rotary_emb_base: undefined, rope_parameters: { rope_theta: 20000 }, rope_theta: 50 },
      /"rope_theta" = 50 is not read by transformers' GPT-NeoX, which computes with 20000 \(rotary_emb_base or rope_parameters\): give/],
    ['rotary_emb_base on llama (a GPT-NeoX name LlamaConfig ignores)', 'llama-tiny-tied', { rotary_emb_base: 500000 }, /"rotary_emb_base" is not a known llama setting/],
    ['neox top-level partial_rotary_factor', 'gpt-neox-tiny', { rotary_pct: undefined, partial_rotary_factor: 1 }, /"partial_rotary_factor" = 1 is not read by transformers' GPT-NeoX, which computes with 0.25/],
    ['odd rotary', 'gpt-neox-tiny', { rotary_pct: 0.3125 }, /"rotary_pct" gives 5 rotary channels/],
    ['partial rotary llama', 'llama-tiny-tied', { partial_rotary_factor: 0.5 }, /"partial_rotary_factor" = 0.5 is not supported for llama/],
    ['hidden_act', 'gpt-neox-tiny', { hidden_act: 'relu' }, /"hidden_act" = "relu" is not supported for gpt-neox/],
    ['hidden_act llama', 'mistral-tiny', { hidden_act: 'gelu' }, /"hidden_act" = "gelu" is not supported for mistral/],
    ['head_dim neox', 'gpt-neox-tiny', { head_dim: 32 }, /"head_dim" = 32 is inconsistent with hidden_size \/ num_attention_heads = 16/],
    ['heads too wide for the attention kernels', 'gpt-neox-tiny', { num_attention_heads: 1, hidden_size: 512 }, /"num_attention_heads" = 1 gives heads of 512 channels \(hidden_size 512\): srk's attention kernels take at most 256/],
    ['head_dim too wide', 'mistral-tiny', { head_dim: 320 }, /"head_dim" = 320: srk's attention kernels take heads of at most 256 channels/],
    ['head_dim indivisible', 'mistral-tiny', { hidden_size: 66, head_dim: undefined }, /"hidden_size" = 66 is not divisible by num_attention_heads = 4/],
    ['kv heads', 'mistral-tiny', { num_key_value_heads: 3 }, /"num_key_value_heads" = 3 does not divide num_attention_heads = 4/],
    ['missing size', 'mistral-tiny', { hidden_size: undefined }, /"hidden_size" is required/],
    ['bad size', 'mistral-tiny', { num_hidden_layers: 2.5 }, /"num_hidden_layers" must be an integer/],
    ['unknown field', 'mistral-tiny', { qk_layernorm: true }, /"qk_layernorm" is not a known mistral setting/],
    ['neox field on llama', 'llama-tiny-tied', { use_parallel_residual: true }, /"use_parallel_residual" is not a known llama setting/],
    ['quantized', 'llama-tiny-tied', { quantization_config: { bits: 4 } }, /"quantization_config" is not supported/],
    ['mistral bias', 'mistral-tiny', { attention_bias: true }, /"attention_bias" = true is not supported: Mistral layers have no biases/],
    ['uniform layer types against the window', 'mistral-tiny', { sliding_window: null, layer_types: ['sliding_attention', 'sliding_attention'] }, /"layer_types" lists "sliding_attention" for every layer, but no window is set .*the two must agree/],
    ['layer types of another length (transformers: must equal num_hidden_layers)', 'mistral-tiny', { sliding_window: null, layer_types: ['full_attention'] }, /"layer_types" must list "full_attention" for every layer/],
    ['layer types of an unknown kind', 'mistral-tiny', { sliding_window: null, layer_types: ['chunked_attention', 'chunked_attention'] }, /"layer_types" must list "full_attention" for every layer/],
    ['mixed layer types', 'mistral-tiny', { sliding_window: 8, layer_types: ['sliding_attention', 'full_attention'] }, /"layer_types" must list/],
    ['pad outside vocab', 'llama-tiny-tied', { pad_token_id: 999 }, /"pad_token_id" = 999 is outside the vocabulary/],
  ];
  for (const [label, model, patch, re] of cases) {
    it(label, () => {
      const json: Record<string, unknown> = { ...hub(model), ...patch };
      for (const k of Object.keys(patch)) if (patch[k] === undefined) delete json[k];
      expect(() => parseModelConfig(json, `/x/${model}/config.json`)).toThrow(re);
      expect(() => parseModelConfig(json, `/x/${model}/config.json`)).toThrow(`/x/${model}/config.json`);
    });
  }

  it('a missing or broken file names the file', async () => {
    await expect(loadModelConfig(path.join(tmp, 'none'))).rejects.toThrow(/none\/config\.json: cannot read/);
  });
});
