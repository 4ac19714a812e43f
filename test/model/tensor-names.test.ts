import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModelConfig, parseModelConfig } from '../../src/model/config.js';
import { openSafetensors } from '../../src/model/safetensors.js';
import { checkCheckpointNames, compareCheckpointNames, expectedParameters, knownNonParameters } from '../../src/model/tensor-names.js';
import { FIXTURES, MODELS } from './paths.js';

describe('expected tensor names', () => {
  for (const name of MODELS) {
    it(`${name}: the expected set equals the checkpoint's names and shapes exactly`, async () => {
      const cfg = await loadModelConfig(path.join(FIXTURES, name));
      const f = await openSafetensors(path.join(FIXTURES, name, 'model.safetensors'));
      const expected = expectedParameters(cfg);
      expect(new Set(expected.map((p) => p.name)).size).toBe(expected.length);
      expect(Object.fromEntries(expected.map((p) => [p.name, p.shape]))).toEqual(
        Object.fromEntries(f.names.map((n) => [n, f.header[n]!.shape])));
      const r = checkCheckpointNames(cfg, f.header, f.path);
      expect(r).toMatchObject({ ok: true, missing: [], unexpected: [], wrongShape: [], ignored: [] });
      await f.close();
    });
  }

  it('stable order: embedding, layers in order, final norm, output layer', async () => {
    const neox = expectedParameters(await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'))).map((p) => p.name);
    expect(neox[0]).toBe('gpt_neox.embed_in.weight');
    expect(neox.slice(-3)).toEqual(['gpt_neox.final_layer_norm.weight', 'gpt_neox.final_layer_norm.bias', 'embed_out.weight']);
    const layerOf = neox.map((n) => Number(/layers\.(\d+)\./.exec(n)?.[1] ?? -1)).filter((l) => l >= 0);
    expect(layerOf).toEqual([...layerOf].sort((a, b) => a - b)); // layer 0's tensors, then layer 1's
    const llama = expectedParameters(await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'))).map((p) => p.name);
    expect(llama[0]).toBe('model.embed_tokens.weight');
    expect(llama.at(-1)).toBe('model.norm.weight'); // tied: no lm_head.weight
    expect(llama.slice(1, 10)).toEqual([
      'model.layers.0.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight', 'model.layers.0.self_attn.k_proj.weight',
      'model.layers.0.self_attn.v_proj.weight', 'model.layers.0.self_attn.o_proj.weight', 'model.layers.0.mlp.gate_proj.weight',
      'model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'model.layers.0.post_attention_layernorm.weight',
    ]);
  });

  it('biases follow attentionBias / mlpBias, GQA shapes follow numKvHeads and headDim', async () => {
    const cfg = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    const specs = Object.fromEntries(expectedParameters({ ...cfg, arch: 'llama', attentionBias: true, mlpBias: true, headDim: 32 }).map((p) => [p.name, p.shape]));
    expect(specs['model.layers.0.self_attn.q_proj.weight']).toEqual([128, 64]); // 4 heads * 32
    expect(specs['model.layers.0.self_attn.k_proj.weight']).toEqual([64, 64]);  // 2 kv heads * 32
    expect(specs['model.layers.0.self_attn.o_proj.weight']).toEqual([64, 128]);
    expect(specs['model.layers.0.self_attn.o_proj.bias']).toEqual([64]);
    expect(specs['model.layers.1.mlp.down_proj.bias']).toEqual([64]);
    const neox = await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'));
    const noBias = expectedParameters({ ...neox, attentionBias: false }).map((p) => p.name);
    expect(noBias).not.toContain('gpt_neox.layers.0.attention.dense.bias');
    expect(noBias).toContain('gpt_neox.layers.0.mlp.dense_h_to_4h.bias');
  });

  it('known non-parameters are skipped, not reported', async () => {
    expect(knownNonParameters('gpt_neox.layers.3.attention.bias')).toBe(true);
    expect(knownNonParameters('gpt_neox.layers.3.attention.masked_bias')).toBe(true);
    expect(knownNonParameters('gpt_neox.layers.3.attention.rotary_emb.inv_freq')).toBe(true);
    expect(knownNonParameters('model.layers.0.self_attn.rotary_emb.inv_freq')).toBe(true);
    expect(knownNonParameters('gpt_neox.layers.3.attention.query_key_value.bias')).toBe(false);
    const cfg = await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'));
    const tensors = [...expectedParameters(cfg), { name: 'gpt_neox.layers.0.attention.bias', shape: [1, 1, 2048, 2048] }, { name: 'gpt_neox.layers.1.attention.masked_bias', shape: [] }];
    expect(compareCheckpointNames(cfg, tensors)).toMatchObject({ ok: true, ignored: ['gpt_neox.layers.0.attention.bias', 'gpt_neox.layers.1.attention.masked_bias'] });
  });

  it('one error lists every missing, unexpected and wrong-shape tensor', async () => {
    const cfg = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    const tensors = expectedParameters(cfg)
      .filter((p) => p.name !== 'model.layers.1.mlp.up_proj.weight' && p.name !== 'model.norm.weight')
      .map((p) => (p.name === 'model.layers.0.self_attn.k_proj.weight' ? { ...p, shape: [64, 64] } : p));
    tensors.push({ name: 'model.layers.2.input_layernorm.weight', shape: [64] });
    let msg = '';
    try { checkCheckpointNames(cfg, tensors, '/ckpt/model.safetensors'); } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain('/ckpt/model.safetensors does not match the mistral config (2 layers, hidden 64, 4 heads of 16, vocab 384)');
    expect(msg).toContain('missing (2):\n    model.layers.1.mlp.up_proj.weight [160, 64]\n    model.norm.weight [64]');
    expect(msg).toContain('unexpected (1):\n    model.layers.2.input_layernorm.weight [64]');
    expect(msg).toContain('wrong shape (1):\n    model.layers.0.self_attn.k_proj.weight: expected [32, 64], found [64, 64]');
    const r = compareCheckpointNames(cfg, tensors);
    expect([r.ok, r.missing.length, r.unexpected.length, r.wrongShape.length]).toEqual([false, 2, 1, 1]);
  });

  it('a Qwen3 config without head_dim says its default head size, which is not hidden / heads, beside the shapes it gives', async () => {
    const cfg = parseModelConfig({ model_type: 'qwen3', vocab_size: 64, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4,
      num_key_value_heads: 2, intermediate_size: 96 }, 'q/config.json');
    const files = expectedParameters({ ...cfg, headDim: 16, rotaryDim: 16 }); // the weights' own head size (a lost head_dim: 16)
    expect(() => checkCheckpointNames(cfg, files, 'q/model.safetensors'))
      .toThrow(/does not match the qwen3 config \(1 layers, hidden 64, 4 heads of 128 \(config\.json has no head_dim: qwen3's default, not hidden \/ heads\), vocab 64\)/);
  });

  it('a given head_dim is not called a default; Qwen3\'s MLP biases are named as such', () => {
    const cfg = parseModelConfig({ model_type: 'qwen3', vocab_size: 64, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4,
      num_key_value_heads: 2, intermediate_size: 96, head_dim: 32 }, 'q/config.json');
    let msg = '';
    try { checkCheckpointNames(cfg, [...expectedParameters(cfg), { name: 'model.layers.0.mlp.down_proj.bias', shape: [64] }]); } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain('(1 layers, hidden 64, 4 heads of 32, vocab 64)');
    expect(msg).toContain("model.layers.0.mlp.down_proj.bias [64] (Qwen3's MLP has no biases)");
  });

  it('a Gemma 3 checkpoint under a Gemma config: its extra norms say which architecture has them', () => {
    const base = { vocab_size: 64, hidden_size: 64, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96, head_dim: 16 };
    const gemma3 = parseModelConfig({ model_type: 'gemma3_text', ...base }, 'g3/config.json');
    const gemma = parseModelConfig({ model_type: 'gemma', ...base }, 'g/config.json');
    let msg = '';
    try { checkCheckpointNames(gemma, expectedParameters(gemma3), 'g/model.safetensors'); } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain("model.layers.0.pre_feedforward_layernorm.weight [64] (Gemma 2's or 3's: their configs say model_type gemma2 or gemma3_text)");
    expect(msg).toContain("model.layers.0.self_attn.q_norm.weight [16] (head norms: Qwen3's or Gemma 3's)");
    expect(() => checkCheckpointNames(gemma3, expectedParameters(gemma3))).not.toThrow();
    // The other way round: Gemma's weights under a Gemma 3 config lack its norms, said once on the list's line.
    try { checkCheckpointNames(gemma3, expectedParameters(gemma), 'g3/model.safetensors'); msg = ''; } catch (e) { msg = (e as Error).message; }
    expect(msg).toMatch(/missing \(4\) \(weights without Gemma 3's q\/k and pre\/post-feedforward norms: Gemma's, whose config says model_type gemma\?\):/);
    // (Not said where the projections are missing too: another model altogether.)
    try { checkCheckpointNames(gemma3, [], 'x'); msg = ''; } catch (e) { msg = (e as Error).message; }
    expect(msg).not.toMatch(/Gemma's, whose config/);
  });

  it('a tied config with an output layer in the file says why it is unexpected', async () => {
    const cfg = await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'));
    const tensors = [...expectedParameters(cfg), { name: 'lm_head.weight', shape: [384, 48] }];
    expect(() => checkCheckpointNames(cfg, tensors)).toThrow(/lm_head.weight \[384, 48\] \(config ties embeddings\)/);
  });

  it('a bias the config leaves out is named with the config flag that adds it', async () => {
    const llama = await loadModelConfig(path.join(FIXTURES, 'llama-tiny-tied'));
    const bias = (name: string) => ({ name, shape: [48] });
    const withBiases = [...expectedParameters(llama), bias('model.layers.0.self_attn.o_proj.bias'), bias('model.layers.0.mlp.down_proj.bias')];
    let msg = '';
    try { checkCheckpointNames(llama, withBiases); } catch (e) { msg = (e as Error).message; }
    expect(msg).toContain('model.layers.0.self_attn.o_proj.bias [48] (config.json\'s attention_bias is false or absent)');
    expect(msg).toContain('model.layers.0.mlp.down_proj.bias [48] (config.json\'s mlp_bias is false or absent)');
    const mistral = await loadModelConfig(path.join(FIXTURES, 'mistral-tiny'));
    expect(() => checkCheckpointNames(mistral, [...expectedParameters(mistral), bias('model.layers.1.self_attn.q_proj.bias')]))
      .toThrow(/q_proj\.bias \[48\] \(Mistral layers have no biases\)/);
    expect(() => checkCheckpointNames({ ...mistral, arch: 'qwen2', attentionBias: true }, [...expectedParameters({ ...mistral, arch: 'qwen2', attentionBias: true }), bias('model.layers.0.self_attn.o_proj.bias')]))
      .toThrow(/o_proj\.bias \[48\] \(Qwen2 has biases on q\/k\/v_proj alone\)/);
    const neox = await loadModelConfig(path.join(FIXTURES, 'gpt-neox-tiny'));
    const noBias = { ...neox, attentionBias: false };
    expect(() => checkCheckpointNames(noBias, [...expectedParameters(noBias), bias('gpt_neox.layers.0.attention.dense.bias')]))
      .toThrow(/attention\.dense\.bias \[48\] \(config\.json's attention_bias is false\)/);
  });
});
