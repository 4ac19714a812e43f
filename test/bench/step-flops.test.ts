// bench/step-flops.ts (the nominal work behind `bench step`'s share of the matmul rate) against an
// independent count: the rows trainStep builds (src/model/batch.ts buildBatch, packed or not) walked
// token by token, every visible key found with the attention reference's mask rule, the scored
// tokens from the layout's targets. Random pair lengths; Pythia's and a sliding-window model's shapes.
import { describe, expect, it } from 'vitest';
import { buildBatch } from '../../src/model/batch.js';
import { attentionVisible } from '../../src/kernels/attention.ref.js';
import { presetConfig } from '../../src/init/presets.js';
import type { ModelConfig } from '../../src/model/config.js';
import { linearFlopsPerToken, stepFlops, type PairLengths } from '../../bench/step-flops.js';
import { makeRng } from '../helpers/random.js';

const rng = makeRng();
const ids = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/**
 * Forward FLOPs of a layout, token by token: the tokens of each row from `skip` (a shared prefix is not
 * computed per row) up to `take`, the output layer on the scored ones unless `head` is false.
 */
function countLayout(cfg: ModelConfig, items: { prompt: number[]; completions: number[][] }[], packed: boolean,
  o: { skip?: number; take?: number; head?: boolean } = {}): number {
  const L = buildBatch(items, { packed });
  const perToken = linearFlopsPerToken(cfg);
  const perKey = 4 * cfg.numLayers * cfg.numHeads * cfg.headDim;
  const mask = { positions: L.positions, segments: L.segments, lengths: L.lengths, window: cfg.slidingWindow ?? 0 };
  let flops = 0;
  for (let b = 0; b < L.B; b++) {
    for (let i = o.skip ?? 0; i < Math.min(L.lengths[b], o.take ?? Infinity); i++) {
      flops += perToken;
      for (let j = 0; j <= i; j++) if (attentionVisible(mask, L.T, b, i, j)) flops += perKey;
      if (L.targets[b * L.T + i] >= 0 && o.head !== false) flops += 2 * cfg.hiddenSize * cfg.vocabSize;
    }
  }
  return flops;
}

describe(`nominal step FLOPs (seed ${rng.seed})`, () => {
  it('linear layers: 24 L d^2 a token for GPT-NeoX (MLP 4d), with SwiGLU\'s third product and GQA\'s narrower k, v', () => {
    const neox = presetConfig('gpt-neox', 'pythia-410m');
    expect(linearFlopsPerToken(neox)).toBe(24 * 24 * 1024 * 1024);
    const m = presetConfig('mistral', 'small'); // d 128, 4 heads of 32, 2 KV heads, SwiGLU
    expect(linearFlopsPerToken(m)).toBe(2 * m.numLayers * (128 * (128 + 2 * 64) + 128 * 128 + 3 * 128 * m.intermediateSize));
  });

  for (const [arch, window] of [['gpt-neox', null], ['mistral', 7]] as const) {
    it(`${arch}${window ? ` with a sliding window of ${window}` : ''}: policy and augmented passes, packed and unpacked, as the layouts count`, () => {
      const cfg = { ...presetConfig(arch, 'tiny'), slidingWindow: window };
      const refine = 5; const microBatch = 3;
      const pairs: PairLengths[] = Array.from({ length: 7 }, () => ({
        prompt: 1 + rng.int(9), chosen: 1 + rng.int(8), rejected: 1 + rng.int(8), refine }));
      for (const packed of [true, false]) {
        const f = stepFlops(cfg, pairs, packed, microBatch);
        const plain = pairs.map((p) => ({ prompt: ids(p.prompt), completions: [ids(p.chosen), ids(p.rejected)] }));
        expect(f.policy).toBe(3 * countLayout(cfg, plain, packed));
        // Augmented: every row behind the refinement prompt; each micro-batch computes the prompt once.
        let aug = 0;
        for (let s = 0; s < pairs.length; s += microBatch) {
          const mb = pairs.slice(s, s + microBatch).map((p) => ({ prompt: ids(refine + p.prompt), completions: [ids(p.chosen), ids(p.rejected)] }));
          aug += countLayout(cfg, mb, packed, { skip: refine }) + countLayout(cfg, [{ prompt: ids(refine), completions: [[1]] }], false, { take: refine, head: false });
        }
        expect(f.augmented).toBe(aug);
        expect(f.total).toBe(f.policy + f.augmented);
      }
    });
  }

  it('SFT (no rejected completion): one row a pair, no augmented pass', () => {
    const cfg = presetConfig('gpt-neox', 'tiny');
    const pairs: PairLengths[] = [{ prompt: 6, chosen: 4, rejected: 0, refine: 0 }, { prompt: 3, chosen: 9, rejected: 0, refine: 0 }];
    const f = stepFlops(cfg, pairs, false, 8);
    expect(f.policy).toBe(3 * countLayout(cfg, pairs.map((p) => ({ prompt: ids(p.prompt), completions: [ids(p.chosen)] })), false));
    expect(f.augmented).toBe(0);
  });
});
