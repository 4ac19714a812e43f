// What one forward/backward over a batch shares: the model's shape, its parameters, the batch
// tensors on the GPU, and scratch it can reuse.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import type { PackedMask } from '../kernels/attention-mask.js';
import type { Params } from './params.js';
import type { HeadOperand } from '../kernels/attention.js';
import type { SharedPrefix } from './shared-prefix.js';
import type { RopeScaling } from './rope.js';

/** The architecture facts the model code needs (config.ts's ModelConfig has all of them). */
export interface ModelShape {
  arch: 'gpt-neox' | 'mistral' | 'llama' | 'qwen2' | 'qwen3' | 'gemma' | 'gemma2' | 'gemma3' | 'phi3';
  vocabSize: number; hiddenSize: number; intermediateSize: number; numLayers: number;
  numHeads: number; numKvHeads: number; headDim: number; rotaryDim: number; ropeTheta: number;
  normEps: number; act: 'gelu' | 'gelu_tanh' | 'silu';
  parallelResidual: boolean; attentionBias: boolean; mlpBias: boolean; tiedEmbeddings: boolean;
  slidingWindow: number | null;
  /** Where only some layers slide (Qwen2 / Qwen3): which; absent or null, every layer as slidingWindow says. */
  windowLayers?: readonly boolean[] | null;
  /** Scaled rotary embeddings (rope.ts); absent or null = the default frequencies. */
  ropeScaling?: RopeScaling | null;
  /** max_position_embeddings, when the config gives it (longer sequences are refused). */
  maxPositions?: number;
  /** Embedding row that gets no gradient (torch padding_idx), if any. */
  embedPaddingIdx?: number | null;
  /** Gemma 2 / 3: query_pre_attn_scalar, whose -1/2 power scales the attention scores (elsewhere head_dim's); absent or null: head_dim. */
  queryPreAttnScalar?: number | null;
  /** Gemma 3: the rotary embedding of the sliding layers (rope_local_base_freq); the others take ropeTheta and ropeScaling. */
  slidingRope?: { theta: number; scaling: RopeScaling | null } | null;
  /** Gemma 2: attention scores soft-capped as cap tanh(s / cap) before the softmax (attn_logit_softcapping); absent or null: none. */
  attnSoftcap?: number | null;
  /** Gemma 2: the output logits soft-capped alike before the log-softmax (final_logit_softcapping); absent or null: none. */
  finalSoftcap?: number | null;
}

/** The Gemma family (Gemma, Gemma 2, Gemma 3 text): what they share in the block below. */
export function isGemma(cfg: Pick<ModelShape, 'arch'>): boolean {
  return cfg.arch === 'gemma' || cfg.arch === 'gemma2' || cfg.arch === 'gemma3';
}

// What the Llama-family block computes differently per architecture (llama.ts), as functions of the shape:
/** The Gemmas: every RMSNorm's gain is 1 + w (GemmaRMSNorm stores gain - 1); 0 elsewhere. */
export function normOffset(cfg: Pick<ModelShape, 'arch'>): 0 | 1 {
  return isGemma(cfg) ? 1 : 0;
}
/** The Gemmas: the input embeddings are multiplied by sqrt(hidden), as transformers rounds it to the weights' dtype (f32). */
export function embedScale(cfg: Pick<ModelShape, 'arch' | 'hiddenSize'>): number {
  return isGemma(cfg) ? Math.fround(Math.sqrt(cfg.hiddenSize)) : 1;
}
/** Qwen3 and Gemma 3: an RMSNorm over each query and key head (q_norm / k_norm) before the rotation. */
export function hasHeadNorms(cfg: Pick<ModelShape, 'arch'>): boolean {
  return cfg.arch === 'qwen3' || cfg.arch === 'gemma3';
}
/**
 * Gemma 2's and Gemma 3's block: the attention's and the MLP's outputs each normalized before the residual sum
 * (post_attention_layernorm, post_feedforward_layernorm), the MLP's input by pre_feedforward_layernorm.
 */
export function hasSandwichNorms(cfg: Pick<ModelShape, 'arch'>): boolean {
  return cfg.arch === 'gemma2' || cfg.arch === 'gemma3';
}
/** The attention's score scale where it is not 1 / sqrt(head_dim) (Gemma 2's and 3's query_pre_attn_scalar); else undefined. */
export function attentionScale(cfg: Pick<ModelShape, 'queryPreAttnScalar'>): number | undefined {
  return cfg.queryPreAttnScalar ? 1 / Math.sqrt(cfg.queryPreAttnScalar) : undefined;
}
/** Gemma 2's attention score cap (cap tanh(s / cap)); undefined: none. */
export function attentionSoftcap(cfg: Pick<ModelShape, 'attnSoftcap'>): number | undefined {
  return cfg.attnSoftcap ? cfg.attnSoftcap : undefined;
}
/** Gemma 2's output logit cap; undefined: none. */
export function logitSoftcap(cfg: Pick<ModelShape, 'finalSoftcap'>): number | undefined {
  return cfg.finalSoftcap ? cfg.finalSoftcap : undefined;
}

/** The window of layer l's attention: the keys a query sees, itself included (0: all before it). */
export function layerWindow(cfg: ModelShape, l: number): number {
  return cfg.slidingWindow !== null && (cfg.windowLayers?.[l] ?? true) ? cfg.slidingWindow : 0;
}

/**
 * A batch on the GPU (see batch.ts for the layout). N tokens go through the blocks: B T, or with a
 * shared prefix (shared-prefix.ts; forwards without backward) the compact order's fewer.
 */
export interface GpuBatch {
  B: number; T: number; N: number;
  ids: Tensor;         // [N] u32
  positions: Tensor;   // [N] i32 (rotary)
  targets: Tensor;     // [B T] i32, -1 = not scored
  /**
   * The scored tokens (target >= 0), in token order: their row in [0, N) (u32 [n]), the same token's
   * row in [0, B T) where its log-prob goes (fullRows: rows itself unless the prefix is shared) and
   * target (i32 [n]). The output layer runs on these rows only (prompt and padding have no target).
   */
  scored: { rows: Tensor; fullRows: Tensor; targets: Tensor; n: number };
  /** The rows' common prefix, computed once (shared-prefix.ts); attention gathers the rows whole. */
  shared?: SharedPrefix;
  mask: PackedMask;    // attention mask
  /** Host copy of the ids [N] grouped for the embedding backward. */
  hostIds: Uint32Array;
}

/**
 * Attention by other means, forward only: generation's key/value cache (src/generate/decoder.ts). A
 * block with one calls it in place of attentionForward with its query, key and value operands (after
 * rotary) and the output [N, Hq Dh] to write; the batch's mask and lse go unused.
 */
export type AttendHook = (layer: number, q: HeadOperand, k: HeadOperand, v: HeadOperand, out: Tensor) => void;

/**
 * What a block reads of its batch: sizes, rotary positions, the attention mask and a shared prefix.
 * A GpuBatch is one; generation's steps (src/generate/decoder.ts) have no mask, attending through
 * ForwardContext.attend instead.
 */
export type BlockBatch = Pick<GpuBatch, 'B' | 'T' | 'N' | 'positions' | 'shared'> & { mask?: PackedMask };

export interface ForwardContext {
  gpu: Gpu; cfg: ModelShape; params: Params; batch: BlockBatch;
  attend?: AttendHook;
}

/** The batch's attention mask; only generation's steps go without one, and they attend through ctx.attend. */
export function maskOf(batch: BlockBatch): PackedMask {
  if (!batch.mask) throw new Error('a batch without an attention mask reached attention (only steps with ctx.attend have none)');
  return batch.mask;
}
