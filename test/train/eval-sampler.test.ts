// EvalSampler (src/train/eval-samples.ts) in process, on the GPT-NeoX fixture: the prompt as the model reads
// it (special tokens kept: a Llama prompt's BOS), the completion and the data's chosen response without them,
// and no token past the model's positions.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { loadModel } from '../../src/model/load.js';
import { EvalSampler } from '../../src/train/eval-samples.js';
import type { TokenizedPair } from '../../src/data/tokenize-pairs.js';

describe('EvalSampler', () => {
  it('decodes the prompt with its special tokens, the rest without; stops at the model\'s last position', async () => {
    const gpu = await getGpu();
    const m = await loadModel(gpu, resolve(FIXTURES_HF, 'gpt-neox-tiny'));
    const pair = (promptIds: number[]) => ({ promptIds, chosenIds: [40, 41, 0], rejectedIds: [42, 0] }) as unknown as TokenizedPair;
    const decode = (ids: readonly number[], skipSpecial: boolean) => `${skipSpecial ? 'plain' : 'as read'}:${ids.join(',')}`;
    const prompts = [[5, 6, 7], [8, 9, 10, 11, 12]];
    const sampler = new EvalSampler(prompts.map(pair), 2, { maxNewTokens: 6, stopIds: [], maxPositions: 7, decode });
    const rows = await sampler.sample(gpu, m.cfg, m.params, 3, 12);
    expect(rows.map((r) => [r.prompt, r.chosen])).toEqual([['as read:5,6,7', 'plain:40,41,0'], ['as read:8,9,10,11,12', 'plain:40,41,0']]);
    // 7 positions: the first prompt has room for 4 new tokens, the second for 2 (of the 6 asked).
    expect(rows.map((r) => [r.completion_tokens, r.finish_reason])).toEqual([[4, 'length'], [2, 'length']]);
    expect(rows[1].completion).toMatch(/^plain:\d+,\d+$/);
    expect(rows.map((r) => [r.step, r.pairs_seen])).toEqual([[3, 12], [3, 12]]);
  });
});
