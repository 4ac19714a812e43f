// GELU applied as the matmul stores C (matmul.ts `act`; GPT-NeoX's MLP): forward C = gelu(A B + bias)
// with the pre-activation kept or not, backward C = (A B) * gelu'(pre), in the simple kernel and the
// register kernel's vec4 and scalar stores, against float64; the separate pass where the product
// cannot take it (maxima wanted, an operand over the binding limit, SRK_FUSED_ACT=0), and the refusals.
import { afterEach, describe, expect, it } from 'vitest';
import { dispatchedKernels, getGpu, relErr, withBindingLimit } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { matmul, type MatmulArgs, type MatmulTile } from '../../src/kernels/matmul.js';
import { matmulRef } from '../../src/kernels/matmul.ref.js';
import { geluErfBackward, geluErfForward, geluTanhBackward, geluTanhForward } from '../../src/kernels/activations.ref.js';
import { ABSMAX_PARTS } from '../../src/kernels/absmax.js';
import type { GeluOp } from '../../src/kernels/activations.js';

process.env.GALLIVM_PERF ??= 'nopt'; // as matmul.test.ts: lavapipe compiles these faster unoptimized
const rng = makeRng();
const REG_64: MatmulTile = { BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, kind: 'reg' };
const REG_128: MatmulTile = { BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, kind: 'reg' };

afterEach(() => { delete process.env.SRK_FUSED_ACT; });

interface Case { op: GeluOp; M: number; N: number; K: number; bias?: boolean; pre?: boolean; tile?: MatmulTile; absmax?: boolean; preOffset?: number }

/**
 * One product with an activation, as the model runs them (forward: x W^T, W [N, K]; backward: dy W,
 * W [K, N]), checked against float64; returns the kernels dispatched and C's partial maxima if asked.
 */
async function check(gpu: Gpu, c: Case): Promise<{ names: string[]; parts?: Float32Array; c: Float32Array }> {
  const { op, M, N, K } = c;
  const bwd = op.endsWith('_bwd'); const tanh = op.startsWith('gelu_tanh');
  const a = Float32Array.from(rng.array(M * K)); const w = Float32Array.from(rng.array(N * K));
  const bias = c.bias ? Float32Array.from(rng.array(N)) : undefined;
  const x = Float32Array.from(rng.array(M * N), (v) => 3 * v); // the forward input of a backward
  const t = (d: Float32Array) => gpu.tensor([d.length], d);
  const ta = t(a); const tw = t(w); const tb = bias ? t(bias) : undefined;
  // C and pre as views at different offsets into larger tensors: their binding windows start at
  // different elements (pre's base is its own, not C's).
  const wholes: Tensor[] = [];
  const at = (d: Float32Array, off: number) => {
    const whole = gpu.tensor([d.length + off + 3], new Float32Array(d.length + off + 3).fill(-9));
    wholes.push(whole);
    const v = whole.view([d.length], off);
    gpu.upload(v, d);
    return v;
  };
  const tc = at(new Float32Array(M * N).fill(777), 12);
  const pre: Tensor | undefined = bwd ? at(x, c.preOffset ?? 20) : c.pre ? at(new Float32Array(M * N).fill(555), c.preOffset ?? 20) : undefined;
  const parts = c.absmax ? t(new Float32Array(ABSMAX_PARTS)) : undefined;
  const args: MatmulArgs = { a: ta, b: tw, c: tc, M, N, K, transB: !bwd, bias: tb, precision: 'f32',
    act: { op, pre, absmax: parts }, ...(c.tile ? { tile: c.tile } : {}) };
  const { names } = await dispatchedKernels(gpu, () => matmul(gpu, args));
  const got = await gpu.readF32(tc);
  const product = matmulRef({ a, b: w, M, N, K, transB: !bwd, bias });
  const what = `${op} ${M}x${N}x${K}${c.pre ? ' pre' : ''}${c.bias ? ' bias' : ''} ${names.join(' ')}`;
  const want = bwd ? (tanh ? geluTanhBackward : geluErfBackward)(x, product) : (tanh ? geluTanhForward : geluErfForward)(product);
  expect(relErr(got, want), what).toBeLessThan(2e-5);
  if (pre && !bwd) expect(relErr(await gpu.readF32(pre), product), `${what}: pre`).toBeLessThan(2e-5);
  if (bwd) expect(Array.from(await gpu.readF32(pre!)), `${what}: pre is read only`).toEqual(Array.from(x));
  const partsOut = parts ? await gpu.readF32(parts) : undefined;
  gpu.pool.release(ta, tw, tb, parts, ...wholes);
  return { names, parts: partsOut, c: got };
}

describe(`matmul with GELU as C is stored (seed ${rng.seed})`, () => {
  it('fused in the simple kernel: each op, with and without the pre-activation and bias', async () => {
    const gpu = await getGpu();
    for (const c of [
      { op: 'gelu', M: 37, N: 45, K: 29, bias: true, pre: true },
      { op: 'gelu_tanh', M: 70, N: 33, K: 18, bias: true },
      { op: 'gelu_bwd', M: 41, N: 66, K: 23, preOffset: 7 },
      { op: 'gelu_tanh_bwd', M: 19, N: 30, K: 71 },
    ] as Case[]) {
      const { names } = await check(gpu, c);
      expect(names.length, names.join(' ')).toBe(1); // one dispatch: no pass of its own
      expect(names[0]).toMatch(new RegExp(`^matmul_.*_${c.op}${c.pre ? '_pre' : ''}$`));
    }
  });

  it('fused in the register kernel: vec4 and scalar stores, 64x64 and 128x128 tiles', async () => {
    const gpu = await getGpu();
    const vec = await check(gpu, { op: 'gelu', M: 70, N: 52, K: 36, bias: true, pre: true, tile: REG_64 });
    expect(vec.names).toEqual([expect.stringMatching(/^matmul_reg_nt_.*_vvv.*_gelu_pre$/)]);
    const scalar = await check(gpu, { op: 'gelu_bwd', M: 33, N: 50, K: 40, tile: REG_64, preOffset: 7 });
    expect(scalar.names).toEqual([expect.stringMatching(/^matmul_reg_nn_.*_v[vs]s.*_gelu_bwd$/)]);
    // The big-GPU rule's tiling (8x8 a thread), as the MLP's dx product runs there: partial tiles.
    const big = await check(gpu, { op: 'gelu_bwd', M: 150, N: 136, K: 24, tile: REG_128 });
    expect(big.names).toEqual([expect.stringMatching(/^matmul_reg_nn_128x128x8_8x8_.*_vvv.*_gelu_bwd$/)]);
  });

  it('a pass of its own where the kernels cannot take it: maxima wanted, the binding limit, SRK_FUSED_ACT=0', async () => {
    const gpu = await getGpu();
    // Maxima of C (f16 precision's next scale): the elementwise pass writes them.
    const m = await check(gpu, { op: 'gelu', M: 45, N: 40, K: 21, bias: true, pre: true, absmax: true });
    expect(m.names).toEqual([expect.stringMatching(/^matmul_/), 'gelu_absmax']);
    expect(Math.max(...m.parts!)).toBe(Math.max(...Array.from(m.c, Math.abs)));
    const bm = await check(gpu, { op: 'gelu_tanh_bwd', M: 45, N: 40, K: 21, absmax: true });
    expect(bm.names).toEqual([expect.stringMatching(/^matmul_/), 'gelu_tanh_bwd_inplace_absmax']);
    // C over the binding limit (2 KiB here): the product splits along M, GELU follows in chunks.
    const split = await withBindingLimit(gpu, 2048, () => check(gpu, { op: 'gelu', M: 40, N: 24, K: 8, bias: true, pre: true }));
    expect(split.names.filter((n) => n.startsWith('matmul_')).length).toBeGreaterThan(1);
    expect(split.names.filter((n) => n === 'gelu')).not.toEqual([]);
    // Turned off: the same values from two passes.
    process.env.SRK_FUSED_ACT = '0';
    const off = await check(gpu, { op: 'gelu_bwd', M: 29, N: 31, K: 17 });
    expect(off.names).toEqual([expect.stringMatching(/^matmul_/), 'gelu_bwd_inplace']);
    const fwd = await check(gpu, { op: 'gelu_tanh', M: 29, N: 31, K: 17 });
    expect(fwd.names).toEqual([expect.stringMatching(/^matmul_/), 'gelu_tanh_inplace']);
  });

  it('refuses what it cannot apply: accumulate, a backward without its input, pre in C\'s buffer, wrong sizes', async () => {
    const gpu = await getGpu();
    const t = (n: number) => gpu.tensor([n], new Float32Array(n));
    const a = t(6); const b = t(6); const c = t(4); const pre = t(4);
    const base = { a, b, c, M: 2, N: 2, K: 3, precision: 'f32' as const };
    expect(() => matmul(gpu, { ...base, accumulate: true, act: { op: 'gelu' } })).toThrow(/no batch, accumulate/);
    expect(() => matmul(gpu, { ...base, act: { op: 'gelu_bwd' } })).toThrow(/needs the forward's input as pre/);
    expect(() => matmul(gpu, { ...base, act: { op: 'gelu', pre: c } })).toThrow(/shares a buffer with C/);
    const two = t(8); // C and pre side by side in one buffer
    expect(() => matmul(gpu, { ...base, c: two.view([4], 0), act: { op: 'gelu_bwd', pre: two.view([4], 4) } })).toThrow(/shares a buffer with C/);
    expect(() => matmul(gpu, { ...base, act: { op: 'gelu', pre: t(5) } })).toThrow(/pre as f32 \[2, 2\]/);
    expect(() => matmul(gpu, { ...base, c: t(6), act: { op: 'gelu' } })).toThrow(/C as f32 \[2, 2\]/);
    expect(() => matmul(gpu, { ...base, act: { op: 'relu' as GeluOp } })).toThrow(/act relu: expected/);
    gpu.pool.release(a, b, c, pre, two);
  });
});
