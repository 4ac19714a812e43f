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

  it('views at element offsets (as the step writes its sums into rows of the log-prob table), neighbours untouched', async () => {
    const gpu = await getGpu();
    const ids = [-1, 0, 0, 0, -1, 1, 2, 2, 3, 3, 3]; // 4 sequences, a gap, two meeting
    const S = 4; const N = ids.length;
    const x = rng.array(N, 2);
    const ref = segmentSumRef(Float32Array.from(x), ids, S);
    // x at element offset 5 of a larger tensor, the sums at offset 7 of another (neither 256-byte aligned).
    const bigX = gpu.tensor([N + 9], Float32Array.from([...rng.array(5), ...x, ...rng.array(4)]));
    const bigS = gpu.tensor([S + 11], new Float32Array(S + 11).fill(-3));
    const tr = gpu.tensor([S, 2], segmentRanges(ids, S), 'u32');
    segmentSum(gpu, { x: bigX.view([N], 5), ranges: tr, sums: bigS.view([S], 7), S });
    const got = await gpu.readF32(bigS);
    expect(relErr(got.subarray(7, 7 + S), ref.sums)).toBeLessThan(1e-6);
    expect([...got.subarray(0, 7), ...got.subarray(7 + S)].every((v) => v === -3)).toBe(true);
    gpu.pool.release(bigX, bigS, tr);
  });

  it('forward ranges may overlap or repeat (the step reads a pair of the same tokens twice from one range): bit-identical sums', async () => {
    const gpu = await getGpu();
    const N = 613;
    const x = Float32Array.from(rng.array(N, 3));
    // Random ranges, some repeated exactly (as a same-tokens pair's two slots), some overlapping, one empty.
    const ranges: number[] = [];
    for (let s = 0; s < 9; s++) { const a = rng.int(N); const b = a + rng.int(N - a + 1); ranges.push(a, b); }
    ranges.push(ranges[2], ranges[3], ranges[10], ranges[11], 40, 40);
    const S = ranges.length / 2;
    const want = Float64Array.from({ length: S }, (_, s) => { let t = 0; for (let n = ranges[2 * s]; n < ranges[2 * s + 1]; n++) t += x[n]; return t; });
    const tx = gpu.tensor([N], x); const tr = gpu.tensor([S, 2], Uint32Array.from(ranges), 'u32'); const ts = gpu.tensor([S]);
    segmentSum(gpu, { x: tx, ranges: tr, sums: ts, S });
    const got = await gpu.readF32(ts);
    expect(relErr(got, want)).toBeLessThan(1e-6);
    expect([got[9], got[10], got[11]]).toEqual([got[1], got[5], 0]); // a repeated range: the same bits
    gpu.pool.release(tx, tr, ts);
  });

  it('segmentRanges: u32 ignored ids, non-contiguous sequences rejected', () => {
    expect([...segmentRanges(Uint32Array.from([0xffffffff, 1, 1, 0, 0xffffffff]), 3)]).toEqual([3, 4, 1, 3, 0, 0]);
    expect(() => segmentRanges([0, 1, 0], 2)).toThrow(/contiguous/);
  });
});
