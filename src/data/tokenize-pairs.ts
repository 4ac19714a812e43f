// Tokenization and truncation of preference pairs (and SFT rows).
//
// Conventions:
// - A text prompt is tokenized with the tokenizer's special tokens (addSpecialTokens: true, i.e. a BOS
//   where its post-processor adds one); an EOS it appends after the text (add_eos_token) is taken off,
//   as the answer follows the prompt (counted in `promptEosRemoved`; a prompt of one id keeps it, there
//   being nothing else). If the text itself starts with the BOS text, so that the ids start with BOS
//   twice, one is dropped (counted in `doubleBosRemoved`). A chat template's rendering (`templated`) is
//   tokenized without special tokens, as transformers' apply_chat_template does: the template writes
//   the BOS it wants (ChatML's writes none).
// - Each completion is tokenized alone, without special tokens (the original DPO code, TRL 0.12 to
//   0.28, and ../shared/fixtures/hf: "prompt and completion tokenized separately"). With `inContext`
//   its ids are instead what it becomes after its prompt, as TRL before 0.12 and since 0.29 (and so the
//   alignment-handbook recipes) take them: prompt + completion is tokenized and the prompt's ids are
//   taken off its front. Tokenized alone, a SentencePiece completion " Hello" starts with a lone "▁"
//   (its dummy prefix, then the space) that no text puts after "Assistant:". Byte-level BPE (Pythia)
//   splits words at spaces, so for it the two ways agree wherever prompt and completion meet at a
//   word boundary. Only the prompt's tail (its
//   last ~200 characters, from a whitespace) is tokenized with the completion: segmentation does not
//   reach further back, and the whole prompt again for each completion would double the time a large
//   data set takes to tokenize. Where the tail's ids are not a prefix of tail + completion's (the two
//   meet inside a word, or a prompt ending in a space joins the completion's first word), the
//   completion is tokenized alone instead, counted in `completionsAlone`.
// - An EOS id is appended to each completion unless `noEos`, and unless the completion's ids
//   already end with EOS, or (a chat template's rendering, PreferenceRow.templated) end with the EOS
//   text and whitespace: Zephyr's and ChatML's turns end with the end-of-turn token and a newline, and an
//   EOS after that newline would be scored as text the model never sees (counted in `eosAlreadyPresent`);
//   an EOS written inside a templated response does not end its turn.
//   An EOS inside a text completion is left where it is and counted (`eosInsideText`; the original
//   DPO code refuses such rows).
// - A completion with no tokens (an empty response with noEos) is an error of its row: its
//   log-prob would be 0 under every model, a pair that says nothing. Errors of a row name the
//   data file and line (loadTokenizedPairs), and skipBadRows skips and counts them as it does
//   malformed lines.
// - Truncation follows the original DPO code (tokenize_batch_element), with maxLength (default 512)
//   and maxPromptLength (default 256):
//     1. if len(prompt) + max(len(chosen), len(rejected)) > maxLength, the prompt is cut to
//        maxPromptLength tokens, keeping its END (the DPO code's rule for HH; 'keep_start' keeps the
//        beginning, its rule for other data sets). A leading BOS that the tokenizer added stays in
//        front with keep_end (BOS + the last maxPromptLength - 1 tokens), since the original code
//        tokenized without special tokens and never had one to lose.
//     2. if it is still too long, both completions are cut to their first maxLength - maxPromptLength
//        tokens (the appended EOS may be lost, as in the original).
//   Lengths include the EOS. A row is `truncated` when step 1 or 2 removed any token.
// - Augmented prompt (Sr-DPO / Sr-IPO, prompt p ⊕ x). Chat rows: their prompt rendered again with p at the
//   head of the first user message ("p query", PreferenceRow.augPrompt), tokenized as a prompt, so p sits in
//   the user's turn as the query does; the completions are the plain row's. A chat row whose prompt was
//   truncated, and every text / HH row: augPromptIds = tokens(refine prompt, no special
//   tokens) ++ promptIds, where promptIds are exactly the plain sequence's prompt ids (truncation
//   included), so the augmented sequence is refine ++ prompt ++ completion with the same completion ids
//   as the plain one. A BOS at the head of the prompt stays at the head of the sequence: [BOS] ++ refine
//   ++ the prompt's other ids, where tokenizing the text p ⊕ x would put it (Llama / Mistral models expect
//   BOS at position 0, and see none in the middle of a text). Otherwise each part keeps its own ids, as the
//   fixtures' convention has it (refine_prompt_ids ++ prompt_ids): a SentencePiece prompt keeps the "▁" it
//   starts with alone, as a completion tokenized alone does. The refine prompt does not count toward the
//   limits: the plain sequence is truncated as above and then the refine ids are inserted, so an
//   augmented sequence can be up to maxLength + len(refine ids) tokens (a chat row's a token or two more,
//   where p and the query join). A row longer than the model's positions (LoadPairsOptions.positions:
//   the augmented sequence counted where it is scored) is a bad row, named by its line.

import { recordBadRow, type JsonlOptions, type JsonlStats } from './read-jsonl.js';
import {
  formatNormalizeStats, loadPreferenceRows, rowError, type ChatTemplateSource, type NormalizeOptions, type NormalizeStats, type PreferenceRow,
} from './preference-rows.js';
import { dataLabel, type DataFiles } from './data-files.js';
import { userError } from '../errors.js';
import type { TokenizerSpec } from '../model/tokenizer.js';
import { tokenizeOnThreads, tokenizeThreads, type RowOutcome } from './tokenize-parallel.js';

/** What this module needs from a tokenizer; src/model/tokenizer.ts fits it structurally. */
export interface TextTokenizer extends ChatTemplateSource {
  encode(text: string, opts: { addSpecialTokens: boolean }): number[];
  eosTokenId: number | null;
  bosTokenId?: number | null;
  /** The EOS id's text whatever named the id (eosToken, for templates, only where the tokenizer files do). */
  eosPiece?: string | null;
  /** What builds the same tokenizer in a worker thread (tokenize-parallel.ts); without it, one thread. */
  spec?: TokenizerSpec;
}

export type PromptTruncation = 'keep_end' | 'keep_start';

export interface TokenizeOptions {
  /** Longest prompt + completion (default 512). */
  maxLength?: number;
  /** Prompt length kept when a pair is too long (default 256). */
  maxPromptLength?: number;
  /** Which end of a too-long prompt to keep (default 'keep_end', as the DPO code for HH). */
  promptTruncation?: PromptTruncation;
  /** Do not append EOS to completions. */
  noEos?: boolean;
  /** Tokenize each completion as it follows its prompt (the header comment); default alone. */
  inContext?: boolean;
  /** The Sr-DPO refinement prompt p; when set, each pair gets augPromptIds. */
  refinePrompt?: string | null;
  /**
   * SFT rows: prompt + chosen only, truncated on those alone (the DPO code's SFT passes the target as
   * both completions; TRL's SFTTrainer truncates the one sequence), so the rejected response neither
   * shortens the chosen one nor makes a row bad; rejectedIds and augPromptIds are left empty.
   */
  sft?: boolean;
  /**
   * The model's max_position_embeddings: a row whose longest sequence (prompt + the longer completion;
   * with `augmented`, the augmented prompt's too) is longer is an error of its row (named by its line
   * where the caller reads a file), not a failure when the GPU batch is built, maybe hours into a run.
   */
  positions?: { max: number; augmented: boolean; name?: string };
  /**
   * The model's vocab_size: a row with a token id at or past it (a tokenizer with more tokens than the
   * model has embedding rows) is an error of its row, named by its line, not of a GPU batch.
   */
  vocabSize?: number;
}

export interface TokenizedPair {
  promptIds: number[];
  chosenIds: number[];
  /** Empty for SFT rows (TokenizeOptions.sft). */
  rejectedIds: number[];
  /** refine ids ++ promptIds, a leading BOS kept in front (only with a refine prompt). */
  augPromptIds?: number[];
  scoreChosen?: number;
  scoreRejected?: number;
  truncated: boolean;
  /** Where the row came from (loadTokenizedPairs): its file and line (a Parquet file's or JSON array's row number). Not hashed. */
  source?: { file: string; line: number };
}

export interface TokenizedSft {
  promptIds: number[];
  completionIds: number[];
  truncated: boolean;
}

export interface TokenizeStats {
  rows: number;
  /** Rows that lost any token. */
  truncated: number;
  /** Rows whose prompt was shortened (step 1). */
  promptTruncated: number;
  /** Rows whose completions were shortened (step 2). */
  completionTruncated: number;
  /** Completions tokenized alone: their prompt's tail is not a prefix of tail + completion (see the header). */
  completionsAlone: number;
  /** Completions that already ended with EOS, or templated ones ending with it and whitespace (none appended). */
  eosAlreadyPresent: number;
  /** Text completions with an EOS id before their end (the EOS text inside the response). */
  eosInsideText: number;
  /** Prompts whose doubled leading BOS was reduced to one. */
  doubleBosRemoved: number;
  /** Text prompts whose tokenizer appends an EOS (add_eos_token): taken off, as no trainer feeds it before the answer. */
  promptEosRemoved: number;
  /** Length of the refine prompt ids (0 without one). */
  refineLength: number;
  /** Chat rows whose augmented prompt is their own rendering with p in the first user message. */
  refineInUserTurn: number;
  /** Chat rows with a truncated prompt: p before the (cut) prompt instead, as for text rows. */
  refineBeforeCutChat: number;
}

export interface TruncateResult {
  prompt: number[];
  completions: number[][];
  promptTruncated: boolean;
  completionTruncated: boolean;
  truncated: boolean;
}

export interface TruncateOptions {
  maxLength: number;
  maxPromptLength: number;
  promptTruncation?: PromptTruncation;
  /** Leading prompt tokens that keep_end must not drop (1 for a tokenizer-added BOS). */
  pinnedPrefix?: number;
}

function checkLimits(maxLength: number, maxPromptLength: number): void {
  if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
  if (!Number.isInteger(maxPromptLength) || maxPromptLength < 1 || maxPromptLength >= maxLength) {
    throw new RangeError(`maxPromptLength must be an integer in [1, maxLength), got ${maxPromptLength} (maxLength ${maxLength})`);
  }
}

/** The original DPO truncation rule on token lists (see the header comment). Inputs are not modified. */
export function truncatePromptCompletions(prompt: number[], completions: number[][], o: TruncateOptions): TruncateResult {
  const { maxLength, maxPromptLength } = o;
  checkLimits(maxLength, maxPromptLength);
  const longest = (cs: number[][]): number => cs.reduce((m, c) => Math.max(m, c.length), 0);
  let p = prompt;
  let cs = completions;
  let promptTruncated = false;
  let completionTruncated = false;
  if (p.length + longest(cs) > maxLength) {
    if (p.length > maxPromptLength) {
      if ((o.promptTruncation ?? 'keep_end') === 'keep_start') {
        p = p.slice(0, maxPromptLength);
      } else {
        const pin = Math.min(o.pinnedPrefix ?? 0, maxPromptLength);
        p = [...p.slice(0, pin), ...p.slice(p.length - (maxPromptLength - pin))];
      }
      promptTruncated = true;
    }
    if (p.length + longest(cs) > maxLength) {
      const keep = maxLength - maxPromptLength;
      cs = cs.map((c) => (c.length > keep ? c.slice(0, keep) : c));
      completionTruncated = cs.some((c, i) => c.length !== completions[i].length);
    }
  }
  return { prompt: p, completions: cs, promptTruncated, completionTruncated, truncated: promptTruncated || completionTruncated };
}

export function newTokenizeStats(): TokenizeStats {
  return { rows: 0, truncated: 0, promptTruncated: 0, completionTruncated: 0, completionsAlone: 0, eosAlreadyPresent: 0, eosInsideText: 0, doubleBosRemoved: 0, promptEosRemoved: 0, refineLength: 0,
    refineInUserTurn: 0, refineBeforeCutChat: 0 };
}

/** Adds the counts of `b` (another thread's, tokenize-parallel.ts) to `a`; refineLength is the same in both. */
export function addTokenizeStats(a: TokenizeStats, b: TokenizeStats): void {
  for (const k of Object.keys(a) as (keyof TokenizeStats)[]) if (k !== 'refineLength') a[k] += b[k];
}

/** Characters of a prompt's end tokenized again with each completion (see the header comment). */
const PROMPT_TAIL_CHARS = 200;

/** Tokenizes rows one at a time with shared options and counts. */
export class PairTokenizer {
  readonly stats: TokenizeStats = newTokenizeStats();
  readonly refineIds: number[] | null;
  private readonly maxLength: number;
  private readonly maxPromptLength: number;
  private lastTail: { tail: string; ids: number[] } | undefined;

  constructor(private readonly tok: TextTokenizer, private readonly opts: TokenizeOptions = {}) {
    this.maxLength = opts.maxLength ?? 512;
    this.maxPromptLength = opts.maxPromptLength ?? 256;
    checkLimits(this.maxLength, this.maxPromptLength);
    if (!opts.noEos && (tok.eosTokenId === null || tok.eosTokenId === undefined)) {
      throw userError('the tokenizer has no EOS token: pass --no-eos to score completions without one');
    }
    this.refineIds = typeof opts.refinePrompt === 'string' && !opts.sft ? tok.encode(opts.refinePrompt, { addSpecialTokens: false }) : null;
    if (this.refineIds && this.refineIds.length === 0) {
      throw userError(`the refine prompt (--refine-prompt) ${JSON.stringify(opts.refinePrompt)} has no tokens: the augmented ` +
        'sequences p ++ x ++ y need a prompt p (the default is the paper\'s text)');
    }
    this.stats.refineLength = this.refineIds?.length ?? 0;
  }

  /**
   * Prompt ids; returns also how many leading ids are a BOS (kept first through truncation). A text prompt
   * takes the tokenizer's special tokens (a BOS where its post-processor adds one; an EOS it appends, as
   * add_eos_token does, is taken off: the answer follows the prompt). A chat template's rendering
   * (`templated`) takes none: the template writes the BOS it wants, as transformers' apply_chat_template
   * tokenizes it (a ChatML template writes none). `count`: whether what is taken off counts in the stats
   * (not for a row's second, augmented prompt).
   */
  encodePrompt(text: string, count = true, templated = false): { ids: number[]; pinned: number } {
    let ids = this.tok.encode(text, { addSpecialTokens: !templated });
    const eos = this.tok.eosTokenId;
    if (!templated && eos !== null && eos !== undefined && ids.length > 1 && ids[ids.length - 1] === eos) {
      // Appended by the tokenizer where the text's own ids end just before it.
      const plain = this.tok.encode(text, { addSpecialTokens: false });
      const before = ids.slice(ids.length - 1 - plain.length, ids.length - 1);
      if (ids.length > plain.length && before.length === plain.length && before.every((id, i) => id === plain[i])) {
        ids = ids.slice(0, -1);
        if (count) this.stats.promptEosRemoved++;
      }
    }
    const bos = this.tok.bosTokenId;
    let pinned = 0;
    if (bos !== null && bos !== undefined && ids[0] === bos) {
      if (ids[1] === bos) {
        ids = ids.slice(1);
        if (count) this.stats.doubleBosRemoved++;
      }
      pinned = 1;
    }
    if (ids.length === 0) throw new Error('a prompt has no tokens (the first completion token needs a token before it)');
    return { ids, pinned };
  }

  /** Completion ids as they follow `prompt` (see the header comment), EOS appended per the options.
   *  `templated`: a chat template's rendering of the assistant turn. `side` names it in an error. */
  encodeCompletion(prompt: string, text: string, templated = false, side = 'the completion'): number[] {
    let ids = this.opts.inContext ? this.completionAfter(prompt, text) : this.tok.encode(text, { addSpecialTokens: false });
    const eos = this.tok.eosTokenId;
    const at = eos === null || eos === undefined ? -1 : ids.indexOf(eos);
    if (!templated && at >= 0 && at < ids.length - 1) this.stats.eosInsideText++;
    if (!this.opts.noEos) {
      // A template's turn holds its EOS where the turn ends with it, or with it and whitespace (Zephyr's "</s>\n",
      // ChatML's "<|im_end|>\n" where <|im_end|> is the EOS); an EOS written inside the response does not count
      // (a tokenizer that names no EOS text: any EOS in the turn).
      const eosText = this.tok.eosPiece ?? this.tok.eosToken;
      const ended = ids[ids.length - 1] === eos ||
        (templated && at >= 0 && (typeof eosText === 'string' && eosText !== '' ? text.trimEnd().endsWith(eosText) : true));
      if (ended) this.stats.eosAlreadyPresent++;
      else ids = [...ids, eos as number];
    }
    if (ids.length === 0) throw new Error(`${side} has no tokens (an empty response${this.opts.noEos ? ' and no EOS' : ''}: its log-prob would be 0 under every model)`);
    return ids;
  }

  /** The ids `text` has after `prompt`: tail + text tokenized, less the tail's own ids; alone where those are not its prefix. */
  private completionAfter(prompt: string, text: string): number[] {
    const alone = () => this.tok.encode(text, { addSpecialTokens: false });
    if (text === '' || prompt === '') return alone();
    let cut = Math.max(0, prompt.length - PROMPT_TAIL_CHARS);
    if (cut > 0) {
      const ws = prompt.slice(cut).search(/\s/);
      cut = ws < 0 ? 0 : cut + ws;
    }
    const tail = prompt.slice(cut);
    // Chosen and rejected follow the same prompt: its tail is tokenized once per pair.
    if (this.lastTail?.tail !== tail) this.lastTail = { tail, ids: this.tok.encode(tail, { addSpecialTokens: false }) };
    const tailIds = this.lastTail.ids;
    const joint = this.tok.encode(tail + text, { addSpecialTokens: false });
    if (joint.length >= tailIds.length && tailIds.every((id, i) => joint[i] === id)) return joint.slice(tailIds.length);
    this.stats.completionsAlone++;
    return alone();
  }

  private truncate(prompt: { ids: number[]; pinned: number }, completions: number[][]): TruncateResult {
    const r = truncatePromptCompletions(prompt.ids, completions, {
      maxLength: this.maxLength, maxPromptLength: this.maxPromptLength,
      promptTruncation: this.opts.promptTruncation, pinnedPrefix: prompt.pinned,
    });
    this.stats.rows++;
    if (r.truncated) this.stats.truncated++;
    if (r.promptTruncated) this.stats.promptTruncated++;
    if (r.completionTruncated) this.stats.completionTruncated++;
    return r;
  }

  /** The row's pair; an Error where it has no tokens to score or does not fit TokenizeOptions.positions. */
  pair(row: PreferenceRow): TokenizedPair {
    const p = this.pairOf(row);
    const tooLong = this.opts.positions ? positionsError(p, this.opts.positions) : undefined;
    if (tooLong) throw new Error(tooLong);
    if (this.opts.vocabSize !== undefined) {
      for (const ids of [p.promptIds, p.chosenIds, p.rejectedIds, p.augPromptIds ?? []]) {
        for (const id of ids) {
          if (id >= this.opts.vocabSize) {
            throw new Error(`token id ${id} is past the model's vocab_size ${this.opts.vocabSize}: the tokenizer has tokens the model has no embedding for`);
          }
        }
      }
    }
    return p;
  }

  private pairOf(row: PreferenceRow): TokenizedPair {
    if (this.opts.sft) {
      const s = this.sft(row);
      const out: TokenizedPair = { promptIds: s.promptIds, chosenIds: s.completionIds, rejectedIds: [], truncated: s.truncated };
      if (row.scoreChosen !== undefined) out.scoreChosen = row.scoreChosen;
      if (row.scoreRejected !== undefined) out.scoreRejected = row.scoreRejected;
      return out;
    }
    const t = row.templated === true;
    const prompt = this.encodePrompt(row.prompt, true, t);
    const r = this.truncate(prompt, [this.encodeCompletion(row.prompt, row.chosen, t, 'chosen'), this.encodeCompletion(row.prompt, row.rejected, t, 'rejected')]);
    const out: TokenizedPair = { promptIds: r.prompt, chosenIds: r.completions[0], rejectedIds: r.completions[1], truncated: r.truncated };
    if (this.refineIds && row.augPrompt !== undefined && !r.promptTruncated) {
      // A chat row: its own rendering with p inside the first user turn (preference-rows.ts).
      out.augPromptIds = this.encodePrompt(row.augPrompt, false, t).ids;
      this.stats.refineInUserTurn++;
    } else if (this.refineIds) {
      // encodePrompt pins a tokenizer-added BOS at the head, and truncation keeps it there. A chat row
      // whose prompt was cut (its first user turn, p's place, may be gone) comes here too, counted.
      out.augPromptIds = prompt.pinned ? [r.prompt[0], ...this.refineIds, ...r.prompt.slice(1)] : [...this.refineIds, ...r.prompt];
      if (row.augPrompt !== undefined) this.stats.refineBeforeCutChat++;
    }
    if (row.scoreChosen !== undefined) out.scoreChosen = row.scoreChosen;
    if (row.scoreRejected !== undefined) out.scoreRejected = row.scoreRejected;
    return out;
  }

  sft(row: { prompt: string; chosen: string; templated?: true }): TokenizedSft {
    const prompt = this.encodePrompt(row.prompt, true, row.templated === true);
    const r = this.truncate(prompt, [this.encodeCompletion(row.prompt, row.chosen, row.templated === true, 'chosen')]);
    return { promptIds: r.prompt, completionIds: r.completions[0], truncated: r.truncated };
  }
}

/** Tokenizes preference rows (prompt + chosen + rejected). */
export function tokenizePairs(rows: readonly PreferenceRow[], tok: TextTokenizer, opts: TokenizeOptions = {}): { pairs: TokenizedPair[]; stats: TokenizeStats } {
  const t = new PairTokenizer(tok, opts);
  const pairs = rows.map((r) => t.pair(r));
  return { pairs, stats: t.stats };
}

/** SFT variant: prompt + chosen only (refinePrompt is ignored). */
export function tokenizeSft(rows: readonly { prompt: string; chosen: string }[], tok: TextTokenizer, opts: TokenizeOptions = {}): { rows: TokenizedSft[]; stats: TokenizeStats } {
  const t = new PairTokenizer(tok, { ...opts, refinePrompt: null });
  const out = rows.map((r) => t.sft(r));
  return { rows: out, stats: t.stats };
}

export function formatTokenizeStats(s: TokenizeStats, o: TokenizeOptions = {}): string {
  const parts = [
    `${s.rows} rows tokenized (maxLength ${o.maxLength ?? 512}, maxPromptLength ${o.maxPromptLength ?? 256})`,
    `${s.truncated} truncated (${s.promptTruncated} prompts, ${s.completionTruncated} completions)`,
  ];
  if (s.refineLength) {
    parts.push(`refine prompt ${s.refineLength} tokens` + (s.refineInUserTurn || s.refineBeforeCutChat
      ? ` (inside the first user message of ${s.refineInUserTurn} chat rows${s.refineBeforeCutChat ? `; before the cut prompt of ${s.refineBeforeCutChat} truncated ones` : ''})` : ''));
  }
  if (s.completionsAlone) parts.push(`${s.completionsAlone} completions tokenized alone (they join their prompt inside a word)`);
  if (s.eosAlreadyPresent) parts.push(`${s.eosAlreadyPresent} completions already held their EOS`);
  if (s.eosInsideText) parts.push(`${s.eosInsideText} completions with the EOS token inside their text (kept as EOS there)`);
  if (s.doubleBosRemoved) parts.push(`${s.doubleBosRemoved} doubled BOS removed`);
  if (s.promptEosRemoved) parts.push(`${s.promptEosRemoved} prompts without the EOS their tokenizer appends (add_eos_token)`);
  return parts.join('; ');
}

export type LoadPairsOptions = JsonlOptions & Omit<NormalizeOptions, keyof ChatTemplateSource> & TokenizeOptions & {
  /** Rows tokenized so far, of all read (HH-RLHF's 160k training rows take minutes to tokenize). */
  onProgress?: (done: number, total: number) => void;
  /**
   * A file that may be SFT data (an SFT run's --eval-data, `srk eval`): a file of rows without a rejected
   * response (NormalizeOptions.sft) is tokenized as SFT (prompt + chosen alone, TokenizeOptions.sft) and
   * scored for its NLL alone; a file with any pair is read as pairs (a row without one is a bad row).
   */
  sftIfAny?: boolean;
  /**
   * Only the first this many usable pairs are wanted (--max-eval-pairs, srk eval --max-pairs): rows are
   * read and tokenized from the start until that many are usable, not all of a large file; the rows after
   * them are not read, nor checked (LoadedPairs.rowsLeft: reading stopped there).
   */
  limit?: number;
};

/** A pair tokenized as an SFT row (TokenizeOptions.sft): it has no rejected response (every pair's has a token). */
export function isSftPair(p: TokenizedPair): boolean {
  return p.rejectedIds.length === 0;
}

/**
 * A pair whose two completions are the same tokens (y+ == y-, a few rows in HH-RLHF and UltraFeedback):
 * its margin is 0 and its gradient nothing, exactly. Computed as two sequences they would differ by rounding
 * (another place in the packed row), and a margin of 1e-5 counted as a correct pair, where TRL, computing the
 * two alike, counts a tie (wrong). The scoring and the step give such a pair one sum for both.
 */
export function sameCompletions(p: TokenizedPair): boolean {
  const a = p.chosenIds; const b = p.rejectedIds;
  if (a.length !== b.length || a.length === 0) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Each row's pair, or its error's message, in row order: on worker threads where the rows are enough
 * (tokenize-parallel.ts tokenizeThreads; their counts are added to t.stats), else with `t` on this
 * thread. `onDone` gets the rows done so far. The pairs, counts and errors are the same either way.
 */
export async function tokenizeRows(rows: readonly PreferenceRow[], tok: TextTokenizer, t: PairTokenizer, opts: TokenizeOptions,
  onDone?: (done: number) => void): Promise<RowOutcome[]> {
  const threads = tok.spec ? tokenizeThreads(rows.length) : 1;
  if (threads > 1) {
    // The options as data: a worker receives a structured clone, which refuses functions.
    const plain = Object.fromEntries(Object.entries(opts).filter(([, v]) => typeof v !== 'function')) as TokenizeOptions;
    const r = await tokenizeOnThreads(rows, tok.spec!, plain, threads, onDone);
    for (const s of r.stats) addTokenizeStats(t.stats, s);
    return r.outcomes;
  }
  return rows.map((row, i) => {
    if (i % 1024 === 0 || i === rows.length - 1) onDone?.(i + 1);
    try { return t.pair(row); } catch (e) { return { error: e instanceof Error ? e.message : String(e) }; }
  });
}

/** Why a tokenized pair does not fit `positions`, or undefined when it fits; `model`: whose positions they are. */
export function positionsError(p: TokenizedPair, positions: { max: number; augmented: boolean; name?: string }, model = 'the model\'s'): string | undefined {
  const completion = Math.max(p.chosenIds.length, p.rejectedIds.length);
  const plain = p.promptIds.length + completion;
  const aug = positions.augmented && p.augPromptIds ? p.augPromptIds.length + completion : 0;
  if (Math.max(plain, aug) <= positions.max) return undefined;
  const what = aug > plain ? `its augmented sequence (refine prompt + prompt + completion) has ${aug} tokens` : `prompt + completion has ${plain} tokens`;
  return `${what}, more than ${model} ${positions.name ?? `max_position_embeddings ${positions.max}`}; lower --max-length (or --max-prompt-length)`;
}

export interface LoadedPairs {
  pairs: TokenizedPair[];
  /** Rows may follow the last one read: reading stopped at the first `limit` usable pairs (false without a limit). */
  rowsLeft: boolean;
  rows: PreferenceRow[];
  read: JsonlStats;
  normalize: NormalizeStats;
  tokenize: TokenizeStats;
  /** Human-readable summary of all counts (several lines). */
  report: string;
}

/**
 * Reads, normalizes and tokenizes a preference file in one call. The chat template, BOS and EOS
 * strings for chat rows come from the tokenizer.
 */
export async function loadTokenizedPairs(data: DataFiles, tok: TextTokenizer, loadOpts: LoadPairsOptions = {}): Promise<LoadedPairs> {
  // With a limit, the first `limit` rows are read and tokenized; where some of them are no pair (a bad row
  // skipped, one that does not tokenize), the pass is made again over as many more rows as pairs are
  // missing, each pass whole and on its own (its counts, and whether the rows are SFT rows or pairs, are
  // those of the rows it read). No row past the last one needed is read or checked. Without one, every row.
  const limit = loadOpts.limit;
  let maxRows = limit;
  for (;;) {
    const pass = await tokenizedPass(data, tok, loadOpts, maxRows);
    if (limit === undefined || pass.pairs.length >= limit || !pass.rowsLeft) return pass;
    // Stopped at maxRows rows that read (a line that does not is not one of them): as many more as pairs are missing.
    maxRows = maxRows! + (limit - pass.pairs.length);
  }
}

/** loadTokenizedPairs' pass over the data's first `maxRows` rows (all without it). */
async function tokenizedPass(data: DataFiles, tok: TextTokenizer, loadOpts: LoadPairsOptions, maxRows: number | undefined): Promise<LoadedPairs> {
  const read = (sft: boolean) => loadPreferenceRows(data, {
    ...loadOpts, sft, chatTemplate: tok.chatTemplate, bosToken: tok.bosToken, eosToken: tok.eosToken, ...(maxRows !== undefined ? { maxRows } : {}),
  });
  let loaded = await read(loadOpts.sft === true || loadOpts.sftIfAny === true);
  // sftIfAny: a file with any pair is a preference file, read again as one, where a row without a rejected
  // response is a bad row (named by its line, or skipped with skipBadRows) as before: a misspelt or null
  // "rejected" must not turn a file of pairs into SFT rows.
  if (loadOpts.sftIfAny && loadOpts.sft !== true && loaded.stats.sftOnly > 0 && loaded.stats.sftOnly < loaded.rows.length) loaded = await read(false);
  const { rows: all, read: readStats, stats } = loaded;
  const opts = loadOpts.sftIfAny && stats.sftOnly > 0 ? { ...loadOpts, sft: true } : loadOpts;
  const t = new PairTokenizer(tok, opts);
  const pairs: TokenizedPair[] = [];
  const rows: PreferenceRow[] = [];
  // A row that reads but cannot be tokenized (an empty prompt or response) is a bad row like a
  // malformed line: named by file and line, or skipped and counted with skipBadRows.
  let shown = 0;
  (await tokenizeRows(all, tok, t, opts, (done) => {
    // The first report, then every 1024 rows or so, and the last.
    if (shown === 0 || done - shown >= 1024 || done === all.length) { shown = done; opts.onProgress?.(done, all.length); }
  })).forEach((o, i) => {
    if ('error' in o) {
      recordBadRow(readStats, rowError(loaded, i, o.error), opts);
      readStats.rows--;
    } else {
      pairs.push({ ...o, source: { file: loaded.files[loaded.fileIndex[i]], line: loaded.lineNumbers[i] } });
      rows.push(all[i]);
    }
  });
  const report = `${dataLabel(data)}: ${formatNormalizeStats(stats, readStats)}\n${formatTokenizeStats(t.stats, opts)}`;
  return { pairs, rowsLeft: loaded.stopped, rows, read: readStats, normalize: stats, tokenize: t.stats, report };
}
