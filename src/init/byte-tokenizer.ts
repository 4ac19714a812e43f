// A tokenizer made by the project itself, for models initialized from scratch (src/init): a
// byte-level BPE in Hugging Face tokenizers' tokenizer.json format, with no merges.
//
// Ids:
//   0..255  one token per byte: id = the byte's value; the token string is the byte's character in
//           GPT-2's byte-to-unicode table (printable Latin-1 bytes map to themselves, the other 68
//           bytes to U+0100.. in byte order), as in every byte-level BPE.
//   256     "<|endoftext|>": BOS, EOS and PAD at once (as in GPT-2 / Pythia). It is an added,
//           special token, so the text "<|endoftext|>" in an input encodes to 256.
// The vocabulary is 257 tokens; a model rounds its embedding up (see init-model.ts).
//
// Pre-tokenizer and decoder are ByteLevel with add_prefix_space false and no normalizer, and the
// post-processor adds nothing (no BOS), so encode(text) gives exactly the UTF-8 bytes of text and
// decode gives the text back, for any string (ASCII, accents, emoji, control characters).

export const ENDOFTEXT = '<|endoftext|>';
/** Id of "<|endoftext|>" (BOS = EOS = PAD). */
export const ENDOFTEXT_ID = 256;
/** Number of ids the byte tokenizer uses (bytes + "<|endoftext|>"). */
export const BYTE_TOKENIZER_VOCAB = 257;

/** GPT-2's byte -> unicode character table: index = byte value. */
export function byteToUnicode(): string[] {
  const direct = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCodePoint(direct(b) ? b : next++));
  return out;
}

export interface ByteTokenizerOptions {
  /**
   * Extra merges (pairs of existing tokens, applied in order; each adds its concatenation as a new
   * token after "<|endoftext|>"), e.g. [['Ġ', 't'], ['e', 'r']]. Default: none.
   */
  merges?: [string, string][];
}

/** The tokenizer.json object (JSON.stringify it to write the file). */
export function byteLevelTokenizerJson(opts: ByteTokenizerOptions = {}): Record<string, unknown> {
  const table = byteToUnicode();
  const vocab: Record<string, number> = {};
  table.forEach((ch, b) => { vocab[ch] = b; });
  vocab[ENDOFTEXT] = ENDOFTEXT_ID;
  const merges = opts.merges ?? [];
  let next = ENDOFTEXT_ID + 1;
  for (const [a, b] of merges) {
    if (!Object.hasOwn(vocab, a) || !Object.hasOwn(vocab, b) || a === ENDOFTEXT || b === ENDOFTEXT) {
      throw new Error(`byteLevelTokenizerJson: merge ${JSON.stringify([a, b])} uses a token not in the vocabulary`);
    }
    if (Object.hasOwn(vocab, a + b)) throw new Error(`byteLevelTokenizerJson: merge ${JSON.stringify([a, b])} repeats the token ${JSON.stringify(a + b)}`);
    vocab[a + b] = next++;
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{
      id: ENDOFTEXT_ID, content: ENDOFTEXT, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    }],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: null,
    decoder: { ...byteLevel },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false,
      vocab, merges: merges.map(([a, b]) => [a, b]),
    },
  };
}

export interface TokenizerConfigOptions {
  /** model_max_length (default 2048). */
  modelMaxLength?: number;
}

/** tokenizer_config.json for the byte tokenizer: "<|endoftext|>" as BOS/EOS/PAD, no BOS added. */
export function tokenizerConfigJson(opts: TokenizerConfigOptions = {}): Record<string, unknown> {
  return {
    tokenizer_class: 'PreTrainedTokenizerFast',
    add_bos_token: false,
    add_eos_token: false,
    add_prefix_space: false,
    bos_token: ENDOFTEXT,
    eos_token: ENDOFTEXT,
    pad_token: ENDOFTEXT,
    unk_token: null,
    model_max_length: opts.modelMaxLength ?? 2048,
    clean_up_tokenization_spaces: false,
    added_tokens_decoder: {
      [String(ENDOFTEXT_ID)]: { content: ENDOFTEXT, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true },
    },
  };
}

/** special_tokens_map.json for the byte tokenizer. */
export function specialTokensMapJson(): Record<string, unknown> {
  const tok = { content: ENDOFTEXT, lstrip: false, normalized: false, rstrip: false, single_word: false };
  return { bos_token: tok, eos_token: tok, pad_token: tok };
}
