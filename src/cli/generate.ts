// `srk generate`: completions of a model for the prompts of a data file, one JSON line per row in
// input order: {"prompt", "completion", "finish_reason", "completion_tokens", "line"} (with --samples
// N > 1, "completions", "finish_reasons" and "completion_tokens" are lists of N). The prompts come from
// any row shape srk reads (src/generate/prompts.ts); the output is itself a {prompt, completion} SFT
// file, and what a judge needs to compare a policy's answers with its reference's.
//
// Decoding follows the checkpoint's generation_config.json where it has one, as transformers'
// generate() does (do_sample, temperature, top_k, top_p, max_new_tokens, eos_token_id); flags override
// it. Without one: greedy, up to 256 new tokens, stopping at the EOS token.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { CommandModule } from 'yargs';
import { countDataRows, iterateJsonl, type JsonObject, type JsonlRow } from '../data/read-jsonl.js';
import { PairTokenizer } from '../data/tokenize-pairs.js';
import { loadTokenizer, textTokenizer } from '../model/tokenizer.js';
import { checkpointFileStamps, loadModel } from '../model/load.js';
import { describeModel, loadModelConfig } from '../model/config.js';
import { positionLimit } from '../model/rope.js';
import { PromptReader, promptInput, type PromptInput } from '../generate/prompts.js';
import { cacheTokens, generateBatch, type GenerateOptions, type Generation } from '../generate/generate.js';
import { cacheBytes } from '../generate/decoder.js';
import { checkSampling } from '../generate/sample.js';
import { Progress } from '../train/progress.js';
import { checkPathFlag, dataFilesFlag, typedFlags, withGpu, ADAPTER_FLAG } from './run.js';
import { freeModel } from './logprobs.js';
import { runSettings } from './run-settings.js';
import { RESUMABLE_OUT_FLAG, ResumableOutput, checkOutFlag, keepOnSignal } from '../generate/resumable-output.js';
import { generationDefaults, type GenerationDefaults } from '../generate/generation-config.js';
import { dataError, isUserFacing, userError } from '../errors.js';
import { PAPER_REFINE_PROMPT } from '../train/options.js';

export interface GenerateCliOptions {
  model: string; data: string; out?: string;
  /** Flags given; undefined: generation_config.json's, else the defaults. */
  maxNewTokens?: number; temperature?: number; topK?: number; topP?: number;
  /** Prompt tokens kept (the end; a tokenizer's BOS stays first); default: the model's positions less max new tokens. */
  maxPromptLength?: number;
  seed: number; samples: number; batchSize: number; adapter?: string;
  /** Generate for p ⊕ x, the refinement prompt p before each prompt (the Sr losses' augmented input). */
  augmented: boolean; refinePrompt: string;
}

export interface DecodingSettings {
  temperature: number; topK: number; topP: number;
  /** Most new tokens a row, and where that number comes from (a flag, the file, the default). */
  maxNewTokens: number; maxNewFrom: string;
  /** A total length cap (generation_config.json's max_length without max_new_tokens). */
  maxLength?: number;
  notes: string[];
}

/** The decoding settings: flags over the checkpoint's over transformers' defaults. */
export function decodingSettings(o: GenerateCliOptions, d: GenerationDefaults): DecodingSettings {
  const notes: string[] = [];
  const fileName = path.basename(d.file);
  if (o.temperature === undefined && d.doSample && d.temperature === 0) {
    throw userError(`${d.file}: do_sample with temperature 0 (transformers refuses it too): give --temperature, 0 for greedy`);
  }
  const temperature = o.temperature ?? (d.doSample ? d.temperature ?? 1 : 0);
  const topK = o.topK ?? d.topK ?? 50;
  const topP = o.topP ?? d.topP ?? 1;
  let maxNewTokens: number; let maxNewFrom: string; let maxLength: number | undefined;
  if (o.maxNewTokens !== undefined) { maxNewTokens = o.maxNewTokens; maxNewFrom = `--max-new-tokens ${maxNewTokens}`; }
  else if (d.maxNewTokens !== undefined) { maxNewTokens = d.maxNewTokens; maxNewFrom = `max_new_tokens ${maxNewTokens} (${d.file})`; }
  else if (d.maxLength !== undefined) {
    // transformers: max_length counts the prompt too.
    maxLength = d.maxLength; maxNewTokens = d.maxLength; maxNewFrom = `max_length ${d.maxLength} (${d.file})`;
  } else { maxNewTokens = 256; maxNewFrom = 'the default 256 new tokens'; }
  if (temperature === 0 && (o.topK !== undefined || o.topP !== undefined)) {
    notes.push('--top-k and --top-p shape sampling, and decoding is greedy (temperature 0): give --temperature to sample');
  }
  if (temperature === 0 && o.samples > 1) notes.push(`greedy decoding gives the same completion ${o.samples} times: give --temperature to sample`);
  if (d.unapplied.length) notes.push(`${fileName} sets ${d.unapplied.join(', ')}, which srk generate does not apply (it samples or decodes greedily, as above)`);
  return { maxNewTokens, maxNewFrom, maxLength, temperature, topK, topP, notes };
}

export async function runGenerate(o: GenerateCliOptions): Promise<void> {
  const progress = new Progress();
  const log = (s: string) => progress.log(s);
  const tok = await loadTokenizer(o.model);
  const tt = textTokenizer(tok);
  for (const note of tok.notes) log(note); // (how the prompts' BOS / EOS were read)
  const defaults = await generationDefaults(o.model, tok.eosTokenId);
  const dec = decodingSettings(o, defaults);
  try { checkSampling(dec); } catch (e) {
    throw userError(`${(e as Error).message} (from the flags${existsSync(defaults.file) ? ` or ${defaults.file}` : ''})`);
  }
  // (LongRoPE's original context where it is shorter than max_position_embeddings: positionLimit.)
  const positions = positionLimit(await loadModelConfig(o.model));
  const maxPositions = positions.max;
  // The longest prompt kept: room for every new token in the model's positions (with max_length, for one).
  const maxPrompt = o.maxPromptLength ?? Math.min(maxPositions, dec.maxLength ?? Infinity) - (dec.maxLength !== undefined ? 1 : dec.maxNewTokens);
  if (maxPrompt < 1) throw userError(`${dec.maxNewFrom} leaves no room for a prompt in the model's ${maxPositions} positions (${positions.name})`);
  if (maxPrompt >= maxPositions) throw userError(`--max-prompt-length ${maxPrompt} leaves no room for a completion in the model's ${maxPositions} positions (${positions.name})`);
  for (const n of dec.notes) log(`note: ${n}`);
  if (defaults.stopIds.length === 0) log('note: the checkpoint names no EOS token: completions end at the token limit only');
  else if (tok.eosTokenId !== undefined && tok.eosFrom === 'the tokenizer files' && !defaults.stopIds.includes(tok.eosTokenId)) {
    // (A chat model whose tokenizer_config.json names <|im_end|> while generation_config.json keeps <|endoftext|>: its
    // turns would run on to the limit. transformers' generate stops at the same ids.)
    log(`note: the tokenizer's EOS ${JSON.stringify(tok.idToToken(tok.eosTokenId) ?? '?')} (id ${tok.eosTokenId}) is not a stop id ` +
      `(those are ${defaults.stopIds.join(' ')}, from generation_config.json or config.json): add it to generation_config.json's eos_token_id to stop there`);
  }
  const refine = o.augmented ? o.refinePrompt : null;
  const prompts = new PromptReader(tt, refine);
  let encoder: PairTokenizer;
  try { encoder = new PairTokenizer(tt, { noEos: true, refinePrompt: refine }); } catch (e) { throw userError(`${o.model}: ${(e as Error).message}`); }
  if (encoder.refineIds && encoder.refineIds.length >= maxPrompt) {
    throw userError(`--refine-prompt has ${encoder.refineIds.length} tokens, which leave no room for a prompt in ${maxPrompt} prompt tokens (--max-prompt-length)`);
  }
  const total = await countDataRows(o.data).catch((e) => { throw dataError(e); });
  if (total === 0) throw userError(`${o.data}: no rows (an empty file)`);
  // --out: lines kept in OUT.partial as they are made; a run stopped before the end is taken up by the
  // same command (resumable-output.ts). Opened before the GPU, so other settings are refused at once.
  // (Greedy decoding draws nothing: seed, top-k and top-p change none of its lines.)
  const greedy = dec.temperature === 0;
  const sink = o.out ? ResumableOutput.open(o.out, {
    files: checkpointFileStamps(o.model), samples: o.samples, temperature: dec.temperature,
    seed: greedy ? null : o.seed, top_k: greedy ? null : dec.topK, top_p: greedy ? null : dec.topP,
    max_new_tokens: dec.maxNewTokens, max_length: dec.maxLength ?? null, stop_ids: defaults.stopIds, max_prompt_length: maxPrompt,
    augmented: o.augmented, refine_prompt: o.augmented ? o.refinePrompt : null,
  }, 'srk generate') : undefined;
  if (sink?.done.length) log(`taking up ${sink.partial}: ${sink.done.length} of ${total} rows done by an earlier run`);
  let written = 0; // rows this run wrote
  // Ctrl-C / SIGTERM: the rows written stay for the next run (exit 130 / 143).
  const release = keepOnSignal(sink, () => (sink?.done.length ?? 0) + written, log);
  try {
    // No kernel tuning: it would time candidate kernels on the first calls of each shape and keep the
    // fastest, so a completion could depend, in its logits' last bits, on what ran before it.
    await withGpu({ adapter: o.adapter, tune: false }, async (gpu) => {
      const lm = await loadModel(gpu, o.model, { onProgress: progress.bytes(`load ${o.model}`) });
      progress.log(`model ${o.model}: ${describeModel(lm.cfg)}`); // what was read, as srk train says it
      const t0 = performance.now();
      const gen: GenerateOptions = { ...dec, stopIds: defaults.stopIds, seed: o.seed, maxPositions };
      // A batch whose key/value cache is over one buffer runs in parts (generateBatch); a prompt whose own
      // row is over it is refused by its line, the rows before it kept.
      const tooLong = (promptTokens: number, line: number): string | undefined => {
        const bytes = cacheBytes(lm.cfg, 1, cacheTokens(promptTokens, gen));
        if (bytes <= gpu.maxBinding) return undefined;
        return `${o.data}:${line}: its prompt of ${promptTokens} tokens and up to ${dec.maxNewTokens} new tokens need a key/value ` +
          `cache of ${(bytes / 2 ** 20).toFixed(0)} MiB a layer, over this adapter's ${(gpu.maxBinding / 2 ** 20).toFixed(0)} MiB per buffer: ` +
          'lower --max-prompt-length or --max-new-tokens';
      };
      let rowsDone = 0; let newTokens = 0; let cut = 0;
      const finishes = { stop: 0, length: 0 };
      // Completions the model's last position ended short of the asked limit (generate.ts newTokenLimit): said, not read as the limit.
      let atPositions = 0;
      const asked = (promptTokens: number) => Math.min(dec.maxNewTokens, (dec.maxLength ?? Infinity) - promptTokens);
      try {
        let batch: { prompt: string; truncated: boolean; ids: number[]; line: number; index: number }[] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const rows = batch.flatMap((b) => Array.from({ length: o.samples }, (_, k) => ({ ids: b.ids, stream: b.index * o.samples + k })));
          let steps = 0;
          const gens = await generateBatch(gpu, lm.cfg, lm.params, rows, gen,
            () => { steps++; progress.update('generate', rowsDone, total, `${steps} tokens into a batch of ${batch.length}`); });
          let text = '';
          batch.forEach((b, i) => {
            const mine: Generation[] = gens.slice(i * o.samples, (i + 1) * o.samples);
            const completions = mine.map((g) => tok.decode(g.ids, { skipSpecialTokens: true }));
            for (const g of mine) {
              finishes[g.finish]++; newTokens += g.ids.length;
              if (g.finish === 'length' && g.ids.length < asked(b.ids.length) && b.ids.length + g.ids.length >= maxPositions) atPositions++;
            }
            const cutNote = { ...(b.truncated ? { prompt_truncated: true } : {}), ...(o.augmented ? { augmented: true } : {}) };
            const rec = o.samples === 1
              ? { prompt: b.prompt, completion: completions[0], finish_reason: mine[0].finish, completion_tokens: mine[0].ids.length, line: b.line, ...cutNote }
              : { prompt: b.prompt, completions, finish_reasons: mine.map((g) => g.finish), completion_tokens: mine.map((g) => g.ids.length), line: b.line, ...cutNote };
            text += `${JSON.stringify(rec)}\n`;
          });
          if (sink) sink.write(text);
          else if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
          written += batch.length;
          rowsDone += batch.length;
          progress.update('generate', rowsDone, total, `${newTokens} tokens`);
          batch = [];
        };
        try {
          let index = 0;
          const rowsIn = iterateJsonl(o.data, (obj: JsonObject) => promptInput(prompts.read(obj), encoder, tok, maxPrompt, o.augmented))[Symbol.asyncIterator]();
          for (;;) {
            let next: IteratorResult<JsonlRow<PromptInput>>;
            try {
              next = await rowsIn.next();
            } catch (e) {
              await flush(); // a row that does not read: the prompts before it are still generated and kept (--out)
              throw e;
            }
            if (next.done) break;
            const r = next.value;
            const { ids, prompt, truncated } = r.value;
            const done = sink?.done[index];
            if (done) {
              // Written by an earlier run: skipped, once it is seen to come from this same prompt.
              if (done.line !== r.line || done.prompt !== prompt) {
                throw userError(`${sink!.partial}: its row ${index + 1} was made from line ${done.line} of another prompt than ${o.data}:${r.line} ` +
                  'has now (the data changed): delete it to start over');
              }
              index++; rowsDone++;
              continue;
            }
            const outside = ids.find((id) => id >= lm.cfg.vocabSize);
            const over = outside !== undefined
              ? `${o.data}:${r.line}: token id ${outside} is past the model's vocab_size ${lm.cfg.vocabSize}: the tokenizer has tokens the model has no embedding for`
              : tooLong(ids.length, r.line);
            if (over) { await flush(); throw userError(over); }
            if (truncated) cut++;
            batch.push({ prompt, truncated, ids, line: r.line, index: index++ });
            if (batch.length >= o.batchSize) await flush();
          }
          await flush();
        } catch (e) {
          throw dataError(e);
        }
        if (rowsDone === 0) throw userError(`${o.data}: no rows`);
        if (sink && rowsDone < sink.done.length) {
          throw userError(`${sink.partial} holds ${sink.done.length} rows and ${o.data} has ${rowsDone} now (the data changed): delete it to start over`);
        }
        sink?.commit();
        release(); // (OUT is whole: a signal from here on has nothing to keep)
      } finally {
        freeModel(gpu, lm);
      }
      const secs = (performance.now() - t0) / 1000;
      const each = o.samples > 1 ? `, ${o.samples} completions each` : '';
      const taken = sink?.done.length ? ` (${sink.done.length} taken from ${sink.partial}, ${written} generated now; the counts below are this run's)` : '';
      log(`${rowsDone} prompts${each}${taken}: ${newTokens} new tokens in ${secs.toFixed(1)} s (${(newTokens / Math.max(secs, 1e-9)).toFixed(1)} tokens/s); ` +
        `${finishes.stop} ended by a stop token, ${finishes.length} at the token limit` +
        `${atPositions ? ` (${atPositions} of them short of it, at the model's last position: ${positions.name})` : ''}` +
        `${cut ? `; ${cut} prompts cut to their last ${maxPrompt} tokens (prompt_truncated)` : ''}${o.out ? `; wrote ${o.out}` : ''}`);
      const limit = dec.maxLength !== undefined ? `at most ${dec.maxLength} tokens with the prompt (max_length)` : `at most ${dec.maxNewTokens} new tokens`;
      log(`decoding: ${dec.temperature === 0 ? 'greedy' : `temperature ${dec.temperature}, top-k ${dec.topK || 'off'}, top-p ${dec.topP}, seed ${o.seed}`}, ` +
        `${limit}, stop ids ${defaults.stopIds.length ? defaults.stopIds.join(' ') : 'none'}`);
    });
  } catch (e) {
    const kept = sink?.stopped(sink.done.length + written, isUserFacing(dataError(e)));
    if (kept) log(kept);
    throw e;
  } finally {
    release();
  }
}

export const generateCommand: CommandModule = {
  command: 'generate',
  describe: 'completions of a model for each row\'s prompt: one JSON line per row {prompt, completion, finish_reason, completion_tokens, line}, ' +
    'on stdout or --out (decoding as the checkpoint\'s generation_config.json says, else greedy; flags override)',
  builder: (y) => y.options({
    model: { type: 'string', demandOption: true, describe: 'Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json or tokenizer.model)' },
    data: { type: 'string', demandOption: true, describe: 'rows with a prompt, one file (the output\'s lines follow its rows): {prompt} (text as written, or messages), {messages}, {instruction} (AlpacaEval), or any preference or SFT row srk trains on (its prompt)' },
    out: RESUMABLE_OUT_FLAG,
    'max-new-tokens': { type: 'number', describe: 'most new tokens per completion', defaultDescription: 'generation_config.json\'s max_new_tokens, else 256' },
    temperature: { type: 'number', describe: '0: greedy; above 0: sample at this temperature', defaultDescription: 'generation_config.json\'s (do_sample, temperature), else 0' },
    'top-k': { type: 'number', describe: 'sample from the k most likely tokens (0: all)', defaultDescription: 'generation_config.json\'s top_k, else 50' },
    'top-p': { type: 'number', describe: 'sample from the most likely tokens up to this probability (1: all)', defaultDescription: 'generation_config.json\'s top_p, else 1' },
    samples: { type: 'number', default: 1, describe: 'completions per prompt (then lists: completions, finish_reasons, completion_tokens)' },
    seed: { type: 'number', default: 0, describe: 'random seed; a prompt\'s completions depend on it and on the prompt\'s row, not on --batch-size' },
    'batch-size': { type: 'number', default: 8, describe: 'prompts generated together (each with its --samples)' },
    'max-prompt-length': { type: 'number', describe: 'prompt tokens kept (the end of a longer prompt, a BOS kept first)', defaultDescription: 'the model\'s max_position_embeddings less --max-new-tokens' },
    augmented: { type: 'boolean', default: false, describe: 'generate for the augmented prompt p ⊕ x (the refinement prompt before each prompt, as the Sr losses build it; "augmented": true in each line)' },
    'refine-prompt': { type: 'string', default: PAPER_REFINE_PROMPT, defaultDescription: 'the paper\'s; an srk train checkpoint\'s run\'s', describe: 'with --augmented: the refinement prompt p' },
    ...ADAPTER_FLAG,
  }),
  handler: async (a) => {
    const args = a as Record<string, unknown>;
    const data = dataFilesFlag(args, 'data')!;
    if (typeof data !== 'string') throw userError(`srk generate reads one --data file (its output lines follow that file's rows), not ${data.length}: run it once per file`);
    checkPathFlag('model', args.model as string, 'model directory');
    checkPathFlag('data', data, 'data file');
    const out = args.out as string | undefined;
    checkOutFlag(out, [data]);
    const opt = (k: string) => args[k] as number | undefined;
    for (const k of ['samples', 'batch-size', 'max-new-tokens', 'max-prompt-length']) {
      const v = opt(k);
      if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw userError(`--${k} must be a positive whole number, got ${v}`);
    }
    if (!Number.isSafeInteger(opt('seed'))) throw userError(`--seed must be a whole number, got ${opt('seed')}`);
    if (args['refine-prompt'] !== PAPER_REFINE_PROMPT && args.augmented !== true) throw userError('--refine-prompt applies with --augmented (the prompts p ⊕ x); give both, or neither');
    // --augmented from an srk train checkpoint: p as its run had it (its trainer_state.json), where not given.
    let refinePrompt = args['refine-prompt'] as string;
    if (args.augmented === true) {
      const { values, note } = runSettings(args.model as string, { 'refine-prompt': refinePrompt }, typedFlags(process.argv.slice(2), new Set(Object.keys(args))));
      if (typeof values['refine-prompt'] === 'string') refinePrompt = values['refine-prompt'];
      if (note) process.stderr.write(`note: ${note}\n`);
    }
    await runGenerate({
      model: args.model as string, data, out,
      maxNewTokens: opt('max-new-tokens'), temperature: opt('temperature'), topK: opt('top-k'), topP: opt('top-p'), maxPromptLength: opt('max-prompt-length'),
      seed: opt('seed')!, samples: opt('samples')!, batchSize: opt('batch-size')!, adapter: args.adapter as string | undefined,
      augmented: args.augmented === true, refinePrompt,
    });
  },
};
