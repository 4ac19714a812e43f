// SentencePiece tokenizer.model (Mistral v0.1's, ../shared/data) read and converted to a tokenizer.json
// (src/model/sentencepiece.ts), then run by @huggingface/tokenizers: against SentencePiece's own BPE
// algorithm written out here (highest-scoring adjacent pair merged first, leftmost on ties; characters
// outside the vocabulary as their UTF-8 bytes), on HH-RLHF and UltraFeedback text, unicode and
// whitespace runs; decoding back to the text; special tokens; a checkpoint directory with only
// tokenizer.model, and saved with a checkpoint; bad files.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer, sentencePieceTokenizer, textTokenizer } from '../../src/model/tokenizer.js';
import {
  parseSentencePieceModel, sentencePieceMerges, sentencePieceTokenizerJson, SP_BYTE, SP_CONTROL, SP_NORMAL, SP_UNKNOWN, SP_USER_DEFINED, type SpModel,
} from '../../src/model/sentencepiece.js';
import { FIXTURES, sharedFile } from './paths.js';
import { getGpu } from '../helpers/gpu.js';
import { loadModel } from '../../src/model/load.js';
import { saveModelDir } from '../../src/train/checkpoint.js';
import { tokenizePairs } from '../../src/data/tokenize-pairs.js';

const MODEL = sharedFile('data/mistral_v0.1_tokenizer.model');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'srk-sp-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** SentencePiece BPE encoding (bpe_model.cc's algorithm), legacy normalization: "▁" + text with spaces as "▁". */
function spEncode(sp: SpModel, text: string, dummyPrefix = true): number[] {
  const ids = new Map<string, number>(); const score = new Map<string, number>();
  sp.pieces.forEach((p, i) => {
    if ((p.type === SP_NORMAL || p.type === SP_USER_DEFINED) && !ids.has(p.piece)) { ids.set(p.piece, i); score.set(p.piece, p.score); }
  });
  if (text === '') return [];
  const sym = Array.from((dummyPrefix ? '▁' : '') + text.replaceAll(' ', '▁'));
  for (;;) {
    let best = -1; let bestScore = -Infinity;
    for (let i = 0; i + 1 < sym.length; i++) {
      const s = score.get(sym[i] + sym[i + 1]);
      if (s !== undefined && s > bestScore) { best = i; bestScore = s; }
    }
    if (best < 0) break;
    sym.splice(best, 2, sym[best] + sym[best + 1]);
  }
  const byteId = (b: number) => sp.pieces.findIndex((p) => p.type === SP_BYTE && p.piece === `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  return sym.flatMap((s) => ids.has(s) ? [ids.get(s)!] : Array.from(new TextEncoder().encode(s), byteId));
}

function texts(): string[] {
  const out = ['Hello world', 'hello', ' leading space', 'trailing space ', 'two  spaces and   three', '    four', 'tab\there\nnewline\n\n',
    'Ünïcödé café, naïve façade', '日本語のテキスト、中文文本', 'emoji 🤖🚀 and ✓ marks', 'math: ∑ x² ≤ ∞', 'a', ' ', '▁already meta', '\u0000\u0007 controls',
    'https://example.com/path?q=1&r=2', 'def f(x):\n    return x ** 2  # comment', 'Ask questions.</s> not special here?'];
  const hh = sharedFile('data/hh-rlhf_helpful-base_test.jsonl.gz');
  if (hh) {
    const rows = gunzipSync(readFileSync(hh)).toString('utf8').split('\n').filter(Boolean).slice(0, 25).map((l) => JSON.parse(l) as { chosen: string; rejected: string });
    for (const r of rows) out.push(r.chosen, r.rejected);
  }
  const uf = sharedFile('data/ultrafeedback_binarized_trl-lib_sample200_eval.jsonl');
  if (uf) {
    const rows = readFileSync(uf, 'utf8').split('\n').filter(Boolean).slice(0, 8).map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const r of rows) for (const v of Object.values(r)) if (typeof v === 'string') out.push(v.slice(0, 1500));
  }
  return out;
}

describe.skipIf(!MODEL)('SentencePiece tokenizer.model (Mistral v0.1)', () => {
  const bytes = MODEL ? readFileSync(MODEL) : new Uint8Array();
  const sp = MODEL ? parseSentencePieceModel(bytes, MODEL) : undefined!;

  it('reads the model: 32000 pieces, BPE with byte fallback, the documented ids', () => {
    expect(sp.pieces.length).toBe(32000);
    expect([sp.modelType, sp.byteFallback, sp.addDummyPrefix, sp.normalizerName, sp.hasCharsMap]).toEqual([2, true, true, 'identity', false]);
    expect(sp.pieces.slice(0, 3).map((p) => [p.piece, p.type])).toEqual([['<unk>', SP_UNKNOWN], ['<s>', SP_CONTROL], ['</s>', SP_CONTROL]]);
    expect([sp.pieces[3].piece, sp.pieces[258].piece, sp.pieces[3].type]).toEqual(['<0x00>', '<0xFF>', SP_BYTE]);
    expect([259, 260, 261, 264, 28705].map((i) => sp.pieces[i].piece)).toEqual(['▁▁', '▁▁▁▁', '▁t', '▁a', '▁']);
    expect(sp.pieces.filter((p) => p.type === SP_BYTE).length).toBe(256);
  });

  it('merges: every two-piece split of a piece, highest merged score first', () => {
    const merges = sentencePieceMerges(sp.pieces);
    const score = new Map(sp.pieces.map((p) => [p.piece, p.score]));
    for (let i = 1; i < merges.length; i++) expect(score.get(merges[i - 1].join(''))! >= score.get(merges[i].join(''))!).toBe(true);
    expect(merges[0]).toEqual(['▁', 't']); // "▁t" (id 261) is the best-scoring piece of two characters
    expect(merges.every(([l, r]) => score.has(l) && score.has(r) && score.has(l + r))).toBe(true);
  });

  it("encodes as SentencePiece's BPE does, decodes back to the text, BOS in front with special tokens", () => {
    const tok = sentencePieceTokenizer(bytes, 'tokenizer.model');
    let n = 0;
    for (const t of texts()) {
      const ids = tok.encode(t, { addSpecialTokens: false });
      if (!t.includes('</s>')) { expect(ids, JSON.stringify(t.slice(0, 80))).toEqual(spEncode(sp, t)); n++; }
      // (Text that holds "▁" decodes it as a space, and legacy normalization gives the text after a
      // special token a "▁" of its own, as in transformers: those do not decode back.)
      if (!t.includes('▁') && !t.includes('</s>')) expect(tok.decode(ids), JSON.stringify(t.slice(0, 80))).toBe(t);
      expect(tok.encode(t, { addSpecialTokens: true })).toEqual([1, ...ids]);
    }
    expect(n).toBeGreaterThan(15);
    // A control symbol's text is that token (an added, special token), and is skipped when asked.
    const withEos = tok.encode('Ask.</s>Next', { addSpecialTokens: false });
    expect(withEos).toEqual([...spEncode(sp, 'Ask.'), 2, ...spEncode(sp, 'Next')]); // legacy: "▁" again after it
    expect(tok.decode(withEos, { skipSpecialTokens: true })).toBe('Ask. Next');
    expect(tok.vocabSize).toBe(32000);
  });

  it('byte tokens that are no valid UTF-8 decode as Rust\'s ByteFallback does: one U+FFFD per token of the run', () => {
    const tok = sentencePieceTokenizer(bytes, 'tokenizer.model');
    const b = (...xs: number[]) => xs.map((x) => x + 3); // <0xNN> is id NN + 3
    const hello = tok.encode('Hello', { addSpecialTokens: false });
    // A 4-byte emoji cut after 2 bytes (a generation stopped inside it): the package's TextDecoder gave one.
    expect(tok.decode([...hello, ...b(0xf0, 0x9f)])).toBe('Hello\ufffd\ufffd');
    // A valid character then a stray byte in one run: the whole run (Rust keeps none of it).
    expect(tok.decode([...hello, ...b(0xed, 0x9f, 0x98, 0x80)])).toBe(`Hello${'\ufffd'.repeat(4)}`);
    expect(tok.decode(b(0x3a, 0xfa))).toBe('\ufffd\ufffd');
    // Valid runs are text; a special token between two halves splits the run, unless skipped.
    expect(tok.decode([...hello, ...b(0xed, 0x9f, 0x98)])).toBe('Hello\ud7d8');
    expect(tok.decode([...b(0xc3), 2, ...b(0xa9)])).toBe('\ufffd</s>\ufffd');
    expect(tok.decode([...b(0xc3), 2, ...b(0xa9)], { skipSpecialTokens: true })).toBe('é');
    expect(tok.decode(tok.encode('Hi 🙂 漢字', { addSpecialTokens: false }))).toBe('Hi 🙂 漢字');
  });

  it('legacy: false (tokenizer_config.json): Metaspace, so no "▁" after a special token, nor a second one before a leading space', () => {
    const tok = sentencePieceTokenizer(bytes, 'tokenizer.model', { legacy: false });
    for (const t of texts().slice(0, 30).filter((x) => !x.includes('</s>'))) {
      const lead = t.startsWith(' ') || t.startsWith('▁'); // Metaspace prepends only where none is
      const want = !lead ? spEncode(sp, t) : t.length === 1 ? [28705] : spEncode(sp, t.slice(1));
      expect(tok.encode(t, { addSpecialTokens: false }), JSON.stringify(t.slice(0, 80))).toEqual(want);
    }
    expect(tok.encode('Ask.</s>Next', { addSpecialTokens: false })).toEqual([...spEncode(sp, 'Ask.'), 2, ...spEncode(sp, 'Next', false)]);
  });

  it('a checkpoint directory with tokenizer.model and no tokenizer.json', async () => {
    const dir = path.join(tmp, 'mistral'); mkdirSync(dir);
    copyFileSync(MODEL!, path.join(dir, 'tokenizer.model'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ bos_token_id: 1, eos_token_id: 2 }));
    let tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId]).toEqual([1, 2]);
    expect(tok.sentencePieceFile).toBe(path.join(dir, 'tokenizer.model')); // (a run's log names it)
    expect(tok.encode('Hello world', { addSpecialTokens: true })).toEqual([1, ...spEncode(sp, 'Hello world')]);
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ add_bos_token: false, add_eos_token: true, bos_token: '<s>', eos_token: '</s>' }));
    tok = await loadTokenizer(dir);
    expect(tok.encode('Hello world', { addSpecialTokens: true })).toEqual([...spEncode(sp, 'Hello world'), 2]);
  });

  it('a Sr-DPO augmented prompt keeps its BOS first: BOS ++ refine prompt ++ prompt', () => {
    const tok = textTokenizer(sentencePieceTokenizer(bytes, 'tokenizer.model'));
    const refine = 'Please generate a response with a usefulness rating of 100 out of 100. Query:';
    const { pairs } = tokenizePairs([{ prompt: 'How do I sort a list?', chosen: ' Use sorted().', rejected: ' No.' }], tok, { refinePrompt: refine });
    const p = pairs[0];
    expect(p.promptIds[0]).toBe(1);
    expect(p.augPromptIds).toEqual([1, ...spEncode(sp, refine), ...p.promptIds.slice(1)]);
    expect(p.augPromptIds!.filter((id) => id === 1)).toHaveLength(1);
  });

  it('a saved checkpoint keeps tokenizer.model beside the weights (saveModelDir)', async () => {
    const gpu = await getGpu();
    const src = path.join(tmp, 'src'); mkdirSync(src);
    for (const f of ['config.json', 'model.safetensors']) copyFileSync(path.join(FIXTURES, 'mistral-tiny', f), path.join(src, f));
    copyFileSync(MODEL!, path.join(src, 'tokenizer.model'));
    const m = await loadModel(gpu, src);
    const out = path.join(tmp, 'saved');
    await saveModelDir(gpu, m.params, m.cfg.raw, src, out);
    m.params.free();
    expect(readFileSync(path.join(out, 'tokenizer.model')).equals(readFileSync(MODEL!))).toBe(true);
    expect((await loadTokenizer(out)).encode('Hello world', { addSpecialTokens: false })).toEqual(spEncode(sp, 'Hello world'));
  });

  it('tokenizer_config.json\'s added_tokens_decoder: tokens past the vocabulary (chat markers) are single tokens; inconsistencies are errors', async () => {
    const dir = path.join(tmp, 'chatml'); mkdirSync(dir);
    copyFileSync(MODEL!, path.join(dir, 'tokenizer.model'));
    const flags = (special: boolean) => ({ lstrip: false, rstrip: false, single_word: false, normalized: false, special });
    const decoder: Record<string, unknown> = {
      0: { content: '<unk>', ...flags(true) }, 1: { content: '<s>', ...flags(true) }, 2: { content: '</s>', ...flags(true) },
      32000: { content: '<|im_start|>', ...flags(true) }, 32001: { content: '<|im_end|>', ...flags(true) },
    };
    const config = (d: Record<string, unknown>) => writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: d }));
    const text = '<|im_start|>user\nHi there<|im_end|>';
    // Control: without the decoder the markers are text.
    const plain = (await loadTokenizer(dir)).encode(text, { addSpecialTokens: false });
    expect(plain.every((id) => id < 32000)).toBe(true);
    config(decoder);
    const tok = await loadTokenizer(dir);
    expect(tok.vocabSize).toBe(32002);
    const ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids[0]).toBe(32000);
    expect(ids.at(-1)).toBe(32001);
    // Legacy normalization prepends "▁" to each text between added tokens, as transformers does.
    expect(ids.slice(1, -1)).toEqual(spEncode(sp, 'user\nHi there'));
    // added_tokens.json may repeat what the decoder says; a token only it names is refused.
    writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<|im_start|>': 32000, '<|im_end|>': 32001 }));
    expect((await loadTokenizer(dir)).encode(text, { addSpecialTokens: false })).toEqual(ids);
    writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<|im_start|>': 32000, '<tool>': 32002 }));
    await expect(loadTokenizer(dir)).rejects.toThrow(/chatml\/added_tokens\.json: "<tool>" \(id 32002\) is not in tokenizer\.model nor/);
    rmSync(path.join(dir, 'added_tokens.json'));
    config({ ...decoder, 5: { content: '<mine>', ...flags(true) } });
    await expect(loadTokenizer(dir)).rejects.toThrow(/chatml\/tokenizer_config\.json: added_tokens_decoder\["5"\]: "<mine>" but tokenizer\.model's piece 5 is "<0x02>"/);
    config({ ...decoder, 32003: { content: '<gap>', ...flags(true) } });
    await expect(loadTokenizer(dir)).rejects.toThrow(/"<gap>" id 32003, but tokens past tokenizer\.model's 32000 pieces must take the ids 32000, 32001, \.\.\. in turn/);
    config({ 32000: { content: '' } });
    await expect(loadTokenizer(dir)).rejects.toThrow(/added_tokens_decoder\["32000"\]: needs a non-empty "content"/);
  });

  it('tokenizer_config.json\'s additional_special_tokens: added after the decoder\'s tokens, as transformers adds them; added_tokens.json may repeat them', async () => {
    const dir = path.join(tmp, 'extra'); mkdirSync(dir);
    copyFileSync(MODEL!, path.join(dir, 'tokenizer.model'));
    const flags = { lstrip: false, rstrip: false, single_word: false, normalized: false, special: true };
    const write = (cfg: object) => writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    const text = 'Hi<tool>there<|im_start|>';
    const plain = (await loadTokenizer(dir)).encode(text, { addSpecialTokens: false });
    expect(plain.every((id) => id < 32000)).toBe(true); // control: text without them
    // Alone: new tokens take the ids past the vocabulary in their order; one the model has ("<s>") keeps its id.
    write({ additional_special_tokens: ['<|im_start|>', '<s>', { content: '<tool>', special: true }] });
    let tok = await loadTokenizer(dir);
    expect(tok.vocabSize).toBe(32002);
    let ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.filter((id) => id >= 32000)).toEqual([32001, 32000]);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(tok.decode(ids.filter((id) => id < 32000), { skipSpecialTokens: false }));
    // After the decoder's: <|im_start|> is the decoder's 32000, <tool> the next id.
    write({ added_tokens_decoder: { 32000: { content: '<|im_start|>', ...flags } }, additional_special_tokens: ['<|im_start|>', '<tool>'] });
    tok = await loadTokenizer(dir);
    ids = tok.encode(text, { addSpecialTokens: false });
    expect(ids.filter((id) => id >= 32000)).toEqual([32001, 32000]);
    // added_tokens.json may name them now (their flags are known), with their ids only.
    writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<|im_start|>': 32000, '<tool>': 32001 }));
    expect((await loadTokenizer(dir)).encode(text, { addSpecialTokens: false })).toEqual(ids);
    writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<tool>': 32005 }));
    await expect(loadTokenizer(dir)).rejects.toThrow(/extra\/added_tokens\.json: "<tool>" \(id 32005\) is not in tokenizer\.model nor in .*tokenizer_config\.json's added_tokens_decoder or additional_special_tokens/);
    rmSync(path.join(dir, 'added_tokens.json'));
    write({ additional_special_tokens: '<tool>' });
    await expect(loadTokenizer(dir)).rejects.toThrow(/extra\/tokenizer_config\.json: additional_special_tokens must be a list/);
  });

  it('bad files are errors naming the file', async () => {
    expect(() => parseSentencePieceModel(bytes.subarray(0, 1000), 'cut.model')).toThrow(/tokenizer cut\.model: .* (runs past the end|truncated)/);
    expect(() => parseSentencePieceModel(new TextEncoder().encode('{"not": "protobuf"}'), 'x.model')).toThrow(/tokenizer x\.model/);
    expect(() => sentencePieceTokenizerJson({ ...sp, modelType: 1 }, 'uni.model')).toThrow(/uni\.model: a SentencePiece unigram model is not supported/);
    const dir = path.join(tmp, 'broken'); mkdirSync(dir);
    writeFileSync(path.join(dir, 'tokenizer.model'), bytes.subarray(0, 5000));
    await expect(loadTokenizer(dir)).rejects.toThrow(/broken\/tokenizer\.model/);
  });
});
