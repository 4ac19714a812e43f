// `srk bench generate`: sampling's two phases on a random-init GPT-NeoX of a preset's shapes, wall
// clock (each step ends in a readback of its logits, as generation's does):
//   prefill  every row's prompt in one step (the Decoder's prompt pass), prompt tokens/s;
//   decode   one new token a row a step, the next chosen greedily on the host, new tokens/s.
// Rows all have the prompt's length and run every step (none stops early), so the numbers are a
// batch's steady rate. Timings are medians over repeats after warm-up.
import type { Gpu } from '../src/engine/gpu.js';
import { presetConfig } from '../src/init/presets.js';
import { Params } from '../src/model/params.js';
import { expectedParameters } from '../src/model/tensor-names.js';
import { Decoder, type DecodeToken } from '../src/generate/decoder.js';
import { argmax } from '../src/generate/sample.js';
import { randomInitParams, randomInts } from './random.js';
import type { StepShape } from './step.js';

export interface GenerateBenchOptions { shape: StepShape; rows: number; prompt: number; newTokens: number; warmup: number; repeats: number }

export interface GenerateBenchResult {
  shape: StepShape; parameters: number; rows: number; prompt: number; newTokens: number;
  /** One prefill step: its wall time and prompt tokens (rows x prompt) a second. */
  prefillMs: number; prefillTokensPerS: number;
  /** One decode step (rows new tokens): its wall time, and new tokens a second. */
  decodeStepMs: number; decodeTokensPerS: number;
  peakInUseBytes: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export function checkGenerateBench(o: GenerateBenchOptions, maxPositions: number): void {
  if (o.prompt + o.newTokens > maxPositions) {
    throw new RangeError(`bench generate: prompt ${o.prompt} + ${o.newTokens} new tokens is over the ${o.shape} shape's ${maxPositions} positions`);
  }
}

export async function benchGenerate(gpu: Gpu, o: GenerateBenchOptions): Promise<GenerateBenchResult> {
  const cfg = presetConfig('gpt-neox', o.shape);
  checkGenerateBench(o, cfg.maxPositions);
  const V = cfg.vocabSize;
  if (gpu.profiler) gpu.profiler.enabled = false; // timed by the wall clock, as srk generate runs (no pass per dispatch)
  gpu.pool.trim(); // (the copy benchmark's buffers, free again, count in neither figure)
  gpu.pool.peakInUseBytes = gpu.pool.inUseBytes;
  const params = new Params(gpu, expectedParameters(cfg)).allocate();
  randomInitParams(gpu, params);
  const dec = new Decoder(gpu, cfg, params, o.rows, o.prompt + o.newTokens);
  const ids = randomInts(o.rows * o.prompt, V, 3);
  const prompts: DecodeToken[] = Array.from(ids, (id, i) => ({ row: Math.floor(i / o.prompt), pos: i % o.prompt, id }));
  const lastOfRow = Array.from({ length: o.rows }, (_, r) => (r + 1) * o.prompt - 1);
  const prefill: number[] = []; const decode: number[] = [];
  try {
    for (let rep = 0; rep < o.warmup + o.repeats; rep++) {
      let t = performance.now();
      let logits = await dec.step(prompts, lastOfRow);
      if (rep >= o.warmup) prefill.push(performance.now() - t);
      t = performance.now();
      // Decode steps: rows' greedy tokens at positions prompt, prompt + 1, ... (the cache's tokens before them written).
      const all = Array.from({ length: o.rows }, (_, i) => i);
      for (let k = 0; k < o.newTokens - 1; k++) {
        const tokens = all.map((row) => ({ row, pos: o.prompt + k, id: argmax(logits, row * V, V) }));
        logits = await dec.step(tokens, all);
      }
      if (rep >= o.warmup && o.newTokens > 1) decode.push((performance.now() - t) / (o.newTokens - 1));
    }
  } finally {
    dec.free();
    params.free();
  }
  const prefillMs = median(prefill); const decodeStepMs = decode.length ? median(decode) : NaN;
  return {
    shape: o.shape, parameters: params.count, rows: o.rows, prompt: o.prompt, newTokens: o.newTokens,
    prefillMs, prefillTokensPerS: (o.rows * o.prompt) / (prefillMs / 1000),
    decodeStepMs, decodeTokensPerS: o.rows / (decodeStepMs / 1000),
    peakInUseBytes: gpu.pool.peakInUseBytes,
  };
}
