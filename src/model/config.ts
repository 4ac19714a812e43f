// Hugging Face config.json -> one normalized ModelConfig for GPT-NeoX (Pythia), Mistral, Llama, Qwen2, Qwen3, Gemma and
// Gemma 2 and Gemma 3 (Qwen2 / Qwen2.5: Llama's computation with biases on q/k/v_proj and none on o_proj; Qwen3: Llama's
// with an RMSNorm over each query and key head before the rotation, q_norm / k_norm; Gemma: Llama's with embeddings
// scaled by sqrt(hidden), RMSNorm gains 1 + w and a GELU-gated MLP; Gemma 2: Gemma's with norms after the attention and
// the MLP too, every other layer sliding, query_pre_attn_scalar, and tanh soft-capping of the attention scores and the
// output logits; Gemma 3 text: Gemma 2's without the caps, with q_norm / k_norm and the sliding layers' own rotary base;
// Phi-3: Llama's computation with q/k/v_proj stored as one qkv_proj and gate/up_proj as one gate_up_proj, tensor-names.ts).
//
// Two spellings exist for the same model: hub files as downloaded (rotary_pct, rotary_emb_base,
// rope_theta, rope_scaling, torch_dtype) and what transformers 5 writes (rope_parameters
// {rope_theta, rope_type, partial_rotary_factor}, dtype). Both normalize to the same object.
//
// The engine implements exactly one computation per architecture, so anything in a config that
// would make transformers compute something else is an error naming the field and the file:
// an unknown field is refused too, unless it is known not to affect the math (see NEUTRAL).
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { describeRopeScaling, type RopeScaling } from './rope.js';
import { MAX_HEAD_DIM } from '../kernels/attention-limits.js';
import { isGemma, layerWindow } from './context.js';

export type Arch = 'gpt-neox' | 'mistral' | 'llama' | 'qwen2' | 'qwen3' | 'gemma' | 'gemma2' | 'gemma3' | 'phi3';

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  hiddenSize: number;        // D
  intermediateSize: number;  // I (MLP width)
  numLayers: number;
  numHeads: number;
  numKvHeads: number;        // = numHeads unless GQA (all but gpt-neox)
  headDim: number;           // all but gpt-neox may have numHeads * headDim != hiddenSize
  /** Rotated channels per head (the first rotaryDim of each q/k head, rotate_half pairing); even. */
  rotaryDim: number;
  ropeTheta: number;
  maxPositions: number;
  norm: 'layernorm' | 'rmsnorm';
  normEps: number;
  /** gelu = exact erf GELU; gelu_tanh = tanh approximation; silu = SwiGLU gate (all but gpt-neox and the Gemmas, whose
   *  MLP gate is a GELU). */
  act: 'gelu' | 'gelu_tanh' | 'silu';
  parallelResidual: boolean;
  /** gpt-neox: query_key_value and dense have biases; llama, qwen3: q/k/v/o_proj have biases; qwen2: always,
   *  on q/k/v_proj only (tensor-names.ts). */
  attentionBias: boolean;
  mlpBias: boolean;
  tiedEmbeddings: boolean;
  /** Scaled rotary embeddings (rope.ts: linear, dynamic, llama3); null = the default frequencies. */
  ropeScaling: RopeScaling | null;
  /** Mistral, Qwen2 / Qwen3: a query attends to at most this many keys (itself included); null = full causal. */
  slidingWindow: number | null;
  /** Qwen2 / Qwen3 / Gemma 2 / Gemma 3 where only some layers slide: which do (the others attend fully); absent or null: all as slidingWindow says. */
  windowLayers?: readonly boolean[] | null;
  /** Gemma 2 / Gemma 3: query_pre_attn_scalar (the scores are scaled by its -1/2 power instead of head_dim's). */
  queryPreAttnScalar?: number | null;
  /** Gemma 2: attn_logit_softcapping, the scores soft-capped as cap tanh(s / cap) before the softmax; absent or null: none. */
  attnSoftcap?: number | null;
  /** Gemma 2: final_logit_softcapping, the output logits soft-capped alike; absent or null: none. */
  finalSoftcap?: number | null;
  /** Gemma 3: the sliding layers' rotary base (rope_local_base_freq) and scaling; ropeTheta / ropeScaling are the other layers'. */
  slidingRope?: { theta: number; scaling: RopeScaling | null } | null;
  /**
   * all but gpt-neox: nn.Embedding(padding_idx = pad_token_id), so this embedding row gets no
   * gradient in transformers; null when there is none (always for gpt-neox, which has no padding_idx).
   */
  embedPaddingIdx: number | null;
  bosTokenId: number | null;
  eosTokenId: number | number[] | null;
  /** Storage dtype the config names (e.g. "float16"), or null. */
  dtype: string | null;
  /** The JSON as read. */
  raw: Record<string, unknown>;
}

const MODEL_TYPES: Record<string, { arch: Arch; architecture: string }> = {
  gpt_neox: { arch: 'gpt-neox', architecture: 'GPTNeoXForCausalLM' },
  mistral: { arch: 'mistral', architecture: 'MistralForCausalLM' },
  llama: { arch: 'llama', architecture: 'LlamaForCausalLM' },
  qwen2: { arch: 'qwen2', architecture: 'Qwen2ForCausalLM' },
  qwen3: { arch: 'qwen3', architecture: 'Qwen3ForCausalLM' },
  gemma: { arch: 'gemma', architecture: 'GemmaForCausalLM' },
  gemma2: { arch: 'gemma2', architecture: 'Gemma2ForCausalLM' },
  gemma3_text: { arch: 'gemma3', architecture: 'Gemma3ForCausalLM' },
  phi3: { arch: 'phi3', architecture: 'Phi3ForCausalLM' },
};

/** Model types close to a supported one that are refused, and why (said instead of "not supported"). */
const REFUSED_TYPES: Record<string, string> = {
  gemma3: 'this is Gemma 3\'s vision-language checkpoint (Gemma3ForConditionalGeneration); srk trains text-only Gemma 3 (model_type gemma3_text, ' +
    'Gemma3ForCausalLM, e.g. gemma-3-1b)',
};

/**
 * Fields that do not change what the model computes (bookkeeping, generation defaults, labels).
 * Dropout rates are here too: DPO trainers (TRL's disable_dropout default) train without dropout,
 * and so does this engine.
 */
const NEUTRAL = new Set([
  'transformers_version', '_name_or_path', 'name_or_path', '_from_model_config', '_commit_hash',
  'use_cache', 'initializer_range', 'output_attentions', 'output_hidden_states', 'return_dict',
  'torchscript', 'is_decoder', 'is_encoder_decoder', 'add_cross_attention', 'tie_encoder_decoder',
  'cross_attention_hidden_size', 'chunk_size_feed_forward', 'pruned_heads', 'id2label', 'label2id',
  'problem_type', 'num_labels', 'tokenizer_class', 'prefix', 'task_specific_params', 'finetuning_task',
  'sep_token_id', 'decoder_start_token_id', '_attn_implementation', 'attn_implementation',
  'attention_dropout', 'hidden_dropout', 'classifier_dropout', 'resid_pdrop', 'embd_pdrop', // (the last two: Phi-3's)
  // Splits the matmuls in transformers when > 1; the result is the same up to float rounding.
  'pretraining_tp',
  // Gemma 3's generation cache choice (hybrid), and the private copy of sliding_window_pattern transformers 5 keeps
  // (it reads sliding_window_pattern, or layer_types).
  'cache_implementation', '_sliding_window_pattern',
  // Bookkeeping that some saves add: transformers 4.47-4.48 (`_attn_implementation_autoset`), old
  // PretrainedConfig attributes, Unsloth's marks.
  '_attn_implementation_autoset', 'use_bfloat16', 'tf_legacy_loss', 'gradient_checkpointing',
  'unsloth_version', 'unsloth_fixed',
  // nanotron's export keys in SmolLM / SmolLM2 configs (LlamaForCausalLM): transformers' Llama reads
  // neither, so whatever their value it computes the standard model (rotate_half rope), as srk does.
  'is_llama_config', 'rope_interleaved',
  // Generation defaults that old configs carry.
  'max_length', 'min_length', 'do_sample', 'early_stopping', 'num_beams', 'num_beam_groups',
  'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p', 'repetition_penalty',
  'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size', 'bad_words_ids',
  'num_return_sequences', 'output_scores', 'return_dict_in_generate', 'forced_bos_token_id',
  'forced_eos_token_id', 'remove_invalid_values', 'exponential_decay_length_penalty',
  'suppress_tokens', 'begin_suppress_tokens',
]);

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Reads fields of one config, remembering which were used so that leftovers can be refused. */
class Fields {
  readonly used = new Set<string>(['model_type', 'architectures']);
  constructor(readonly raw: Record<string, unknown>, readonly file: string) {}
  error(field: string, what: string): Error { return new Error(`config ${this.file}: "${field}" ${what}`); }
  /** The value, with null treated as absent. */
  get(k: string): unknown { this.used.add(k); return this.raw[k] ?? undefined; }
  int(k: string, dflt?: number, min = 1): number {
    const v = this.get(k) ?? dflt;
    if (v === undefined) throw this.error(k, 'is required');
    if (!Number.isSafeInteger(v) || (v as number) < min) throw this.error(k, `must be an integer >= ${min} (got ${JSON.stringify(v)})`);
    return v as number;
  }
  num(k: string, dflt: number): number {
    const v = this.get(k) ?? dflt;
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v)) throw this.error(k, `must be a positive number (got ${JSON.stringify(v)})`);
    return v;
  }
  bool(k: string, dflt: boolean): boolean {
    const v = this.get(k) ?? dflt;
    if (typeof v !== 'boolean') throw this.error(k, `must be true or false (got ${JSON.stringify(v)})`);
    return v;
  }
  /** Refuses a field unless absent, null or equal to `allowed` (fields another arch uses). */
  only(k: string, allowed: unknown, why: string): void {
    const v = this.get(k);
    if (v !== undefined && v !== allowed) throw this.error(k, `= ${JSON.stringify(v)} is not supported: ${why}`);
  }
  tokenId(k: string): number | null {
    const v = this.get(k);
    if (v === undefined) return null;
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw this.error(k, `must be a token id (got ${JSON.stringify(v)})`);
    return v as number;
  }
}

/** One value given under several names must agree (e.g. rope_theta and rope_parameters.rope_theta). */
function agree(f: Fields, found: [string, unknown][], dflt: number): number {
  const given = found.filter(([, v]) => v !== undefined && v !== null);
  for (const [k, v] of given) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw f.error(k, `must be a number (got ${JSON.stringify(v)})`);
    if (v !== given[0]![1]) throw f.error(k, `= ${v} contradicts "${given[0]![0]}" = ${given[0]![1]}`);
  }
  return given.length ? (given[0]![1] as number) : dflt;
}

/** The rope types whose parameters srk reads, with their fields (rope.ts says what each computes). */
const ROPE_TYPE_FIELDS: Record<string, string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor', 'original_max_position_embeddings'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
};
const ROPE_COMMON_FIELDS = ['rope_type', 'type', 'rope_theta', 'partial_rotary_factor'];
/** LongRoPE's fields (transformers' _validate_longrope_rope_parameters), read for Phi-3 alone. */
const LONGROPE_FIELDS = ['short_factor', 'long_factor', 'factor', 'attention_factor', 'original_max_position_embeddings'];

/**
 * LongRoPE as transformers 5.17's _compute_longrope_parameters reads it for Phi-3: the original context L is the
 * config's top-level original_max_position_embeddings (Phi3Config's 4096 where absent; standardize_rope_params gives it
 * priority over the rope's own, which must then agree here); factor as given, else max_position_embeddings / L; the
 * attention factor as given, else 1 for factor <= 1 and sqrt(1 + ln(factor) / ln(L)) above. The factor lists' lengths are
 * checked against the rotary width by the caller.
 */
function readLongrope(f: Fields, where: string, o: Record<string, unknown>, maxPositions: () => number, originalMax: () => number,
  num: (k: string, ok: (v: number) => boolean, what: string) => number): RopeScaling {
  const list = (k: string): number[] => {
    const v = o[k];
    if (v === undefined || v === null) throw f.error(`${where}.${k}`, 'is required for rope_type longrope');
    if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0)) {
      throw f.error(`${where}.${k}`, 'must be a list of positive numbers (one per rotated channel pair)');
    }
    return v as number[];
  };
  const shortFactor = list('short_factor'); const longFactor = list('long_factor');
  const L = originalMax();
  const inRope = o.original_max_position_embeddings;
  if (inRope !== undefined && inRope !== null && inRope !== L) {
    throw f.error(`${where}.original_max_position_embeddings`, `= ${JSON.stringify(inRope)} contradicts the config's original_max_position_embeddings ${L}, ` +
      'which transformers uses for Phi-3: give them one value');
  }
  // (transformers warns of a factor below 1 and computes with it: an attention factor of 1.)
  const factor = o.factor === undefined || o.factor === null ? maxPositions() / L : num('factor', (v) => v > 0, 'a positive number');
  const attentionFactor = o.attention_factor === undefined || o.attention_factor === null
    ? (factor <= 1 ? 1 : Math.sqrt(1 + Math.log(factor) / Math.log(L)))
    : num('attention_factor', (v) => v > 0, 'a positive number');
  return { type: 'longrope', shortFactor, longFactor, originalMaxPositions: L, attentionFactor };
}

/**
 * A rope type and its parameters from rope_parameters (transformers 5) or rope_scaling (hub
 * configs); null for the default rotary embeddings. `where` names the object in errors.
 */
function readRopeType(f: Fields, where: string, o: Record<string, unknown>, maxPositions: () => number,
  phi3?: { originalMax: () => number }): RopeScaling | null {
  const named = o.rope_type ?? o.type ?? 'default';
  // Phi3Config takes su and yarn as longrope's old names (its only scaled rope).
  const t = phi3 && (named === 'su' || named === 'yarn') ? 'longrope' : named;
  const fields = t === 'longrope' && phi3 ? LONGROPE_FIELDS
    : typeof t === 'string' && Object.hasOwn(ROPE_TYPE_FIELDS, t) ? ROPE_TYPE_FIELDS[t]! : undefined;
  if (!fields) {
    throw f.error(`${where}.rope_type`, `= ${JSON.stringify(t)} is not supported (supported: ${Object.keys(ROPE_TYPE_FIELDS).join(', ')}; ` +
      'yarn also scales attention and is not implemented; longrope is read for Phi-3 alone, model_type phi3)');
  }
  for (const k of Object.keys(o)) {
    if (!ROPE_COMMON_FIELDS.includes(k) && !fields.includes(k) && o[k] !== null) {
      throw f.error(`${where}.${k}`, `is not a ${t} rope setting; refusing rather than ignoring it`);
    }
  }
  const num = (k: string, ok: (v: number) => boolean, what: string): number => {
    const v = o[k];
    if (v === undefined || v === null) throw f.error(`${where}.${k}`, `is required for rope_type ${t}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw f.error(`${where}.${k}`, `must be ${what} (got ${JSON.stringify(v)})`);
    return v;
  };
  if (t === 'default') return null;
  if (t === 'longrope') return readLongrope(f, where, o, maxPositions, phi3!.originalMax, num);
  const factor = num('factor', (v) => v > 0, 'a positive number');
  if (t === 'linear') return { type: 'linear', factor };
  if (t === 'dynamic') return { type: 'dynamic', factor };
  const lowFreqFactor = num('low_freq_factor', (v) => v > 0, 'a positive number');
  const highFreqFactor = num('high_freq_factor', (v) => v > lowFreqFactor, `a number above low_freq_factor ${lowFreqFactor}`);
  // Absent: max_position_embeddings, as transformers 5.17's standardize_rope_params fills it (a top-level
  // original_max_position_embeddings, which it reads for Phi-3 alone, stays an unknown field here).
  const given = o.original_max_position_embeddings;
  const originalMaxPositions = given === undefined ? maxPositions() // (null: refused below, as transformers' validation refuses it)
    : num('original_max_position_embeddings', (v) => Number.isSafeInteger(v) && v > 0, 'a positive integer');
  return { type: 'llama3', factor, lowFreqFactor, highFreqFactor, originalMaxPositions };
}

/** Rotary settings from either spelling: theta, the rotated fraction of a head, and the rope scaling. */
function readRope(f: Fields, arch: Arch, maxPositions: () => number): { theta: number; fraction: number; scaling: RopeScaling | null } {
  const params = f.get('rope_parameters');
  if (params !== undefined && params !== null && !isObject(params)) throw f.error('rope_parameters', 'must be an object');
  const p = (params ?? {}) as Record<string, unknown>;
  const phi3 = arch === 'phi3' ? { originalMax: () => f.int('original_max_position_embeddings', 4096) } : undefined;
  const fromParams = readRopeType(f, 'rope_parameters', p, maxPositions, phi3);
  // Legacy rope_scaling: null, or an object with its own rope type (hub configs of Llama 3.1 and later).
  const scalingRaw = f.get('rope_scaling');
  if (scalingRaw !== undefined && scalingRaw !== null && !isObject(scalingRaw)) throw f.error('rope_scaling', 'must be an object or null');
  const fromScaling = isObject(scalingRaw) ? readRopeType(f, 'rope_scaling', scalingRaw, maxPositions, phi3) : null;
  // Both given (a file touched by both versions): they must say the same.
  if (params != null && isObject(scalingRaw) && JSON.stringify(fromParams) !== JSON.stringify(fromScaling)) {
    throw f.error('rope_scaling', `= ${JSON.stringify(scalingRaw)} contradicts "rope_parameters" = ${JSON.stringify(params)}`);
  }
  const scaling = fromParams ?? fromScaling;
  const neox = arch === 'gpt-neox';
  const theta = agree(f, [
    ['rope_parameters.rope_theta', p.rope_theta], ['rope_theta', neox ? undefined : f.get('rope_theta')],
    ['rotary_emb_base', neox ? f.get('rotary_emb_base') : undefined],
    ['rope_scaling.rope_theta', isObject(scalingRaw) ? scalingRaw.rope_theta : undefined],
  ], 10000);
  if (!(theta > 0)) throw f.error('rope_theta', `must be positive (got ${theta})`);
  const fraction = agree(f, [
    ['rope_parameters.partial_rotary_factor', p.partial_rotary_factor],
    ['partial_rotary_factor', neox ? undefined : f.get('partial_rotary_factor')],
    ['rotary_pct', neox ? f.get('rotary_pct') : undefined],
    // Read there by some transformers versions and not by others: a contradiction is refused.
    ['rope_scaling.partial_rotary_factor', isObject(scalingRaw) ? scalingRaw.partial_rotary_factor : undefined],
  ], neox ? 0.25 : 1); // GPTNeoXConfig's default rotary_pct is 0.25
  if (neox) {
    // GPTNeoXConfig reads rotary_emb_base and rotary_pct (or rope_parameters) and ignores top-level rope_theta
    // and partial_rotary_factor, which transformers 4 wrote beside them with the same values: equal ones are
    // taken, another value (the rotation the file seems to ask for, which transformers would not compute) refused.
    for (const [k, v, from] of [['rope_theta', theta, 'rotary_emb_base'], ['partial_rotary_factor', fraction, 'rotary_pct']] as const) {
      const top = f.get(k);
      if (top === undefined || top === null || top === v) continue;
      throw f.error(k, `= ${JSON.stringify(top)} is not read by transformers' GPT-NeoX, which computes with ${v} ` +
        `(${from} or rope_parameters${f.get(from) === undefined && p[k] === undefined ? ', here its default' : ''}): give ${from} the value meant and remove ${k}`);
    }
  }
  if (!(fraction > 0 && fraction <= 1)) throw f.error('rotary_pct', `must be in (0, 1] (got ${fraction})`);
  // Llama/Mistral apply the rotation to the whole head (cos/sin must cover head_dim).
  // (Phi-3 rotates the first rotary_dim channels of each head and passes the rest, as GPT-NeoX: Phi-4-mini's 0.75.)
  if (arch !== 'gpt-neox' && arch !== 'phi3' && fraction !== 1) throw f.error('partial_rotary_factor', `= ${fraction} is not supported for ${arch} (only 1)`);
  // Phi3Config takes the default rope or longrope alone (su and yarn are its old names for longrope).
  if (arch === 'phi3' && scaling && scaling.type !== 'longrope') {
    throw f.error(params != null ? 'rope_parameters' : 'rope_scaling', `= ${JSON.stringify(params ?? scalingRaw)}: Phi-3 takes the default rope or longrope ` +
      `(transformers refuses the ${scaling.type} rope for it)`);
  }
  return { theta, fraction, scaling };
}

const GELUS: Record<string, ModelConfig['act']> = { gelu: 'gelu', gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu_fast: 'gelu_tanh' }; // (gelu_fast: gelu_new's formula, factored)

function activation(f: Fields, arch: Arch): ModelConfig['act'] {
  // The key the architecture's MLP reads in transformers 5.17: Gemma 2's and 3's hidden_activation, everyone else's hidden_act.
  const key = arch === 'gemma2' || arch === 'gemma3' ? 'hidden_activation' : 'hidden_act';
  const gemma = isGemma({ arch });
  const v = f.get(key) ?? (arch === 'gpt-neox' ? 'gelu' : gemma ? 'gelu_pytorch_tanh' : 'silu');
  const map: Record<string, ModelConfig['act']> = arch === 'gpt-neox' || gemma ? GELUS : { silu: 'silu', swish: 'silu' };
  const act = typeof v === 'string' ? map[v] : undefined;
  if (!act) throw f.error(key, `= ${JSON.stringify(v)} is not supported for ${arch} (supported: ${Object.keys(map).join(', ')})`);
  if (gemma) {
    // Gemma configs on the hub carry both keys, and transformers versions differ in which they read (4.38-4.5x Gemma
    // read hidden_activation, 5.17 reads hidden_act; Gemma 2 and 3 the other way round): two that disagree are refused.
    const other = key === 'hidden_activation' ? 'hidden_act' : 'hidden_activation';
    const o = f.get(other);
    if (o !== undefined && (typeof o !== 'string' || GELUS[o] !== act)) {
      throw f.error(other, `= ${JSON.stringify(o)} disagrees with ${key} = ${JSON.stringify(v)}${f.raw[key] === undefined ? ' (its default)' : ''}, which transformers 5 computes with ` +
        (arch === 'gemma'
          ? `(transformers 4.38-4.5x computed with hidden_activation): set hidden_act to ${JSON.stringify(o)} to compute that (Gemma was trained ` +
            `with the tanh GELU, gelu_pytorch_tanh), or remove hidden_activation to compute what transformers 5 computes`
          : `(${arch === 'gemma2' ? 'Gemma 2' : 'Gemma 3'} reads hidden_activation alone): remove hidden_act, or give it the same value`));
    }
  }
  return act;
}

/** Normalizes a parsed config.json; `file` is used in error messages. */
export function parseModelConfig(json: unknown, file: string): ModelConfig {
  if (!isObject(json)) throw new Error(`config ${file}: not a JSON object`);
  const f = new Fields(json, file);
  const mt = json.model_type;
  const known = typeof mt === 'string' && Object.hasOwn(MODEL_TYPES, mt) ? MODEL_TYPES[mt]! : undefined;
  // transformers' AutoConfig needs the key too (it guesses from the directory's name, which srk does not).
  if (mt === undefined) throw f.error('model_type', `is required (one of ${Object.keys(MODEL_TYPES).join(', ')})`);
  if (!known && typeof mt === 'string' && Object.hasOwn(REFUSED_TYPES, mt)) throw f.error('model_type', `= ${JSON.stringify(mt)} is not supported: ${REFUSED_TYPES[mt]}`);
  if (!known) throw f.error('model_type', `= ${JSON.stringify(mt)} is not supported (supported: ${Object.keys(MODEL_TYPES).join(', ')})`);
  const { arch, architecture } = known;
  const archs = json.architectures;
  if (archs !== undefined && archs !== null && !(Array.isArray(archs) && archs.length === 1 && archs[0] === architecture)) {
    throw f.error('architectures', `= ${JSON.stringify(archs)}: expected ["${architecture}"] for model_type ${mt}`);
  }
  for (const k of ['quantization_config', 'auto_map']) {
    // Phi-3's hub configs keep the auto_map of the remote code they shipped before transformers had Phi3ForCausalLM;
    // transformers (without trust_remote_code) computes with its own class, as srk does.
    if (k === 'auto_map' && arch === 'phi3') { f.get(k); continue; }
    if (json[k] !== undefined) throw f.error(k, 'is not supported (quantized weights / custom model code)');
  }

  const vocabSize = f.int('vocab_size');
  const hiddenSize = f.int('hidden_size');
  const numLayers = f.int('num_hidden_layers');
  const numHeads = f.int('num_attention_heads');
  const intermediateSize = f.int('intermediate_size');
  const neox = arch === 'gpt-neox';

  let headDim: number;
  const hd = f.get('head_dim');
  // Qwen3Config's head_dim defaults to 128, the Gemma configs' to 256 (not hidden_size / heads, as
  // Llama's, Mistral's and Qwen2's).
  const headDimDefault = HEAD_DIM_DEFAULTS[arch];
  if (hd === undefined && headDimDefault === undefined && hiddenSize % numHeads !== 0) {
    throw f.error('hidden_size', `= ${hiddenSize} is not divisible by num_attention_heads = ${numHeads}`);
  }
  if (neox) {
    // GPT-NeoX splits the fused QKV by hidden_size / heads; a different head_dim cannot be honoured.
    headDim = hiddenSize / numHeads;
    if (hd !== undefined && hd !== headDim) throw f.error('head_dim', `= ${JSON.stringify(hd)} is inconsistent with hidden_size / num_attention_heads = ${headDim}`);
  } else {
    headDim = f.int('head_dim', headDimDefault ?? hiddenSize / numHeads);
  }
  if (headDim > MAX_HEAD_DIM) {
    throw hd !== undefined && !neox
      ? f.error('head_dim', `= ${headDim}: srk's attention kernels take heads of at most ${MAX_HEAD_DIM} channels`)
      : f.error('num_attention_heads', `= ${numHeads} gives heads of ${headDim} channels (hidden_size ${hiddenSize}): srk's attention kernels take at most ${MAX_HEAD_DIM}`);
  }
  // Absent, the config classes' own defaults (MistralConfig 8, Qwen2Config and Qwen3Config 32, GemmaConfig 16,
  // Gemma2Config and Gemma3TextConfig 4, LlamaConfig the heads); null, the heads (multi-head attention), as each class turns None.
  const kvDefault = { mistral: 8, qwen2: 32, qwen3: 32, gemma: 16, gemma2: 4, gemma3: 4 }[arch as string] ?? numHeads;
  const numKvHeads = neox || f.raw.num_key_value_heads === null ? numHeads : f.int('num_key_value_heads', kvDefault);
  if (numHeads % numKvHeads !== 0) {
    const given = f.raw.num_key_value_heads !== undefined;
    throw f.error('num_key_value_heads', `= ${numKvHeads}${given ? '' : ` (absent: ${arch}'s default)`} does not divide num_attention_heads = ${numHeads}`);
  }

  const maxPositionsOf = () => f.int('max_position_embeddings',
    { 'gpt-neox': 2048, llama: 2048, qwen2: 32768, qwen3: 32768, gemma: 8192, gemma2: 8192, gemma3: 131072, phi3: 4096 }[arch as string] ?? 4096 * 32);
  const gemma3Rope = arch === 'gemma3' ? readGemma3Rope(f, maxPositionsOf) : undefined;
  const rope = gemma3Rope?.full ?? readRope(f, arch, maxPositionsOf);
  const rotaryDim = Math.trunc(headDim * rope.fraction); // Python int(head_dim * fraction)
  if (rotaryDim < 2 || rotaryDim % 2) {
    throw f.error(neox ? 'rotary_pct' : 'head_dim', `gives ${rotaryDim} rotary channels per head (head_dim ${headDim} * ${rope.fraction}); must be even and >= 2`);
  }
  if (rope.scaling?.type === 'longrope') {
    // One factor per rotated channel pair (Phi3Config refuses other lengths).
    const where = f.raw.rope_parameters != null ? 'rope_parameters' : 'rope_scaling';
    for (const [k, v] of [['short_factor', rope.scaling.shortFactor], ['long_factor', rope.scaling.longFactor]] as const) {
      if (v.length !== rotaryDim / 2) throw f.error(`${where}.${k}`, `has ${v.length} entries; the ${rotaryDim} rotated channels of a head take ${rotaryDim / 2}`);
    }
  }

  const maxPositions = maxPositionsOf();
  const normEps = neox ? f.num('layer_norm_eps', 1e-5) : f.num('rms_norm_eps', arch === 'phi3' ? 1e-5 : 1e-6); // (Phi3Config's default 1e-5)
  const act = activation(f, arch);
  const gemma = isGemma({ arch });
  const tiedEmbeddings = f.bool('tie_word_embeddings', gemma); // the Gemma configs tie by default

  let parallelResidual = false; let attentionBias = false; let mlpBias = false;
  let slidingWindow: number | null = null;
  let windowLayers: boolean[] | null = null;
  let embedPaddingIdx: number | null = null;
  let queryPreAttnScalar: number | null = null;
  let attnSoftcap: number | null = null; let finalSoftcap: number | null = null;
  // A config class's token ids where its file has no key (ID_DEFAULTS); null is none. The pad id is the embedding's
  // padding_idx, whose row takes no gradient.
  const idDefault = (k: keyof IdDefaults) => (f.raw[k] === undefined ? ID_DEFAULTS[arch]?.[k] : undefined);
  const padTokenId = idDefault('pad_token_id') ?? f.tokenId('pad_token_id');
  if (neox) {
    parallelResidual = f.bool('use_parallel_residual', true);
    attentionBias = f.bool('attention_bias', true);
    mlpBias = true; // dense_h_to_4h / dense_4h_to_h always have biases
  } else {
    if (arch === 'llama') {
      attentionBias = f.bool('attention_bias', false);
      mlpBias = f.bool('mlp_bias', false);
    } else if (arch === 'qwen2' || arch === 'qwen3') {
      if (arch === 'qwen2') {
        // Qwen2Attention builds q/k/v_proj with biases and o_proj without, whatever the config says.
        attentionBias = true;
        f.only('attention_bias', true, 'Qwen2 has biases on q/k/v_proj');
        f.only('mlp_bias', false, 'Qwen2\'s MLP has no biases');
      } else {
        // Qwen3Attention: attention_bias on all four projections (o_proj too), as Llama's; its MLP has none.
        attentionBias = f.bool('attention_bias', false);
        f.only('mlp_bias', false, 'Qwen3\'s MLP has no biases');
      }
      ({ slidingWindow, windowLayers } = qwenWindows(f, numLayers));
      if (arch === 'qwen2') f.only('use_mrope', false, 'multimodal rotary embeddings (Qwen2-VL) are not implemented');
    } else if (arch === 'phi3') {
      // Phi3Attention, Phi3MLP and the output layer are built without biases whatever the config says (Phi-4-mini's file names
      // attention_bias, mlp_bias and lm_head_bias false: taken; true refused). sliding_window, where set, is every layer's
      // (Phi-3-mini-4k's 2047); null or absent, none.
      f.only('attention_bias', false, 'Phi-3\'s projections have no biases');
      f.only('mlp_bias', false, 'Phi-3\'s MLP has no biases');
      f.only('lm_head_bias', false, 'Phi-3\'s output layer has no bias');
      // Phi-4-mini's file also carries two settings of the remote code it shipped with, which transformers' Phi3 reads
      // nowhere: their value there (1) is taken; another, which that code may have computed with, is refused.
      f.only('full_attn_mod', 1, 'a setting of Phi-4-mini\'s remote code that transformers\' Phi-3 does not read; srk takes its value 1 alone');
      f.only('interpolate_factor', 1, 'a setting of Phi-4-mini\'s remote code that transformers\' Phi-3 does not read; srk takes its value 1 alone');
      if (f.raw.sliding_window !== null) slidingWindow = f.get('sliding_window') === undefined ? null : f.int('sliding_window');
      // Read by longrope alone (readLongrope): the default rope computes nothing with it.
      if (f.raw.original_max_position_embeddings !== null) f.int('original_max_position_embeddings', 4096);
    } else if (gemma) {
      attentionBias = f.bool('attention_bias', false); // q/k/v/o_proj, as Llama's; the MLP has none
      f.only('mlp_bias', false, 'Gemma\'s MLP has no biases');
      if (arch === 'gemma2') {
        ({ slidingWindow, windowLayers } = gemmaWindows(f, numLayers, 2));
        queryPreAttnScalar = queryPreAttnScalarOf(f); // (an int in Gemma2Config)
        // Gemma2Config's defaults where absent (50 and 30, google/gemma-2's values); null: no cap.
        attnSoftcap = softcap(f, 'attn_logit_softcapping', 50);
        finalSoftcap = softcap(f, 'final_logit_softcapping', 30);
      } else if (arch === 'gemma3') {
        ({ slidingWindow, windowLayers } = gemmaWindows(f, numLayers, 'sliding_window_pattern'));
        queryPreAttnScalar = queryPreAttnScalarOf(f); // (an int in Gemma3TextConfig)
        finalSoftcap = softcap(f, 'final_logit_softcapping', null); // (Gemma3ForCausalLM caps its logits where set; default none)
        // Read but not passed to the attention by transformers 5.17's Gemma 3 (Gemma3Attention keeps it unused): no
        // soft-capping, whatever its value, here as there (describeModel says so where it is set).
        const cap = f.get('attn_logit_softcapping');
        if (cap !== undefined && (typeof cap !== 'number' || !(cap > 0))) throw f.error('attn_logit_softcapping', `must be a positive number or null (got ${JSON.stringify(cap)})`);
      }
      f.only('use_bidirectional_attention', false, 'srk trains causal language models');
    } else {
      // MistralAttention/MLP are built without biases whatever the config says; refuse a config
      // that claims otherwise rather than guess.
      f.only('attention_bias', false, 'Mistral layers have no biases');
      f.only('mlp_bias', false, 'Mistral layers have no biases');
      // As MistralConfig: a window of 4096 when the key is absent, none when it is null. Mistral's
      // attention reads sliding_window alone; a use_sliding_window key (Qwen2's switch, found in
      // some converted configs) changes nothing in transformers, so it changes nothing here.
      const useSw = f.get('use_sliding_window');
      if (useSw !== undefined && useSw !== null && typeof useSw !== 'boolean') throw f.error('use_sliding_window', 'must be true or false');
      if (f.raw.sliding_window !== null) slidingWindow = f.int('sliding_window', 4096); // get() reads null as absent
    }
    if (padTokenId !== null) {
      if (padTokenId >= vocabSize) throw f.error('pad_token_id', `= ${padTokenId}${f.raw.pad_token_id === undefined ? ` (absent: ${arch}'s default)` : ''} is outside the vocabulary (${vocabSize})`);
      embedPaddingIdx = padTokenId;
    }
  }
  const layerTypes = arch === 'qwen2' || arch === 'qwen3' || arch === 'gemma2' || arch === 'gemma3' ? undefined : f.get('layer_types'); // (qwenWindows, gemmaWindows)
  if (layerTypes !== undefined) {
    const want = slidingWindow === null ? 'full_attention' : 'sliding_attention';
    if (!Array.isArray(layerTypes) || layerTypes.length !== numLayers || layerTypes.some((t) => t !== want)) {
      const uniform = Array.isArray(layerTypes) && layerTypes.length === numLayers && layerTypes.every((t) => t === layerTypes[0]) &&
        (layerTypes[0] === 'full_attention' || layerTypes[0] === 'sliding_attention');
      throw f.error('layer_types', uniform
        ? `lists "${String(layerTypes[0])}" for every layer, but ${slidingWindow === null ? 'no window is set (sliding_window)' : `sliding_window = ${slidingWindow} is`}: ` +
          `the two must agree (here every layer's attention would be "${want}")`
        : `must list "${want}" for every layer (mixed attention types are not supported)`);
    }
  }

  const bosTokenId = idDefault('bos_token_id') ?? f.tokenId('bos_token_id');
  const eosRaw = idDefault('eos_token_id') ?? f.get('eos_token_id');
  let eosTokenId: number | number[] | null;
  if (Array.isArray(eosRaw)) {
    if (!eosRaw.every((x) => Number.isSafeInteger(x) && x >= 0)) throw f.error('eos_token_id', 'must be a token id or a list of them');
    eosTokenId = eosRaw as number[];
  } else {
    eosTokenId = idDefault('eos_token_id') ?? f.tokenId('eos_token_id');
  }
  // transformers 5 writes `dtype`, earlier versions `torch_dtype`; some tools write both (the first wins).
  const dtypeNew = f.get('dtype'); const dtypeOld = f.get('torch_dtype');
  const dtypeRaw = dtypeNew ?? dtypeOld;
  if (dtypeRaw !== undefined && dtypeRaw !== null && typeof dtypeRaw !== 'string') throw f.error(dtypeNew != null ? 'dtype' : 'torch_dtype', 'must be a string');
  const dtype = (dtypeRaw as string | undefined) ?? null;

  const leftovers = Object.keys(json).filter((k) => !f.used.has(k) && !NEUTRAL.has(k) && json[k] !== null);
  if (leftovers.length) {
    throw f.error(leftovers[0]!, `is not a known ${mt} setting; refusing rather than ignoring it` +
      (leftovers.length > 1 ? ` (also: ${leftovers.slice(1).join(', ')})` : ''));
  }

  return {
    arch, vocabSize, hiddenSize, intermediateSize, numLayers, numHeads, numKvHeads, headDim, rotaryDim,
    ropeTheta: rope.theta, ropeScaling: rope.scaling, maxPositions, norm: neox ? 'layernorm' : 'rmsnorm', normEps, act,
    parallelResidual, attentionBias, mlpBias, tiedEmbeddings, slidingWindow, ...(windowLayers ? { windowLayers } : {}), embedPaddingIdx,
    ...(queryPreAttnScalar !== null ? { queryPreAttnScalar } : {}), ...(gemma3Rope ? { slidingRope: gemma3Rope.sliding } : {}),
    ...(attnSoftcap !== null ? { attnSoftcap } : {}), ...(finalSoftcap !== null ? { finalSoftcap } : {}),
    bosTokenId, eosTokenId, dtype, raw: json,
  };
}

interface IdDefaults { pad_token_id: number; bos_token_id: number; eos_token_id: number }
const GEMMA_IDS: IdDefaults = { pad_token_id: 0, bos_token_id: 2, eos_token_id: 1 };
/** Token ids a config class fills in where its file has no key (the other classes' absent ids are none): the Gemma configs'
 *  pad 0, BOS 2, EOS 1; Phi3Config's pad 32000 (Phi-3's <|endoftext|>), BOS 1, EOS 32000. */
const ID_DEFAULTS: Partial<Record<Arch, IdDefaults>> = {
  gemma: GEMMA_IDS, gemma2: GEMMA_IDS, gemma3: GEMMA_IDS, phi3: { pad_token_id: 32000, bos_token_id: 1, eos_token_id: 32000 },
};

/** head_dim where a config class defaults it to a constant rather than hidden_size / heads. */
const HEAD_DIM_DEFAULTS: Partial<Record<Arch, number>> = { qwen3: 128, gemma: 256, gemma2: 256, gemma3: 256 };

/** query_pre_attn_scalar (Gemma 2 / 3): an integer, 256 where absent; transformers refuses a float and null alike. */
function queryPreAttnScalarOf(f: Fields): number {
  if (f.raw.query_pre_attn_scalar === null) throw f.error('query_pre_attn_scalar', 'must be an integer >= 1 (got null; transformers refuses it too: remove the key for its default 256)');
  return f.int('query_pre_attn_scalar', 256);
}

/** A soft-capping value (Gemma 2's, Gemma 3's logit cap): absent, the class default; null, none; else a positive finite number. */
function softcap(f: Fields, k: string, dflt: number | null): number | null {
  if (f.raw[k] === null) { f.get(k); return null; }
  const v = f.get(k) ?? dflt;
  if (v === null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v) || !(v > 0)) throw f.error(k, `must be a positive number or null (got ${JSON.stringify(v)})`);
  return v;
}

/**
 * Gemma 3's rotary settings, as Gemma3TextConfig 5.17 reads them: the full-attention layers take rope_theta (default 1e6)
 * and rope_scaling, the sliding layers rope_local_base_freq (default 1e4) with the default rope; or, as transformers 5
 * writes them, rope_parameters with one object per layer type (full_attention, sliding_attention). Both spellings given
 * must agree.
 */
function readGemma3Rope(f: Fields, maxPositions: () => number): { full: { theta: number; fraction: number; scaling: RopeScaling | null };
  sliding: { theta: number; scaling: RopeScaling | null } } {
  const params = f.get('rope_parameters');
  if (params !== undefined && params !== null && !isObject(params)) throw f.error('rope_parameters', 'must be an object');
  const p = (params ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(p)) {
    if (k !== 'full_attention' && k !== 'sliding_attention') {
      throw f.error(`rope_parameters.${k}`, 'is not a Gemma 3 layer type (rope_parameters holds one object for full_attention and one for sliding_attention)');
    }
    if (p[k] !== null && !isObject(p[k])) throw f.error(`rope_parameters.${k}`, 'must be an object');
  }
  const full = (p.full_attention ?? {}) as Record<string, unknown>;
  const sliding = (p.sliding_attention ?? {}) as Record<string, unknown>;
  const scalingRaw = f.get('rope_scaling');
  if (scalingRaw !== undefined && scalingRaw !== null && !isObject(scalingRaw)) throw f.error('rope_scaling', 'must be an object or null');
  const fromParams = readRopeType(f, 'rope_parameters.full_attention', full, maxPositions);
  // Gemma3TextConfig 5.17 updates {"rope_type": "default"} with rope_scaling, so a legacy "type" key is left unread there (the
  // default rope), where transformers 4.5x applied it: the versions compute different models, so it is refused.
  if (isObject(scalingRaw) && scalingRaw.type !== undefined && scalingRaw.rope_type === undefined && scalingRaw.type !== 'default') {
    throw f.error('rope_scaling', `= ${JSON.stringify(scalingRaw)} names its type under the old key "type", which transformers 5.17's Gemma 3 ` +
      `does not read (it computes the default rope; 4.5x applied ${JSON.stringify(scalingRaw.type)}): write "rope_type" for the scaling meant, or remove it`);
  }
  const fromScaling = isObject(scalingRaw) ? readRopeType(f, 'rope_scaling', scalingRaw, maxPositions) : null;
  if (p.full_attention != null && isObject(scalingRaw) && JSON.stringify(fromParams) !== JSON.stringify(fromScaling)) {
    throw f.error('rope_scaling', `= ${JSON.stringify(scalingRaw)} contradicts "rope_parameters.full_attention" = ${JSON.stringify(p.full_attention)}`);
  }
  const slidingScaling = readRopeType(f, 'rope_parameters.sliding_attention', sliding, maxPositions);
  const theta = agree(f, [['rope_parameters.full_attention.rope_theta', full.rope_theta], ['rope_theta', f.get('rope_theta')],
    ['rope_scaling.rope_theta', isObject(scalingRaw) ? scalingRaw.rope_theta : undefined]], 1e6);
  const localTheta = agree(f, [['rope_parameters.sliding_attention.rope_theta', sliding.rope_theta], ['rope_local_base_freq', f.get('rope_local_base_freq')]], 1e4);
  for (const [k, v] of [['rope_theta', theta], ['rope_local_base_freq', localTheta]] as const) if (!(v > 0)) throw f.error(k, `must be positive (got ${v})`);
  // Gemma 3 rotates whole heads (its default rope reads head_dim alone).
  for (const [k, v] of [['partial_rotary_factor', f.get('partial_rotary_factor')], ['rope_parameters.full_attention.partial_rotary_factor', full.partial_rotary_factor],
    ['rope_parameters.sliding_attention.partial_rotary_factor', sliding.partial_rotary_factor],
    ['rope_scaling.partial_rotary_factor', isObject(scalingRaw) ? scalingRaw.partial_rotary_factor : undefined]] as const) {
    if (v !== undefined && v !== null && v !== 1) throw f.error(k, `= ${JSON.stringify(v)} is not supported for gemma3 (only 1)`);
  }
  return { full: { theta, fraction: 1, scaling: fromParams ?? fromScaling }, sliding: { theta: localTheta, scaling: slidingScaling } };
}

/** Which layers `layer_types` (the Qwens' and Gemma 3's) makes slide: one "full_attention" or "sliding_attention" a layer. */
function slidingLayers(f: Fields, types: unknown, numLayers: number): boolean[] {
  const bad = Array.isArray(types) ? types.findIndex((t) => t !== 'full_attention' && t !== 'sliding_attention') : -1;
  if (!Array.isArray(types) || types.length !== numLayers || bad >= 0) {
    const found = !Array.isArray(types) ? `not a list` : types.length !== numLayers ? `${types.length} entries` : `entry ${bad} is ${JSON.stringify(types[bad])}`;
    throw f.error('layer_types', `must list "full_attention" or "sliding_attention" for each of the ${numLayers} layers (${found})`);
  }
  return types.map((t) => t === 'sliding_attention');
}

/**
 * Gemma 2's and Gemma 3's sliding layers, as Gemma2Config / Gemma3TextConfig 5.17 and their attention compute them:
 * layer_types, or without it every layer but each pattern-th (Gemma 2: every other, the first sliding; Gemma 3:
 * sliding_window_pattern, default 6: five sliding, one full); the window is sliding_window (default 4096). A sliding layer
 * without a window is refused (transformers' mask cannot be built either).
 */
function gemmaWindows(f: Fields, numLayers: number, patternFrom: 2 | 'sliding_window_pattern'): { slidingWindow: number | null; windowLayers: boolean[] | null } {
  const window = f.raw.sliding_window === null ? null : f.int('sliding_window', 4096);
  f.get('sliding_window');
  // Early Gemma 2 configs (google/gemma-2-9b's first upload) also say sliding_window_size, which transformers never read.
  const size = patternFrom === 2 ? f.get('sliding_window_size') : undefined;
  if (size !== undefined && size !== window) {
    throw f.error('sliding_window_size', `= ${JSON.stringify(size)} differs from sliding_window = ${JSON.stringify(window)}${f.raw.sliding_window === undefined ? ' (its default)' : ''}, ` +
      'the window transformers applies (it does not read sliding_window_size): give sliding_window the window meant and remove sliding_window_size');
  }
  const types = f.get('layer_types');
  const patternRaw = patternFrom === 2 ? 2 : f.get(patternFrom);
  let slides: boolean[];
  if (types === undefined) {
    const pattern = patternRaw ?? 6;
    if (!Number.isSafeInteger(pattern) || (pattern as number) < 1) throw f.error('sliding_window_pattern', `must be an integer >= 1 (got ${JSON.stringify(pattern)})`);
    slides = Array.from({ length: numLayers }, (_, i) => (i + 1) % (pattern as number) !== 0);
  } else {
    slides = slidingLayers(f, types, numLayers);
  }
  if (window === null && slides.some(Boolean)) {
    const rule = patternFrom === 2 ? 'Gemma 2\'s default layer_types (every other layer) make'
      : `sliding_window_pattern ${JSON.stringify(patternRaw ?? 6)}${patternRaw === undefined ? ' (the default)' : ''} makes`;
    throw f.error('sliding_window', `is null, but ${types === undefined ? rule : 'layer_types lists'} sliding layers: transformers refuses them too`);
  }
  if (window === null || !slides.some(Boolean)) return { slidingWindow: null, windowLayers: null };
  return { slidingWindow: window, windowLayers: slides.every(Boolean) ? null : slides };
}

/**
 * Qwen2's and Qwen3's sliding windows, as their transformers 5.17 configs and attention compute them: the window is
 * sliding_window (default 4096) where use_sliding_window is true, else none; a layer slides where layer_types says
 * "sliding_attention", or without layer_types from max_window_layers on (default 28); a sliding layer without a window
 * is an error there (create_sliding_window_causal_mask). The hub's Qwen2 / Qwen2.5 / Qwen3 configs name a window and
 * leave it off. Returns the window (null: none slides) and, where only some layers slide, which.
 */
function qwenWindows(f: Fields, numLayers: number): { slidingWindow: number | null; windowLayers: boolean[] | null } {
  const useSw = f.get('use_sliding_window');
  if (useSw !== undefined && useSw !== null && typeof useSw !== 'boolean') throw f.error('use_sliding_window', 'must be true or false');
  f.get('sliding_window'); // (read either way: the hub's configs name one that use_sliding_window leaves off)
  const window = useSw === true && f.raw.sliding_window !== null ? f.int('sliding_window', 4096) : null;
  const mwl = f.get('max_window_layers') ?? 28;
  if (!Number.isSafeInteger(mwl) || (mwl as number) < 0) throw f.error('max_window_layers', `must be an integer >= 0 (got ${JSON.stringify(mwl)})`);
  const maxWindowLayers = mwl as number;
  const types = f.get('layer_types');
  let slides: boolean[];
  if (types === undefined) {
    slides = Array.from({ length: numLayers }, (_, i) => window !== null && i >= maxWindowLayers);
  } else {
    slides = slidingLayers(f, types, numLayers);
    if (window === null && slides.some(Boolean)) {
      throw f.error('layer_types', 'lists "sliding_attention" layers, but no window is set (sliding_window with use_sliding_window): ' +
        'transformers refuses them too');
    }
  }
  if (window === null || !slides.some(Boolean)) return { slidingWindow: null, windowLayers: null };
  return { slidingWindow: window, windowLayers: slides.every(Boolean) ? null : slides };
}

/** One line saying what was read, for a run's log: the settings that decide the computation. */
export function describeModel(cfg: ModelConfig): string {
  const gemma = isGemma(cfg);
  const heads = cfg.numKvHeads === cfg.numHeads ? `${cfg.numHeads} heads` : `${cfg.numHeads} query / ${cfg.numKvHeads} key-value heads`;
  const parts = [
    `${cfg.arch}, ${cfg.numLayers} layers, hidden ${cfg.hiddenSize}, ${heads} of ${cfg.headDim}` +
      (cfg.rotaryDim !== cfg.headDim ? ` (${cfg.rotaryDim} rotary)` : ''),
    `MLP ${cfg.intermediateSize}${cfg.act === 'silu' ? ' (SwiGLU)' : gemma ? ` (GeGLU, ${cfg.act === 'gelu_tanh' ? 'tanh' : 'erf'} GELU)` : cfg.act === 'gelu_tanh' ? ' (tanh GELU)' : ''}`,
    `vocab ${cfg.vocabSize}`,
  ];
  if (cfg.arch === 'gpt-neox') parts.push(cfg.parallelResidual ? 'parallel residual' : 'sequential residual');
  const sr = cfg.slidingRope && cfg.slidingWindow !== null ? cfg.slidingRope : null;
  parts.push(`rope theta ${cfg.ropeTheta}` + (cfg.ropeScaling ? `, ${describeRopeScaling(cfg.ropeScaling)}` : '') + (sr ? ' on full-attention layers' : ''));
  if (sr) parts.push(`rope theta ${sr.theta}${sr.scaling ? `, ${describeRopeScaling(sr.scaling)}` : ''} on sliding layers`);
  if (cfg.slidingWindow !== null) {
    const on = cfg.windowLayers ? cfg.windowLayers.flatMap((x, l) => (x ? [l] : [])) : [];
    parts.push(`sliding window ${cfg.slidingWindow}${cfg.windowLayers ? ` on layer${on.length > 1 ? 's' : ''} ${layerRanges(on)}` : ''}`);
  }
  if (cfg.arch === 'qwen2') parts.push('q/k/v biases');
  if (cfg.arch === 'qwen3' || cfg.arch === 'gemma3') parts.push('q/k norms');
  if (gemma) parts.push(`embeddings x sqrt(${cfg.hiddenSize}), norm gains 1 + w${cfg.arch !== 'gemma' ? ', norms after attention and MLP' : ''}`);
  if (cfg.arch === 'gemma3' && cfg.finalSoftcap) parts.push(`logits soft-capped at ${cfg.finalSoftcap}`);
  if (cfg.arch === 'gemma2') {
    parts.push(cfg.attnSoftcap ? `attention scores soft-capped at ${cfg.attnSoftcap} (as transformers' eager attention; its sdpa drops the cap)` : 'attention scores not soft-capped (attn_logit_softcapping null)');
    parts.push(cfg.finalSoftcap ? `logits soft-capped at ${cfg.finalSoftcap}` : 'logits not soft-capped (final_logit_softcapping null)');
  }
  if (cfg.arch === 'gemma3' && typeof cfg.raw.attn_logit_softcapping === 'number') {
    parts.push(`attn_logit_softcapping ${cfg.raw.attn_logit_softcapping} not applied (transformers 5.17's Gemma 3 does not apply it either)`);
  }
  if (cfg.arch === 'gemma' && cfg.act === 'gelu') {
    parts.push('hidden_act "gelu": the erf GELU, as transformers 5 computes it (4.39-4.5x computed the tanh GELU Gemma was trained with for such a config)');
  }
  if (cfg.queryPreAttnScalar && cfg.queryPreAttnScalar !== cfg.headDim) parts.push(`scores scaled by query_pre_attn_scalar ${cfg.queryPreAttnScalar}^-1/2`);
  // A window switched on that slides no layer (transformers computes the same): said, as a typo would make it.
  if ((cfg.arch === 'qwen2' || cfg.arch === 'qwen3') && cfg.raw.use_sliding_window === true && cfg.slidingWindow === null) {
    const why = cfg.raw.sliding_window === null ? 'sliding_window is null' : Array.isArray(cfg.raw.layer_types) ? 'layer_types lists none'
      : `max_window_layers ${JSON.stringify(cfg.raw.max_window_layers ?? 28)}${cfg.raw.max_window_layers === undefined ? ' (the default)' : ''} >= ${cfg.numLayers} layers`;
    parts.push(`use_sliding_window on but no layer slides (${why})`);
  }
  if (cfg.arch !== 'gpt-neox' && cfg.arch !== 'qwen2' && (cfg.attentionBias || cfg.mlpBias)) {
    parts.push([cfg.attentionBias ? 'attention' : '', cfg.mlpBias ? 'MLP' : ''].filter(Boolean).join(' and ') + ' biases');
  }
  if (cfg.tiedEmbeddings) parts.push('tied embeddings');
  // Dropout rates are read but not applied (NEUTRAL above): a config that sets them hears so.
  const dropout = ['attention_dropout', 'hidden_dropout'].filter((k) => typeof cfg.raw[k] === 'number' && (cfg.raw[k] as number) > 0);
  if (dropout.length) parts.push(`${dropout.map((k) => `${k} ${cfg.raw[k]}`).join(' and ')} not applied (no dropout, as TRL and the DPO code)`);
  return parts.join(', ');
}

/** Layer indices as ranges: [0, 1, 2, 5] -> "0-2, 5". */
function layerRanges(ls: number[]): string {
  const out: string[] = [];
  for (let i = 0; i < ls.length; i++) {
    let j = i;
    while (j + 1 < ls.length && ls[j + 1] === ls[j] + 1) j++;
    out.push(j > i ? `${ls[i]}-${ls[j]}` : `${ls[i]}`);
    i = j;
  }
  return out.join(', ');
}

/** Loads `<dir>/config.json` (or the .json file given) and normalizes it. */
export async function loadModelConfig(dirOrFile: string): Promise<ModelConfig> {
  const file = dirOrFile.endsWith('.json') ? dirOrFile : path.join(dirOrFile, 'config.json');
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); }
  catch (e) { throw new Error(`config ${file}: cannot read (${(e as Error).message})`); }
  let json: unknown;
  try { json = JSON.parse(text); }
  catch (e) { throw new Error(`config ${file}: not valid JSON (${(e as Error).message})`); }
  return parseModelConfig(json, file);
}

/**
 * A hub-style config.json for `cfg` (what downloaded checkpoints look like), such that
 * parseModelConfig(toHfConfigJson(cfg)) equals cfg apart from `raw`. Throws for a ModelConfig
 * transformers could not express for its arch.
 */
export function toHfConfigJson(cfg: ModelConfig): Record<string, unknown> {
  const need = (ok: boolean, what: string) => { if (!ok) throw new Error(`toHfConfigJson: ${cfg.arch} ${what}`); };
  const common = {
    vocab_size: cfg.vocabSize, hidden_size: cfg.hiddenSize, intermediate_size: cfg.intermediateSize,
    num_hidden_layers: cfg.numLayers, num_attention_heads: cfg.numHeads,
  };
  const tail = {
    max_position_embeddings: cfg.maxPositions, tie_word_embeddings: cfg.tiedEmbeddings,
    bos_token_id: cfg.bosTokenId, eos_token_id: cfg.eosTokenId,
    ...(cfg.dtype !== null ? { torch_dtype: cfg.dtype } : {}),
  };
  if (cfg.arch === 'gpt-neox') {
    need(cfg.numKvHeads === cfg.numHeads && cfg.headDim * cfg.numHeads === cfg.hiddenSize, 'needs numKvHeads = numHeads and headDim = hiddenSize / numHeads');
    need(cfg.norm === 'layernorm' && cfg.act !== 'silu' && cfg.mlpBias, 'uses LayerNorm, GELU and MLP biases');
    need(cfg.slidingWindow === null && cfg.embedPaddingIdx === null, 'has no sliding window or embedding padding_idx');
    const rotaryPct = cfg.rotaryDim / cfg.headDim;
    need(Math.trunc(cfg.headDim * rotaryPct) === cfg.rotaryDim, `cannot express rotaryDim ${cfg.rotaryDim} as rotary_pct`);
    return {
      architectures: ['GPTNeoXForCausalLM'], model_type: 'gpt_neox', ...common,
      hidden_act: cfg.act === 'gelu' ? 'gelu' : 'gelu_new',
      rotary_pct: rotaryPct, rotary_emb_base: cfg.ropeTheta, rope_scaling: ropeScalingJson(cfg.ropeScaling), layer_norm_eps: cfg.normEps,
      use_parallel_residual: cfg.parallelResidual, attention_bias: cfg.attentionBias, ...tail,
    };
  }
  if (cfg.arch === 'phi3') {
    // microsoft/Phi-3-mini-4k-instruct's spelling (less its auto_map).
    const s = cfg.ropeScaling;
    need(cfg.norm === 'rmsnorm' && cfg.act === 'silu' && !cfg.parallelResidual && !cfg.attentionBias && !cfg.mlpBias && (!s || s.type === 'longrope'),
      'uses RMSNorm, SiLU, sequential residuals, no biases and the default rope or longrope');
    const fraction = cfg.rotaryDim / cfg.headDim;
    need(Math.trunc(cfg.headDim * fraction) === cfg.rotaryDim, `cannot express rotaryDim ${cfg.rotaryDim} as partial_rotary_factor`);
    return {
      architectures: ['Phi3ForCausalLM'], model_type: 'phi3', ...common, num_key_value_heads: cfg.numKvHeads,
      ...(cfg.headDim * cfg.numHeads !== cfg.hiddenSize ? { head_dim: cfg.headDim } : {}), hidden_act: 'silu',
      rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, rope_scaling: ropeScalingJson(s), ...(fraction !== 1 ? { partial_rotary_factor: fraction } : {}),
      sliding_window: cfg.slidingWindow, original_max_position_embeddings: s?.type === 'longrope' ? s.originalMaxPositions : cfg.maxPositions,
      pad_token_id: cfg.embedPaddingIdx, ...tail,
    };
  }
  need(cfg.rotaryDim === cfg.headDim, 'rotates whole heads (rotaryDim = headDim)');
  if (isGemma(cfg)) return gemmaConfigJson(cfg, common, tail, need);
  need(cfg.norm === 'rmsnorm' && cfg.act === 'silu' && !cfg.parallelResidual, 'uses RMSNorm, SiLU and sequential residuals');
  if (cfg.arch === 'qwen2' || cfg.arch === 'qwen3') {
    const qwen2 = cfg.arch === 'qwen2';
    need((qwen2 ? cfg.attentionBias : true) && !cfg.mlpBias, qwen2 ? 'has q/k/v biases and no MLP biases' : 'has no MLP biases');
    const slides = Array.from({ length: cfg.numLayers }, (_, l) => layerWindow(cfg, l) > 0);
    // layer_types for transformers 5; max_window_layers too where the sliding layers are the last ones (all that a
    // reader without layer_types, transformers 4, can express).
    const first = slides.indexOf(true);
    const suffix = first >= 0 && slides.slice(first).every(Boolean);
    const windows = cfg.slidingWindow === null ? { use_sliding_window: false } : {
      use_sliding_window: true, sliding_window: cfg.slidingWindow, ...(suffix ? { max_window_layers: first } : {}),
      layer_types: slides.map((x) => (x ? 'sliding_attention' : 'full_attention')),
    };
    return {
      architectures: [qwen2 ? 'Qwen2ForCausalLM' : 'Qwen3ForCausalLM'], model_type: cfg.arch, ...common,
      num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim, hidden_act: 'silu',
      rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, rope_scaling: ropeScalingJson(cfg.ropeScaling),
      ...(qwen2 ? {} : { attention_bias: cfg.attentionBias }),
      ...windows, pad_token_id: cfg.embedPaddingIdx, ...tail,
    };
  }
  const llama = cfg.arch === 'llama';
  need(llama ? cfg.slidingWindow === null : !cfg.attentionBias && !cfg.mlpBias, llama ? 'has no sliding window' : 'has no biases');
  return {
    architectures: [llama ? 'LlamaForCausalLM' : 'MistralForCausalLM'], model_type: cfg.arch, ...common,
    num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim, hidden_act: 'silu',
    rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, rope_scaling: ropeScalingJson(cfg.ropeScaling),
    ...(llama ? { attention_bias: cfg.attentionBias, mlp_bias: cfg.mlpBias } : { sliding_window: cfg.slidingWindow }),
    pad_token_id: cfg.embedPaddingIdx, ...tail,
  };
}

/** The Gemmas' config.json in the hub's spelling (gemma-7b's, gemma-2-2b-it's, gemma-3-1b's); Gemma 3's rope_parameters where the
 *  sliding layers' rope is scaled (which only transformers 5's spelling can say). */
function gemmaConfigJson(cfg: ModelConfig, common: Record<string, unknown>, tail: Record<string, unknown>, need: (ok: boolean, what: string) => void): Record<string, unknown> {
  need(cfg.norm === 'rmsnorm' && cfg.act !== 'silu' && !cfg.parallelResidual && !cfg.mlpBias, 'uses RMSNorm, a GELU gate, sequential residuals and no MLP biases');
  const act = cfg.act === 'gelu' ? 'gelu' : 'gelu_pytorch_tanh';
  const ids = { pad_token_id: cfg.embedPaddingIdx };
  need(cfg.arch === 'gemma2' || !cfg.attnSoftcap, 'has no attention soft-capping (Gemma 2\'s)');
  need(cfg.arch !== 'gemma' || !cfg.finalSoftcap, 'has no logit soft-capping (Gemma 2\'s and 3\'s)');
  if (cfg.arch === 'gemma') {
    need(cfg.slidingWindow === null && !cfg.queryPreAttnScalar && !cfg.slidingRope, 'has no sliding window, query_pre_attn_scalar or local rope');
    return {
      architectures: ['GemmaForCausalLM'], model_type: 'gemma', ...common, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim,
      hidden_act: act, rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, rope_scaling: ropeScalingJson(cfg.ropeScaling),
      attention_bias: cfg.attentionBias, ...ids, ...tail,
    };
  }
  const slides = Array.from({ length: cfg.numLayers }, (_, l) => layerWindow(cfg, l) > 0);
  const layerTypes = slides.map((x) => (x ? 'sliding_attention' : 'full_attention'));
  if (cfg.arch === 'gemma2') {
    need(!cfg.slidingRope, 'has one rotary embedding for every layer');
    // The hub's files carry both activation keys and no layer_types (transformers 4.4x-4.5x apply every other layer by
    // their own rule and do not read it): layer_types is written only where the layers are not that rule's.
    const rule = slides.every((x, l) => x === (l % 2 === 0));
    return {
      architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2', ...common, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim,
      hidden_act: act, hidden_activation: act, rms_norm_eps: cfg.normEps, rope_theta: cfg.ropeTheta, rope_scaling: ropeScalingJson(cfg.ropeScaling),
      query_pre_attn_scalar: cfg.queryPreAttnScalar ?? cfg.headDim, sliding_window: cfg.slidingWindow,
      ...(rule && cfg.slidingWindow !== null ? {} : { layer_types: layerTypes }),
      final_logit_softcapping: cfg.finalSoftcap ?? null, attn_logit_softcapping: cfg.attnSoftcap ?? null,
      attention_bias: cfg.attentionBias, ...ids, ...tail,
    };
  }
  const sr = cfg.slidingRope ?? { theta: 1e4, scaling: null };
  const rope = sr.scaling ? {
    rope_parameters: {
      full_attention: { ...(ropeScalingJson(cfg.ropeScaling) ?? { rope_type: 'default' }), rope_theta: cfg.ropeTheta },
      sliding_attention: { ...ropeScalingJson(sr.scaling), rope_theta: sr.theta },
    },
  } : { rope_theta: cfg.ropeTheta, rope_local_base_freq: sr.theta, rope_scaling: ropeScalingJson(cfg.ropeScaling) };
  return {
    architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', ...common, num_key_value_heads: cfg.numKvHeads, head_dim: cfg.headDim,
    hidden_activation: act, rms_norm_eps: cfg.normEps, ...rope, query_pre_attn_scalar: cfg.queryPreAttnScalar ?? cfg.headDim,
    sliding_window: cfg.slidingWindow, layer_types: layerTypes,
    final_logit_softcapping: cfg.finalSoftcap ?? null, attn_logit_softcapping: null, attention_bias: cfg.attentionBias, ...ids, ...tail,
  };
}

/** A rope scaling in the hub configs' spelling (`rope_scaling`), or null. */
function ropeScalingJson(s: RopeScaling | null): Record<string, unknown> | null {
  if (!s) return null;
  // (Phi-3's original context is the config's top-level original_max_position_embeddings.)
  if (s.type === 'longrope') return { rope_type: 'longrope', short_factor: s.shortFactor, long_factor: s.longFactor, attention_factor: s.attentionFactor };
  if (s.type !== 'llama3') return { rope_type: s.type, factor: s.factor };
  return { rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor,
    original_max_position_embeddings: s.originalMaxPositions };
}

/**
 * Fields transformers 5.17's config classes type as float and validate strictly: an integral value written as an integer
 * (Gemma 2's cap 30, as JSON.stringify writes 30.0) is refused there ("expected float, got int").
 */
const FLOAT_FIELDS = new Set(['final_logit_softcapping', 'attn_logit_softcapping', 'rms_norm_eps', 'layer_norm_eps', 'initializer_range']);

/** A config.json's text (2-space JSON and a newline), FLOAT_FIELDS' integral values written as floats (30.0), as transformers reads them. */
export function hfConfigText(json: Record<string, unknown>): string {
  const mark = '\u0000float:';
  const text = JSON.stringify(json, (k, v: unknown) =>
    (FLOAT_FIELDS.has(k) && typeof v === 'number' && Number.isInteger(v) && Math.abs(v) < 1e15 ? `${mark}${v}` : v), 2);
  return `${text.replace(/"\\u0000float:(-?\d+)"/g, '$1.0')}\n`;
}

/** Writes toHfConfigJson(cfg) as `<dir>/config.json`. */
export async function writeHfConfig(dir: string, cfg: ModelConfig): Promise<void> {
  await fsp.writeFile(path.join(dir, 'config.json'), hfConfigText(toHfConfigJson(cfg)));
}
