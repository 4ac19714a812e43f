// What a checkpoint says about decoding, as transformers' generate() reads it: generation_config.json
// (do_sample, temperature, top_k, top_p, max_new_tokens, max_length, eos_token_id), config.json's
// eos_token_id after it, the tokenizer's EOS last. srk generate's flags go over it (src/cli/generate.ts);
// a training run's eval samples take its stop tokens (src/train/eval-samples.ts).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { userError } from '../errors.js';

/** What a checkpoint says about decoding (generation_config.json, then config.json for the stop ids). */
export interface GenerationDefaults {
  file: string;
  doSample: boolean; temperature?: number; topK?: number; topP?: number; maxNewTokens?: number;
  /** max_length: prompt + new tokens, where max_new_tokens is not given (transformers' rule). */
  maxLength?: number;
  stopIds: number[];
  /** Settings that change decoding in transformers and that srk does not apply, as "key=value". */
  unapplied: string[];
}

async function readJsonFile(file: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw userError(`${file}: cannot read it (${(e as Error).message})`);
  }
  let v: unknown;
  try { v = JSON.parse(text); } catch (e) { throw userError(`${file}: not valid JSON (${(e as Error).message})`); }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw userError(`${file}: not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * generation_config.json's keys that change what transformers generates, with the value that changes
 * nothing: srk applies none of them, and names any set otherwise.
 */
const NEUTRAL: Record<string, unknown> = {
  num_beams: 1, num_beam_groups: 1, repetition_penalty: 1, encoder_repetition_penalty: 1, no_repeat_ngram_size: 0,
  min_new_tokens: 0, min_length: 0, typical_p: 1, min_p: null, epsilon_cutoff: 0, eta_cutoff: 0, diversity_penalty: 0,
  penalty_alpha: null, bad_words_ids: null, suppress_tokens: null, begin_suppress_tokens: null, forced_bos_token_id: null,
  forced_eos_token_id: null, sequence_bias: null, exponential_decay_length_penalty: null, guidance_scale: null, stop_strings: null,
  max_time: null, num_return_sequences: 1,
};

export async function generationDefaults(dir: string, tokenizerEos: number | undefined): Promise<GenerationDefaults> {
  const file = path.join(dir, 'generation_config.json');
  const g = (await readJsonFile(file)) ?? {};
  const cfg = (await readJsonFile(path.join(dir, 'config.json'))) ?? {};
  const has = (k: string) => Object.hasOwn(g, k);
  const num = (k: string, check: (v: number) => boolean, what: string): number | undefined => {
    const v = g[k];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'number' || !check(v)) throw userError(`${file}: "${k}" must be ${what}, got ${JSON.stringify(v)}`);
    return v;
  };
  if (has('do_sample') && g.do_sample !== null && typeof g.do_sample !== 'boolean') throw userError(`${file}: "do_sample" must be true or false, got ${JSON.stringify(g.do_sample)}`);
  const ids = (v: unknown, where: string): number[] | undefined => {
    if (v === undefined || v === null) return undefined;
    const list = Array.isArray(v) ? v : [v];
    if (!list.every((x) => Number.isSafeInteger(x) && x >= 0)) throw userError(`${where}: "eos_token_id" must be a token id or a list of them, got ${JSON.stringify(v)}`);
    return list as number[];
  };
  const stopIds = ids(g.eos_token_id, file) ?? ids(cfg.eos_token_id, path.join(dir, 'config.json')) ?? (tokenizerEos !== undefined ? [tokenizerEos] : []);
  const whole = (v: number) => Number.isInteger(v) && v > 0;
  const unapplied = Object.entries(NEUTRAL)
    .filter(([k, neutral]) => has(k) && g[k] !== null && JSON.stringify(g[k]) !== JSON.stringify(neutral))
    .map(([k]) => `${k}=${JSON.stringify(g[k])}`);
  return {
    file, doSample: g.do_sample === true,
    temperature: num('temperature', (v) => Number.isFinite(v) && v >= 0, 'a number, 0 or more'),
    // An explicit null top_k turns top-k off (transformers adds no TopK warper); absent, its default 50.
    topK: has('top_k') && g.top_k === null ? 0 : num('top_k', (v) => Number.isInteger(v) && v >= 0, 'a whole number, 0 or more'),
    topP: num('top_p', (v) => v > 0 && v <= 1, 'in (0, 1]'),
    maxNewTokens: num('max_new_tokens', whole, 'a positive whole number'),
    maxLength: num('max_length', whole, 'a positive whole number'),
    stopIds, unapplied,
  };
}
