// Preference data for a run: rows read, normalized and tokenized with the model's tokenizer,
// with the refine prompt so that augmented sequences are available for Sr losses and metrics.
import { loadTokenizedPairs, type TextTokenizer, type TokenizedPair } from '../data/tokenize-pairs.js';
import { JsonlRowError } from '../data/read-jsonl.js';
import { loadTokenizer, type SrkTokenizer } from '../model/tokenizer.js';

export interface DataSettings {
  maxLength: number; maxPromptLength: number; noEos: boolean; refinePrompt: string; skipBadRows: boolean;
}

/** The tokenizer in the shape the data code expects. */
export function textTokenizer(tok: SrkTokenizer): TextTokenizer {
  return {
    encode: (text, o) => tok.encode(text, o),
    eosTokenId: tok.eosTokenId ?? null,
    bosTokenId: tok.bosTokenId ?? null,
    chatTemplate: tok.chatTemplate ?? null,
    bosToken: tok.bosTokenId !== undefined ? tok.idToToken(tok.bosTokenId) ?? null : null,
    eosToken: tok.eosTokenId !== undefined ? tok.idToToken(tok.eosTokenId) ?? null : null,
  };
}

/** Errors in the user's data (a malformed line: `file:line: reason`; a missing file) print without a stack. */
function dataError(e: unknown): unknown {
  const code = (e as { code?: unknown } | null)?.code;
  if (e instanceof JsonlRowError || code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return Object.assign(e as Error, { userFacing: true });
  return e;
}

export async function loadPairsForModel(modelDir: string, file: string, s: DataSettings, log: (s: string) => void): Promise<TokenizedPair[]> {
  const tok = await loadTokenizer(modelDir);
  if (tok.sentencePieceFile) log(`tokenizer: ${tok.sentencePieceFile} (SentencePiece; no tokenizer.json, converted as transformers does)`);
  const r = await loadTokenizedPairs(file, textTokenizer(tok), {
    maxLength: s.maxLength, maxPromptLength: s.maxPromptLength, noEos: s.noEos, refinePrompt: s.refinePrompt,
    skipBadRows: s.skipBadRows,
  }).catch((e: unknown) => { throw dataError(e); });
  log(r.report);
  if (r.pairs.length === 0) throw Object.assign(new Error(`${file}: no usable pairs`), { userFacing: true });
  return r.pairs;
}
