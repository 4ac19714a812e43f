// tokenizer_config.json's `added_tokens_decoder` (id -> AddedToken {content, lstrip, rstrip, normalized,
// single_word, special}), read once for both ways a checkpoint's tokenizer is built: a tokenizer.json
// (tokenizer.ts withConfigAddedTokens) and a converted SentencePiece model (sentencepiece.ts applyAddedTokens; its
// additional_special_tokens then through withConfigAddedTokens too).

/** One added token as tokenizer.json's `added_tokens` lists it. */
export type AddedTokenEntry = {
  id: number; content: string; single_word: boolean; lstrip: boolean; rstrip: boolean; normalized: boolean; special: boolean;
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** AddedToken's flags from `e` (its defaults: not special, normalized unless special); `at` names the entry in errors. */
export function addedTokenFlags(e: Json, at: string, specialByDefault = false): Omit<AddedTokenEntry, 'id' | 'content'> {
  const flag = (k: string, dflt: boolean) => {
    if (e[k] === undefined) return dflt;
    if (typeof e[k] !== 'boolean') throw new Error(`${at}: "${k}" must be true or false`);
    return e[k] as boolean;
  };
  const special = flag('special', specialByDefault);
  return { single_word: flag('single_word', false), lstrip: flag('lstrip', false), rstrip: flag('rstrip', false), normalized: flag('normalized', !special), special };
}

/** The entries of an `added_tokens_decoder` (from `config`, the file named in errors), by id. */
export function readAddedTokensDecoder(decoder: unknown, config: string): AddedTokenEntry[] {
  if (!isObject(decoder)) throw new Error(`${config}: added_tokens_decoder must be an object`);
  return Object.entries(decoder).map(([key, e]) => {
    const at = `${config}: added_tokens_decoder["${key}"]`;
    const id = Number(key);
    if (!Number.isSafeInteger(id) || id < 0 || String(id) !== key) throw new Error(`${at}: the key must be a token id`);
    if (!isObject(e) || typeof e.content !== 'string' || e.content === '') throw new Error(`${at}: needs a non-empty "content"`);
    return { id, content: e.content, ...addedTokenFlags(e, at) };
  }).sort((a, b) => a.id - b.id);
}
