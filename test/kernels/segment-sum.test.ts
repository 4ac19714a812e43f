import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { segmentRanges, segmentSum, segmentSumBackward } from '../../src/kernels/segment-sum.js';
import { segmentSumBackwardRef, segmentSumRef } from '../../src/kernels/segment-sum.ref.js';

const rng = makeRng();

describe(`segment sums (seed ${rng.seed})`, () => {
  it('sequences of awkward lengths (one empty, one over 256 tokens) with prompt and padding gaps', async () => {
    const gpu = await getGpu();
    // Layout: per sequence a prompt gap (-1), the completion (id s), and trailing padding.
    const lens = [5, 0, 1, 300, 17, 257, 3];
    const S = lens.length;
    const ids: number[] = [];
    for (let s = 0; s < S; s++) {
      for (let i = rng.int(4); i > 0; i--) ids.push(-1);
      for (let i = 0; i < lens[s]; i++) ids.push(s);
      for (let i = rng.int(3); i > 0; i--) ids.push(-1);
    }
    const N = ids.length;
    const x = Float32Array.from(rng.array(N, 3));
    const ranges = segmentRanges(ids, S);
    const ref = segmentSumRef(x, ids, S);
    const tx = gpu.tensor([N], x); const tr = gpu.tensor([S, 2], ranges, 'u32');
    const ts = gpu.tensor([S]); const tc = gpu.tensor([S]);
    segmentSum(gpu, { x: tx, ranges: tr, sums: ts, counts: tc, S });
    expect(relErr(await gpu.readF32(ts), ref.sums)).toBeLessThan(1e-6);
    expect([...(await gpu.readF32(tc))]).toEqual([...ref.counts]);
    // Deterministic: the same inputs give bit-identical sums.
    const first = await gpu.readF32(ts);
    segmentSum(gpu, { x: tx, ranges: tr, sums: ts, S });
    expect([...(await gpu.readF32(ts))]).toEqual([...first]);

    const dsum = Float32Array.from(rng.array(S));
    const tds = gpu.tensor([S], dsum); const tg = gpu.tensor([N], new Float32Array(N).fill(7));
    segmentSumBackward(gpu, { dsum: tds, ranges: tr, g: tg, S });
    expect(relErr(await gpu.readF32(tg), segmentSumBackwardRef(dsum, ids))).toBe(0);
    segmentSumBackward(gpu, { dsum: tds, ranges: tr, g: tg, S, scale: -0.5 });
    expect(relErr(await gpu.readF32(tg), Float64Array.from(segmentSumBackwardRef(dsum, ids), (v) => -0.5 * v))).toBe(0);
    gpu.pool.release(tx, tr, ts, tc, tds, tg);
  });

  it('segmentRanges: u32 ignored ids, non-contiguous sequences rejected', () => {
    expect([...segmentRanges(Uint32Array.from([0xffffffff, 1, 1, 0, 0xffffffff]), 3)]).toEqual([3, 4, 1, 3, 0, 0]);
    expect(() => segmentRanges([0, 1, 0], 2)).toThrow(/contiguous/);
  });
});
