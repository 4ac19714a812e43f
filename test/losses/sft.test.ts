import { describe, expect, it } from 'vitest';
import { getGpu, relErr } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { sftLoss, sftWeights } from '../../src/losses/sft.js';
import { sftLossRef, sftMaskFromTargets } from '../../src/losses/sft.ref.js';
import { outputLogprobBackward } from '../../src/kernels/output-logprob.js';
import { outputLogprobBackwardRef, outputLogprobRef } from '../../src/kernels/output-logprob.ref.js';

const rng = makeRng();

describe(`SFT loss on the GPU (seed ${rng.seed})`, () => {
  it('token-weighted mean NLL and per-token weights (N=700 > one workgroup, ignored targets)', async () => {
    const gpu = await getGpu();
    const N = 700;
    const targets = Int32Array.from({ length: N }, () => (rng.uniform() < 0.3 ? -1 : rng.int(1000)));
    for (const i of [0, 350, N - 1]) targets[i] = 0; // id 0 is a token like any (GPT-NeoX's EOS)
    const logp = Float32Array.from(rng.array(N), (v) => -Math.abs(v) * 4);
    const ref = sftLossRef(logp, sftMaskFromTargets(targets));
    expect(ref.count).toBe(targets.filter((t) => t >= 0).length);
    const tt = gpu.tensor([N], targets, 'i32'); const tlp = gpu.tensor([N], logp);
    const tw = gpu.tensor([N]); const ts = gpu.tensor([2]);
    sftWeights(gpu, { targets: tt, weights: tw, stats: ts, N });
    expect(relErr(await gpu.readF32(tw), ref.dTokenLogp)).toBeLessThan(1e-6);
    expect((await gpu.readF32(ts))[1]).toBe(ref.count);
    sftLoss(gpu, { logp: tlp, targets: tt, stats: ts, N });
    const s = await gpu.readF32(ts);
    expect(Math.abs(s[0] - ref.loss) / ref.loss).toBeLessThan(1e-6);
    expect(s[1]).toBe(ref.count);
    // A fixed count (the token count of a whole accumulated step) and a scale.
    sftWeights(gpu, { targets: tt, weights: tw, stats: ts, N, count: 2000, scale: 0.5 });
    expect(relErr(await gpu.readF32(tw), Float64Array.from(ref.dTokenLogp, (v) => (v * ref.count * 0.5) / 2000))).toBeLessThan(1e-6);
    sftLoss(gpu, { logp: tlp, targets: tt, stats: ts, N, count: 2000 });
    expect(Math.abs((await gpu.readF32(ts))[0] - (ref.loss * ref.count) / 2000)).toBeLessThan(1e-6 * ref.loss);
    gpu.pool.release(tt, tlp, tw, ts);
  });

  it('one fused output-layer pass: weights -> logp + dh + dw, then the loss', async () => {
    const gpu = await getGpu();
    const N = 11; const d = 9; const V = 37;
    const H = Float32Array.from(rng.array(N * d)); const W = Float32Array.from(rng.array(V * d, 0.7));
    const targets = Int32Array.from({ length: N }, (_, n) => (n < 3 || n === N - 1 ? -1 : rng.int(V)));
    const fwd = outputLogprobRef({ H, W, targets, N, d, V });
    const ref = sftLossRef(fwd.logp, sftMaskFromTargets(targets));
    const grads = outputLogprobBackwardRef({ H, W, targets, N, d, V }, ref.dTokenLogp);
    const th = gpu.tensor([N, d], H); const tW = gpu.tensor([V, d], W); const tt = gpu.tensor([N], targets, 'i32');
    const tg = gpu.tensor([N]); const tlp = gpu.tensor([N]); const ts = gpu.tensor([2]);
    const tdh = gpu.tensor([N, d]); const tdw = gpu.tensor([V, d], new Float32Array(V * d));
    sftWeights(gpu, { targets: tt, weights: tg, stats: ts, N });
    outputLogprobBackward(gpu, { h: th, w: tW, targets: tt, weights: tg, dh: tdh, dw: tdw, logp: tlp, N, d, V, chunkRows: 4 });
    sftLoss(gpu, { logp: tlp, targets: tt, stats: ts, N });
    const s = await gpu.readF32(ts);
    expect(Math.abs(s[0] - ref.loss) / ref.loss).toBeLessThan(2e-6);
    expect(s[1]).toBe(ref.count);
    expect(relErr(await gpu.readF32(tdh), grads.dH)).toBeLessThan(1e-5);
    expect(relErr(await gpu.readF32(tdw), grads.dW)).toBeLessThan(1e-5);
    gpu.pool.release(th, tW, tt, tg, tlp, ts, tdh, tdw);
  });
});
