// Uploads a host batch layout (batch.ts) to the GPU: ids, positions, targets, the packed
// attention mask and the per-sequence token ranges for the log-prob sums.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { packMaskHost } from '../kernels/attention-mask.js';
import { segmentRanges } from '../kernels/segment-sum.js';
import type { BatchLayout } from './batch.js';
import type { GpuBatch } from './context.js';

export interface UploadedBatch extends GpuBatch {
  layout: BatchLayout;
  /** [S, 2] u32 token range of each sequence's scored tokens. */
  ranges: Tensor;
  S: number;
}

/** What the model accepts: its vocabulary, and the longest position it was built for (if known). */
export interface BatchLimits { vocabSize: number; maxPositions?: number }

export function uploadBatch(gpu: Gpu, layout: BatchLayout, model: BatchLimits | number): UploadedBatch {
  const { vocabSize, maxPositions } = typeof model === 'number' ? { vocabSize: model, maxPositions: undefined } : model;
  const { B, T } = layout; const N = B * T;
  for (let b = 0; b < B && maxPositions !== undefined; b++) {
    let longest = 0;
    for (let i = 0; i < layout.lengths[b]; i++) longest = Math.max(longest, layout.positions[b * T + i]);
    if (longest >= maxPositions) {
      throw Object.assign(new RangeError(`a sequence in row ${b} reaches position ${longest}, past the model's ` +
        `max_position_embeddings ${maxPositions}; lower --max-length (or --max-prompt-length)`), { userFacing: true });
    }
  }
  for (let i = 0; i < N; i++) {
    if (layout.ids[i] >= vocabSize) {
      throw new RangeError(`token id ${layout.ids[i]} at row ${Math.floor(i / T)}, position ${i % T} is outside the ` +
        `model's vocabulary of ${vocabSize} (tokenizer and model do not match?)`);
    }
  }
  const S = layout.numSeqs;
  const scoredRows: number[] = [];
  for (let i = 0; i < N; i++) if (layout.targets[i] >= 0) scoredRows.push(i);
  const n = scoredRows.length;
  return {
    B, T, N, layout, S,
    ids: gpu.tensor([N], layout.ids, 'u32', 'ids'),
    positions: gpu.tensor([N], layout.positions, 'i32', 'positions'),
    targets: gpu.tensor([N], layout.targets, 'i32', 'targets'),
    scored: {
      rows: gpu.tensor([Math.max(1, n)], n ? Uint32Array.from(scoredRows) : new Uint32Array(1), 'u32', 'scored_rows'),
      targets: gpu.tensor([Math.max(1, n)], n ? Int32Array.from(scoredRows, (i) => layout.targets[i]) : new Int32Array(1), 'i32', 'scored_targets'),
      n,
    },
    mask: packMaskHost(gpu, B, T, { positions: layout.positions, segments: layout.segments, lengths: layout.lengths }),
    hostIds: layout.ids,
    ranges: gpu.tensor([Math.max(1, S), 2], S ? segmentRanges(layout.seqOfToken, S) : new Uint32Array(2), 'u32', 'seq_ranges'),
  };
}

export function releaseBatch(gpu: Gpu, b: UploadedBatch): void {
  gpu.pool.release(b.ids, b.positions, b.targets, b.scored.rows, b.scored.targets, b.mask.packed, b.ranges);
}
