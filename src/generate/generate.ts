// Sampling completions for a batch of prompts: one prefill step over every prompt, then one decode
// step per new token over the rows still going (decoder.ts), each row's next token chosen on the host
// (sample.ts). A row stops at a stop token (EOS; it is not part of the completion) or after
// maxNewTokens, or where the model's positions end.
//
// Each row draws from its own random stream (seed, stream): a prompt's completion does not depend on
// the batch it ran in or its place there.
import type { Gpu } from '../engine/gpu.js';
import type { ModelShape } from '../model/context.js';
import type { Params } from '../model/params.js';
import { Rng } from '../init/prng.js';
import { Decoder, cacheBytes, type DecodeToken } from './decoder.js';
import { checkSampling, sampleToken, type SamplingOptions } from './sample.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Token ids that end a completion (EOS; a chat template's end of turn). */
  stopIds: readonly number[];
  seed: number;
  /** The model's max_position_embeddings, if known: no token goes at or past it. */
  maxPositions?: number;
  /** A cap on prompt + new tokens (generation_config.json's max_length): a prompt as long has none. */
  maxLength?: number;
  /** Most bytes of one layer's key/value cache a batch may take before it runs in parts (default: the adapter's largest buffer binding). */
  cacheLimitBytes?: number;
}

export interface PromptToGenerate { ids: readonly number[]; /** The row's random stream. */ stream: number }

export interface Generation {
  /** The new tokens, the stop token left out. */
  ids: number[];
  /** 'stop': a stop token ended it; 'length': maxNewTokens, or the model's last position. */
  finish: 'stop' | 'length';
}

/** A row's most new tokens: the new token k (from 1) sits at position P + k - 1, under the model's last and max_length. */
function newTokenLimit(promptTokens: number, o: GenerateOptions): number {
  return Math.max(0, Math.min(o.maxNewTokens, (o.maxPositions ?? Infinity) - promptTokens, (o.maxLength ?? Infinity) - promptTokens));
}

/** Tokens a prompt's row of the key/value cache holds: the prompt and every new token but the last (which is not run). */
export function cacheTokens(promptTokens: number, o: GenerateOptions): number {
  return Math.max(promptTokens, promptTokens + newTokenLimit(promptTokens, o) - 1);
}

/**
 * Completions of `prompts`, in their order. A batch whose key/value cache would not fit one buffer runs
 * as halves, one after the other: each row draws from its own stream, so the completions are the same.
 */
export async function generateBatch(gpu: Gpu, cfg: ModelShape, params: Params, prompts: readonly PromptToGenerate[], o: GenerateOptions,
  onToken?: () => void): Promise<Generation[]> {
  const cacheLimit = Math.min(o.cacheLimitBytes ?? Infinity, gpu.maxBinding);
  if (prompts.length > 1 && cacheBytes(cfg, prompts.length, Math.max(...prompts.map((p) => cacheTokens(p.ids.length, o)))) > cacheLimit) {
    const half = Math.ceil(prompts.length / 2);
    return [...await generateBatch(gpu, cfg, params, prompts.slice(0, half), o, onToken),
      ...await generateBatch(gpu, cfg, params, prompts.slice(half), o, onToken)];
  }
  checkSampling(o);
  if (!(Number.isInteger(o.maxNewTokens) && o.maxNewTokens > 0)) throw new RangeError(`max new tokens must be a positive whole number, got ${o.maxNewTokens}`);
  const B = prompts.length;
  if (B === 0) return [];
  prompts.forEach((p, i) => {
    if (p.ids.length === 0) throw new RangeError(`prompt ${i} has no tokens`);
    if (o.maxPositions !== undefined && p.ids.length >= o.maxPositions) {
      throw new RangeError(`prompt ${i} has ${p.ids.length} tokens, and the model's positions end at ${o.maxPositions}: no room for a completion`);
    }
  });
  const limit = prompts.map((p) => newTokenLimit(p.ids.length, o));
  const Tmax = Math.max(...prompts.map((p) => cacheTokens(p.ids.length, o)));
  const stop = new Set(o.stopIds);
  const rngs = prompts.map((p) => new Rng(o.seed, p.stream));
  const out: Generation[] = prompts.map(() => ({ ids: [], finish: 'length' }));
  const dec = new Decoder(gpu, cfg, params, B, Tmax);
  try {
    // Prefill: every prompt token; the logits of each prompt's last. Rows with the same prompt (a
    // prompt's samples) share its pass: it runs on the first of them, its keys and values are copied to
    // the others, and all draw their first token from its logits.
    const leaderOf = new Map<string, number>();
    const lead = prompts.map((p, b) => {
      const key = p.ids.join(',');
      if (!leaderOf.has(key)) leaderOf.set(key, b);
      return leaderOf.get(key)!;
    });
    const leaders = [...leaderOf.values()];
    let tokens: DecodeToken[] = leaders.flatMap((row) => prompts[row].ids.map((id, pos) => ({ row, pos, id })));
    let want: number[] = [];
    let at = 0;
    for (const row of leaders) { at += prompts[row].ids.length; want.push(at - 1); }
    const leaderLogits = new Map(leaders.map((row, k) => [row, k]));
    let rows: number[] = prompts.map((_, b) => b);
    let logitRow = (row: number, _k: number) => leaderLogits.get(lead[row])!;
    const V = cfg.vocabSize;
    for (let first = true; ; first = false) {
      const logits = await dec.step(tokens, want);
      if (first) {
        for (const leader of leaders) {
          const followers = prompts.map((_, b) => b).filter((b) => b !== leader && lead[b] === leader);
          dec.copyPrefix(leader, followers, prompts[leader].ids.length);
        }
      }
      const next: DecodeToken[] = []; const nextRows: number[] = [];
      rows.forEach((row, k) => {
        if (limit[row] === 0) return; // (max_length: no room after the prompt; 'length', empty)
        const id = sampleToken(logits, logitRow(row, k) * V, V, o, rngs[row]);
        const g = out[row];
        if (stop.has(id)) { g.finish = 'stop'; return; }
        g.ids.push(id);
        if (g.ids.length >= limit[row]) return; // 'length'
        next.push({ row, pos: prompts[row].ids.length + g.ids.length - 1, id }); nextRows.push(row);
      });
      onToken?.();
      if (next.length === 0) break;
      tokens = next; rows = nextRows; want = next.map((_, i) => i); logitRow = (_row, k) => k;
    }
  } finally {
    dec.free();
  }
  return out;
}
