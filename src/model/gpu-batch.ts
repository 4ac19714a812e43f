// Uploads a host batch layout (batch.ts) to the GPU: ids, positions, targets, the packed
// attention mask and the per-sequence token ranges for the log-prob sums.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { packMaskHost } from '../kernels/attention-mask.js';
import { segmentRanges } from '../kernels/segment-sum.js';
import type { BatchLayout } from './batch.js';
import type { GpuBatch } from './context.js';
import { compactIndex, prefixMaps, prefixToShare } from './shared-prefix.js';
import { positionLimit, type RopeScaling } from './rope.js';

export interface UploadedBatch extends GpuBatch {
  layout: BatchLayout;
  /** [S, 2] u32 token range of each sequence's scored tokens. */
  ranges: Tensor;
  S: number;
}

/** What the model accepts: its vocabulary, and the longest position it was built for (if known). */
export interface BatchLimits { vocabSize: number; maxPositions?: number; ropeScaling?: RopeScaling | null }

/**
 * Options: sharePrefix (a forward without backward will read the batch): the rows' common prefix,
 * where it pays, goes through the blocks once (shared-prefix.ts).
 */
export function uploadBatch(gpu: Gpu, layout: BatchLayout, model: BatchLimits | number, opts: { sharePrefix?: boolean } = {}): UploadedBatch {
  const { vocabSize, maxPositions: configured, ropeScaling } = typeof model === 'number' ? { vocabSize: model, maxPositions: undefined, ropeScaling: null } : model;
  // (LongRoPE's original context where it is shorter: positionLimit.)
  const limit = configured !== undefined ? positionLimit({ maxPositions: configured, ropeScaling }) : undefined;
  const maxPositions = limit?.max;
  const { B, T } = layout; const N = B * T;
  for (let b = 0; b < B && maxPositions !== undefined; b++) {
    let longest = 0;
    for (let i = 0; i < layout.lengths[b]; i++) longest = Math.max(longest, layout.positions[b * T + i]);
    if (longest >= maxPositions) {
      throw Object.assign(new RangeError(`a sequence in row ${b} reaches position ${longest}, past the model's ` +
        `${limit!.name}; lower --max-length (or --max-prompt-length)`), { userFacing: true });
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
  const L = opts.sharePrefix ? prefixToShare(layout) : 0;
  // The tokens the blocks run on: B T, or the compact order (row 0, then the others without the prefix).
  const Nc = L ? L + B * (T - L) : N;
  const maps = L ? prefixMaps(B, T, L) : undefined;
  const compactOf = (t: number) => compactIndex(Math.floor(t / T), t % T, T, L);
  const ids = maps ? Uint32Array.from(maps.toFull, (t) => layout.ids[t]) : layout.ids;
  const positions = maps ? Int32Array.from(maps.toFull, (t) => layout.positions[t]) : layout.positions;
  const u32 = (a: number[], name: string) => gpu.tensor([Math.max(1, a.length)], a.length ? Uint32Array.from(a) : new Uint32Array(1), 'u32', name);
  const fullRows = u32(scoredRows, 'scored_rows');
  return {
    B, T, N: Nc, layout, S,
    ids: gpu.tensor([Nc], ids, 'u32', 'ids'),
    positions: gpu.tensor([Nc], positions, 'i32', 'positions'),
    targets: gpu.tensor([N], layout.targets, 'i32', 'targets'),
    scored: {
      rows: L ? u32(scoredRows.map(compactOf), 'scored_rows_compact') : fullRows,
      fullRows,
      targets: gpu.tensor([Math.max(1, n)], n ? Int32Array.from(scoredRows, (i) => layout.targets[i]) : new Int32Array(1), 'i32', 'scored_targets'),
      n,
    },
    shared: maps ? {
      L, full: N,
      toCompact: gpu.tensor([N], maps.toCompact, 'u32', 'prefix_to_compact'),
      toFull: gpu.tensor([Nc], maps.toFull, 'u32', 'prefix_to_full'),
    } : undefined,
    mask: packMaskHost(gpu, B, T, { positions: layout.positions, segments: layout.segments, lengths: layout.lengths }),
    hostIds: ids,
    ranges: gpu.tensor([Math.max(1, S), 2], S ? segmentRanges(layout.seqOfToken, S) : new Uint32Array(2), 'u32', 'seq_ranges'),
  };
}

export function releaseBatch(gpu: Gpu, b: UploadedBatch): void {
  gpu.pool.release(b.ids, b.positions, b.targets, b.scored.rows, b.scored.targets, b.mask.packed, b.ranges);
  if (b.scored.fullRows !== b.scored.rows) gpu.pool.release(b.scored.fullRows);
  if (b.shared) gpu.pool.release(b.shared.toCompact, b.shared.toFull);
}
