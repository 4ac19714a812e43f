// The parameter tensors a checkpoint of a given ModelConfig must hold: Hugging Face names and
// PyTorch shapes (Linear weights are [out_features, in_features]), and the check of a
// checkpoint's names against them.
import type { ModelConfig } from './config.js';
import { hasHeadNorms, hasSandwichNorms, isGemma } from './context.js';

export interface ParamSpec {
  name: string;
  shape: number[];
}

/**
 * Expected parameters in a stable order: embedding, then each layer, then the final norm, then
 * the output layer unless tied to the embedding.
 */
export function expectedParameters(cfg: ModelConfig): ParamSpec[] {
  const D = cfg.hiddenSize; const I = cfg.intermediateSize; const V = cfg.vocabSize;
  const out: ParamSpec[] = [];
  const add = (name: string, ...shape: number[]) => out.push({ name, shape });
  if (cfg.arch === 'gpt-neox') {
    add('gpt_neox.embed_in.weight', V, D);
    for (let i = 0; i < cfg.numLayers; i++) {
      const p = `gpt_neox.layers.${i}.`;
      add(`${p}input_layernorm.weight`, D); add(`${p}input_layernorm.bias`, D);
      add(`${p}post_attention_layernorm.weight`, D); add(`${p}post_attention_layernorm.bias`, D);
      // Fused QKV rows are per head [q_h; k_h; v_h] (layout [heads, 3, headDim, D]).
      add(`${p}attention.query_key_value.weight`, 3 * D, D);
      if (cfg.attentionBias) add(`${p}attention.query_key_value.bias`, 3 * D);
      add(`${p}attention.dense.weight`, D, D);
      if (cfg.attentionBias) add(`${p}attention.dense.bias`, D);
      add(`${p}mlp.dense_h_to_4h.weight`, I, D); add(`${p}mlp.dense_h_to_4h.bias`, I);
      add(`${p}mlp.dense_4h_to_h.weight`, D, I); add(`${p}mlp.dense_4h_to_h.bias`, D);
    }
    add('gpt_neox.final_layer_norm.weight', D); add('gpt_neox.final_layer_norm.bias', D);
    if (!cfg.tiedEmbeddings) add('embed_out.weight', V, D);
    return out;
  }
  const Q = cfg.numHeads * cfg.headDim; const KV = cfg.numKvHeads * cfg.headDim;
  add('model.embed_tokens.weight', V, D);
  for (let i = 0; i < cfg.numLayers; i++) {
    const p = `model.layers.${i}.`;
    add(`${p}input_layernorm.weight`, D);
    if (cfg.arch === 'phi3') {
      // Phi-3 stores q/k/v_proj as one qkv_proj (their rows one after the other: [q; k; v]) and gate/up_proj as one
      // gate_up_proj ([gate; up]), all without biases; llama.ts reads each part as a view of its rows (fusedPart).
      add(`${p}self_attn.qkv_proj.weight`, Q + 2 * KV, D); add(`${p}self_attn.o_proj.weight`, D, Q);
      add(`${p}mlp.gate_up_proj.weight`, 2 * I, D); add(`${p}mlp.down_proj.weight`, D, I);
      add(`${p}post_attention_layernorm.weight`, D);
      continue;
    }
    // Llama's attention_bias puts a bias on all four projections (o_proj included); Qwen2 has them on
    // q/k/v_proj only.
    for (const [proj, rows, cols] of [['q_proj', Q, D], ['k_proj', KV, D], ['v_proj', KV, D], ['o_proj', D, Q]] as const) {
      add(`${p}self_attn.${proj}.weight`, rows, cols);
      if (cfg.attentionBias && !(cfg.arch === 'qwen2' && proj === 'o_proj')) add(`${p}self_attn.${proj}.bias`, rows);
    }
    // Qwen3, Gemma 3: an RMSNorm gain over each query head's and each key head's channels (one per layer, shared by the heads).
    if (hasHeadNorms(cfg)) { add(`${p}self_attn.q_norm.weight`, cfg.headDim); add(`${p}self_attn.k_norm.weight`, cfg.headDim); }
    for (const [proj, rows, cols] of [['gate_proj', I, D], ['up_proj', I, D], ['down_proj', D, I]] as const) {
      add(`${p}mlp.${proj}.weight`, rows, cols);
      if (cfg.mlpBias) add(`${p}mlp.${proj}.bias`, rows);
    }
    add(`${p}post_attention_layernorm.weight`, D);
    // Gemma 3: the MLP's input norm, and the norm of its output (post_attention_layernorm normalizes the attention's).
    if (hasSandwichNorms(cfg)) { add(`${p}pre_feedforward_layernorm.weight`, D); add(`${p}post_feedforward_layernorm.weight`, D); }
  }
  add('model.norm.weight', D);
  if (!cfg.tiedEmbeddings) add('lm_head.weight', V, D);
  return out;
}

/**
 * Buffers that older checkpoints saved next to the parameters and that loaders skip:
 * GPT-NeoX's causal-mask buffers (attention.bias, attention.masked_bias) and rotary inv_freq
 * (per layer, or model-level in newer code), Llama/Mistral's rotary inv_freq.
 */
const NON_PARAMETERS = [
  /^gpt_neox\.layers\.\d+\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$/,
  /^gpt_neox\.rotary_emb\.inv_freq$/,
  /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/,
  /^model\.rotary_emb\.inv_freq$/,
];

/**
 * Other names a checkpoint may hold a parameter under, which transformers loads as that parameter: GPT-NeoX's
 * output layer as transformers 5 names it in memory (lm_head.weight: a state_dict saved without
 * save_pretrained; save_pretrained writes embed_out.weight). Taken only where the file lacks the usual name.
 */
export function alternativeNames(cfg: Pick<ModelConfig, 'arch'>): Record<string, string> {
  return cfg.arch === 'gpt-neox' ? { 'embed_out.weight': 'lm_head.weight' } : {};
}

export function knownNonParameters(name: string): boolean {
  return NON_PARAMETERS.some((re) => re.test(name));
}

export interface NameCheck {
  missing: ParamSpec[];
  unexpected: ParamSpec[];
  wrongShape: { name: string; expected: number[]; actual: number[] }[];
  /** Known non-parameter buffers found and skipped. */
  ignored: string[];
  ok: boolean;
}

type Found = { name: string; shape: readonly number[] }[] | Record<string, { shape: readonly number[] }>;

/** Compares a checkpoint's tensors (name + shape, e.g. a safetensors header) with `cfg`. */
export function compareCheckpointNames(cfg: ModelConfig, tensors: Found): NameCheck {
  const found = Array.isArray(tensors) ? tensors : Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape }));
  const have = new Map(found.map((t) => [t.name, [...t.shape]]));
  const expected = expectedParameters(cfg);
  const want = new Set(expected.map((p) => p.name));
  const missing = expected.filter((p) => !have.has(p.name));
  const wrongShape = expected.flatMap((p) => {
    const actual = have.get(p.name);
    return actual && actual.join(',') !== p.shape.join(',') ? [{ name: p.name, expected: p.shape, actual }] : [];
  });
  const ignored: string[] = []; const unexpected: ParamSpec[] = [];
  for (const [name, shape] of have) {
    if (want.has(name)) continue;
    if (knownNonParameters(name)) ignored.push(name); else unexpected.push({ name, shape });
  }
  return { missing, unexpected, wrongShape, ignored, ok: !missing.length && !unexpected.length && !wrongShape.length };
}

/**
 * Throws one error listing every missing, unexpected and wrong-shape tensor; returns the
 * comparison when the checkpoint matches. `where` names the checkpoint in the message.
 */
export function checkCheckpointNames(cfg: ModelConfig, tensors: Found, where = 'checkpoint'): NameCheck {
  const r = compareCheckpointNames(cfg, tensors);
  if (r.ok) return r;
  const shape = (s: number[]) => `[${s.join(', ')}]`;
  // The head size where it shapes the attention tensors, and where it is a default rather than the file's (Qwen3's is 128,
  // not hidden / heads: a config that lost its head_dim reads as other shapes).
  const heads = cfg.arch === 'gpt-neox' ? '' : `, ${cfg.numHeads} heads of ${cfg.headDim}${cfg.raw.head_dim === undefined && cfg.headDim * cfg.numHeads !== cfg.hiddenSize ? ` (config.json has no head_dim: ${cfg.arch}'s default, not hidden / heads)` : ''}`;
  const lines = [`${where} does not match the ${cfg.arch} config (${cfg.numLayers} layers, hidden ${cfg.hiddenSize}${heads}, vocab ${cfg.vocabSize}):`];
  // A Gemma 2 / 3 config over weights without its extra norms (Gemma's, model_type gemma; Gemma 2's under a Gemma 3
  // config): said once.
  const lacks = (re: RegExp) => r.missing.some((p) => re.test(p.name));
  const projections = !lacks(/\.self_attn\.[qkvo]_proj\.weight$/);
  const gemmaWeights = !projections ? ''
    : hasSandwichNorms(cfg) && lacks(/\.pre_feedforward_layernorm\.weight$/) && lacks(/\.post_feedforward_layernorm\.weight$/)
      ? ` (weights without ${cfg.arch === 'gemma3' ? 'Gemma 3\'s q/k and' : 'Gemma 2\'s'} pre/post-feedforward norms: Gemma's, whose config says model_type gemma?)`
    : cfg.arch === 'gemma3' && lacks(/\.self_attn\.[qk]_norm\.weight$/)
      ? ' (weights without Gemma 3\'s q/k norms: Gemma 2\'s, whose config says model_type gemma2?)' : '';
  if (r.missing.length) {
    lines.push(`  missing (${r.missing.length})${gemmaWeights}:`,
      ...r.missing.map((p) => `    ${p.name} ${shape(p.shape)}`));
  }
  if (r.unexpected.length) {
    const tiedNote = (n: string) => cfg.tiedEmbeddings && (n === 'lm_head.weight' || n === 'embed_out.weight') ? ' (config ties embeddings)' : '';
    // A bias the config leaves out (transformers would skip it with a warning; it would not be trained or
    // saved here): named with the config flag that adds it.
    const biasNote = (n: string): string => {
      if (!n.endsWith('.bias')) return '';
      const attention = /\.(self_attn\.[qkvo]_proj|attention\.(query_key_value|dense))\.bias$/.test(n);
      const mlp = /\.mlp\.\w+\.bias$/.test(n);
      if (cfg.arch === 'mistral' && (attention || mlp)) return ' (Mistral layers have no biases)';
      if (cfg.arch === 'qwen2' && (attention || mlp)) return ' (Qwen2 has biases on q/k/v_proj alone)';
      if (cfg.arch === 'qwen3' && mlp) return ' (Qwen3\'s MLP has no biases)';
      if (isGemma(cfg) && mlp) return ' (Gemma\'s MLP has no biases)';
      // (GPT-NeoX's attention_bias defaults to true, Llama's to false.)
      if (attention && !cfg.attentionBias) return ` (config.json's attention_bias is false${cfg.arch === 'gpt-neox' ? '' : ' or absent'})`;
      if (mlp && !cfg.mlpBias) return ' (config.json\'s mlp_bias is false or absent)';
      return '';
    };
    // Tensors of a sibling architecture (Gemma 2's or 3's, or Qwen3's head norms, in another config): which config has them.
    const archNote = (n: string) => /\.(self_attn\.qkv_proj|mlp\.gate_up_proj)\.weight$/.test(n) && cfg.arch !== 'phi3' ? ' (Phi-3\'s fused projections: its config says model_type phi3)'
      : /\.(self_attn\.[qkv]_proj|mlp\.(gate|up)_proj)\.weight$/.test(n) && cfg.arch === 'phi3' ? ' (Phi-3 keeps q/k/v_proj as one qkv_proj and gate/up_proj as one gate_up_proj)'
      : cfg.arch === 'gemma3' ? ''
      : /\.(pre|post)_feedforward_layernorm\.weight$/.test(n) ? (cfg.arch === 'gemma2' ? '' : ' (Gemma 2\'s or 3\'s: their configs say model_type gemma2 or gemma3_text)')
      : /\.self_attn\.[qk]_norm\.weight$/.test(n) && cfg.arch !== 'qwen3' ? ' (head norms: Qwen3\'s or Gemma 3\'s)' : '';
    lines.push(`  unexpected (${r.unexpected.length}):`, ...r.unexpected.map((p) => `    ${p.name} ${shape(p.shape)}${tiedNote(p.name)}${biasNote(p.name)}${archNote(p.name)}`));
  }
  if (r.wrongShape.length) {
    lines.push(`  wrong shape (${r.wrongShape.length}):`, ...r.wrongShape.map((w) => `    ${w.name}: expected ${shape(w.expected)}, found ${shape(w.actual)}`));
  }
  throw new Error(lines.join('\n'));
}
