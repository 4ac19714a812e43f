// Qwen2 / Qwen2.5 and Llama 3 ship a byte-level BPE whose pre-tokenizer is a Split on one regex with an
// inline case-insensitive group, (?i:'s|'t|...), then ByteLevel without its own regex, under an NFC
// normalizer. No such tokenizer file is available offline, so this builds one of that shape (a tiny
// vocabulary, the real pre-tokenizer, normalizer, decoder and special tokens) and checks what the
// checkpoint loader makes of it: the regex's splits (through merges that exist only inside one split),
// NFC, special tokens in text, EOS from tokenizer_config.json, exact round trips, and a ChatML row.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { tokenizePairs } from '../../src/data/tokenize-pairs.js';
import { PreferenceNormalizer } from '../../src/data/preference-rows.js';
import { textTokenizer } from '../../src/model/tokenizer.js';

const QWEN_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const CHATML = "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** GPT-2's byte-to-character table: printable bytes stand for themselves, the rest from U+0100 on. */
function byteChars(): string[] {
  const keep = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const out: string[] = []; let n = 0;
  for (let b = 0; b < 256; b++) out[b] = keep(b) ? String.fromCharCode(b) : String.fromCharCode(256 + n++);
  return out;
}

function qwenStyleTokenizer(): object {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, i) => { vocab[c] = i; });
  // Merges that only apply inside one pre-token: "'M" (the case-insensitive contraction), "Ġthe" and
  // "IM" (which must not form across the split between "I" and "'M").
  // "I'" ranks first, so only the split keeps it from forming.
  const merges: [string, string][] = [['I', "'"], ["'", 'M'], ['Ġ', 't'], ['h', 'e'], ['Ġt', 'he'], ['©', 't']];
  for (const [a, b] of merges) vocab[a + b] ??= Object.keys(vocab).length;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(300, '<|endoftext|>'), special(301, '<|im_start|>'), special(302, '<|im_end|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: QWEN_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false }] },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false,
      byte_fallback: false, ignore_merges: false, vocab, merges },
  };
}

describe('a Qwen2 / Llama 3 style tokenizer (regex Split + ByteLevel, NFC)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srk-qwen-tok-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(qwenStyleTokenizer()));
  writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|im_end|>', pad_token: '<|endoftext|>', bos_token: null, chat_template: CHATML }));

  it('splits as the regex says, normalizes to NFC, keeps special tokens whole, and decodes exactly', async () => {
    const tok = await loadTokenizer(dir);
    const pieces = (s: string) => tok.encode(s, { addSpecialTokens: true }).map((id) => tok.idToToken(id));
    // "I'M": "I" and "'M" are separate pre-tokens (the case-insensitive contraction), so "I'" never merges.
    expect(pieces("I'M the")).toEqual(['I', "'M", 'Ġthe']);
    // "é" written decomposed (e + U+0301) is composed first: "é" (C3 A9 as bytes "Ã©") then "t".
    expect(pieces('e\u0301t')).toEqual(['Ã', '©t']);
    expect(pieces('<|im_start|>user\nhi<|im_end|>')).toEqual(['<|im_start|>', 'u', 's', 'e', 'r', 'Ċ', 'h', 'i', '<|im_end|>']);
    expect([tok.eosTokenId, tok.bosTokenId, tok.padTokenId]).toEqual([302, undefined, 300]);
    for (const s of ["I'M here, THE's 123 🙂\r\n\n  x", 'naïve 漢字', '<|im_start|>assistant\nok<|im_end|>\n']) {
      expect(tok.decode(tok.encode(s, { addSpecialTokens: true }))).toBe(s.normalize('NFC'));
    }
  });

  it('a ChatML row: the turn ends with <|im_end|> and a newline, and gets no second EOS', async () => {
    const tok = textTokenizer(await loadTokenizer(dir));
    const n = new PreferenceNormalizer({ chatTemplate: tok.chatTemplate, eosToken: tok.eosToken, bosToken: tok.bosToken });
    const row = n.normalize({ chosen: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yes' }],
      rejected: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'no' }] });
    const { pairs, stats } = tokenizePairs([row], tok);
    const im = (id: number) => (id === 302 ? '<|im_end|>' : null);
    // Byte-level ids are the bytes themselves here (byteChars' order): the text back, byte for byte.
    expect(pairs[0].chosenIds.map((id) => im(id) ?? String.fromCharCode(id)).join('')).toBe('yes<|im_end|>\n');
    expect(pairs[0].chosenIds.filter((id) => id === 302)).toHaveLength(1);
    expect(stats.eosAlreadyPresent).toBe(2);
  });
});
