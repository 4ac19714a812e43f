import { afterAll, describe, expect, it } from 'vitest';
import { Gpu } from '../../src/engine/gpu.js';
import { TuneTable, tuningWanted } from '../../src/engine/tuner.js';
import { matmul, tileName } from '../../src/kernels/matmul.js';
import { attentionBackward, attentionForward } from '../../src/kernels/attention.js';
import { attentionBackward as attentionBackwardRef, attentionForward as attentionForwardRef } from '../../src/kernels/attention.ref.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';

const rng = makeRng();

describe('TuneTable (the tuner without a GPU)', () => {
  it('takes the candidates in turn, minSamples each, then the default untimed until the step settles', () => {
    const t = new TuneTable(2, 2);
    const labels = ['rule', 'b', 'c'];
    const picks = Array.from({ length: 8 }, () => t.pick('k', labels));
    expect(picks.map((p) => p.index)).toEqual([0, 1, 2, 0, 1, 2, 0, 0]);
    expect(picks.map((p) => p.timed)).toEqual([true, true, true, true, true, true, false, false]);
  });

  it('keeps the candidate with the lowest median once every candidate is measured', () => {
    const t = new TuneTable(5, 3);
    const labels = ['rule', 'fast', 'slow'];
    const times = [[2, 2.1, 9], [1.5, 1.4, 50], [3, 3, 3]]; // 'fast' has one outlier: the median ignores it
    for (let r = 0; r < 3; r++) for (let i = 0; i < 3; i++) {
      const p = t.pick('k', labels);
      t.add('k', p.index, times[p.index][r]);
    }
    expect(t.open).toBe(true);
    t.endStep();
    expect(t.open).toBe(false);
    expect(t.pick('k', labels)).toEqual({ index: 1, timed: false });
    expect(t.decisions()).toEqual([{ key: 'k', candidates: labels, chosen: 1, medianMs: [2.1, 1.5, 3] }]);
  });

  it('stays open while samples are missing, and after maxSteps chooses among the measured', () => {
    const t = new TuneTable(2, 2);
    const labels = ['rule', 'x', 'y'];
    let p = t.pick('k', labels); t.add('k', p.index, 5); // rule: 5
    p = t.pick('k', labels); t.add('k', p.index, 4); // x: 4
    t.endStep();
    expect(t.open).toBe(true);
    p = t.pick('k', labels);
    expect(p).toEqual({ index: 2, timed: true }); // the turn goes on where it stopped
    // y's time never comes back (say, a lost timestamp): after maxSteps the measured x wins.
    t.endStep();
    expect(t.open).toBe(false);
    expect(t.pick('k', labels).index).toBe(1);
  });

  it('keeps the default where it was never measured; a key first seen late gets its own steps', () => {
    const t = new TuneTable(1, 1);
    t.pick('a', ['rule', 'x']); // issued, never measured
    t.endStep();
    expect(t.pick('a', ['rule', 'x'])).toEqual({ index: 0, timed: false });
    expect(t.chosen('a')).toBe(0);
    expect(t.pick('single', ['rule'])).toEqual({ index: 0, timed: false });
    const late = t.pick('late', ['rule', 'x']);
    expect(late).toEqual({ index: 0, timed: true });
    expect(t.chosen('late')).toBeUndefined();
    t.add('late', 0, 3);
    t.add('late', t.pick('late', ['rule', 'x']).index, 2);
    t.endStep();
    expect(t.chosen('late')).toBe(1);
  });

  it('refuses one key with two candidate lists (a caller bug)', () => {
    const t = new TuneTable();
    t.pick('k', ['a', 'b']);
    expect(() => t.pick('k', ['a', 'c'])).toThrow(/key k seen with candidates \[a, b\] and \[a, c\]/);
  });

  it('SRK_TUNE: 0 off, 1 on, otherwise real GPUs with timestamps; anything else is an error', () => {
    const saved = process.env.SRK_TUNE;
    try {
      delete process.env.SRK_TUNE;
      expect(tuningWanted(false, true)).toBe(true);
      expect(tuningWanted(true, true)).toBe(false);
      expect(tuningWanted(false, false)).toBe(false);
      process.env.SRK_TUNE = '1';
      expect(tuningWanted(true, true)).toBe(true);
      expect(tuningWanted(true, false)).toBe(false); // nothing to time with
      process.env.SRK_TUNE = '0';
      expect(tuningWanted(false, true)).toBe(false);
      process.env.SRK_TUNE = 'yes';
      expect(() => tuningWanted(false, true)).toThrow(/SRK_TUNE=yes: expected 0 \(off\) or 1 \(on\)/);
    } finally {
      if (saved === undefined) delete process.env.SRK_TUNE; else process.env.SRK_TUNE = saved;
    }
  });
});

describe('matmul with the tuner (real dispatches timed on this adapter)', () => {
  let gpu: Gpu | undefined;
  afterAll(async () => { await gpu?.destroy(); });

  it('every candidate computes the product; the step settles on one of them and stops timing', async () => {
    gpu = await Gpu.create({ tune: true });
    const tuner = gpu.tuner!;
    expect(tuner).toBeDefined();
    // Awkward sizes: edge tiles in M, N and K; a bias (the nt product of a linear layer). Few output
    // tiles and a long K: split-K tilings are candidates too (several dispatches each, timed as one).
    const M = 70; const N = 36; const K = 2100;
    const a = rng.array(M * K); const b = rng.array(N * K); const bias = rng.array(N);
    const ta = gpu.tensor([M * K], Float32Array.from(a)); const tb = gpu.tensor([N * K], Float32Array.from(b));
    const tbias = gpu.tensor([N], Float32Array.from(bias));
    const want = matmulRef({ a, b, bias, M, N, K, transA: false, transB: true });
    const kernels = new Set<string>();
    // Enough calls for every candidate's samples (3 each of 7), each checked on its own.
    for (let i = 0; i < 3 * 7; i++) {
      const tc = gpu.tensor([M * N]);
      matmul(gpu, { a: ta, b: tb, c: tc, bias: tbias, M, N, K, transB: true });
      kernels.add(gpu.recorder.lastKernel);
      expect(relErr(await gpu.readF32(tc), want), gpu.recorder.lastKernel).toBeLessThan(1e-5);
      gpu.pool.release(tc);
    }
    expect(kernels.size).toBeGreaterThan(1); // the candidates really ran
    expect(tuner.table.open).toBe(true);
    await tuner.settle();
    expect(tuner.table.open).toBe(false);
    const [d] = tuner.table.decisions();
    expect(d.key).toMatch(/^matmul nt bias /);
    expect(d.candidates.slice(-2)).toEqual(['64x64x16/4x4 split-K 4', '64x64x16/4x4 split-K 8'].map((x) => d.candidates[0].startsWith('reg') ? `reg ${x}` : x));
    expect(d.candidates.length).toBe(kernels.size + 1); // both split ones end with the one reduction kernel
    expect(d.medianMs.every((m) => m !== null && m > 0)).toBe(true);
    expect(d.medianMs[d.chosen]).toBe(Math.min(...(d.medianMs as number[])));
    // From now on the chosen tiling, untimed, and still exact.
    const chosen = d.candidates[d.chosen];
    const tc = gpu.tensor([M * N]);
    matmul(gpu, { a: ta, b: tb, c: tc, bias: tbias, M, N, K, transB: true });
    const dims = chosen.replace(/^reg /, '').split('/')[0].split('x');
    if (/split-K/.test(chosen)) expect(gpu.recorder.lastKernel).toBe('matmul_splitk_reduce');
    else expect(gpu.recorder.lastKernel).toContain(`${dims[0]}x${dims[1]}x${dims[2]}`);
    expect(relErr(await gpu.readF32(tc), want)).toBeLessThan(1e-5);
    // A caller's explicit tiling is not tuned.
    const fixed = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4 };
    matmul(gpu, { a: ta, b: tb, c: tc, M, N, K, transB: true, tile: fixed });
    expect(gpu.recorder.lastKernel).toContain('64x64x16_4x4');
    expect(tileName(fixed)).toBe('64x64x16/4x4');
    expect(tuner.table.decisions().length).toBe(1);
  }, 120_000);

  it('attention: each pass tunes its register tiles; every candidate is exact', async () => {
    gpu ??= await Gpu.create({ tune: true });
    const tuner = gpu.tuner!;
    // Causal, GQA 2:1, a head size with padding columns, a length that is no tile multiple.
    const B = 1; const T = 37; const Hq = 2; const Hkv = 1; const Dh = 24;
    const r = (n: number) => Float64Array.from(Float32Array.from(rng.array(n)));
    const x = { q: r(B * T * Hq * Dh), k: r(B * T * Hkv * Dh), v: r(B * T * Hkv * Dh), dout: r(B * T * Hq * Dh) };
    const dims = { B, T, Hq, Hkv, Dh };
    const f = attentionForwardRef(x.q, x.k, x.v, dims, { window: 0 });
    const g = attentionBackwardRef(x.dout, x.q, x.k, x.v, f.out, f.lse, dims, { window: 0 });
    const t = (a: Float64Array | number, shape: number[]) => gpu!.tensor(shape, typeof a === 'number' ? undefined : Float32Array.from(a));
    const tq = t(x.q, [B * T, Hq, Dh]); const tk = t(x.k, [B * T, Hkv, Dh]); const tv = t(x.v, [B * T, Hkv, Dh]);
    const tg = t(x.dout, [B * T, Hq, Dh]);
    const args = { B, T, Hq, Hkv, Dh, q: { tensor: tq }, k: { tensor: tk }, v: { tensor: tv } };
    const seen = new Set<string>();
    for (let i = 0; i < 15; i++) {
      const to = t(0, [B * T, Hq, Dh]); const tl = t(0, [B, Hq, T]);
      const tdq = t(0, [B * T, Hq, Dh]); const tdk = t(0, [B * T, Hkv, Dh]); const tdv = t(0, [B * T, Hkv, Dh]);
      attentionForward(gpu, { ...args, out: { tensor: to }, lse: tl });
      seen.add(gpu.recorder.lastKernel);
      attentionBackward(gpu, { ...args, out: { tensor: to }, lse: tl, dout: { tensor: tg }, dq: { tensor: tdq }, dk: { tensor: tdk }, dv: { tensor: tdv } });
      for (const [name, got, want] of [['out', to, f.out], ['lse', tl, f.lse], ['dq', tdq, g.dq], ['dk', tdk, g.dk], ['dv', tdv, g.dv]] as const) {
        expect(relErr(await gpu.readF32(got), want), `${name} call ${i}`).toBeLessThan(1e-5);
      }
      gpu.pool.release(to, tl, tdq, tdk, tdv);
    }
    expect(seen.size).toBeGreaterThan(1); // forward candidates really ran
    await tuner.settle();
    const passes = tuner.table.decisions().filter((d) => d.key.startsWith('attention'));
    expect(passes.map((d) => d.key.split(' ')[1]).sort()).toEqual(['dkdv', 'dq', 'fwd']);
    for (const d of passes) {
      expect(d.candidates.length).toBeGreaterThan(1);
      expect(d.medianMs[d.chosen]).toBe(Math.min(...d.medianMs.filter((m): m is number => m !== null)));
    }
    gpu.pool.release(tq, tk, tv, tg);
  }, 180_000);
});
