// Phi-3 (model_type phi3, Phi3ForCausalLM): its config.json as the hub has it, Phi3Config's defaults, what srk refuses
// (longrope, other rope types, biases), the checkpoint-name notes between the fused and the split layouts, and a training run
// on the derived fixture (phi3-fixture.ts: mistral-tiny's weights fused as Phi-3 stores them) against mistral-tiny's own,
// saved in Phi-3's layout. The computation itself is checked against mistral-tiny's float64 numbers in hf-fixtures.test.ts.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeModel, parseModelConfig, toHfConfigJson, type ModelConfig } from '../../src/model/config.js';
import { checkCheckpointNames, expectedParameters } from '../../src/model/tensor-names.js';
import { presetConfig } from '../../src/init/presets.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { makePhi3Fixture, phi3Config } from '../helpers/phi3-fixture.js';
import { describeRun, fixture, readMetrics, tempDir, train } from '../train/helpers.js';

const withoutRaw = (c: ModelConfig) => { const { raw: _r, ...rest } = c; return rest; };
const roundTrip = (c: ModelConfig) => expect(withoutRaw(parseModelConfig(toHfConfigJson(c), 'mem'))).toEqual(withoutRaw(c));

// microsoft/Phi-3-mini-4k-instruct's config.json.
const mini4k = {
  _name_or_path: 'Phi-3-mini-4k-instruct', architectures: ['Phi3ForCausalLM'], attention_dropout: 0.0,
  auto_map: { AutoConfig: 'configuration_phi3.Phi3Config', AutoModelForCausalLM: 'modeling_phi3.Phi3ForCausalLM' },
  bos_token_id: 1, embd_pdrop: 0.0, eos_token_id: 32000, hidden_act: 'silu', hidden_size: 3072, initializer_range: 0.02,
  intermediate_size: 8192, max_position_embeddings: 4096, model_type: 'phi3', num_attention_heads: 32, num_hidden_layers: 32,
  num_key_value_heads: 32, original_max_position_embeddings: 4096, pad_token_id: 32000, resid_pdrop: 0.0, rms_norm_eps: 1e-05,
  rope_scaling: null, rope_theta: 10000.0, sliding_window: 2047, tie_word_embeddings: false, torch_dtype: 'bfloat16',
  transformers_version: '4.40.2', use_cache: true, attention_bias: false, vocab_size: 32064,
};

describe('Phi-3 configs', () => {
  it('Phi-3-mini-4k-instruct\'s config.json is read whole (its auto_map too: transformers computes with its own class)', () => {
    const c = parseModelConfig(mini4k, 'phi3/config.json');
    expect(c).toMatchObject({ arch: 'phi3', hiddenSize: 3072, numLayers: 32, numHeads: 32, numKvHeads: 32, headDim: 96, rotaryDim: 96,
      intermediateSize: 8192, act: 'silu', norm: 'rmsnorm', normEps: 1e-5, ropeTheta: 10000, ropeScaling: null, slidingWindow: 2047,
      attentionBias: false, mlpBias: false, tiedEmbeddings: false, embedPaddingIdx: 32000, bosTokenId: 1, eosTokenId: 32000, maxPositions: 4096 });
    expect(describeModel(c)).toMatch(/^phi3, 32 layers, hidden 3072, 32 heads of 96, MLP 8192 \(SwiGLU\).*sliding window 2047/);
    roundTrip(c);
    // The fused tensors, as Phi-3 checkpoints name and shape them.
    const names = expectedParameters(c).filter((p) => p.name.startsWith('model.layers.0.'));
    expect(names).toEqual([
      { name: 'model.layers.0.input_layernorm.weight', shape: [3072] },
      { name: 'model.layers.0.self_attn.qkv_proj.weight', shape: [3 * 3072, 3072] },
      { name: 'model.layers.0.self_attn.o_proj.weight', shape: [3072, 3072] },
      { name: 'model.layers.0.mlp.gate_up_proj.weight', shape: [2 * 8192, 3072] },
      { name: 'model.layers.0.mlp.down_proj.weight', shape: [3072, 8192] },
      { name: 'model.layers.0.post_attention_layernorm.weight', shape: [3072] },
    ]);
  });

  it('Phi3Config\'s defaults where keys are absent; partial rotary (Phi-4-mini\'s 0.75) and GQA round-trip', () => {
    const { pad_token_id: _p, eos_token_id: _e, bos_token_id: _b, rms_norm_eps: _r, sliding_window: _s, num_key_value_heads: _k,
      max_position_embeddings: _m, ...bare } = mini4k;
    const c = parseModelConfig(bare, 'bare.json');
    expect(c).toMatchObject({ embedPaddingIdx: 32000, eosTokenId: 32000, bosTokenId: 1, normEps: 1e-5, slidingWindow: null, numKvHeads: 32, maxPositions: 4096 });
    const p = parseModelConfig({ ...mini4k, partial_rotary_factor: 0.75, num_key_value_heads: 8, tie_word_embeddings: true }, 'p.json');
    expect([p.rotaryDim, p.numKvHeads, p.tiedEmbeddings]).toEqual([72, 8, true]);
    roundTrip(p);
    expect(expectedParameters(p).find((s) => s.name.endsWith('0.self_attn.qkv_proj.weight'))!.shape).toEqual([3072 + 2 * 8 * 96, 3072]);
  });

  it('refuses longrope (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini), other rope types, biases, and a default pad id outside the vocabulary', () => {
    const factors = Array.from({ length: 48 }, () => 1.0);
    const longrope = { ...mini4k, max_position_embeddings: 131072, rope_scaling: { type: 'longrope', short_factor: factors, long_factor: factors } };
    expect(() => parseModelConfig(longrope, 'l.json')).toThrow(/l\.json.*rope_scaling\.rope_type.*"longrope" is not supported.*longrope is Phi-3-mini-128k's, Phi-3\.5-mini's and Phi-4-mini's/s);
    expect(() => parseModelConfig({ ...mini4k, rope_scaling: { type: 'linear', factor: 2 } }, 'r.json'))
      .toThrow(/r\.json.*rope_scaling.*Phi-3 takes the default rope or longrope \(transformers refuses the linear rope for it\)/s);
    expect(() => parseModelConfig({ ...mini4k, attention_bias: true }, 'b.json')).toThrow(/b\.json.*attention_bias.*Phi-3's projections have no biases/s);
    expect(() => parseModelConfig({ ...mini4k, mlp_bias: false }, 'm.json')).toThrow(/m\.json.*mlp_bias.*not a known phi3 setting/s);
    const { pad_token_id: _p, ...noPad } = mini4k;
    expect(() => parseModelConfig({ ...noPad, vocab_size: 512 }, 'v.json')).toThrow(/v\.json.*pad_token_id.*= 32000 \(absent: phi3's default\) is outside the vocabulary \(512\)/s);
  });

  it('names the layout where split and fused weights meet the other config', () => {
    const mistral = JSON.parse(readFileSync(join(fixture('mistral-tiny'), 'config.json'), 'utf8')) as Record<string, unknown>;
    const phi3 = parseModelConfig(phi3Config(mistral), 'phi3.json');
    const asMistral = parseModelConfig(mistral, 'mistral.json');
    expect(() => checkCheckpointNames(phi3, expectedParameters(asMistral), 'ckpt'))
      .toThrow(/unexpected[\s\S]*self_attn\.q_proj\.weight \[64, 64\] \(Phi-3 keeps q\/k\/v_proj as one qkv_proj and gate\/up_proj as one gate_up_proj\)/);
    expect(() => checkCheckpointNames(asMistral, expectedParameters(phi3), 'ckpt'))
      .toThrow(/unexpected[\s\S]*self_attn\.qkv_proj\.weight \[128, 64\] \(Phi-3's fused projections: its config says model_type phi3\)/);
  });

  it('srk init\'s preset writes a config that reads back the same', () => {
    const c = presetConfig('phi3', 'tiny');
    roundTrip(c);
    expect(toHfConfigJson(c)).toMatchObject({ architectures: ['Phi3ForCausalLM'], model_type: 'phi3', rope_scaling: null });
  });
});

describe('srk train on Phi-3', () => {
  const tmp = tempDir('srk-phi3-');

  it('trains as the same weights in Mistral\'s layout do, and saves Phi-3\'s fused tensors and config', async () => {
    const dir = await makePhi3Fixture(mkdtempSync(join(tmp, 'fx-')));
    const run = async (model: string, out: string) => {
      const r = await train(['--model', join(model), '--ref-model', `${model}_ref`, '--data', join(model, 'pairs.jsonl'), '--no-eos',
        '--loss', 'sr-dpo', '--batch-size', '3', '--lr', '1e-3', '--optimizer', 'adamw', '--max-steps', '2', '--out', join(tmp, out)]);
      expect(r.code, describeRun(r)).toBe(0);
      return r;
    };
    const p = await run(join(dir, 'phi3-tiny'), 'phi3');
    await run(fixture('mistral-tiny'), 'mistral');
    expect(p.stderr).toMatch(/policy .*phi3-tiny: phi3, 2 layers, hidden 64, 4 query \/ 2 key-value heads of 16/);
    const values = (out: string) => readMetrics(join(tmp, out)).map((m) => [m.loss, m.margin, m.grad_norm]);
    expect(values('phi3')).toEqual(values('mistral'));
    const saved = join(tmp, 'phi3', 'checkpoint');
    expect(JSON.parse(readFileSync(join(saved, 'config.json'), 'utf8'))).toMatchObject({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'] });
    const st = await openSafetensors(join(saved, 'model.safetensors'));
    const other = await openSafetensors(join(tmp, 'mistral', 'checkpoint', 'model.safetensors'));
    try {
      expect(st.header['model.layers.1.self_attn.qkv_proj.weight']!.shape).toEqual([128, 64]);
      expect(st.names.filter((n) => /[qkv]_proj|gate_proj|up_proj\b/.test(n) && !/qkv_proj|gate_up_proj/.test(n))).toEqual([]);
      // The trained fused tensors are the trained split ones, row blocks in order.
      const fused = await st.readTensor('model.layers.1.mlp.gate_up_proj.weight');
      const parts = [...await other.readTensor('model.layers.1.mlp.gate_proj.weight'), ...await other.readTensor('model.layers.1.mlp.up_proj.weight')];
      expect([...fused]).toEqual(parts);
    } finally { await st.close(); await other.close(); }
  });
});
