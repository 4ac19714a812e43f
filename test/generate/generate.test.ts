// The generation loop (src/generate/generate.ts) on the fixture models: greedy tokens are the argmax
// of a forward over the whole sequence so far, sampled completions do not depend on the batch, and
// stop tokens and the model's last position end a row.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { loadModel } from '../../src/model/load.js';
import { Decoder, cacheBytes } from '../../src/generate/decoder.js';
import { cacheTokens, generateBatch, type GenerateOptions } from '../../src/generate/generate.js';
import { FIXTURES_HF as FIX } from '../helpers/models.js';

const rng = makeRng();
const greedy: Omit<GenerateOptions, 'maxNewTokens'> = { temperature: 0, topK: 0, topP: 1, stopIds: [], seed: 0 };

describe(`generation (seed ${rng.seed})`, () => {
  for (const [dir, change] of [['gpt-neox-tiny', {}], ['mistral-tiny', { slidingWindow: 5 }]] as const) {
    it(`${dir}${'slidingWindow' in change ? ' (sliding window 5)' : ''}: each greedy token is the argmax of a fresh forward over the sequence so far`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const cfg = { ...m.cfg, ...change };
      const V = cfg.vocabSize;
      const prompts = [7, 2, 12].map((n, i) => ({ ids: Array.from({ length: n }, () => 1 + rng.int(V - 1)), stream: i }));
      const gens = await generateBatch(gpu, cfg, m.params, prompts, { ...greedy, maxNewTokens: 9 });
      for (const [i, g] of gens.entries()) {
        expect(g.ids.length).toBe(9);
        expect(g.finish).toBe('length');
        const seq = [...prompts[i].ids];
        for (const id of g.ids) {
          const dec = new Decoder(gpu, cfg, m.params, 1, seq.length);
          const logits = await dec.step(seq.map((t, pos) => ({ row: 0, pos, id: t })), [seq.length - 1]);
          dec.free();
          const max = Math.max(...logits);
          expect(max - logits[id], `prompt ${i} token ${seq.length - prompts[i].ids.length}`).toBeLessThan(1e-4);
          seq.push(id);
        }
      }
      m.params.free();
    });
  }

  it('sampled completions depend on their stream, not on the batch they run in', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIX, 'gpt-neox-tiny'));
    const V = m.cfg.vocabSize;
    const prompts = [5, 9, 3, 6].map((n, i) => ({ ids: Array.from({ length: n }, () => 1 + rng.int(V - 1)), stream: 10 + i }));
    const o = { ...greedy, temperature: 1, topK: 50, topP: 0.95, seed: rng.int(1e6), maxNewTokens: 8 };
    let steps = 0;
    const all = await generateBatch(gpu, m.cfg, m.params, prompts, o, () => steps++);
    const reversed = (await generateBatch(gpu, m.cfg, m.params, [...prompts].reverse(), o)).reverse();
    const alone = [];
    for (const p of prompts) alone.push((await generateBatch(gpu, m.cfg, m.params, [p], o))[0]);
    expect(reversed).toEqual(all);
    expect(alone).toEqual(all);
    // A batch whose key/value cache is over the limit runs in parts, down to a row at a time: the same draws.
    const rowBytes = cacheBytes(m.cfg, 1, Math.max(...prompts.map((p) => cacheTokens(p.ids.length, o))));
    let partSteps = 0;
    const parts = await generateBatch(gpu, m.cfg, m.params, prompts, { ...o, cacheLimitBytes: rowBytes }, () => partSteps++);
    expect(parts).toEqual(all);
    expect([steps, partSteps]).toEqual([8, 4 * 8]); // (8 new tokens a row, no stop ids: a step each, one batch against four)
    expect(() => new Decoder(gpu, m.cfg, m.params, 2, 1 << 30)).toThrow(/key\/value cache of 2 rows x 1073741824 tokens .* over this adapter's/);
    // Another stream or seed draws otherwise.
    const other = await generateBatch(gpu, m.cfg, m.params, prompts.map((p) => ({ ...p, stream: p.stream + 100 })), o);
    expect(other.map((g) => g.ids)).not.toEqual(all.map((g) => g.ids));
    m.params.free();
  });

  it('rows with the same prompt share its pass (run once, its keys and values copied) and draw as if each ran alone', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIX, 'mistral-tiny'));
    const cfg = { ...m.cfg, slidingWindow: 5 };
    const V = cfg.vocabSize;
    const p = Array.from({ length: 9 }, () => 1 + rng.int(V - 1)); const q = Array.from({ length: 4 }, () => 1 + rng.int(V - 1));
    const prompts = [p, p, q, p, q].map((ids, i) => ({ ids, stream: 20 + i }));
    const o = { ...greedy, temperature: 1, topK: 0, topP: 1, seed: rng.int(1e6), maxNewTokens: 7 };
    const stepTokens: number[] = [];
    const step = Decoder.prototype.step;
    Decoder.prototype.step = function (tokens, want) { stepTokens.push(tokens.length); return step.call(this, tokens, want); };
    let shared;
    try { shared = await generateBatch(gpu, cfg, m.params, prompts, o); } finally { Decoder.prototype.step = step; }
    expect(stepTokens[0]).toBe(p.length + q.length); // the prompt pass ran each prompt once
    const alone = [];
    for (const x of prompts) alone.push((await generateBatch(gpu, cfg, m.params, [x], o))[0]);
    expect(shared).toEqual(alone);
    m.params.free();
  });

  it('a stop token ends a row (and is left out); the model\'s last position ends it too', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIX, 'gpt-neox-tiny'));
    const V = m.cfg.vocabSize;
    const prompt = { ids: Array.from({ length: 6 }, () => 1 + rng.int(V - 1)), stream: 0 };
    const [free] = await generateBatch(gpu, m.cfg, m.params, [prompt], { ...greedy, maxNewTokens: 6 });
    const stopAt = free.ids.indexOf(free.ids[3]); // its first time
    const [stopped] = await generateBatch(gpu, m.cfg, m.params, [prompt], { ...greedy, maxNewTokens: 6, stopIds: [free.ids[3]] });
    expect(stopped).toEqual({ ids: free.ids.slice(0, stopAt), finish: 'stop' });
    // Positions end at 9: the new tokens sit at 6, 7 and 8.
    const [capped] = await generateBatch(gpu, m.cfg, m.params, [prompt], { ...greedy, maxNewTokens: 6, maxPositions: 9 });
    expect(capped).toEqual({ ids: free.ids.slice(0, 3), finish: 'length' });
    await expect(generateBatch(gpu, m.cfg, m.params, [prompt], { ...greedy, maxNewTokens: 6, maxPositions: 6 })).rejects.toThrow(/no room/);
    m.params.free();
  });
});
