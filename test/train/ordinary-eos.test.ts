// The EOS appended to every completion must be the model's end of text: a checkpoint without
// tokenizer_config.json falls back to config.json's eos_token_id, which may name an ordinary token
// (the Llama fixture's 2 is "!"). That is said, not silently trained on.
import { mkdtempSync, copyFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { FIXTURES_HF } from '../helpers/models.js';
import { ordinaryEosNote, tokenizerNotes } from '../../src/train/dataset.js';

const fixture = (name: string) => join(FIXTURES_HF, name);

describe('an EOS that is an ordinary token', () => {
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
});
