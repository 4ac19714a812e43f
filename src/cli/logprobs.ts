// `srk logprobs`: summed log-probs of the chosen and rejected completions of each preference pair
// under one model, one JSON line per input row (in input order):
//   {"chosen_logp", "rejected_logp", "chosen_tokens", "rejected_tokens"[, "chosen_logp_aug", "rejected_logp_aug"]}
// Conventions (those of training, src/data/tokenize-pairs.ts): the prompt is tokenized with the
// tokenizer's special tokens, each completion without, EOS appended unless --no-eos, and the sums
// run over the completion tokens only (EOS included). The augmented sequence is
// tokens(refine prompt) ++ tokens(prompt) ++ tokens(completion), a BOS the tokenizer adds kept first.
//
// The input is streamed: rows are read and tokenized in blocks (one block ahead of the scoring, on
// worker threads where a block is big enough), scored one micro-batch at a time, and each finished
// micro-batch is written out at once, so a large file is never held in memory. Results go
// to stdout, or to --out through OUT.partial, which a stopped run leaves for the same command to take
// up (src/generate/resumable-output.ts); progress and the data report go to stderr.
import { createHash } from 'node:crypto';
import type { Argv, CommandModule } from 'yargs';
import type { Gpu } from '../engine/gpu.js';
import { JsonlRowError, countDataRows, iterateJsonl, newJsonlStats, type JsonlRow } from '../data/read-jsonl.js';
import { PreferenceNormalizer, formatNormalizeStats, preferenceValidator } from '../data/preference-rows.js';
import { PairTokenizer, formatTokenizeStats, tokenizeRows, type TokenizedPair } from '../data/tokenize-pairs.js';
import type { RowOutcome } from '../data/tokenize-parallel.js';
import type { PreferenceRow } from '../data/preference-rows.js';
import { loadTokenizer } from '../model/tokenizer.js';
import { checkpointFileStamps, loadModel, type LoadedModel } from '../model/load.js';
import { describeModel, loadModelConfig } from '../model/config.js';
import { positionLimit } from '../model/rope.js';
import { textTokenizer } from '../model/tokenizer.js';
import { scorePairs } from '../train/score.js';
import { Progress } from '../train/progress.js';
import { tokenizerNotes } from '../train/dataset.js';
import { PAPER_REFINE_PROMPT, TRAIN_DEFAULTS } from '../train/options.js';
import { checkPathFlag, checkPromptBelowMaxLength, dataFilesFlag, withGpu, ADAPTER_FLAG } from './run.js';
import { withRunSettings } from './run-settings.js';
import { dataFileList, type DataFiles } from '../data/data-files.js';
import { dataError, isUserFacing, userError } from '../errors.js';
import { RESUMABLE_OUT_FLAG, ResumableOutput, checkOutFlag, keepOnSignal } from '../generate/resumable-output.js';

/** Flags shared by `srk logprobs` and `srk eval`: how pairs are tokenized and scored. */
export function scoringFlags<T>(y: Argv<T>) {
  const d = TRAIN_DEFAULTS;
  return y.options({
    model: { type: 'string', demandOption: true, describe: 'Hugging Face checkpoint directory (config.json, *.safetensors, tokenizer.json or tokenizer.model)' },
    data: { type: 'string', demandOption: true, describe: 'preference data, one file (the output\'s lines follow its rows; JSON Lines or a JSON array of rows, gzipped or not, or a Parquet file, e.g. a Hugging Face dataset\'s): {prompt, chosen, rejected}, HH-RLHF dialogues, UltraFeedback or chat rows' },
    'refine-prompt': { type: 'string', default: PAPER_REFINE_PROMPT, defaultDescription: 'the paper\'s', describe: 'the self-refinement prompt p of the augmented sequences p ++ x ++ y' },
    eos: { type: 'boolean', default: true, describe: 'append the EOS token to each completion (--no-eos: do not)' },
    'completions-in-context': { type: 'boolean', default: false, describe: 'tokenize each completion as it follows its prompt (TRL before 0.12 and since 0.29) instead of alone (the original DPO code, TRL 0.12-0.28, and this project\'s fixtures): with SentencePiece tokenizers (Llama, Mistral) a completion " Hello" then loses the lone "▁" it has alone; byte-level BPE (Pythia) gives the same ids either way' },
    'max-length': { type: 'number', default: d.maxLength, describe: 'longest prompt + completion, in tokens (longer pairs are truncated as in training)' },
    'max-prompt-length': { type: 'number', default: d.maxPromptLength, describe: 'prompt tokens kept when a pair is too long' },
    'micro-batch-size': { type: 'number', default: d.microBatchSize, describe: 'pairs per forward pass' },
    ...ADAPTER_FLAG,
  });
}

export interface ScoringSettings {
  model: string; data: DataFiles; refinePrompt: string; noEos: boolean; inContext: boolean;
  maxLength: number; maxPromptLength: number; microBatchSize: number; adapter?: string;
}

/** Checks and converts the shared flags. */
export function scoringSettingsFrom(a: Record<string, unknown>): ScoringSettings {
  const num = (k: string) => a[k] as number;
  for (const k of ['micro-batch-size', 'max-length', 'max-prompt-length']) {
    if (!(num(k) > 0) || !Number.isInteger(num(k))) throw userError(`--${k} must be a positive integer`);
  }
  checkPromptBelowMaxLength(a, TRAIN_DEFAULTS.maxPromptLength);
  checkPathFlag('model', a.model as string, 'model directory');
  const data = dataFilesFlag(a, 'data')!;
  for (const f of dataFileList(data)) checkPathFlag('data', f, 'data file');
  return {
    model: a.model as string, data, refinePrompt: a['refine-prompt'] as string, noEos: a.eos === false, inContext: Boolean(a['completions-in-context']),
    maxLength: num('max-length'), maxPromptLength: num('max-prompt-length'), microBatchSize: num('micro-batch-size'),
    adapter: a.adapter as string | undefined,
  };
}

/** Frees a loaded model's GPU memory. */
export function freeModel(gpu: Gpu, m: LoadedModel): void {
  m.model.destroy();
  m.params.free();
  gpu.pool.trim();
}

/** One data file: the output's lines follow its rows. */
export interface LogprobsOptions extends Omit<ScoringSettings, 'data'> { data: string; augmented: boolean; out?: string }

/** Rows read and tokenized at a time (a few MB of token ids), one block ahead of the scoring. */
const BLOCK_ROWS = 8192;
/** Rows read in a row; `error`: the bad row that ended the block (the rows before it are scored first). */
interface RowBlock { rows: PreferenceRow[]; lines: number[]; error?: unknown }

/** A short key of a row's content (what scores it): OUT.partial.rows, to check a taken-up run's rows. */
function rowKey(r: PreferenceRow): string {
  return createHash('sha256').update(JSON.stringify([r.prompt, r.chosen, r.rejected, r.augPrompt ?? null, r.templated ?? false])).digest('hex').slice(0, 16);
}

export async function runLogprobs(o: LogprobsOptions): Promise<void> {
  const progress = new Progress();
  const log = (s: string) => progress.log(s);
  const tok = await loadTokenizer(o.model);
  const tt = textTokenizer(tok);
  for (const note of tokenizerNotes(tok, o.noEos)) log(note);
  const normalizer = new PreferenceNormalizer({ chatTemplate: tt.chatTemplate, bosToken: tt.bosToken, eosToken: tt.eosToken,
    refinePrompt: o.augmented ? o.refinePrompt : null });
  const modelCfg = await loadModelConfig(o.model);
  const tokOpts = {
    maxLength: o.maxLength, maxPromptLength: o.maxPromptLength, noEos: o.noEos, inContext: o.inContext,
    refinePrompt: o.augmented ? o.refinePrompt : null,
    positions: { ...positionLimit(modelCfg), augmented: o.augmented }, vocabSize: modelCfg.vocabSize,
  };
  let tokenizer: PairTokenizer;
  try {
    tokenizer = new PairTokenizer(tt, tokOpts);
  } catch (e) {
    throw userError(`${o.model}: ${(e as Error).message}`);
  }
  const total = await countDataRows(o.data).catch((e) => { throw dataError(e); });
  if (total === 0) throw userError(`${o.data}: no pairs (an empty file)`); // before a model loads for nothing
  // --out: lines kept in OUT.partial as they are made; a run stopped before the end is taken up by the
  // same command (resumable-output.ts). A key of each row's content goes with its line, so the rows
  // already scored are checked as the data is read again (a bad row after them may be fixed).
  const sink = o.out ? ResumableOutput.open(o.out, {
    files: checkpointFileStamps(o.model), augmented: o.augmented, refine_prompt: o.augmented ? o.refinePrompt : null,
    no_eos: o.noEos, in_context: o.inContext, max_length: o.maxLength, max_prompt_length: o.maxPromptLength,
  }, 'srk logprobs') : undefined;
  const skip = sink?.done.length ?? 0;
  if (sink && skip) log(`taking up ${sink.partial}: ${skip} of ${total} rows done by an earlier run`);
  let done = 0; // pairs this run scored
  const release = keepOnSignal(sink, () => skip + done, log);
  try {
    await withGpu({ adapter: o.adapter }, async (gpu) => {
      const t0 = performance.now();
      const lm = await loadModel(gpu, o.model);
      log(`model ${o.model}: ${describeModel(lm.cfg)}`); // what was read, as srk train says it
      try {
        const flush = async (chunk: TokenizedPair[], keys: string[]) => {
          if (chunk.length === 0) return;
          const opts = { microBatch: chunk.length, pairName: (k: number) => (read.unit === 'row' ? `${o.data}: row ${lines[k]}` : `${o.data}:${lines[k]}`) };
          const plain = await scorePairs(gpu, lm.model, chunk, opts);
          const aug = o.augmented ? await scorePairs(gpu, lm.model, chunk, { ...opts, augmented: true }) : undefined;
          let text = '';
          for (let i = 0; i < chunk.length; i++) {
            const rec: Record<string, number> = {
              chosen_logp: plain.chosen[i], rejected_logp: plain.rejected[i],
              chosen_tokens: plain.chosenTokens[i], rejected_tokens: plain.rejectedTokens[i],
            };
            if (aug) { rec.chosen_logp_aug = aug.chosen[i]; rec.rejected_logp_aug = aug.rejected[i]; }
            text += `${JSON.stringify(rec)}\n`;
          }
          if (sink) sink.write(text, keys);
          else if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', () => resolve()));
          done += chunk.length;
          progress.update('logprobs', skip + done, total);
        };
        let chunk: TokenizedPair[] = [];
        let lines: number[] = []; // the chunk's lines (rows) in the data file
        let keys: string[] = []; // the chunk's row keys (rowKey)
        const read = newJsonlStats(); // read.unit: lines of JSONL or rows of Parquet
        // Rows are read in blocks; a block is tokenized (on worker threads where it is big enough:
        // tokenize-parallel.ts) while the one before it is scored, so a GPU does not wait on the BPE.
        const rowsIn = iterateJsonl(o.data, preferenceValidator(normalizer), {}, read)[Symbol.asyncIterator]();
        let skipped = 0; // rows an earlier run scored (OUT.partial's lines)
        let readFailed = false; // a bad row ended the last block read: nothing after it is read
        const readBlock = async (): Promise<RowBlock | undefined> => {
          if (readFailed) return undefined;
          const block: RowBlock = { rows: [], lines: [] };
          while (block.rows.length < BLOCK_ROWS) {
            let r: IteratorResult<JsonlRow<PreferenceRow>>;
            try {
              r = await rowsIn.next();
            } catch (e) {
              // A row that does not read: the rows before it are still scored and kept (--out), then it stops the run.
              block.error = e; readFailed = true;
              break;
            }
            if (r.done) break;
            if (skipped < skip) {
              const want = sink!.doneKeys[skipped];
              if (want !== undefined && rowKey(r.value.value) !== want) {
                throw userError(`${o.data}:${r.value.line} is not the row ${sink!.partial} scored as its row ${skipped + 1} (the data changed before ` +
                  'the rows left): delete it to start over');
              }
              skipped++;
              continue;
            }
            block.rows.push(r.value.value); block.lines.push(r.value.line);
          }
          return block.rows.length || block.error !== undefined ? block : undefined;
        };
        const tokenizeBlock = (block: RowBlock): Promise<RowOutcome[]> => {
          const done = tokenizeRows(block.rows, tt, tokenizer, tokOpts);
          done.catch(() => { /* awaited in order below; a block after a failed one is never awaited */ });
          return done;
        };
        try {
          let block = await readBlock();
          let outcomes = block && tokenizeBlock(block);
          while (block) {
            const next = await readBlock();
            const nextOutcomes = next && tokenizeBlock(next);
            const out = await outcomes!;
            for (let i = 0; i < out.length; i++) {
              const oc = out[i];
              if ('error' in oc) {
                await flush(chunk, keys); // the rows before it kept
                throw new JsonlRowError(o.data, block.lines[i], oc.error, read.unit);
              }
              chunk.push(oc);
              lines.push(block.lines[i]);
              keys.push(rowKey(block.rows[i]));
              if (chunk.length >= o.microBatchSize) { await flush(chunk, keys); chunk = []; lines = []; keys = []; }
            }
            if (block.error !== undefined) { await flush(chunk, keys); throw block.error; }
            block = next; outcomes = nextOutcomes;
          }
          await flush(chunk, keys);
        } catch (e) {
          throw dataError(e);
        }
        if (skip + done === 0) throw userError(`${o.data}: no pairs`);
        if (skipped < skip) throw userError(`${sink!.partial} holds ${skip} rows and ${o.data} has ${skipped} now (the data changed): delete it to start over`);
        sink?.commit();
        release(); // (OUT is whole: a signal from here on has nothing to keep)
      } finally {
        freeModel(gpu, lm);
      }
      log(`${o.data}: ${formatNormalizeStats(normalizer.stats)}\n${formatTokenizeStats(tokenizer.stats, tokOpts)}`);
      log(`${done} pairs scored${o.augmented ? ' (plain and augmented)' : ''} in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
        `${skip ? ` (and ${skip} taken from ${sink!.partial})` : ''}${o.out ? `; wrote ${o.out}` : ''}`);
    });
  } catch (e) {
    const kept = sink?.stopped(skip + done, isUserFacing(dataError(e)));
    if (kept) log(kept);
    throw e;
  } finally {
    release();
  }
}

export const logprobsCommand: CommandModule = {
  command: 'logprobs',
  describe: 'sequence log-probs of each pair\'s chosen and rejected completions under a model: one JSON line per input row ' +
    '{chosen_logp, rejected_logp, chosen_tokens, rejected_tokens} (+ *_logp_aug with --augmented), on stdout or --out; an srk train ' +
    'checkpoint is scored with its run\'s lengths, refinement prompt, EOS and --completions-in-context where those flags are not given',
  builder: (y) => scoringFlags(y).options({
    augmented: { type: 'boolean', default: false, describe: 'also score the augmented sequences refine prompt ++ prompt ++ completion (chosen_logp_aug, rejected_logp_aug)' },
    out: RESUMABLE_OUT_FLAG,
  }),
  handler: async (a) => {
    // A checkpoint of srk train is scored with its run's settings where no flag says otherwise (run-settings.ts).
    const { args, note: runNote } = withRunSettings(a as Record<string, unknown>);
    const out = args.out as string | undefined;
    checkOutFlag(out);
    const s = scoringSettingsFrom(args);
    if (runNote) process.stderr.write(`note: ${runNote}\n`);
    if (typeof s.data !== 'string') {
      throw userError(`srk logprobs reads one --data file (its output lines follow that file's rows), not ${s.data.length}: run it once per file`);
    }
    checkOutFlag(out, [s.data]);
    await runLogprobs({ ...s, data: s.data, augmented: Boolean(args.augmented), out: args.out as string | undefined });
  },
};
