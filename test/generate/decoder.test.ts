// Generation's cached forward (src/generate/decoder.ts) against Hugging Face transformers' float64
// sequence log-probs (test/fixtures/hf), and against the training forward (CausalLM) on the model
// variants: a prompt run whole (prefill), then its completion fed in pieces of several tokens and
// one token at a time, rows of different lengths side by side, each row leaving when it ends.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { Decoder, type DecodeToken } from '../../src/generate/decoder.js';
import type { ModelShape } from '../../src/model/context.js';
import type { Params } from '../../src/model/params.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { FIXTURES_HF as FIX, GOLDEN_FIXTURES, MODEL_VARIANTS } from '../helpers/models.js';

const rng = makeRng();

/** log softmax(logits)[target], in float64. */
function logSoftmaxAt(logits: Float32Array, row: number, V: number, target: number): number {
  let m = -Infinity;
  for (let j = 0; j < V; j++) m = Math.max(m, logits[row * V + j]);
  let z = 0;
  for (let j = 0; j < V; j++) z += Math.exp(logits[row * V + j] - m);
  return logits[row * V + target] - m - Math.log(z);
}

/**
 * Per-token log-probs of each sequence's completion through the decoder: each prompt whole in the
 * first step (its last token's logits wanted), then `piece` tokens of each row, then one token a step.
 */
async function decodeLogps(gpu: Gpu, cfg: ModelShape, params: Params, seqs: { prompt: number[]; completion: number[] }[], piece: number): Promise<number[][]> {
  const V = cfg.vocabSize;
  const full = seqs.map((s) => [...s.prompt, ...s.completion]);
  const Tmax = Math.max(...full.map((f) => f.length));
  const dec = new Decoder(gpu, cfg, params, seqs.length, Tmax);
  const out: number[][] = seqs.map(() => []);
  const cursor = seqs.map(() => 0); // tokens of each row in the cache
  try {
    for (let stepNo = 0; ; stepNo++) {
      const tokens: DecodeToken[] = []; const want: number[] = []; const wanted: { row: number; pos: number }[] = [];
      seqs.forEach((s, row) => {
        const P = s.prompt.length;
        const end = full[row].length - 1; // the last token predicts nothing
        const size = stepNo === 0 ? P : stepNo === 1 ? piece : 1;
        for (let pos = cursor[row]; pos < Math.min(end, cursor[row] + size); pos++) {
          tokens.push({ row, pos, id: full[row][pos] });
          if (pos >= P - 1) { want.push(tokens.length - 1); wanted.push({ row, pos }); }
        }
        cursor[row] = Math.min(end, cursor[row] + size);
      });
      if (tokens.length === 0) break;
      const logits = await dec.step(tokens, want);
      wanted.forEach(({ row, pos }, k) => out[row].push(logSoftmaxAt(logits, k, V, full[row][pos + 1])));
    }
  } finally {
    dec.free();
  }
  return out;
}

interface Expected { pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[]; logps: Record<string, number[]> }

/** As hf-fixtures.test.ts: sums of 20-100 token log-probs against float64. */
const LOGP_TOL = 2e-5;

describe(`generation's cached forward (seed ${rng.seed})`, () => {
  for (const [name, dir] of GOLDEN_FIXTURES) {
    it(`${name}: completion log-probs within ${LOGP_TOL} of transformers (prefill, pieces, single tokens)`, async () => {
      const gpu = await getGpu();
      const exp: Expected = JSON.parse(readFileSync(resolve(dir, name, 'expected.json'), 'utf8'));
      const m = await loadModel(gpu, resolve(dir, name));
      const seqs = exp.pairs.flatMap((p) => [{ prompt: p.prompt_ids, completion: p.chosen_ids }, { prompt: p.prompt_ids, completion: p.rejected_ids }]);
      await decodeLogps(gpu, m.cfg, m.params, seqs.slice(0, 1), 2); // (first uses keep a few small tables: rotary frequencies)
      const before = gpu.pool.inUseBytes;
      const got = await decodeLogps(gpu, m.cfg, m.params, seqs, 5);
      expect(gpu.pool.inUseBytes).toBe(before); // the cache and every step's tensors returned
      exp.pairs.forEach((_, i) => {
        for (const [k, side] of [[0, 'chosen'], [1, 'rejected']] as const) {
          const sum = got[2 * i + k].reduce((a, b) => a + b, 0);
          const want = exp.logps[`policy_${side}`][i];
          expect(got[2 * i + k].length).toBe(seqs[2 * i + k].completion.length);
          expect(Math.abs(sum - want) / Math.max(1, Math.abs(want)), `pair ${i} ${side}: ${sum} vs ${want}`).toBeLessThan(LOGP_TOL);
        }
      });
      m.params.free();
    });
  }

  it('logits come in `want`\'s order: every token wanted in another order (gathered) or in theirs (not)', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIX, 'gpt-neox-tiny'));
    const V = m.cfg.vocabSize;
    const tokens = [5, 9, 2, 7].map((id, pos) => ({ row: 0, pos, id }));
    const run = async (want: number[]) => {
      const dec = new Decoder(gpu, m.cfg, m.params, 1, 4);
      try { return await dec.step(tokens, want); } finally { dec.free(); }
    };
    const inOrder = await run([0, 1, 2, 3]);
    const reversed = await run([3, 2, 1, 0]);
    for (let k = 0; k < 4; k++) expect(Array.from(reversed.subarray(k * V, (k + 1) * V))).toEqual(Array.from(inOrder.subarray((3 - k) * V, (4 - k) * V)));
    m.params.free();
  });

  // The variants (sequential residual, a sliding window shorter than the rows) against the training forward, token by token.
  for (const [name, dir, change] of MODEL_VARIANTS) {
    it(`${name}: per-token log-probs equal the training forward's`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const cfg = { ...m.cfg, ...change };
      const V = cfg.vocabSize;
      const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
      const seqs = [{ prompt: ids(9), completion: ids(12) }, { prompt: ids(2), completion: ids(4) }, { prompt: ids(13), completion: ids(8) }];
      const got = await decodeLogps(gpu, cfg, m.params, seqs, 3);
      const layout = buildBatch(seqs.map((s) => ({ prompt: s.prompt, completions: [s.completion] })), { packed: false });
      const batch = uploadBatch(gpu, layout, V);
      const st = new CausalLM(gpu, cfg, m.params).forward(batch, false);
      const logp = await gpu.readF32(st.logp);
      seqs.forEach((s, row) => {
        const P = s.prompt.length;
        const want = Array.from(s.completion, (_, k) => logp[row * layout.T + P - 1 + k]);
        expect(got[row].length).toBe(s.completion.length);
        got[row].forEach((g, k) => expect(Math.abs(g - want[k]), `row ${row} token ${k}: ${g} vs ${want[k]}`).toBeLessThan(2e-5 * Math.max(1, Math.abs(want[k]))));
      });
      gpu.pool.release(st.logp); releaseBatch(gpu, batch);
      m.params.free();
    });
  }
});
