// A prefix every row begins with goes through the blocks once in a forward without backward
// (shared-prefix.ts): the compact token order, attention's rows gathered whole and back. Its log-probs
// must be those of the rows computed apart, for every architecture, packed and unpacked, in f32 and
// in mixed precision; how long a prefix is shared, and when, follows the layout's rules.
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dispatchedKernels, getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { loadModel } from '../../src/model/load.js';
import { buildBatch, type PromptCompletions } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { MIN_SHARE, compactIndex, prefixMaps, prefixToShare, sharedPrefixLength } from '../../src/model/shared-prefix.js';
import { FIXTURES_HF as FIX, MODEL_VARIANTS } from '../helpers/models.js';

const rng = makeRng();
const ids = (n: number, V = 50) => Array.from({ length: n }, () => rng.int(V));
const saved = process.env.SRK_SHARED_PREFIX;
afterEach(() => { if (saved === undefined) delete process.env.SRK_SHARED_PREFIX; else process.env.SRK_SHARED_PREFIX = saved; });

describe(`shared prefix: which tokens (seed ${rng.seed})`, () => {
  it('is the common run of unscored prompt tokens, in the packed and the unpacked layout', () => {
    const p = ids(6);
    const items: PromptCompletions[] = [
      { prompt: [...p, 7, 8, 9], completions: [ids(3), ids(5)] },
      { prompt: [...p, 7, 1], completions: [ids(4), ids(2)] },
      { prompt: [...p, 7, 8, 9, 10, 11], completions: [ids(1), ids(6)] },
    ];
    // Packed: the prefix is the run the three prompts share, [...p, 7] (the prompts then part).
    expect(sharedPrefixLength(buildBatch(items, { packed: true }))).toBe(7);
    // A differing first token: nothing.
    const other = [...items, { prompt: [p[0] + 1, ...p.slice(1)], completions: [ids(2), ids(2)] }];
    expect(sharedPrefixLength(buildBatch(other, { packed: true }))).toBe(0);
    // The same prompt everywhere: packed, the prompt's last token starts each branch (segment >= 1),
    // so P - 1; unpacked, the last prompt token is scored (it predicts the first completion token).
    const same = [{ prompt: [...p, 3], completions: [ids(3), ids(4)] }, { prompt: [...p, 3], completions: [ids(2), ids(5)] }];
    expect(sharedPrefixLength(buildBatch(same, { packed: true }))).toBe(6);
    expect(sharedPrefixLength(buildBatch(same, { packed: false }))).toBe(6);
    // Two rows alike to their end: a row keeps at least one token of its own.
    const twin = [{ prompt: [1, 2, 3], completions: [[4]] }, { prompt: [1, 2, 3], completions: [[4]] }];
    expect(sharedPrefixLength(buildBatch(twin, { packed: false }))).toBe(2);
  });

  it('is shared where it saves MIN_SHARE of the tokens, never for one row; SRK_SHARED_PREFIX forces either way', () => {
    const p = ids(4);
    // (The rows part right after p: 1 against 2.)
    const wide = (n: number) => [{ prompt: [...p, 1, ...ids(n)], completions: [ids(n)] }, { prompt: [...p, 2, ...ids(n)], completions: [ids(n)] }];
    // B = 2 rows of T tokens save L = 4: shared while 4 >= MIN_SHARE 2 T.
    const Tmax = Math.floor(4 / (2 * MIN_SHARE));
    const fits = buildBatch(wide(2), { packed: false });
    expect(fits.T).toBeLessThanOrEqual(Tmax);
    expect(prefixToShare(fits)).toBe(4);
    const long = buildBatch(wide(60), { packed: false });
    expect(long.T).toBeGreaterThan(Tmax);
    expect(prefixToShare(long)).toBe(0);
    process.env.SRK_SHARED_PREFIX = '1';
    expect(prefixToShare(long)).toBe(4);
    expect(prefixToShare(buildBatch([{ prompt: ids(9), completions: [ids(3)] }], { packed: false }))).toBe(0);
    process.env.SRK_SHARED_PREFIX = '0';
    expect(prefixToShare(fits)).toBe(0);
    process.env.SRK_SHARED_PREFIX = 'yes';
    expect(() => prefixToShare(fits)).toThrow(/SRK_SHARED_PREFIX=yes: expected 0 or 1/);
  });

  it('maps every row token to its compact token and back', () => {
    const B = 2 + rng.int(4); const T = 3 + rng.int(20); const L = 1 + rng.int(T - 1);
    const { toCompact, toFull } = prefixMaps(B, T, L);
    expect(toFull.length).toBe(L + B * (T - L));
    for (let b = 0; b < B; b++) {
      for (let i = 0; i < T; i++) {
        const c = toCompact[b * T + i];
        expect(c).toBe(compactIndex(b, i, T, L));
        // A prefix token reads row 0's; every other token is its own compact token.
        expect(toFull[c]).toBe(i < L ? i : b * T + i);
      }
    }
    expect(new Set(toFull).size).toBe(toFull.length);
  });
});

describe(`shared prefix: the forward's log-probs (seed ${rng.seed})`, () => {
  for (const [name, dir, change] of MODEL_VARIANTS) {
    it(`${name}: as the rows apart, packed and unpacked in f32, packed in mixed; no backward`, async () => {
      const gpu = await getGpu();
      const m = await loadModel(gpu, resolve(FIX, dir));
      const cfg = { ...m.cfg, ...change };
      const model = new CausalLM(gpu, cfg, m.params);
      const V = cfg.vocabSize;
      // A prefix longer than the tiny Mistral's sliding window, and rows of different lengths (padding).
      const pre = ids(9 + rng.int(6), V);
      // The rows part right after the prefix (tokens 1, 2, 3), then go on at random.
      const items: PromptCompletions[] = [3, 1, 6].map((extra, r) => ({ prompt: [...pre, 1 + r, ...ids(extra - 1, V)], completions: [ids(2 + rng.int(8), V), ids(2 + rng.int(8), V)] }));
      try {
        for (const packed of [true, false]) {
          // Mixed precision in the packed layout only, the step's (each case compiles its own kernels: suite time).
          for (const precision of packed ? ['f32', 'f16'] as const : ['f32'] as const) {
            gpu.matmulPrecision = precision;
            const layout = buildBatch(items, { packed });
            process.env.SRK_SHARED_PREFIX = '0';
            const apart = uploadBatch(gpu, layout, V, { sharePrefix: true });
            expect(apart.shared).toBeUndefined();
            const want = await logps(apart);
            process.env.SRK_SHARED_PREFIX = '1';
            const batch = uploadBatch(gpu, layout, V, { sharePrefix: true });
            expect(batch.shared?.L).toBe(pre.length);
            expect(batch.N).toBe(pre.length + layout.B * (layout.T - pre.length));
            const before = gpu.pool.inUseBytes;
            const { names, result } = await dispatchedKernels(gpu, () => model.forward(batch, false));
            const got = await gpu.readF32(result.logp);
            gpu.pool.release(result.logp);
            expect(gpu.pool.inUseBytes).toBe(before);
            // Each block gathers attention's rows whole and its output back.
            expect(names.filter((n) => n === 'embedding_gather').length).toBeGreaterThanOrEqual(2 * cfg.numLayers);
            expect(got.length).toBe(layout.B * layout.T);
            expect(want.some((x) => x !== 0)).toBe(true);
            const worst = Math.max(...Array.from(got, (g, i) => Math.abs(g - want[i])));
            // 0 on lavapipe (the same kernels on the same rows); a GPU's rule may tile Nc rows otherwise than B T.
            expect(worst, `${packed ? 'packed' : 'unpacked'} ${precision}`).toBeLessThanOrEqual(precision === 'f32' ? 1e-5 : 1e-3);
            expect(() => model.forward(batch, true)).toThrow(/shared prefix has no backward/);
            releaseBatch(gpu, batch);
            releaseBatch(gpu, apart);
          }
        }
      } finally {
        gpu.matmulPrecision = 'f32';
        m.params.free();
      }

      async function logps(b: ReturnType<typeof uploadBatch>): Promise<Float32Array> {
        const st = model.forward(b, false);
        const out = await gpu.readF32(st.logp);
        gpu.pool.release(st.logp);
        return out;
      }
    });
  }
});
