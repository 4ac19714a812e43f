// A Phi-3 golden fixture derived from the HF mistral-tiny one: Phi3ForCausalLM computes Mistral's function (transformers
// 5.17's modeling_phi3.py: the same RMSNorm, rotary, attention, SwiGLU and residuals; only dropout sits elsewhere) with
// q/k/v_proj stored as one qkv_proj ([q; k; v] rows) and gate/up_proj as one gate_up_proj ([gate; up] rows, the first
// half through the activation: `gate, up = gate_up_proj(x).chunk(2)`). So mistral-tiny's float64 log-probs, losses and
// gradients (fused the same way) are a Phi-3 model's. Written at test time into a temp directory: the fixture layout of
// test/fixtures/hf (NAME and NAME_ref), nothing committed twice.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openSafetensors, writeSafetensors, type TensorToWrite } from '../../src/model/safetensors.js';
import { FIXTURES_HF } from './models.js';

/** microsoft/Phi-3-mini-4k-instruct's config.json spelling (auto_map, dropout rates, original_max_position_embeddings) over mistral-tiny's shapes. */
export function phi3Config(mistral: Record<string, unknown>): Record<string, unknown> {
  return {
    _name_or_path: 'Phi-3-mini-4k-instruct', architectures: ['Phi3ForCausalLM'], attention_dropout: 0.0,
    auto_map: { AutoConfig: 'configuration_phi3.Phi3Config', AutoModelForCausalLM: 'modeling_phi3.Phi3ForCausalLM' },
    bos_token_id: mistral.bos_token_id, embd_pdrop: 0.0, eos_token_id: mistral.eos_token_id, hidden_act: 'silu',
    hidden_size: mistral.hidden_size, initializer_range: 0.02, intermediate_size: mistral.intermediate_size,
    max_position_embeddings: mistral.max_position_embeddings, model_type: 'phi3', num_attention_heads: mistral.num_attention_heads,
    num_hidden_layers: mistral.num_hidden_layers, num_key_value_heads: mistral.num_key_value_heads,
    original_max_position_embeddings: mistral.max_position_embeddings, pad_token_id: null, resid_pdrop: 0.0,
    rms_norm_eps: mistral.rms_norm_eps, rope_scaling: null, rope_theta: mistral.rope_theta, sliding_window: mistral.sliding_window ?? null,
    tie_word_embeddings: mistral.tie_word_embeddings, torch_dtype: 'float32', transformers_version: '4.40.2', use_cache: true,
    vocab_size: mistral.vocab_size, attention_bias: false,
  };
}

/** A safetensors file's tensors with each layer's q/k/v_proj and gate/up_proj weights fused as Phi-3 stores them. */
export async function fuseToPhi3(from: string, to: string): Promise<void> {
  const f = await openSafetensors(from);
  try {
    const out: TensorToWrite[] = [];
    const fused = (parts: string[], name: string) => {
      const infos = parts.map((p) => f.header[p]!);
      const rows = infos.reduce((n, t) => n + t.shape[0]!, 0);
      out.push({ name, dtype: infos[0]!.dtype, shape: [rows, ...infos[0]!.shape.slice(1)], data: async () => {
        const raws = await Promise.all(parts.map((p) => f.readRaw(p)));
        const all = new Uint8Array(raws.reduce((n, r) => n + r.byteLength, 0));
        let at = 0; for (const r of raws) { all.set(r, at); at += r.byteLength; }
        return all;
      } });
    };
    for (const name of f.names) {
      const m = /^(model\.layers\.\d+\.)(self_attn\.([qkv])_proj|mlp\.(gate|up)_proj)\.weight$/.exec(name);
      if (!m) { out.push({ name, dtype: f.header[name]!.dtype, shape: [...f.header[name]!.shape], data: () => f.readRaw(name) }); continue; }
      // Written once, at the first part's place.
      if (m[3] === 'q') fused(['q', 'k', 'v'].map((x) => `${m[1]}self_attn.${x}_proj.weight`), `${m[1]}self_attn.qkv_proj.weight`);
      if (m[4] === 'gate') fused(['gate', 'up'].map((x) => `${m[1]}mlp.${x}_proj.weight`), `${m[1]}mlp.gate_up_proj.weight`);
    }
    await writeSafetensors(to, out, { format: 'pt' });
  } finally {
    await f.close();
  }
}

/** Writes phi3-tiny and phi3-tiny_ref under `dir` from mistral-tiny and mistral-tiny_ref; returns `dir`. */
export async function makePhi3Fixture(dir: string): Promise<string> {
  for (const suffix of ['', '_ref']) {
    const src = join(FIXTURES_HF, `mistral-tiny${suffix}`); const dst = join(dir, `phi3-tiny${suffix}`);
    mkdirSync(dst, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dst, 'config.json'), JSON.stringify(phi3Config(cfg), null, 2));
    for (const file of ['tokenizer.json', 'pairs.jsonl', 'expected.json', 'generation_config.json']) {
      if (existsSync(join(src, file))) copyFileSync(join(src, file), join(dst, file));
    }
    for (const file of ['model.safetensors', ...['dpo', 'ipo', 'sr-dpo', 'sr-ipo'].map((l) => `grads_${l}.safetensors`)]) {
      if (existsSync(join(src, file))) await fuseToPhi3(join(src, file), join(dst, file));
    }
  }
  return dir;
}
