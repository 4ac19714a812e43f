import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTokenizer, SrkTokenizer, textTokenizer } from '../../src/model/tokenizer.js';
import { FIXTURES, MODELS, sharedFile } from './paths.js';

interface Case { text: string; ids: number[]; decoded: string }
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'srk-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * The two expectation files decode special tokens differently: the fixture tokenizer's file was
 * made with special tokens skipped ("<|endoftext|>" -> ""), the Pythia one with them kept
 * ("<|endoftext|>The end.<|padding|>" round-trips). Both are the Rust decode, with
 * skip_special_tokens true resp. false; ids and every other decoding agree either way.
 */
function checkCases(tok: SrkTokenizer, cases: Case[], skipSpecialTokens: boolean) {
  for (const c of cases) {
    expect(tok.encode(c.text, { addSpecialTokens: false }), JSON.stringify(c.text)).toEqual(c.ids);
    // Byte-level BPE adds nothing around the text (ByteLevel post-processor).
    expect(tok.encode(c.text, { addSpecialTokens: true })).toEqual(c.ids);
    expect(tok.decode(c.ids, { skipSpecialTokens }), JSON.stringify(c.text)).toBe(c.decoded);
  }
}

describe('tokenizer: fixture tokenizer (byte-level BPE, vocab 384)', () => {
  it('reproduces the Rust ids and decodings of tokenizer_expected.json', async () => {
    const tok = await loadTokenizer(path.join(FIXTURES, 'tokenizer.json'));
    const cases = readJson(path.join(FIXTURES, 'tokenizer_expected.json')) as Case[];
    checkCases(tok, cases, true);
    // Kept special tokens decode to their text.
    expect(tok.decode([0])).toBe('<|endoftext|>');
    expect(tok.vocabSize).toBe(384);
  });

  for (const name of MODELS) {
    it(`${name}: prompt/chosen/rejected ids of expected.json (tokenized separately, no specials)`, async () => {
      const tok = await loadTokenizer(path.join(FIXTURES, name));
      const expected = readJson(path.join(FIXTURES, name, 'expected.json')) as {
        refine_prompt: string; refine_prompt_ids: number[]; pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[];
      };
      expect(tok.encode(expected.refine_prompt, { addSpecialTokens: false })).toEqual(expected.refine_prompt_ids);
      const pairs = readFileSync(path.join(FIXTURES, name, 'pairs.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string });
      expect(pairs.length).toBe(expected.pairs.length);
      pairs.forEach((p, i) => {
        const e = expected.pairs[i]!;
        expect(tok.encode(p.prompt, { addSpecialTokens: false })).toEqual(e.prompt_ids);
        expect(tok.encode(p.chosen, { addSpecialTokens: false })).toEqual(e.chosen_ids);
        expect(tok.encode(p.rejected, { addSpecialTokens: false })).toEqual(e.rejected_ids);
        expect(tok.decode(e.prompt_ids) + tok.decode(e.chosen_ids)).toBe(p.prompt + p.chosen);
      });
      // No tokenizer_config.json in the fixtures: bos/eos come from config.json.
      const cfg = readJson(path.join(FIXTURES, name, 'config.json'));
      expect([tok.bosTokenId, tok.eosTokenId]).toEqual([cfg.bos_token_id, cfg.eos_token_id]);
      expect(tok.chatTemplate).toBeUndefined();
    });
  }

  it('decode: empty list, unknown ids skipped (as Rust), bad ids refused, no space clean-up by default', async () => {
    const tok = await loadTokenizer(path.join(FIXTURES, 'tokenizer.json'));
    expect(tok.decode([])).toBe('');
    const hello = tok.encode('Hello world', { addSpecialTokens: false });
    expect(tok.decode([...hello, 384, 5000])).toBe('Hello world');
    expect(tok.decode([400])).toBe('');
    expect(() => tok.decode([-1])).toThrow(/cannot decode id -1/);
    const spaced = 'a , b .';
    expect(tok.decode(tok.encode(spaced, { addSpecialTokens: false }))).toBe(spaced);
  });

  it('tokenizer_config.json: special tokens, clean-up, chat template, add_bos/add_eos', async () => {
    const dir = mkdtempSync(path.join(tmp, 'cfg-'));
    copyFileSync(path.join(FIXTURES, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const write = (cfg: object) => writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    write({ bos_token: { content: '<|padding|>', special: true }, eos_token: '<|endoftext|>', pad_token: null,
      clean_up_tokenization_spaces: true, chat_template: [{ name: 'default', template: '{{ x }}' }] });
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ bos_token_id: 7, eos_token_id: 8, pad_token_id: 9 }));
    let tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([1, 0, undefined]);
    expect(tok.chatTemplate).toBe('{{ x }}');
    expect(tok.decode(tok.encode('a , b .', { addSpecialTokens: false }))).toBe('a, b.');
    writeFileSync(path.join(dir, 'chat_template.jinja'), '{{ y }}');
    expect((await loadTokenizer(dir)).chatTemplate).toBe('{{ y }}');

    // Llama-class config with add_bos_token / add_eos_token: the post-processor is rebuilt.
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|padding|>', eos_token: '<|endoftext|>', add_eos_token: true });
    tok = await loadTokenizer(dir);
    const ids = tok.encode('Hello world', { addSpecialTokens: false });
    expect(tok.encode('Hello world', { addSpecialTokens: true })).toEqual([1, ...ids, 0]);
    expect(tok.decode([1, ...ids, 0], { skipSpecialTokens: true })).toBe('Hello world');
    write({ tokenizer_class: 'GPTNeoXTokenizer', bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', add_bos_token: false, add_eos_token: false });
    expect((await loadTokenizer(dir)).encode('Hello world', { addSpecialTokens: true })).toEqual(ids);
    write({ bos_token: '<|nope|>' });
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer\.json: bos_token "<\|nope\|>" \(tokenizer_config\.json, or special_tokens_map\.json\) is not in the vocabulary: name a token it has, or add this one \(tokenizer_config\.json's added_tokens_decoder/);
  });

  it('a chat template\'s bos_token / eos_token are the tokenizer files\' alone (config.json\'s ids are not rendered, as in transformers)', async () => {
    const dir = mkdtempSync(path.join(tmp, 'tmpl-'));
    for (const f of ['tokenizer.json', 'config.json']) copyFileSync(path.join(FIXTURES, 'llama-tiny-tied', f), path.join(dir, f));
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ bos_token }}{{ messages[0].content }}' }));
    let tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.bosFrom]).toEqual([1, 'config.json']); // (still the id a Llama prompt starts with)
    expect([textTokenizer(tok).bosToken, textTokenizer(tok).eosToken]).toEqual([null, null]);
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: '{{ bos_token }}', bos_token: '<|padding|>', eos_token: '<|endoftext|>' }));
    tok = await loadTokenizer(dir);
    expect([textTokenizer(tok).bosToken, textTokenizer(tok).eosToken]).toEqual(['<|padding|>', '<|endoftext|>']);
    // A tokenizer class's own defaults where the config names none (GPTNeoXTokenizerFast: <|endoftext|> both),
    // over config.json's ids; a class default the vocabulary lacks (Llama's <s>) leaves config.json's.
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'GPTNeoXTokenizerFast' }));
    tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId, tok.bosFrom, textTokenizer(tok).bosToken]).toEqual([0, 0, 'the tokenizer files', '<|endoftext|>']);
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'LlamaTokenizerFast' }));
    tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId, tok.bosFrom, textTokenizer(tok).bosToken, textTokenizer(tok).eosPiece]).toEqual([1, 2, 'config.json', null, '!']);
  });

  it('tokenizer classes\' default special tokens where the vocabulary has them (transformers 5.17: LlamaTokenizer <s> / </s>, Qwen2Tokenizer no BOS and <|endoftext|>)', async () => {
    const dir = mkdtempSync(path.join(tmp, 'class-'));
    const json = readJson(path.join(FIXTURES, 'tokenizer.json'));
    const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    json.added_tokens.push(added(384, '<s>'), added(385, '</s>'));
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ bos_token_id: 7, eos_token_id: 8 }));
    const load = async (cfg: object) => { writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg)); return loadTokenizer(dir); };
    for (const cls of ['LlamaTokenizerFast', 'LlamaTokenizer', 'CodeLlamaTokenizerFast']) {
      const tok = await load({ tokenizer_class: cls });
      expect([tok.bosTokenId, tok.eosTokenId, tok.bosFrom, tok.eosFrom, textTokenizer(tok).bosToken, textTokenizer(tok).eosToken], cls)
        .toEqual([384, 385, 'the tokenizer files', 'the tokenizer files', '<s>', '</s>']);
    }
    // A token the config names, or names as null, wins over the class's default.
    let tok = await load({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|padding|>' });
    expect([tok.bosTokenId, tok.eosTokenId]).toEqual([1, 385]);
    tok = await load({ tokenizer_class: 'LlamaTokenizerFast', bos_token: null });
    expect([tok.bosTokenId, textTokenizer(tok).bosToken, tok.eosTokenId]).toEqual([undefined, null, 385]);
    tok = await load({ tokenizer_class: 'Qwen2TokenizerFast' });
    expect([tok.eosTokenId, tok.eosFrom, tok.padTokenId, textTokenizer(tok).bosToken]).toEqual([0, 'the tokenizer files', 0, null]);
    // Where the tokenizer files name no BOS, config.json's id is the one a prompt would start with, but a template renders none.
    tok = await load({ eos_token: '<|endoftext|>', chat_template: '[{{ bos_token }}]' });
    expect([tok.bosTokenId, tok.bosFrom, textTokenizer(tok).bosToken]).toEqual([7, 'config.json', null]);
  });

  it('special_tokens_map.json as transformers reads it: over a legacy config, not beside added_tokens_decoder', async () => {
    const dir = mkdtempSync(path.join(tmp, 'map-'));
    copyFileSync(path.join(FIXTURES, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const write = (f: string, cfg: object) => writeFileSync(path.join(dir, f), JSON.stringify(cfg));
    write('special_tokens_map.json', { eos_token: '<|padding|>', additional_special_tokens: ['<|tool|>'] });
    // Legacy (no added_tokens_decoder): the map's keys override the config's; its additional tokens join.
    write('tokenizer_config.json', { tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|endoftext|>', additional_special_tokens: ['<|im_start|>'] });
    let tok = await loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(1);
    expect(tok.encode('<|im_start|><|tool|>', { addSpecialTokens: false })).toEqual([384, 385]);
    // Saved since transformers 4.34 (added_tokens_decoder): the config says everything, the map is not read.
    const entry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
    write('tokenizer_config.json', { eos_token: '<|endoftext|>', added_tokens_decoder: { 0: entry('<|endoftext|>') } });
    tok = await loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.encode('<|tool|>', { addSpecialTokens: false }).length).toBeGreaterThan(1);
    // transformers 5's name for the list, extra_special_tokens, adds as additional_special_tokens does.
    write('tokenizer_config.json', { eos_token: '<|endoftext|>', added_tokens_decoder: { 0: entry('<|endoftext|>') }, extra_special_tokens: ['<|tool|>'] });
    expect((await loadTokenizer(dir)).encode('<|tool|>', { addSpecialTokens: false })).toEqual([384]);
    // ... and in a legacy config's special_tokens_map.json too (transformers 5.17: [384]).
    write('tokenizer_config.json', { tokenizer_class: 'PreTrainedTokenizerFast', eos_token: '<|endoftext|>' });
    write('special_tokens_map.json', { extra_special_tokens: ['<|tool|>'] });
    expect((await loadTokenizer(dir)).encode('<|tool|>', { addSpecialTokens: false })).toEqual([384]);
  });

  it('add_bos_token / add_eos_token against tokenizer.json\'s post-processor: followed, and the disagreement noted', async () => {
    const dir = mkdtempSync(path.join(tmp, 'bos-'));
    const json = readJson(path.join(FIXTURES, 'tokenizer.json'));
    // A post-processor that adds <|endoftext|> first, as Llama's tokenizer.json adds <s>.
    json.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [0], tokens: ['<|endoftext|>'] } } };
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    const write = (cfg: object) => writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|endoftext|>', add_bos_token: true });
    expect((await loadTokenizer(dir)).notes).toEqual([]); // the files agree
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|endoftext|>', add_bos_token: false });
    const tok = await loadTokenizer(dir);
    expect(tok.encode('a', { addSpecialTokens: true })[0]).not.toBe(0);
    expect(tok.notes).toHaveLength(1);
    expect(tok.notes[0]).toMatch(/add_bos_token false disagrees with tokenizer\.json's post-processor \("a" encodes as "a" by the flags.* as "<\|endoftext\|> a" by tokenizer\.json, as transformers 5 does\)/);
    // The same number of ids, other ones (transformers 5.17 keeps the post-processor's [0, 66]; the flags give [1, 66]).
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|padding|>', eos_token: '<|endoftext|>', add_bos_token: true });
    let other = await loadTokenizer(dir);
    expect(other.encode('a', { addSpecialTokens: true })).toEqual([1, 66]);
    expect(other.notes).toHaveLength(1);
    // The flags' ids a prefix of the post-processor's ([EOT, A, EOT]: transformers 5.17 gives [0, 66, 0], the flags [0, 66]).
    const both = { ...json.post_processor, single: [...json.post_processor.single, { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }] };
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ ...json, post_processor: both }));
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|endoftext|>', add_bos_token: true, add_eos_token: false });
    other = await loadTokenizer(dir);
    expect(other.encode('a', { addSpecialTokens: true })).toEqual([0, 66]);
    expect(other.notes).toHaveLength(1);
    writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
    write({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<s>', add_bos_token: true });
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer_config\.json's add_bos_token is set, but its bos_token "<s>" is not in the vocabulary/);
  });

  it('tokenizer_config.json\'s added tokens that tokenizer.json lacks are added as transformers adds them; disagreeing ids are refused', async () => {
    const dir = mkdtempSync(path.join(tmp, 'added-'));
    copyFileSync(path.join(FIXTURES, 'tokenizer.json'), path.join(dir, 'tokenizer.json')); // BPE, ids 0..383
    const write = (cfg: object) => writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    const plain = await loadTokenizer(dir);
    expect(plain.encode('<|im_start|>user', { addSpecialTokens: false }).length).toBeGreaterThan(2); // split into bytes
    const entry = (content: string) => ({ content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true });
    write({ added_tokens_decoder: { 0: entry('<|endoftext|>'), 385: entry('<|im_end|>'), 384: entry('<|im_start|>') },
      additional_special_tokens: ['<|im_start|>', 'ould', '<|tool|>'] });
    const tok = await loadTokenizer(dir);
    const user = plain.encode('user', { addSpecialTokens: false });
    expect(tok.encode('<|im_start|>user<|im_end|>', { addSpecialTokens: false })).toEqual([384, ...user, 385]);
    expect(tok.vocabSize).toBe(387); // <|tool|> took the next id; "ould" kept its vocabulary id, now matched whole
    expect(tok.encode('<|tool|>', { addSpecialTokens: false })).toEqual([386]);
    expect(tok.encode('ould', { addSpecialTokens: false })).toEqual([285]);
    expect(tok.decode([384, ...user, 385], { skipSpecialTokens: true })).toBe('user');
    // A vocabulary as large as Llama 3's or Qwen2's (151,643 here): the next free id is found without spreading it.
    const big = JSON.parse(readFileSync(path.join(FIXTURES, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
    for (let id = 384; id < 151643; id++) big.model.vocab[`<unused_${id}>`] = id;
    const bigDir = mkdtempSync(path.join(tmp, 'added-big-'));
    writeFileSync(path.join(bigDir, 'tokenizer.json'), JSON.stringify(big));
    writeFileSync(path.join(bigDir, 'tokenizer_config.json'), JSON.stringify({ added_tokens_decoder: { 151643: entry('<|endoftext2|>') } }));
    const bigTok = await loadTokenizer(bigDir);
    expect(bigTok.encode('<|endoftext2|>', { addSpecialTokens: false })).toEqual([151643]);
    // An id the rule does not give (385 before 384 is taken), or one tokenizer.json gives another token: refused.
    write({ added_tokens_decoder: { 385: entry('<|im_end|>') } });
    await expect(loadTokenizer(dir)).rejects.toThrow(/tokenizer_config\.json: added_tokens_decoder\["385"\]: "<\|im_end\|>" as id 385, but .*tokenizer\.json would give it id 384/);
    write({ added_tokens_decoder: { 1: entry('<|pad|>') } });
    await expect(loadTokenizer(dir)).rejects.toThrow(/added_tokens_decoder\["1"\]: "<\|pad\|>", but .*tokenizer\.json's added token 1 is "<\|padding\|>"/);
  });

  it('a Gemma checkpoint with only a tokenizer.model is refused (Gemma\'s conversion is not Llama\'s), before the file is read', async () => {
    for (const mt of ['gemma', 'gemma3_text']) {
      const dir = mkdtempSync(path.join(tmp, `gemma-sp-`));
      writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: mt }));
      writeFileSync(path.join(dir, 'tokenizer.model'), 'not a model');
      await expect(loadTokenizer(dir)).rejects.toThrow(/has no tokenizer\.json, and srk converts a tokenizer\.model only as Llama's and Mistral's .*Gemma's conversion differs/);
    }
    // (A Llama's goes on to read the file: here a bad one.)
    const llama = mkdtempSync(path.join(tmp, 'llama-sp-'));
    writeFileSync(path.join(llama, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    writeFileSync(path.join(llama, 'tokenizer.model'), 'not a model');
    await expect(loadTokenizer(llama)).rejects.not.toThrow(/Gemma's conversion/);
  });

  it('a directory without tokenizer.json or tokenizer.model is a clear error', async () => {
    await expect(loadTokenizer(path.join(tmp, 'missing'))).rejects.toThrow(/missing has neither tokenizer\.json nor tokenizer\.model/);
  });
});

describe('tokenizer: Pythia (GPT-NeoX-20B) tokenizer', () => {
  const file = sharedFile('data/pythia-20b-tokenizer.json');
  // Skipped (and reported as skipped) without ../shared/data/pythia-20b-tokenizer.json beside the clone.
  it.skipIf(!file)('reproduces the Rust ids and decodings of pythia_tokenizer_expected.json (needs ../shared/data)', async () => {
    const tok = await loadTokenizer(file!);
    checkCases(tok, readJson(path.join(FIXTURES, 'pythia_tokenizer_expected.json')) as Case[], false);
    expect(tok.vocabSize).toBe(50277);
    // Ids of the padded embedding rows (50277..50303) have no token: skipped like Rust does.
    expect(tok.decode([12092, 50300, 1533])).toBe('Hello world');
  });
});

describe('loadTokenizer: one parse while the files are unchanged', () => {
  it('the same tokenizer for the same files; a file changed (even within the clock\'s tick) is read again', async () => {
    const dir = mkdtempSync(path.join(tmp, 'memo-'));
    copyFileSync(path.join(FIXTURES, 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    const a = await loadTokenizer(dir);
    expect(await loadTokenizer(dir)).toBe(a);
    expect(await loadTokenizer(`${dir}/`)).toBe(a); // the same directory, spelt otherwise
    expect(a.cleanUpTokenizationSpaces).toBe(false);
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ clean_up_tokenization_spaces: true }));
    const b = await loadTokenizer(dir);
    expect(b).not.toBe(a);
    expect(b.cleanUpTokenizationSpaces).toBe(true);
    writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ clean_up_tokenization_spaces: false }));
    expect((await loadTokenizer(dir)).cleanUpTokenizationSpaces).toBe(false);
    // A directory that fails is not kept as failed: fixed, it loads.
    const bad = mkdtempSync(path.join(tmp, 'memo-bad-'));
    await expect(loadTokenizer(bad)).rejects.toThrow(/neither tokenizer\.json nor tokenizer\.model/);
    copyFileSync(path.join(FIXTURES, 'tokenizer.json'), path.join(bad, 'tokenizer.json'));
    expect((await loadTokenizer(bad)).vocabSize).toBe(a.vocabSize);
  });
});

describe('tokenizer: a word outside a WordLevel vocabulary', () => {
  const wordLevel = (unk: string | undefined) => ({ version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null,
    pre_tokenizer: { type: 'WhitespaceSplit' }, post_processor: null, decoder: null, model: { type: 'WordLevel', vocab: { '<unk>': 0, a: 1, b: 2 }, unk_token: unk } });
  it('is its unk_token, as the Rust library gives it (the JavaScript one gives no id); without one, an error naming the text', () => {
    expect(new SrkTokenizer(wordLevel('<unk>')).encode('a c b', { addSpecialTokens: false })).toEqual([1, 0, 2]);
    expect(() => new SrkTokenizer(wordLevel(undefined)).encode('a c b', { addSpecialTokens: false }))
      .toThrow(/the tokenizer gives no id for a word of "a c b" \(outside its vocabulary, and its model names no unk_token\)/);
  });
});
