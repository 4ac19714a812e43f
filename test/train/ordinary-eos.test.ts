// The EOS appended to every completion must be the model's end of text: a checkpoint without
// tokenizer_config.json falls back to config.json's eos_token_id, which may name an ordinary token
// (the Llama fixture's 2 is "!"). That is said, not silently trained on.
import { mkdtempSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { ordinaryEosNote, tokenizerNotes } from '../../src/train/dataset.js';
import { describeRun, tempDir, train } from './helpers.js';

const fixture = (name: string) => join(FIXTURES_HF, name);

describe('an EOS that is an ordinary token', () => {
  const tmp = tempDir();
  it('is warned of, naming its id, its text and where it came from', async () => {
    const tok = await loadTokenizer(fixture('llama-tiny-tied'));
    expect(tok.eosTokenId).toBe(2);
    expect(tok.isSpecial(2)).toBe(false);
    expect(ordinaryEosNote(tok)).toMatch(/^warning: .*id 2 \("!", from config\.json\), is an ordinary token.*--no-eos/);
    expect(tokenizerNotes(tok)).toEqual([ordinaryEosNote(tok)]); // what srk train, eval and logprobs print
    expect(tokenizerNotes(tok, true)).toEqual([]); // --no-eos: no EOS is appended
  });

  it('is not warned of where the EOS is a special token, from either file', async () => {
    expect(ordinaryEosNote(await loadTokenizer(fixture('gpt-neox-tiny')))).toBeUndefined(); // config.json's 0, <|endoftext|>
    const dir = mkdtempSync(join(tmpdir(), 'srk-eos-'));
    for (const f of ['config.json', 'tokenizer.json']) copyFileSync(join(fixture('llama-tiny-tied'), f), join(dir, f));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<|endoftext|>' }));
    const tok = await loadTokenizer(dir);
    expect(tok.eosTokenId).toBe(0);
    expect(tok.eosFrom).toBe('the tokenizer files');
    expect(ordinaryEosNote(tok)).toBeUndefined();
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ eos_token: '?' }));
    expect(ordinaryEosNote(await loadTokenizer(dir))).toMatch(/\("\?", from the tokenizer files\)/);
  });

  it('is nothing to say without an EOS; the tokenizer\'s own notes come first', async () => {
    // tokenizer.json alone (no config.json, no tokenizer_config.json): no EOS id at all.
    const bare = mkdtempSync(join(tmpdir(), 'srk-eos-'));
    copyFileSync(join(FIXTURES_HF, 'tokenizer.json'), join(bare, 'tokenizer.json'));
    const none = await loadTokenizer(bare);
    expect(none.eosTokenId).toBeUndefined();
    expect(ordinaryEosNote(none)).toBeUndefined();
    expect(tokenizerNotes(none)).toEqual([]);
    // add_bos_token against the post-processor (a note of the tokenizer's own), then the ordinary EOS.
    const dir = mkdtempSync(join(tmpdir(), 'srk-eos-'));
    copyFileSync(join(fixture('llama-tiny-tied'), 'config.json'), join(dir, 'config.json'));
    // tokenizer.json's post-processor adds <|endoftext|> first; tokenizer_config.json says add_bos_token false.
    const json = JSON.parse(readFileSync(join(fixture('llama-tiny-tied'), 'tokenizer.json'), 'utf8'));
    const eot = { SpecialToken: { id: '<|endoftext|>', type_id: 0 } };
    json.post_processor = { type: 'TemplateProcessing', single: [eot, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [eot, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [0], tokens: ['<|endoftext|>'] } } };
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'LlamaTokenizerFast', bos_token: '<|endoftext|>', add_bos_token: false }));
    const tok = await loadTokenizer(dir);
    expect(tok.notes).toHaveLength(1);
    expect(tokenizerNotes(tok)).toEqual([tok.notes[0], ordinaryEosNote(tok)]);
    expect(tokenizerNotes(tok, true)).toEqual([tok.notes[0]]);
  });

  it('srk train says it once (the training data\'s load, not the eval data\'s), and not with --no-eos', async () => {
    const out = tmp;
    const args = ['--model', fixture('llama-tiny-tied'), '--data', join(fixture('llama-tiny-tied'), 'pairs.jsonl'), '--eval-data',
      join(fixture('llama-tiny-tied'), 'pairs.jsonl'), '--loss', 'dpo', '--batch-size', '6', '--max-steps', '1'];
    const r = await train([...args, '--out', join(out, 'eos')]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr.match(/warning: the EOS appended to every completion, id 2 \("!", from config\.json\)/g)).toHaveLength(1);
    const n = await train([...args, '--no-eos', '--out', join(out, 'no-eos')]);
    expect(n.code, describeRun(n)).toBe(0);
    expect(n.stderr).not.toMatch(/the EOS appended to every completion/);
  });
});
