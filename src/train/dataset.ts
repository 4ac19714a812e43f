// Preference data for a run: rows read, normalized and tokenized with the model's tokenizer,
// with the refine prompt so that augmented sequences are available for Sr losses and metrics.
import { isSftPair, loadTokenizedPairs, positionsError, type TokenizedPair } from '../data/tokenize-pairs.js';
import type { JsonlStats } from '../data/read-jsonl.js';
import { dataLabel, type DataFiles } from '../data/data-files.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadTokenizer, textTokenizer, type SrkTokenizer } from '../model/tokenizer.js';
import { loadModelConfig } from '../model/config.js';
import { positionLimit } from '../model/rope.js';
import { dataError, userError } from '../errors.js';

export interface DataSettings {
  maxLength: number; maxPromptLength: number; noEos: boolean; refinePrompt: string; skipBadRows: boolean;
  /** Completions tokenized as they follow their prompts (tokenize-pairs.ts); default alone. */
  inContext?: boolean;
}

/** How the pairs of one file will be used (not part of the reference cache's settings). */
export interface PairUse {
  /** SFT rows: prompt + chosen alone (TokenizeOptions.sft). */
  sft?: boolean;
  /** The augmented sequences will be scored, so their length counts against the model's positions. */
  augmented: boolean;
  /** Held-out data that may be SFT rows: read as pairs, or, where a row has no rejected response, as SFT rows (LoadPairsOptions.sftIfAny). */
  sftIfAny?: boolean;
  /** Log what a user should know of the tokenizer's files (tokenizerNotes): once a run, with its first data. */
  notes?: boolean;
  /** Only the first `count` usable pairs (in the data's order, as transformers' max_eval_samples), by the flag that asked. */
  limit?: { count: number; flag: string };
}

/** Rows from which tokenizing reports progress (about ten seconds of it on this project's 2-core machine). */
const PROGRESS_ROWS = 5000;

/** The data's usable pairs tokenized for the model; `onRead` gets the reader's counts (bad lines skipped). */
export async function loadPairsForModel(modelDir: string, data: DataFiles, s: DataSettings, use: PairUse, log: (s: string) => void,
  onRead?: (read: JsonlStats) => void, progress?: (label: string, done: number, total: number) => void): Promise<TokenizedPair[]> {
  const tok = await loadTokenizer(modelDir);
  const modelCfg = await loadModelConfig(modelDir);
  const { vocabSize } = modelCfg; const limit = positionLimit(modelCfg);
  if (tok.sentencePieceFile) log(`tokenizer: ${tok.sentencePieceFile} (SentencePiece; no tokenizer.json, converted as transformers does)`);
  if (use.notes) for (const note of tokenizerNotes(tok, s.noEos)) log(note);
  const r = await loadTokenizedPairs(data, textTokenizer(tok), {
    maxLength: s.maxLength, maxPromptLength: s.maxPromptLength, noEos: s.noEos, refinePrompt: s.refinePrompt, inContext: s.inContext,
    skipBadRows: s.skipBadRows, sft: use.sft, sftIfAny: use.sftIfAny, positions: { max: limit.max, name: limit.name, augmented: use.augmented }, vocabSize,
    ...(use.limit ? { limit: use.limit.count } : {}),
    // Only data sets big enough to take a while say how far they are.
    onProgress: (done, total) => { if (total >= PROGRESS_ROWS) progress?.(`tokenize ${dataLabel(data)}`, done, total); },
  }).catch((e: unknown) => { throw dataError(e); });
  log(r.report);
  onRead?.(r.read);
  if (r.pairs.length === 0) throw userError(`${dataLabel(data)}: no usable pairs`);
  if (use.limit && (r.pairs.length > use.limit.count || r.rowsLeft)) {
    // Tokenized from the start until enough were usable (tokenize-pairs.ts `limit`): the rows after them are left.
    const what = isSftPair(r.pairs[0]) ? 'rows' : 'pairs';
    log(`${dataLabel(data)}: its first ${use.limit.count} usable ${what} (${use.limit.flag}; any rows after them not read)`);
    return r.pairs.slice(0, use.limit.count);
  }
  return r.pairs;
}

/** What a user should know of a tokenizer's files: how they were read (SrkTokenizer.notes), and an EOS to doubt. */
export function tokenizerNotes(tok: SrkTokenizer, noEos = false): string[] {
  const eos = noEos ? undefined : ordinaryEosNote(tok);
  return [...tok.notes, ...(eos ? [eos] : [])];
}

/**
 * A warning where the EOS appended to every completion is an ordinary token of the vocabulary (a checkpoint
 * without tokenizer_config.json whose config.json's eos_token_id is, say, "!"'s id): the model is then taught
 * to end each answer with that token, and a completion that ends with it as text counts as already ended.
 */
export function ordinaryEosNote(tok: SrkTokenizer): string | undefined {
  const id = tok.eosTokenId;
  if (id === undefined || tok.isSpecial(id)) return undefined;
  return `warning: the EOS appended to every completion, id ${id} (${JSON.stringify(tok.idToToken(id) ?? '?')}, from ${tok.eosFrom}), ` +
    'is an ordinary token of the vocabulary, not a special one of the tokenizer: if it is not this model\'s end of text, ' +
    'give tokenizer_config.json its eos_token, or pass --no-eos';
}

/** Text that tells tokenizers apart: words, digits, punctuation, accents, CJK, emoji, the common special-token strings. */
const TOKENIZER_PROBE = 'Hello world! The quick brown fox jumps over 12,345 lazy dogs; naïve café, 漢字かな, 🙂.\n\nHuman: hi?\n\nAssistant: ' +
  'Sure <|endoftext|> </s> <s> <|im_end|> [INST]';

/**
 * Refuses a reference whose tokenizer reads text differently from the policy's: the reference scores the
 * policy's token ids, which would then mean other tokens (margins of nonsense, without an error). A
 * reference directory without tokenizer files (weights and config only) is taken to share the policy's.
 */
export async function checkSameTokenizer(policyDir: string, refDir: string): Promise<void> {
  if (path.resolve(policyDir) === path.resolve(refDir)) return;
  const hasOwn = ['tokenizer.json', 'tokenizer.model'].some((f) => existsSync(path.join(refDir, f)));
  if (!hasOwn) return;
  const [a, b] = await Promise.all([loadTokenizer(policyDir), loadTokenizer(refDir)]);
  const ids = (t: SrkTokenizer) => t.encode(TOKENIZER_PROBE, { addSpecialTokens: true });
  const pa = ids(a); const pb = ids(b);
  const at = pa.findIndex((x, i) => x !== pb[i]);
  if (at < 0 && pa.length === pb.length && a.eosTokenId === b.eosTokenId) return;
  throw userError(`the reference ${refDir} tokenizes text differently from the policy ${policyDir} ` +
    (at >= 0 || pa.length !== pb.length ? `(a sample text differs from token ${at < 0 ? Math.min(pa.length, pb.length) : at} on)` : `(EOS ${b.eosTokenId} against ${a.eosTokenId})`) +
    ': it would score the policy\'s token ids as other tokens; give a reference with the policy\'s tokenizer');
}

/**
 * Refuses a reference (--ref-model) whose config cannot score the pairs the policy's tokenizer made: a
 * token id past its vocab_size (a directory of weights and config alone takes the policy's tokenizer) or a
 * sequence past its max_position_embeddings. Named by the reference and the pair's file and line, where the
 * GPU batch would stop at the first such id with only its batch coordinates. `sets`: the pairs it scores,
 * each with whether their augmented sequences are scored.
 */
export async function checkReferenceFits(policyDir: string, refDir: string, sets: readonly { pairs: readonly TokenizedPair[]; augmented: boolean }[]): Promise<void> {
  const refCfg = await loadModelConfig(refDir);
  const { vocabSize } = refCfg; const limit = positionLimit(refCfg);
  // The pairs were checked against the policy's config when tokenized: a reference that takes as much takes them.
  const policy = await loadModelConfig(policyDir);
  if (vocabSize >= policy.vocabSize && limit.max >= positionLimit(policy).max) return;
  const where = (p: TokenizedPair) => (p.source ? `${p.source.file}:${p.source.line}: ` : '');
  for (const { pairs, augmented } of sets) {
    for (const p of pairs) {
      for (const ids of [p.promptIds, p.chosenIds, p.rejectedIds, ...(augmented && p.augPromptIds ? [p.augPromptIds] : [])]) {
        let top = -1;
        for (const id of ids) if (id > top) top = id;
        if (top >= vocabSize) {
          throw userError(`--ref-model ${refDir}: ${where(p)}token id ${top} is past the reference's vocab_size ${vocabSize} ` +
            '(the reference scores the policy\'s token ids): give a reference with the policy\'s vocabulary');
        }
      }
      const tooLong = positionsError(p, { max: limit.max, name: limit.name, augmented }, 'the reference\'s');
      if (tooLong) throw userError(`--ref-model ${refDir}: ${where(p)}${tooLong}`);
    }
  }
}
