// The Sr losses' augmented pass in another precision than the step's (--aug-precision; precision.ts
// setAugPrecision): only that forward's matmuls change, the setting comes back afterwards, and a
// reference scored the same way keeps Delta at 0 on the first step. On an adapter without tensor
// cores 'f16' runs the f32 kernels on f16-rounded operands (matmul.ts): the same numerics.
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { fillUniform, randomInts } from '../../bench/random.js';
import { presetConfig } from '../../src/init/presets.js';
import { initKind } from '../../src/init/init-model.js';
import { fill } from '../../src/kernels/elementwise.js';
import { Optimizer } from '../../src/kernels/optimizer.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { Params } from '../../src/model/params.js';
import { expectedParameters } from '../../src/model/tensor-names.js';
import { scorePairs } from '../../src/train/score.js';
import { trainStep } from '../../src/train/step.js';
import { referenceLogps } from '../../src/train/reference.js';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Gpu } from '../../src/engine/gpu.js';
import type { TokenizedPair } from '../../src/data/tokenize-pairs.js';

const cfg = presetConfig('gpt-neox', 'tiny');

/** Weights wide enough (uniform +-0.15) that log-probs differ from token to token. */
function model(gpu: Gpu): { lm: CausalLM; params: Params } {
  const params = new Params(gpu, expectedParameters(cfg)).allocate();
  params.specs.forEach((s, i) => {
    const t = params.get(s.name);
    const kind = initKind(s);
    if (kind === 'normal') fillUniform(gpu, t, 0.15, 31 * i + 5);
    else fill(gpu, t, kind === 'ones' ? 1 : 0);
  });
  params.allocateGrads();
  return { lm: new CausalLM(gpu, cfg, params), params };
}

/** Pairs of awkward, different lengths, with a shared 19-token refine prompt. */
function pairs(n: number): TokenizedPair[] {
  const V = cfg.vocabSize;
  const refine = [...randomInts(19, V, 77)];
  return Array.from({ length: n }, (_, i) => {
    const promptIds = [...randomInts(5 + 3 * i, V, 10 * i + 1)];
    return {
      promptIds, augPromptIds: [...refine, ...promptIds], truncated: false,
      chosenIds: [...randomInts(7 + i, V, 10 * i + 2)], rejectedIds: [...randomInts(11 - i, V, 10 * i + 3)],
    };
  });
}

describe('scorePairs\' progress', () => {
  it('its start once, then every 8 micro-batches, the end once (8 micro-batches end the loop read already)', async () => {
    const gpu = await getGpu();
    const { params, lm } = model(gpu);
    for (const [n, want] of [[8, [[8, 8]]], [9, [[8, 9], [9, 9]]]] as const) {
      const starts: number[][] = []; const reports: number[][] = [];
      await scorePairs(gpu, lm, pairs(n), { microBatch: 1, onStart: (d, t) => starts.push([d, t]), onProgress: (d, t) => reports.push([d, t]) });
      expect(starts).toEqual([[0, n]]);
      expect(reports).toEqual(want);
    }
    lm.destroy(); params.free();
  });
});

describe('the augmented pass in another precision (--aug-precision)', () => {
  it('scorePairs with f16 operands: within 1e-2 per token of f32 but not equal; gpu.matmulPrecision unchanged after', async () => {
    const gpu = await getGpu();
    const { lm, params } = model(gpu);
    const ps = pairs(5);
    const f32 = await scorePairs(gpu, lm, ps, { microBatch: 5, augmented: true });
    const f16 = await scorePairs(gpu, lm, ps, { microBatch: 5, augmented: true, matmulPrecision: 'f16' });
    expect(gpu.matmulPrecision).toBe('f32');
    const again = await scorePairs(gpu, lm, ps, { microBatch: 5, augmented: true });
    let maxDiff = 0;
    for (let k = 0; k < ps.length; k++) {
      for (const [a, b, n] of [[f16.chosen[k], f32.chosen[k], f32.chosenTokens[k]], [f16.rejected[k], f32.rejected[k], f32.rejectedTokens[k]]]) {
        maxDiff = Math.max(maxDiff, Math.abs(a - b));
        expect(Math.abs(a - b) / n).toBeLessThan(1e-2);
      }
    }
    expect(maxDiff).toBeGreaterThan(0); // the f16 operands were used
    expect([...again.chosen]).toEqual([...f32.chosen]); // and f32 came back
    lm.destroy(); params.free();
  });

  it('an f32 Sr-DPO step with the augmented pass in f16: the plain pass as in f32, loss log 2 on the first step with the reference scored the same way', async () => {
    const gpu = await getGpu();
    const { lm, params } = model(gpu);
    const ps = pairs(4);
    const indices = Int32Array.from(ps, (_, i) => i);
    const plain = await scorePairs(gpu, lm, ps, { microBatch: 4 });
    const augF16 = await scorePairs(gpu, lm, ps, { microBatch: 4, augmented: true, matmulPrecision: 'f16' });
    const augF32 = await scorePairs(gpu, lm, ps, { microBatch: 4, augmented: true });
    const paramList = params.specs.map((s) => params.get(s.name));
    const optimizer = new Optimizer(gpu, { type: 'rmsprop' }, paramList, { maxGradNorm: 10 });
    const grads = params.specs.map((s) => params.grad(s.name));
    const step = (aug: typeof augF16, augMatmulPrecision?: 'f16') => trainStep(gpu, lm, optimizer, grads, { pairs: ps, indices, ref: { plain, aug } },
      { loss: 'sr-dpo', beta: 0.1, lambda: 1, microBatchSize: 4, lr: 0, t: 1, augMatmulPrecision });
    const matched = await step(augF16, 'f16');
    expect(gpu.matmulPrecision).toBe('f32');
    const allF32 = await step(augF32);
    // The plain pass is the f32 one in both steps (policy == reference: h = 0).
    expect(matched.logpChosen).toBe(allF32.logpChosen);
    expect(matched.margin).toBe(0);
    // Policy and reference augmented log-probs from the same precision: Delta = 0, loss log 2.
    expect(Math.abs(matched.loss - Math.LN2)).toBeLessThan(1e-7);
    expect(Math.abs(allF32.loss - Math.LN2)).toBeLessThan(1e-7);
    // The f16 augmented pass against an f32 reference: Delta is no longer 0 (what --aug-precision
    // scoring the reference the same way avoids).
    const mismatched = await step(augF32, 'f16');
    expect(Math.abs(mismatched.loss - Math.LN2)).toBeGreaterThan(1e-6);
    optimizer.release(); lm.destroy(); params.free();
  });

  it('reference log-probs: the augmented ones in the asked precision, cached under a key of their own; the plain ones unchanged', async () => {
    const gpu = await getGpu();
    const cacheDir = mkdtempSync(join(tmpdir(), 'srk-aug-ref-'));
    try {
      const refDir = resolve(import.meta.dirname, '../fixtures/hf/gpt-neox-tiny_ref');
      const ps = pairs(3).map((p) => ({ ...p,
        promptIds: p.promptIds.map((t) => t % 384), augPromptIds: p.augPromptIds!.map((t) => t % 384),
        chosenIds: p.chosenIds.map((t) => t % 384), rejectedIds: p.rejectedIds.map((t) => t % 384) }));
      const req = { refDir, pairs: ps, augmented: true, microBatch: 3, cacheDir, settings: {}, label: 'train', log: () => {}, progress: () => {} };
      const f32 = await referenceLogps(gpu, req);
      const f16 = await referenceLogps(gpu, { ...req, augMatmulPrecision: 'f16' });
      expect(gpu.matmulPrecision).toBe('f32');
      expect(readdirSync(cacheDir).filter((f) => f.startsWith('ref-logps-train-'))).toHaveLength(2);
      expect([...f16.plain.chosen]).toEqual([...f32.plain.chosen]);
      expect([...f16.aug!.chosen]).not.toEqual([...f32.aug!.chosen]);
      for (let k = 0; k < ps.length; k++) expect(Math.abs(f16.aug!.chosen[k] - f32.aug!.chosen[k]) / f32.aug!.chosenTokens[k]).toBeLessThan(1e-2);
      // From the cache, the same numbers.
      const again = await referenceLogps(gpu, { ...req, augMatmulPrecision: 'f16' });
      expect([...again.aug!.chosen]).toEqual([...f16.aug!.chosen]);
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
});
