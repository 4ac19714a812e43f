// OUT/samples.jsonl (--eval-samples K): at each evaluation, the policy's greedy completions of the first
// K prompts of --eval-data, at most --eval-sample-tokens new tokens each (src/generate/), one line per
// prompt: {step, pairs_seen, file, line, prompt, completion, finish_reason, completion_tokens, chosen (the data's
// chosen response, for comparison)}. What the
// margins do not show: what the policy writes, from the first evaluation (the model it starts from) on,
// as TRL's generate_during_eval logs them. The report shows each prompt's first and latest completion.
// Greedy, so a resumed run writes what an uninterrupted one does; lines past a resumed checkpoint go.
// They are computed as srk generate computes them, in the run's precision (and, on a GPU, with the
// run's tuned kernels, which may move a logit in its last bits and so flip a near-tie).
import { userError } from '../errors.js';
import type { Gpu } from '../engine/gpu.js';
import type { ModelShape } from '../model/context.js';
import type { Params } from '../model/params.js';
import type { TokenizedPair } from '../data/tokenize-pairs.js';
import { generateBatch } from '../generate/generate.js';
import type { SampleRow } from '../report/samples-log.js';

export interface EvalSamplerOptions {
  maxNewTokens: number; stopIds: readonly number[]; maxPositions?: number;
  /** Text of token ids: the prompt as the model reads it (special tokens kept), the completion without them. */
  decode: (ids: readonly number[], skipSpecial: boolean) => string;
}

/** Prompts sampled together. */
const SAMPLE_BATCH = 8;

/** The first `k` eval pairs' prompts, sampled greedily at each evaluation. */
export class EvalSampler {
  private readonly prompts: { ids: number[]; text: string; chosen: string; file: string | null; line: number | null }[];

  constructor(pairs: readonly TokenizedPair[], k: number, private readonly o: EvalSamplerOptions) {
    this.prompts = pairs.slice(0, k).map((p) => ({
      ids: p.promptIds, text: o.decode(p.promptIds, false), chosen: o.decode(p.chosenIds, true), file: p.source?.file ?? null, line: p.source?.line ?? null,
    }));
  }

  get count(): number { return this.prompts.length; }

  async sample(gpu: Gpu, cfg: ModelShape, params: Params, step: number, pairsSeen: number): Promise<SampleRow[]> {
    // SAMPLE_BATCH prompts at a time (greedy: the same completions whatever the batch), so the key/value
    // cache stays small whatever --eval-samples is.
    const gens = [];
    for (let at = 0; at < this.prompts.length; at += SAMPLE_BATCH) {
      const some = this.prompts.slice(at, at + SAMPLE_BATCH).map((p, i) => ({ ids: p.ids, stream: at + i }));
      try {
        gens.push(...await generateBatch(gpu, cfg, params, some,
          { temperature: 0, topK: 0, topP: 1, seed: 0, maxNewTokens: this.o.maxNewTokens, stopIds: this.o.stopIds, maxPositions: this.o.maxPositions }));
      } catch (e) {
        if (e instanceof RangeError || (e as { userFacing?: boolean }).userFacing) {
          // (Its own flags, in place of a too-large tensor's general ones: engine/tensor.ts.)
          const why = (e as Error).message.replace(/: fewer tokens at a time fit \(.*\)$/, '');
          throw userError(`--eval-samples: ${why} (lower --eval-sample-tokens, or --max-prompt-length)`);
        }
        throw e;
      }
    }
    return gens.map((g, i) => ({
      step, pairs_seen: pairsSeen, file: this.prompts[i].file, line: this.prompts[i].line, prompt: this.prompts[i].text,
      completion: this.o.decode(g.ids, true), finish_reason: g.finish, completion_tokens: g.ids.length, chosen: this.prompts[i].chosen,
    }));
  }
}
