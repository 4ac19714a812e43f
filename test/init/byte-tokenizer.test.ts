import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import {
  BYTE_TOKENIZER_VOCAB, ENDOFTEXT, ENDOFTEXT_ID, byteLevelTokenizerJson, byteToUnicode, specialTokensMapJson,
  tokenizerConfigJson,
} from '../../src/init/byte-tokenizer.js';
import { Rng } from '../../src/init/prng.js';

// Through JSON text, as the files are written and read.
const load = (opts?: Parameters<typeof byteLevelTokenizerJson>[0]) =>
  new Tokenizer(JSON.parse(JSON.stringify(byteLevelTokenizerJson(opts))) as object, JSON.parse(JSON.stringify(tokenizerConfigJson())) as object);

function randomText(rng: Rng, alphabet: string[], n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) s += rng.pick(alphabet);
  return s;
}

describe('byte-level tokenizer', () => {
  it('the byte table is a bijection onto 256 printable characters (GPT-2 layout)', () => {
    const t = byteToUnicode();
    expect(new Set(t).size).toBe(256);
    expect(t[0x41]).toBe('A');
    expect(t[0x20]).toBe('Ġ'); // space: 256 + 32
    expect(t[0x0a]).toBe('Ċ');
    expect(t[0xad]).toBe(String.fromCodePoint(256 + 67)); // the 68th (last) remapped byte: 33 + 34 before it
    expect(t.every((c) => !/\s/u.test(c))).toBe(true);
  });

  it('encodes text as its UTF-8 bytes (id = byte), nothing added', () => {
    const tok = load();
    for (const s of ['hello world', 'café', '😀', ' sort: 3 1 2 =', '\u0000\t\r\n']) {
      expect(tok.encode(s).ids).toEqual([...Buffer.from(s, 'utf8')]);
      expect(tok.encode(s, { add_special_tokens: true }).ids).toEqual([...Buffer.from(s, 'utf8')]);
    }
  });

  it('round-trips random ASCII and non-ASCII strings exactly', () => {
    const tok = load();
    const rng = new Rng(7);
    const ascii = Array.from({ length: 128 }, (_, i) => String.fromCharCode(i));
    const wide = [...'éèêàçñüöÅßøæœ€£¥©®°±µ¶·¿ЖжЯπΩ中文日本語한국어', '😀', '🎉', '👍🏽', '👨‍👩‍👧', '\u{10FFFF}', '\u00a0', '\u200b', ' ', '  ', '\n', 'a', 'Z', '9'];
    for (let i = 0; i < 300; i++) {
      const s = randomText(rng, i % 3 === 0 ? ascii : i % 3 === 1 ? wide : [...ascii, ...wide], rng.int(1, 60));
      const ids = tok.encode(s).ids;
      expect(ids.every((id: number) => Number.isInteger(id) && id >= 0 && id < BYTE_TOKENIZER_VOCAB)).toBe(true);
      expect(ids).toEqual([...Buffer.from(s, 'utf8')]);
      expect(tok.decode(ids)).toBe(s);
      expect(tok.decode(ids, { skip_special_tokens: true })).toBe(s);
    }
  });

  it('the empty string encodes to no ids', () => {
    expect(load().encode('').ids).toEqual([]);
  });

  it('"<|endoftext|>" is the one special token, id 256; skip_special_tokens drops it', () => {
    const tok = load();
    expect(tok.token_to_id(ENDOFTEXT)).toBe(ENDOFTEXT_ID);
    const ids = tok.encode(`ab${ENDOFTEXT}c`).ids;
    expect(ids).toEqual([97, 98, ENDOFTEXT_ID, 99]);
    expect(tok.decode(ids)).toBe(`ab${ENDOFTEXT}c`);
    expect(tok.decode(ids, { skip_special_tokens: true })).toBe('abc');
    expect(tok.get_vocab(true).size).toBe(BYTE_TOKENIZER_VOCAB);
  });

  it('optional merges add tokens after 256 and still round-trip', () => {
    const tok = load({ merges: [['Ġ', 't'], ['Ġt', 'h'], ['e', 'r']] });
    const ids = tok.encode(' the other').ids;
    expect(ids).toEqual([258, 101, 32, 111, 116, 104, 259]); // "Ġth" "e" "Ġ" "o" "t" "h" "er"
    expect(tok.decode(ids)).toBe(' the other');
    expect(() => byteLevelTokenizerJson({ merges: [['x', 'nope']] })).toThrow(/not in the vocabulary/);
  });

  it('tokenizer_config and special_tokens_map name "<|endoftext|>" everywhere', () => {
    const c = tokenizerConfigJson({ modelMaxLength: 512 });
    expect(c).toMatchObject({ bos_token: ENDOFTEXT, eos_token: ENDOFTEXT, pad_token: ENDOFTEXT, model_max_length: 512, clean_up_tokenization_spaces: false, add_bos_token: false });
    expect(specialTokensMapJson()).toMatchObject({ eos_token: { content: ENDOFTEXT } });
  });
});
