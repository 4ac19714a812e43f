// Integration: a checkpoint from initModel loads onto the GPU engine and gives near-uniform
// next-token log-probs (logits ~ 0 at init), for each arch, on synthetic-task text.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { segmentSum } from '../../src/kernels/segment-sum.js';
import { initModel } from '../../src/init/init-model.js';
import { ARCHS } from '../../src/init/presets.js';
import { syntheticPairs } from '../../src/init/synthetic-task.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'srk-init-gpu-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('initModel checkpoints on the engine', () => {
  it.each(ARCHS)('%s tiny: loads, per-token log-probs near -ln(vocab)', async (arch) => {
    const dir = path.join(root, arch);
    await initModel({ arch, preset: 'tiny', outDir: dir, seed: 1 });
    const gpu = await getGpu();
    const m = await loadModel(gpu, dir);
    const tok = await loadTokenizer(dir);
    const items = syntheticPairs(4, 2).map((r) => ({
      prompt: tok.encode(r.prompt, { addSpecialTokens: true }),
      completions: [r.chosen, r.rejected].map((c) => [...tok.encode(c, { addSpecialTokens: false }), tok.eosTokenId!]),
    }));
    const layout = buildBatch(items, { packed: false });
    const batch = uploadBatch(gpu, layout, m.cfg.vocabSize);
    const st = m.model.forward(batch, false);
    const sums = gpu.pool.acquire([batch.S]);
    segmentSum(gpu, { x: st.logp, ranges: batch.ranges, sums, S: batch.S });
    const s = await gpu.readF32(sums);
    gpu.pool.release(sums, st.logp);
    releaseBatch(gpu, batch);
    const lnV = Math.log(m.cfg.vocabSize);
    for (let i = 0; i < layout.numSeqs; i++) {
      const perToken = s[i]! / layout.tokenCounts[i]!;
      expect(Number.isFinite(perToken)).toBe(true);
      expect(Math.abs(perToken + lnV), `${arch} seq ${i}: ${perToken} vs ${-lnV}`).toBeLessThan(0.3);
    }
  });
});
