import { describe, expect, it } from 'vitest';
import { buildBatch } from '../../src/model/batch.js';

describe('batch layout', () => {
  const items = [
    { prompt: [1, 2, 3], completions: [[10, 11], [20, 21, 22]] },
    { prompt: [4], completions: [[30], [40, 41]] },
  ];
  it('unpacked: one row per completion, targets shifted by one, prompt unscored', () => {
    const b = buildBatch(items, { packed: false });
    expect(b.B).toBe(4); expect(b.T).toBe(6);
    expect([...b.ids.slice(0, 5)]).toEqual([1, 2, 3, 10, 11]);
    expect([...b.targets.slice(0, 6)]).toEqual([-1, -1, 10, 11, -1, -1]);
    expect([...b.seqOfToken.slice(0, 6)]).toEqual([-1, -1, 0, 0, -1, -1]);
    expect([...b.lengths]).toEqual([5, 6, 2, 3]);
    expect([...b.tokenCounts]).toEqual([2, 3, 1, 2]);
    expect(b.seqIndex).toEqual([[0, 1], [2, 3]]);
    expect(b.seqRanges[1]).toEqual([[8, 11]]);
  });
  it('packed: shared prefix once, each branch restarts at the last prompt token', () => {
    const b = buildBatch(items, { packed: true, padTo: 9 });
    expect(b.B).toBe(2); expect(b.T).toBe(9);
    // [1 2] [3 10 11] [3 20 21 22]
    expect([...b.ids.slice(0, 9)]).toEqual([1, 2, 3, 10, 11, 3, 20, 21, 22]);
    expect([...b.positions.slice(0, 9)]).toEqual([0, 1, 2, 3, 4, 2, 3, 4, 5]);
    expect([...b.segments.slice(0, 9)]).toEqual([0, 0, 1, 1, 1, 2, 2, 2, 2]);
    expect([...b.targets.slice(0, 9)]).toEqual([-1, -1, 10, 11, -1, 20, 21, 22, -1]);
    expect([...b.seqOfToken.slice(0, 9)]).toEqual([-1, -1, 0, 0, -1, 1, 1, 1, -1]);
    // Second row: prompt of one token -> no shared prefix.
    expect([...b.ids.slice(9, 14)]).toEqual([4, 30, 4, 40, 41]);
    expect([...b.segments.slice(9, 14)]).toEqual([1, 1, 2, 2, 2]);
    expect(b.lengths[1]).toBe(5);
  });
  it('rejects an empty prompt and a too-short padTo', () => {
    expect(() => buildBatch([{ prompt: [], completions: [[1]] }], { packed: false })).toThrow(/empty prompt/);
    expect(() => buildBatch(items, { packed: false, padTo: 3 })).toThrow(/shorter than the longest row/);
  });
});

describe('batch limits', () => {
  it('refuses positions past max_position_embeddings and ids outside the vocabulary, naming the row', async () => {
    const { uploadBatch } = await import('../../src/model/gpu-batch.js');
    const noGpu = {} as never; // the checks run before anything touches the GPU
    const layout = buildBatch([{ prompt: [1, 2, 3], completions: [[4, 5], [6]] }], { packed: true });
    expect(() => uploadBatch(noGpu, layout, { vocabSize: 10, maxPositions: 4 })).toThrow(/row 0 reaches position 4, past the model's max_position_embeddings 4/);
    expect(() => uploadBatch(noGpu, layout, { vocabSize: 6, maxPositions: 100 })).toThrow(/token id 6 .* vocabulary of 6/);
  });
});

describe('scored tokens', () => {
  it('a target of id 0 (GPT-NeoX\'s EOS) is scored like any other, packed and unpacked', async () => {
    const { uploadBatch } = await import('../../src/model/gpu-batch.js');
    const recordingGpu = { tensor: (shape: number[], data: unknown, dtype: string, name: string) => ({ shape, data, dtype, name }) } as never;
    const items = [{ prompt: [5, 6], completions: [[7, 0], [0]] }, { prompt: [9], completions: [[0, 3, 0], [8]] }];
    for (const packed of [false, true]) {
      const layout = buildBatch(items, { packed });
      const up = uploadBatch(recordingGpu, layout, 10);
      const counts = [...layout.tokenCounts].reduce((a, b) => a + b, 0);
      expect(counts).toBe(7);
      expect(up.scored.n, `packed ${packed}`).toBe(counts);
      expect([...(up.scored.targets as unknown as { data: Int32Array }).data].filter((t) => t === 0)).toHaveLength(4);
    }
  });
});
