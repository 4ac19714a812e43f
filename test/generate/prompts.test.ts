// The prompt srk generate gives the model for each row shape, against training's own tokenization
// (PairTokenizer): the plain prompt ids, and with --augmented the Sr losses' p ⊕ x ids, for text rows
// (p's tokens after a tokenizer's BOS) and chat rows (p inside the first user message); a long prompt
// keeps its end and p.
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SrkTokenizer, loadTokenizer, textTokenizer } from '../../src/model/tokenizer.js';
import { PairTokenizer } from '../../src/data/tokenize-pairs.js';
import { PreferenceNormalizer } from '../../src/data/preference-rows.js';
import { PromptReader, promptInput } from '../../src/generate/prompts.js';
import { FIXTURES_HF as FIX } from '../helpers/models.js';

const P = 'Rate this 100 of 100. Query:';
const TEMPLATE = '{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}';

async function tokenizer(dir: string, config?: Record<string, unknown>): Promise<SrkTokenizer> {
  const t = await loadTokenizer(resolve(FIX, dir));
  if (!config) return t;
  return new SrkTokenizer(t.spec.json, { ...t.spec.config, ...config }, t.spec.model, undefined);
}

// The fixtures' tokenizers add no BOS; Llama's and Mistral's real ones do (add_bos_token).
const BOS = { tokenizer_class: 'LlamaTokenizerFast', add_bos_token: true, bos_token: '<|padding|>' }; // (the fixture's bos_token_id 1)

describe('srk generate\'s prompts', () => {
  for (const [dir, config, what] of [['gpt-neox-tiny', undefined, ''], ['llama-tiny-tied', BOS, ', a BOS added'],
    ['llama-tiny-tied', { chat_template: TEMPLATE }, ', a chat template'], ['llama-tiny-tied', { ...BOS, chat_template: TEMPLATE }, ', a BOS and a chat template']] as const) {
    it(`${dir}${what}: plain and augmented ids are training's`, async () => {
      const tok = await tokenizer(dir, config);
      if (config && 'add_bos_token' in config) expect(tok.encode('hi', { addSpecialTokens: true })[0]).toBe(tok.bosTokenId);
      const tt = textTokenizer(tok);
      const train = new PairTokenizer(tt, { refinePrompt: P, maxLength: 512, maxPromptLength: 256 });
      const norm = new PreferenceNormalizer({ chatTemplate: tt.chatTemplate, bosToken: tt.bosToken, eosToken: tt.eosToken, refinePrompt: P });
      const gen = new PairTokenizer(tt, { noEos: true, refinePrompt: P });
      const reader = new PromptReader(tt, P);
      const rows = [
        { prompt: 'What is two plus two?', chosen: ' four', rejected: ' five' },
        { prompt: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello there' }], chosen: [{ role: 'assistant', content: 'hi' }], rejected: [{ role: 'assistant', content: 'go' }] },
      ];
      for (const row of rows) {
        const pair = train.pair(norm.normalize(row));
        const plain = promptInput(reader.read(row), gen, tok, 256, false);
        const aug = promptInput(reader.read(row), gen, tok, 256, true);
        expect(plain.ids).toEqual(pair.promptIds);
        expect(aug.ids).toEqual(pair.augPromptIds);
        expect(aug.truncated || plain.truncated).toBe(false);
      }
      // A long text prompt: its end, after p (and a BOS first where the tokenizer adds one), in 20 tokens.
      const long = { prompt: Array.from({ length: 60 }, (_, i) => `w${i}`).join(' ') };
      const refine = gen.refineIds!;
      const cut = promptInput(reader.read(long), gen, tok, 20 + refine.length, true);
      expect(cut.truncated).toBe(true);
      expect(cut.ids.length).toBe(20 + refine.length);
      const full = gen.encodePrompt(long.prompt);
      const bos = full.pinned ? [full.ids[0]] : [];
      expect(cut.ids).toEqual([...bos, ...refine, ...full.ids.slice(full.ids.length - (20 - bos.length))]);
      expect(cut.prompt.endsWith('w59')).toBe(true);
    });
  }
});
