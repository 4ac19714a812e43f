// Phi-3 (model_type phi3, Phi3ForCausalLM): its config.json as the hub has it, Phi3Config's defaults, LongRoPE (its short
// factors and attention factor; positions past its original context refused), what srk refuses (other rope types, biases), the checkpoint-name notes between the fused and the split layouts, and a training run
// on the derived fixture (phi3-fixture.ts: mistral-tiny's weights fused as Phi-3 stores them) against mistral-tiny's own,
// saved in Phi-3's layout. The computation itself is checked against mistral-tiny's float64 numbers in hf-fixtures.test.ts.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeModel, parseModelConfig, toHfConfigJson, type ModelConfig } from '../../src/model/config.js';
import { layerRope, positionLimit, scaledInvFreq } from '../../src/model/rope.js';
import { checkCheckpointNames, expectedParameters } from '../../src/model/tensor-names.js';
import { presetConfig } from '../../src/init/presets.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { makePhi3Fixture, phi3Config } from '../helpers/phi3-fixture.js';
import { describeRun, fixture, readMetrics, root, srk, tempDir, train } from '../train/helpers.js';

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

  it('LongRoPE (Phi-3-mini-128k, Phi-3.5-mini, Phi-4-mini): the short factors, the attention factor from max / original positions, the limit', () => {
    const short = Array.from({ length: 48 }, (_, j) => 1 + j / 16); const long = short.map((v) => v * 3);
    // Phi-3.5-mini-instruct's spelling: "type": "longrope", 131072 positions over an original 4096, no factor or attention_factor.
    const phi35 = { ...mini4k, max_position_embeddings: 131072, sliding_window: 262144, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long } };
    const c = parseModelConfig(phi35, 'p35.json');
    expect(c.ropeScaling).toEqual({ type: 'longrope', shortFactor: short, longFactor: long, originalMaxPositions: 4096,
      attentionFactor: Math.sqrt(1 + Math.log(32) / Math.log(4096)) });
    expect(c.maxPositions).toBe(131072);
    expect(positionLimit(c)).toEqual({ max: 4096, name: expect.stringMatching(/^original_max_position_embeddings 4096 \(longrope's long_factor, for longer sequences, is not implemented\)$/) });
    expect(layerRope(c, 0).scale).toBe(Math.fround(1.1902380714238083));
    expect(Array.from(layerRope(c, 0).invFreq!)).toEqual(Array.from(scaledInvFreq(96, 10000, c.ropeScaling)!));
    expect(describeModel(c)).toMatch(/longrope \(short_factor up to position 4096, attention factor 1\.190238\)/);
    roundTrip(c);
    // su and yarn: Phi3Config's old names for it; transformers 5's rope_parameters; factor and attention_factor as given.
    for (const type of ['su', 'yarn']) expect(parseModelConfig({ ...phi35, rope_scaling: { type, short_factor: short, long_factor: long } }, 'o.json').ropeScaling).toEqual(c.ropeScaling);
    const given = parseModelConfig({ ...phi35, rope_scaling: null, rope_parameters: { rope_type: 'longrope', rope_theta: 10000, short_factor: short, long_factor: long, factor: 8, attention_factor: 1.05 } }, 'g.json');
    expect(given.ropeScaling).toMatchObject({ attentionFactor: 1.05 });
    const factor8 = parseModelConfig({ ...phi35, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long, factor: 8 } }, 'f.json');
    expect(factor8.ropeScaling).toMatchObject({ attentionFactor: Math.sqrt(1 + Math.log(8) / Math.log(4096)) });
    // Phi-4-mini-instruct's keys (the remote code's full_attn_mod, interpolate_factor, lm_head_bias and mlp_bias among them; the
    // factor lists here are stand-ins of the right length): partial rotary, 48 factors for 96 of 128 channels, tied, pad 199999.
    const phi4 = { ...phi35, bos_token_id: 199999, eos_token_id: 199999, pad_token_id: 199999, full_attn_mod: 1, interpolate_factor: 1,
      lm_head_bias: false, mlp_bias: false, hidden_size: 3072, num_attention_heads: 24, num_key_value_heads: 8, partial_rotary_factor: 0.75,
      tie_word_embeddings: true, vocab_size: 200064 };
    expect(parseModelConfig(phi4, 'p4.json')).toMatchObject({ rotaryDim: 96, headDim: 128, tiedEmbeddings: true, embedPaddingIdx: 199999,
      ropeScaling: { attentionFactor: Math.sqrt(1 + Math.log(32) / Math.log(4096)) } });
    expect(() => parseModelConfig({ ...phi4, partial_rotary_factor: 0.5 }, 'p4.json')).toThrow(/p4\.json.*rope_scaling\.short_factor.*has 48 entries; the 64 rotated channels of a head take 32/s);
    expect(() => parseModelConfig({ ...phi35, rope_scaling: { type: 'longrope', short_factor: short } }, 'm.json')).toThrow(/m\.json.*rope_scaling\.long_factor.*is required for rope_type longrope/s);
    expect(() => parseModelConfig({ ...phi35, rope_scaling: { type: 'longrope', short_factor: short, long_factor: [1, 'x'] } }, 'm.json')).toThrow(/long_factor.*must be a list of positive numbers/s);
    expect(() => parseModelConfig({ ...phi35, rope_scaling: { type: 'longrope', short_factor: short, long_factor: long, original_max_position_embeddings: 8192 } }, 'm.json'))
      .toThrow(/original_max_position_embeddings.*= 8192 contradicts the config's original_max_position_embeddings 4096/s);
    // Another architecture's longrope is not read.
    const llama = { architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 64, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, intermediate_size: 64,
      rope_scaling: { rope_type: 'longrope', short_factor: [1], long_factor: [1] } };
    expect(() => parseModelConfig(llama, 'l.json')).toThrow(/"longrope" is not supported.*longrope is read for Phi-3 alone/s);
  });

  it('refuses other rope types, biases, and a default pad id outside the vocabulary', () => {
    expect(() => parseModelConfig({ ...mini4k, rope_scaling: { type: 'linear', factor: 2 } }, 'r.json'))
      .toThrow(/r\.json.*rope_scaling.*Phi-3 takes the default rope or longrope \(transformers refuses the linear rope for it\)/s);
    expect(() => parseModelConfig({ ...mini4k, attention_bias: true }, 'b.json')).toThrow(/b\.json.*attention_bias.*Phi-3's projections have no biases/s);
    expect(() => parseModelConfig({ ...mini4k, mlp_bias: true }, 'm.json')).toThrow(/m\.json.*mlp_bias.*Phi-3's MLP has no biases/s);
    expect(() => parseModelConfig({ ...mini4k, lm_head_bias: true }, 'm.json')).toThrow(/m\.json.*lm_head_bias.*Phi-3's output layer has no bias/s);
    expect(() => parseModelConfig({ ...mini4k, full_attn_mod: 2 }, 'm.json')).toThrow(/m\.json.*full_attn_mod.*= 2 is not supported.*remote code/s);
    expect(() => parseModelConfig({ ...mini4k, q_proj_bias: false }, 'm.json')).toThrow(/m\.json.*q_proj_bias.*not a known phi3 setting/s);
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

describe('srk logprobs on Phi-3 with LongRoPE', () => {
  const tmp = tempDir('srk-phi3-lr-');

  it('factors of 1 and an attention factor of 1 score as the default rope; a sequence past the original context is refused by name', async () => {
    const dir = await makePhi3Fixture(mkdtempSync(join(tmp, 'fx-')));
    const model = join(dir, 'phi3-tiny');
    const cfgFile = join(model, 'config.json');
    const plain = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    const logprobs = () => spawnSync(process.execPath, [srk, 'logprobs', '--model', model, '--data', join(model, 'pairs.jsonl'), '--no-eos', '--augmented'],
      { cwd: root, encoding: 'utf8', timeout: 120_000 });
    const before = logprobs();
    expect(before.status, before.stderr).toBe(0);
    const ones = Array.from({ length: 8 }, () => 1);
    writeFileSync(cfgFile, JSON.stringify({ ...plain, max_position_embeddings: 65536, original_max_position_embeddings: 4096,
      rope_scaling: { type: 'longrope', short_factor: ones, long_factor: ones.map(() => 4), attention_factor: 1.0 } }));
    const same = logprobs();
    expect(same.status, same.stderr).toBe(0);
    expect(same.stdout).toBe(before.stdout);
    // What was read, in the log (as srk train, eval and generate say it).
    expect(same.stderr).toMatch(/model .*phi3-tiny: phi3, 2 layers, hidden 64, 4 query \/ 2 key-value heads of 16, .*longrope \(short_factor up to position 4096, attention factor 1\)\n/);
    // The original context below these sequences (max_position_embeddings still above them).
    writeFileSync(cfgFile, JSON.stringify({ ...plain, max_position_embeddings: 65536, original_max_position_embeddings: 24,
      rope_scaling: { type: 'longrope', short_factor: ones, long_factor: ones } }));
    const cut = logprobs();
    expect(cut.status).toBe(1);
    expect(cut.stderr).toMatch(/pairs\.jsonl:1: .* tokens, more than the model's original_max_position_embeddings 24 \(longrope's long_factor, for longer sequences, is not implemented\); lower --max-length/);
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
    const savedCfg = JSON.parse(readFileSync(join(saved, 'config.json'), 'utf8'));
    expect(savedCfg).toMatchObject({ model_type: 'phi3', architectures: ['Phi3ForCausalLM'], resid_pdrop: 0 });
    // The hub's auto_map names remote code the checkpoint does not hold (transformers would fail under trust_remote_code).
    expect(savedCfg).not.toHaveProperty('auto_map');
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
