// What one forward/backward over a batch shares: the model's shape, its parameters, the batch
// tensors on the GPU, and scratch it can reuse.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import type { PackedMask } from '../kernels/attention-mask.js';
import type { Params } from './params.js';
import type { SharedPrefix } from './shared-prefix.js';
import type { RopeScaling } from './rope.js';

/** The architecture facts the model code needs (config.ts's ModelConfig has all of them). */
export interface ModelShape {
  arch: 'gpt-neox' | 'mistral' | 'llama' | 'qwen2';
  vocabSize: number; hiddenSize: number; intermediateSize: number; numLayers: number;
  numHeads: number; numKvHeads: number; headDim: number; rotaryDim: number; ropeTheta: number;
  normEps: number; act: 'gelu' | 'gelu_tanh' | 'silu';
  parallelResidual: boolean; attentionBias: boolean; mlpBias: boolean; tiedEmbeddings: boolean;
  slidingWindow: number | null;
  /** Scaled rotary embeddings (rope.ts); absent or null = the default frequencies. */
  ropeScaling?: RopeScaling | null;
  /** max_position_embeddings, when the config gives it (longer sequences are refused). */
  maxPositions?: number;
  /** Embedding row that gets no gradient (torch padding_idx), if any. */
  embedPaddingIdx?: number | null;
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

export interface ForwardContext {
  gpu: Gpu; cfg: ModelShape; params: Params; batch: GpuBatch;
}
