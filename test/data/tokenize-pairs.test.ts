import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tokenizer } from '@huggingface/tokenizers';
import { describe, expect, it } from 'vitest';
import { loadPreferenceRows, type PreferenceRow } from '../../src/data/preference-rows.js';
import {
  formatTokenizeStats, loadTokenizedPairs, tokenizePairs, tokenizeSft, truncatePromptCompletions, type TextTokenizer,
} from '../../src/data/tokenize-pairs.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { textTokenizer } from '../../src/model/tokenizer.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sharedData = path.resolve(repoRoot, '../shared/data');
const fixtures = path.join(repoRoot, 'test/fixtures/data');

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Character-level fake: "<s>" -> 1 (BOS), "</s>" -> 2 (EOS), any other character -> code + 10. */
function fakeTokenizer(o: { addsBos: boolean; eos?: number | null; addsEos?: boolean }): TextTokenizer {
  return {
    encode(text, { addSpecialTokens }) {
      const ids = [...text.matchAll(/<s>|<\/s>|[\s\S]/g)].map((m) => (m[0] === '<s>' ? 1 : m[0] === '</s>' ? 2 : m[0].codePointAt(0)! + 10));
      return addSpecialTokens ? [...(o.addsBos ? [1] : []), ...ids, ...(o.addsEos ? [2] : [])] : ids;
    },
    eosTokenId: o.eos === undefined ? 2 : o.eos,
    bosTokenId: o.addsBos ? 1 : null,
    eosToken: o.eos === undefined || o.eos === 2 ? '</s>' : null,
  };
}
const chars = (s: string): number[] => [...s].map((c) => c.codePointAt(0)! + 10);

/** The fixture byte-level BPE through @huggingface/tokenizers (adds no BOS; <|endoftext|> = 0). */
function hfTokenizer(file: string, eos: string): TextTokenizer {
  const hf = new Tokenizer(JSON.parse(readFileSync(file, 'utf8')) as object, {});
  return {
    encode: (text, o) => hf.encode(text, { add_special_tokens: o.addSpecialTokens }).ids,
    eosTokenId: hf.token_to_id(eos) ?? null,
    bosTokenId: null,
  };
}

describe('truncatePromptCompletions (original DPO rule)', () => {
  const o = { maxLength: 32, maxPromptLength: 16 };

  it('fits: nothing changes (a total of exactly maxLength fits)', () => {
    const p = range(0, 20); const c = range(100, 112); const r = range(200, 203);
    const t = truncatePromptCompletions(p, [c, r], o);
    expect(t).toEqual({ prompt: p, completions: [c, r], promptTruncated: false, completionTruncated: false, truncated: false });
  });

  it('too long: the prompt keeps its last maxPromptLength tokens; responses fit then and stay whole', () => {
    const p = range(0, 30); const c = range(100, 110); const r = range(200, 204);
    const t = truncatePromptCompletions(p, [c, r], o);
    expect(t.prompt).toEqual(range(14, 30));
    expect(t.completions).toEqual([c, r]);
    expect([t.promptTruncated, t.completionTruncated, t.truncated]).toEqual([true, false, true]);
    expect(p).toEqual(range(0, 30)); // input untouched
  });

  it('still too long after the prompt cut: both responses keep their first maxLength - maxPromptLength tokens', () => {
    const p = range(0, 30); const c = range(100, 125); const r = range(200, 205);
    const t = truncatePromptCompletions(p, [c, r], o);
    expect(t.prompt).toEqual(range(14, 30));
    expect(t.completions).toEqual([range(100, 116), r]);
    expect([t.promptTruncated, t.completionTruncated, t.truncated]).toEqual([true, true, true]);
  });

  it('short prompt, long response: the prompt stays, responses are cut to maxLength - maxPromptLength (not to what is left)', () => {
    const p = range(0, 5); const c = range(100, 140); const r = range(200, 240);
    const t = truncatePromptCompletions(p, [c, r], o);
    expect(t.prompt).toEqual(p);
    expect(t.completions).toEqual([range(100, 116), range(200, 216)]);
    expect([t.promptTruncated, t.completionTruncated]).toEqual([false, true]);
  });

  it('keep_start keeps the beginning; a pinned BOS stays in front with keep_end', () => {
    const p = range(0, 30); const c = range(100, 110);
    expect(truncatePromptCompletions(p, [c], { ...o, promptTruncation: 'keep_start' }).prompt).toEqual(range(0, 16));
    expect(truncatePromptCompletions(p, [c], { ...o, pinnedPrefix: 1 }).prompt).toEqual([0, ...range(15, 30)]);
  });

  it('rejects bad limits', () => {
    expect(() => truncatePromptCompletions([1], [[2]], { maxLength: 16, maxPromptLength: 16 })).toThrow(/maxPromptLength must be an integer in \[1, maxLength\), got 16/);
    expect(() => truncatePromptCompletions([1], [[2]], { maxLength: 16, maxPromptLength: 0 })).toThrow(/maxPromptLength must be an integer in \[1, maxLength\), got 0/);
    expect(() => truncatePromptCompletions([1], [[2]], { maxLength: 16.5, maxPromptLength: 4 })).toThrow(/maxLength must be an integer >= 2, got 16.5/);
  });
});

describe('tokenizePairs', () => {
  const row = (prompt: string, chosen: string, rejected: string): PreferenceRow => ({ prompt, chosen, rejected });

  it('prompt with special tokens (BOS), completions without, EOS appended; --no-eos leaves it off', () => {
    const tok = fakeTokenizer({ addsBos: true });
    const { pairs, stats } = tokenizePairs([row('Q?', ' yes', ' no')], tok);
    expect(pairs[0]).toEqual({ promptIds: [1, ...chars('Q?')], chosenIds: [...chars(' yes'), 2], rejectedIds: [...chars(' no'), 2], truncated: false });
    expect(stats).toMatchObject({ rows: 1, truncated: 0, eosAlreadyPresent: 0, doubleBosRemoved: 0 });
    const noEos = tokenizePairs([row('Q?', ' yes', ' no')], tok, { noEos: true }).pairs[0];
    expect(noEos).toEqual({ promptIds: [1, ...chars('Q?')], chosenIds: chars(' yes'), rejectedIds: chars(' no'), truncated: false });
  });

  it('inContext: a completion is tokenized as it follows its prompt: no dummy prefix of its own; alone where they join inside a word', () => {
    // SentencePiece-like: a text starts with "_" (the dummy prefix), spaces are "_", words are one id each.
    const words = new Map<string, number>();
    const sp: TextTokenizer = {
      encode(text, { addSpecialTokens }) {
        const ids = [...`_${text.replace(/ /g, '_')}`.matchAll(/_[^_]*|[^_]+/g)]
          .map(([w]) => { if (!words.has(w)) words.set(w, 100 + words.size); return words.get(w)!; });
        return addSpecialTokens ? [1, ...ids] : ids;
      },
      eosTokenId: 2, bosTokenId: 1,
    };
    const alone = sp.encode(' Hello there', { addSpecialTokens: false }); // "_" "_Hello" "_there"
    expect(alone).toEqual([words.get('_'), words.get('_Hello'), words.get('_there')]);
    // By default (the fixtures' convention) each completion alone: "_" "_Hello" "_there".
    expect(tokenizePairs([row('Human: hi Assistant:', ' Hello there', ' No')], sp).pairs[0].chosenIds).toEqual([...alone, 2]);
    const { pairs, stats } = tokenizePairs([row('Human: hi Assistant:', ' Hello there', ' No')], sp, { inContext: true });
    // After the prompt " Hello" is "_Hello", as tokenizing the whole text gives it, not "_" "_Hello".
    expect(pairs[0].chosenIds).toEqual([words.get('_Hello'), words.get('_there'), 2]);
    expect(pairs[0].rejectedIds).toEqual([words.get('_No'), 2]);
    expect(stats.completionsAlone).toBe(0);
    // A prompt whose last word the completion continues ("Ans" + "wer"): tokenized alone, counted.
    const glued = tokenizePairs([row('Q: Ans', 'wer: yes', ' no')], sp, { inContext: true });
    expect(glued.pairs[0].chosenIds).toEqual([...sp.encode('wer: yes', { addSpecialTokens: false }), 2]);
    expect(glued.stats.completionsAlone).toBe(1);
    expect(formatTokenizeStats(glued.stats)).toMatch(/1 completions tokenized alone/);
    // Only the prompt's tail takes part: a long prompt gives the same completion ids.
    const long = tokenizePairs([row(`${'word '.repeat(500)}Assistant:`, ' Hello there', ' No')], sp, { inContext: true }).pairs[0];
    expect(long.chosenIds).toEqual(pairs[0].chosenIds);
  });

  it('a tokenizer without EOS needs noEos', () => {
    const tok = fakeTokenizer({ addsBos: false, eos: null });
    expect(() => tokenizePairs([row('Q', 'a', 'b')], tok)).toThrow(/no EOS/);
    expect(tokenizePairs([row('Q', 'a', 'b')], tok, { noEos: true }).pairs[0].chosenIds).toEqual(chars('a'));
  });

  it('chat-rendered text: a doubled BOS becomes one, a completion already ending in EOS gets no second one', () => {
    const tok = fakeTokenizer({ addsBos: true });
    const { pairs, stats } = tokenizePairs([row('<s>[INST] hi [/INST]', 'ok</s>', 'no')], tok);
    expect(pairs[0].promptIds).toEqual([1, ...chars('[INST] hi [/INST]')]);
    expect(pairs[0].chosenIds).toEqual([...chars('ok'), 2]);
    expect(pairs[0].rejectedIds).toEqual([...chars('no'), 2]);
    expect(stats.doubleBosRemoved).toBe(1);
    expect(stats.eosAlreadyPresent).toBe(1);
  });

  it('a chat template\'s rendering takes no special tokens (ChatML writes no BOS); a text prompt loses the EOS add_eos_token appends', () => {
    const tok = fakeTokenizer({ addsBos: true, addsEos: true });
    const chatml: PreferenceRow = { prompt: '<|user|>Q<|assistant|>', chosen: 'yes</s>', rejected: 'no</s>', templated: true };
    const { pairs, stats } = tokenizePairs([chatml, row('Q?', ' yes', ' no'), row('ends with </s>', ' a', ' b')], tok);
    expect(pairs[0].promptIds).toEqual(chars('<|user|>Q<|assistant|>'));
    expect(pairs[1].promptIds).toEqual([1, ...chars('Q?')]);
    // An EOS the text itself writes stays.
    expect(pairs[2].promptIds).toEqual([1, ...chars('ends with '), 2]);
    expect(stats.promptEosRemoved).toBe(2);
    expect(formatTokenizeStats(stats)).toMatch(/2 prompts without the EOS their tokenizer appends \(add_eos_token\)/);
  });

  it('augmented prompt = tokens(refine, no special tokens) ++ the plain prompt ids (truncation), a leading BOS kept in front', () => {
    const tok = fakeTokenizer({ addsBos: true });
    const refine = 'Rate 100. Query:';
    const long = 'x'.repeat(40);
    const { pairs, stats } = tokenizePairs([row('Q?', ' yes', ' no'), row(long, ' a', ' b')], tok, { refinePrompt: refine, maxLength: 24, maxPromptLength: 10 });
    expect(pairs[0].augPromptIds).toEqual([1, ...chars(refine), ...chars('Q?')]);
    expect(pairs[0].augPromptIds).toEqual([1, ...tok.encode(refine, { addSpecialTokens: false }), ...pairs[0].promptIds.slice(1)]);
    // Second row: the prompt (BOS + 40) is cut to BOS + last 9; the refine ids go between the BOS and those.
    expect(pairs[1].promptIds).toEqual([1, ...chars('x'.repeat(9))]);
    expect(pairs[1].augPromptIds).toEqual([1, ...chars(refine), ...pairs[1].promptIds.slice(1)]);
    // An empty refine prompt is refused by name rather than an augmented pass without p.
    expect(() => tokenizePairs([row('Q?', ' yes', ' no')], tok, { refinePrompt: '' })).toThrow(/refine prompt \(--refine-prompt\) "" has no tokens/);
    // Without a BOS (GPT-NeoX's tokenizer adds none) the refine ids simply come first.
    const plain = tokenizePairs([row('Q?', ' yes', ' no')], fakeTokenizer({ addsBos: false }), { refinePrompt: refine }).pairs[0];
    expect(plain.augPromptIds).toEqual([...chars(refine), ...plain.promptIds]);
    expect(pairs[1].truncated).toBe(true);
    // The augmented sequence may exceed maxLength by the refine length, no more.
    const augLen = pairs[1].augPromptIds!.length + Math.max(pairs[1].chosenIds.length, pairs[1].rejectedIds.length);
    expect(augLen).toBeLessThanOrEqual(24 + chars(refine).length);
    expect(stats.refineLength).toBe(chars(refine).length);
  });

  it('a chat row\'s augmented prompt is its own rendering with p in the user turn, tokenized as a prompt; cut prompts fall back', () => {
    const tok = fakeTokenizer({ addsBos: true });
    const chat = (prompt: string, aug: string): PreferenceRow => ({ prompt, augPrompt: aug, chosen: ' yes</s>', rejected: ' no' });
    const rows = [chat('<s>[INST] Q? [/INST]', '<s>[INST] Rate. Query: Q? [/INST]'), chat('[INST] ' + 'x'.repeat(40) + ' [/INST]', '[INST] Rate. Query: ' + 'x'.repeat(40) + ' [/INST]')];
    const { pairs, stats } = tokenizePairs(rows, tok, { refinePrompt: 'Rate. Query:', maxLength: 30, maxPromptLength: 12 });
    // Row 1: the chat template's BOS text and the tokenizer's BOS make one; completions as the plain row's.
    expect(pairs[0].augPromptIds).toEqual([1, ...chars('[INST] Rate. Query: Q? [/INST]')]);
    expect(pairs[0].promptIds).toEqual([1, ...chars('[INST] Q? [/INST]')]);
    expect(pairs[0].chosenIds).toEqual([...chars(' yes'), 2]);
    // Row 2: its prompt was cut, so p goes before the kept ids as for text rows.
    expect(pairs[1].truncated).toBe(true);
    expect(pairs[1].augPromptIds).toEqual([1, ...chars('Rate. Query:'), ...pairs[1].promptIds.slice(1)]);
    expect([stats.refineInUserTurn, stats.refineBeforeCutChat, stats.doubleBosRemoved]).toEqual([1, 1, 1]);
    expect(formatTokenizeStats(stats)).toMatch(/refine prompt 12 tokens \(inside the first user message of 1 chat rows; before the cut prompt of 1 truncated ones\)/);
  });

  it('counts truncated rows over a batch, and scores pass through', () => {
    const tok = fakeTokenizer({ addsBos: false });
    const rows: PreferenceRow[] = [
      row('p'.repeat(10), 'c'.repeat(5), 'r'.repeat(5)),        // fits (10 + 6 <= 32)
      { ...row('p'.repeat(30), 'c'.repeat(5), 'r'.repeat(3)), scoreChosen: 8, scoreRejected: 3 }, // prompt cut
      row('p'.repeat(30), 'c'.repeat(30), 'r'.repeat(3)),       // prompt and completions cut
      row('p'.repeat(3), 'c'.repeat(40), 'r'.repeat(3)),        // completions cut only
      row('p'.repeat(26), 'c'.repeat(5), 'r'.repeat(3)),        // exactly 32: fits
    ];
    const { pairs, stats } = tokenizePairs(rows, tok, { maxLength: 32, maxPromptLength: 16 });
    expect(pairs.map((p) => p.truncated)).toEqual([false, true, true, true, false]);
    expect(stats).toMatchObject({ rows: 5, truncated: 3, promptTruncated: 2, completionTruncated: 2 });
    expect(pairs[1]).toMatchObject({ scoreChosen: 8, scoreRejected: 3 });
    expect(pairs[2].chosenIds).toEqual(chars('c'.repeat(16))); // EOS lost, as in the original
    expect(pairs[3].chosenIds).toHaveLength(16);
    expect(pairs[3].rejectedIds).toEqual([...chars('rrr'), 2]);
    for (const p of pairs) expect(p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length)).toBeLessThanOrEqual(32);
    expect(formatTokenizeStats(stats, { maxLength: 32, maxPromptLength: 16 })).toContain('3 truncated (2 prompts, 2 completions)');
  });

  it('an empty prompt, or an empty response without EOS (no tokens), is an error', () => {
    expect(() => tokenizePairs([row('', 'a', 'b')], fakeTokenizer({ addsBos: false }))).toThrow(/prompt has no tokens/);
    expect(() => tokenizePairs([row('Q', '', 'b')], fakeTokenizer({ addsBos: false }), { noEos: true })).toThrow(/chosen has no tokens \(an empty response and no EOS/);
    expect(() => tokenizePairs([row('Q', 'a', '')], fakeTokenizer({ addsBos: false }), { noEos: true })).toThrow(/rejected has no tokens/);
    // With EOS an empty response is the EOS alone (the pair says: stop at once).
    expect(tokenizePairs([row('Q', '', 'b')], fakeTokenizer({ addsBos: false })).pairs[0].chosenIds).toEqual([2]);
  });

  it('a chat template\'s turn holding EOS before a newline gets no second EOS; EOS text inside a text response is counted', () => {
    const tok = fakeTokenizer({ addsBos: true });
    // Zephyr / ChatML-like: the end-of-turn token, then the template's newline.
    const chat: PreferenceRow = { prompt: '<s>Q', chosen: 'yes</s>\n', rejected: 'no</s>\n', templated: true };
    const { pairs, stats } = tokenizePairs([chat, row('Q', 'a</s>b', 'c')], tok);
    expect(pairs[0].chosenIds).toEqual([...chars('yes'), 2, ...chars('\n')]);
    expect(pairs[0].rejectedIds).toEqual([...chars('no'), 2, ...chars('\n')]);
    // A text row: the same text gains an EOS after the newline (it is text, not a template's turn).
    expect(tokenizePairs([row('Q', 'yes</s>\n', 'no')], tok).pairs[0].chosenIds).toEqual([...chars('yes'), 2, ...chars('\n'), 2]);
    expect(pairs[1].chosenIds).toEqual([...chars('a'), 2, ...chars('b'), 2]);
    expect(stats).toMatchObject({ eosAlreadyPresent: 2, eosInsideText: 1 });
    expect(formatTokenizeStats(stats)).toMatch(/2 completions already held their EOS; 1 completions with the EOS token inside their text/);
    // A turn that ends with its own end-of-turn marker, not the EOS (Gemma's "<end_of_turn>\n"), gets the EOS, also
    // where the response's text holds the EOS string (it was taken as the turn's EOS: that row alone went without).
    const gemma: PreferenceRow = { prompt: '<s>Q', chosen: 'see </s> here<e>\n', rejected: 'no<e>\n', templated: true };
    const g = tokenizePairs([gemma], tok).pairs[0];
    expect(g.chosenIds).toEqual([...chars('see '), 2, ...chars(' here<e>\n'), 2]);
    expect(g.rejectedIds).toEqual([...chars('no<e>\n'), 2]);
    // The same where only config.json named the EOS id (no eos_token for the template, the id's text all the same).
    const fromConfig = { ...tok, eosToken: null, eosPiece: '</s>' };
    expect(tokenizePairs([gemma], fromConfig).pairs[0].chosenIds).toEqual(g.chosenIds);
    expect(tokenizePairs([chat], fromConfig).pairs[0].chosenIds).toEqual([...chars('yes'), 2, ...chars('\n')]);
  });

  it('SFT variant: prompt + chosen only, same rules', () => {
    const tok = fakeTokenizer({ addsBos: true });
    const { rows, stats } = tokenizeSft([{ prompt: 'Q', chosen: ' a' }, { prompt: 'p'.repeat(30), chosen: 'c'.repeat(30) }], tok, { maxLength: 32, maxPromptLength: 16, refinePrompt: 'ignored' });
    expect(rows[0]).toEqual({ promptIds: [1, ...chars('Q')], completionIds: [...chars(' a'), 2], truncated: false });
    expect(rows[1].promptIds).toEqual([1, ...chars('p'.repeat(15))]);
    expect(rows[1].completionIds).toEqual(chars('c'.repeat(16)));
    expect(stats).toMatchObject({ rows: 2, truncated: 1, refineLength: 0 });
  });
});

describe('fixture tokenizer: ids equal the Hugging Face fixtures', () => {
  const tokFile = path.join(fixtures, 'fixture-tokenizer.json');
  const pairsFile = path.join(fixtures, 'gpt-neox-tiny_pairs.jsonl');
  for (const model of ['gpt-neox-tiny', 'mistral-tiny', 'llama-tiny-tied']) {
    const expFile = path.join(repoRoot, 'test/fixtures/hf', model, 'expected.json');
    it.skipIf(!existsSync(expFile))(`${model}: prompt/chosen/rejected ids and refine ids (no EOS, no BOS)`, async () => {
      interface Exp { refine_prompt: string; refine_prompt_ids: number[]; pairs: { prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[] }[] }
      const e = JSON.parse(readFileSync(expFile, 'utf8')) as Exp;
      const tok = hfTokenizer(tokFile, '<|endoftext|>');
      const { rows, stats: ns } = await loadPreferenceRows(pairsFile);
      expect(ns.byShape.text).toBe(e.pairs.length);
      const { pairs, stats } = tokenizePairs(rows, tok, { noEos: true, refinePrompt: e.refine_prompt });
      expect(stats.truncated).toBe(0);
      expect(pairs).toHaveLength(e.pairs.length);
      pairs.forEach((p, i) => {
        expect(p.promptIds).toEqual(e.pairs[i].prompt_ids);
        expect(p.chosenIds).toEqual(e.pairs[i].chosen_ids);
        expect(p.rejectedIds).toEqual(e.pairs[i].rejected_ids);
        expect(p.augPromptIds).toEqual([...e.refine_prompt_ids, ...e.pairs[i].prompt_ids]);
      });
      // With EOS (<|endoftext|> = 0) each completion gains exactly that id.
      const withEos = tokenizePairs(rows, tok).pairs;
      withEos.forEach((p, i) => expect(p.chosenIds).toEqual([...e.pairs[i].chosen_ids, 0]));
    });
  }
});

describe('loadTokenizedPairs', () => {
  it('chat rows use the tokenizer\'s chat template and special-token strings', async () => {
    const tok: TextTokenizer = {
      ...fakeTokenizer({ addsBos: true }),
      chatTemplate: "{{ bos_token }}{% for m in messages %}{% if m.role == 'user' %}{{ '[INST] ' + m.content + ' [/INST]' }}{% else %}{{ m.content + eos_token }}{% endif %}{% endfor %}",
      bosToken: '<s>', eosToken: '</s>',
    };
    const r = await loadTokenizedPairs(path.join(fixtures, 'chat-rows.jsonl'), tok, { refinePrompt: 'R:' });
    // The refinement prompt goes inside the user's turn (the augmented prompt is rendered again).
    expect(r.rows[0]).toEqual({ prompt: '<s>[INST] What is 2+2? [/INST]', augPrompt: '<s>[INST] R: What is 2+2? [/INST]', chosen: '4</s>', rejected: '5</s>',
      scoreChosen: 9, scoreRejected: 2.5, templated: true });
    expect(r.pairs[0]).toEqual({
      promptIds: [1, ...chars('[INST] What is 2+2? [/INST]')], chosenIds: [...chars('4'), 2], rejectedIds: [...chars('5'), 2],
      augPromptIds: [1, ...chars('[INST] R: What is 2+2? [/INST]')], scoreChosen: 9, scoreRejected: 2.5, truncated: false,
      source: { file: path.join(fixtures, 'chat-rows.jsonl'), line: 1 },
    });
    expect(r.normalize.byShape.chat).toBe(6);
    // (The rendering is tokenized without special tokens, as apply_chat_template does: its BOS is the template's.)
    expect(r.tokenize).toMatchObject({ rows: 6, doubleBosRemoved: 0, eosAlreadyPresent: 12, refineInUserTurn: 6, refineBeforeCutChat: 0 });
    expect(r.report).toMatch(/chat-rows\.jsonl: 6 rows \(text 0, hh 0, chat 6\)/);
  });

  it('several files read as one, in order: the pairs of their concatenation, each bad row named by its own file and number', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'srk-files-'));
    try {
      const tok = fakeTokenizer({ addsBos: false });
      const rows = ['a', 'b', 'c', 'd', 'e'].map((x) => ({ prompt: `Q${x}?`, chosen: ` ${x}!`, rejected: ` no ${x}` }));
      const write = (name: string, text: string) => { const f = path.join(dir, name); writeFileSync(f, text); return f; };
      const whole = write('whole.jsonl', rows.map((r) => JSON.stringify(r)).join('\n'));
      const first = write('first.jsonl', rows.slice(0, 2).map((r) => JSON.stringify(r)).join('\n'));
      const second = write('second.json', JSON.stringify(rows.slice(2), null, 2)); // a JSON array: rows, not lines
      const one = await loadTokenizedPairs(whole, tok, { noEos: true });
      const two = await loadTokenizedPairs([first, second], tok, { noEos: true });
      // The same pairs, each named by its own file and line (a JSON array's row number).
      const bare = (ps: typeof one.pairs) => ps.map(({ source: _s, ...p }) => p);
      expect(bare(two.pairs)).toEqual(bare(one.pairs));
      expect(two.pairs.map((p) => p.source)).toEqual([[first, 1], [first, 2], [second, 1], [second, 2], [second, 3]].map(([file, line]) => ({ file, line })));
      expect(two.report).toMatch(/first\.jsonl \+ .*second\.json: 5 rows/);
      // A row that reads but has no tokens (an empty response with --no-eos) fails at tokenizing: named by its file.
      const bad = write('bad.json', JSON.stringify([rows[2], { ...rows[3], chosen: '' }]));
      await expect(loadTokenizedPairs([first, bad], tok, { noEos: true })).rejects.toThrow(/bad\.json: row 2: /);
      const skipped = await loadTokenizedPairs([bad, first], tok, { noEos: true, skipBadRows: true });
      expect([skipped.pairs.length, skipped.read.badRows]).toEqual([3, 1]);
      expect(skipped.read.badReasons[0]).toMatch(/bad\.json: row 2: /);
      // A malformed line: the reader names its file and line.
      const broken = write('broken.jsonl', `${JSON.stringify(rows[0])}\nnot json\n`);
      await expect(loadTokenizedPairs([first, broken], tok)).rejects.toThrow(/broken\.jsonl:2: invalid JSON/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('loadTokenizedPairs: rows that read but do not tokenize', () => {
  it('name the file and line, or are skipped and counted with skipBadRows (rows and pairs stay aligned)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'srk-tok-rows-'));
    try {
      const file = path.join(dir, 'pairs.jsonl');
      writeFileSync(file, [
        { prompt: 'Q1', chosen: ' a', rejected: ' b' }, { prompt: '', chosen: ' a', rejected: ' b' }, {},
        { prompt: 'Q4', chosen: '', rejected: ' b' }, { prompt: 'Q5', chosen: ' c', rejected: ' d' },
      ].map((o) => JSON.stringify(o)).join('\n') + '\n');
      const tok = fakeTokenizer({ addsBos: false });
      const first = path.join(dir, 'first.jsonl');
      writeFileSync(first, `${JSON.stringify({ prompt: 'Q1', chosen: ' a', rejected: ' b' })}\n\n${JSON.stringify({ prompt: 'Q3', chosen: '', rejected: ' b' })}\n`);
      await expect(loadTokenizedPairs(first, tok, { noEos: true })).rejects.toThrow(/first\.jsonl:3: chosen has no tokens/);
      const calls: [number, number][] = [];
      const r = await loadTokenizedPairs(file, tok, { noEos: true, skipBadRows: true, onProgress: (d, t) => calls.push([d, t]) });
      expect(calls).toEqual([[1, 4], [4, 4]]); // every 1024 rows and the last (the 4 that read)
      expect(r.rows.map((x) => x.prompt)).toEqual(['Q1', 'Q5']);
      expect(r.pairs.map((x) => x.chosenIds)).toEqual([chars(' a'), chars(' c')]);
      expect(r.read).toMatchObject({ rows: 2, badRows: 3 });
      // The lines that do not read are found first (reading), then those that do not tokenize.
      expect(r.read.badReasons).toEqual([
        expect.stringMatching(/pairs\.jsonl:3: /), expect.stringMatching(/pairs\.jsonl:2: a prompt has no tokens/),
        expect.stringMatching(/pairs\.jsonl:4: chosen has no tokens/),
      ]);
      expect(r.report).toMatch(/3 bad lines skipped/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('past the model\'s positions (prompt + the longer completion; the augmented prompt where it is scored) or its vocabulary: named by line, or skipped', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'srk-tok-pos-'));
    try {
      const file = path.join(dir, 'pairs.jsonl');
      // Lengths with EOS (no BOS): 3 + 3 = 6; 3 + 11 = 14 (the rejected is the longer); 3 + 4 = 7.
      writeFileSync(file, [
        { prompt: 'Q1:', chosen: ' a', rejected: ' b' }, { prompt: 'Q2:', chosen: ' a', rejected: ' 123456789' },
        { prompt: 'Q3:', chosen: ' ab', rejected: ' c' },
      ].map((o) => JSON.stringify(o)).join('\n') + '\n');
      const tok = fakeTokenizer({ addsBos: false });
      await expect(loadTokenizedPairs(file, tok, { positions: { max: 13, augmented: false } }))
        .rejects.toThrow(/pairs\.jsonl:2: prompt \+ completion has 14 tokens, more than the model's max_position_embeddings 13/);
      expect((await loadTokenizedPairs(file, tok, { positions: { max: 14, augmented: false } })).pairs).toHaveLength(3);
      // With a 3-token refine prompt: 3 + 3 + 11 = 17 tokens, counted only where the augmented pass runs.
      const o = { refinePrompt: 'Now', positions: { max: 14, augmented: true } };
      await expect(loadTokenizedPairs(file, tok, o)).rejects.toThrow(/pairs\.jsonl:2: its augmented sequence \(refine prompt \+ prompt \+ completion\) has 17 tokens/);
      const r = await loadTokenizedPairs(file, tok, { ...o, skipBadRows: true });
      expect(r.rows.map((x) => x.prompt)).toEqual(['Q1:', 'Q3:']);
      expect(r.read).toMatchObject({ rows: 2, badRows: 1 });
      // SFT rows: the rejected response does not count.
      expect((await loadTokenizedPairs(file, tok, { sft: true, positions: { max: 7, augmented: false } })).pairs).toHaveLength(3);
      // A token id past the model's embedding rows (here 'c', id 109, in line 3) is its row's error too.
      await expect(loadTokenizedPairs(file, tok, { vocabSize: 109 })).rejects.toThrow(/pairs\.jsonl:3: token id 109 is past the model's vocab_size 109/);
      expect((await loadTokenizedPairs(file, tok, { vocabSize: 110 })).pairs).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('SFT pairs (sft): prompt + chosen alone', () => {
  const row = (prompt: string, chosen: string, rejected: string): PreferenceRow => ({ prompt, chosen, rejected });
  it('the rejected response neither truncates the chosen one nor makes the row bad', async () => {
    const tok = fakeTokenizer({ addsBos: true });
    const rows = [row('Q', ' ' + 'c'.repeat(20), ' ' + 'r'.repeat(40)), row('p'.repeat(30), ' ' + 'c'.repeat(30), ' r')];
    const o = { maxLength: 32, maxPromptLength: 16 };
    const { pairs, stats } = tokenizePairs(rows, tok, { ...o, sft: true, refinePrompt: 'R:' });
    const sft = tokenizeSft(rows, tok, o).rows;
    pairs.forEach((p, i) => {
      expect(p).toMatchObject({ promptIds: sft[i].promptIds, chosenIds: sft[i].completionIds, rejectedIds: [], truncated: sft[i].truncated });
      expect(p.augPromptIds).toBeUndefined();
    });
    // Row 0 fits as prompt + chosen (2 + 22 ids): whole, with its EOS; as a pair the 42-id rejected cut it.
    expect(pairs[0].chosenIds).toEqual([...chars(' ' + 'c'.repeat(20)), 2]);
    expect(tokenizePairs(rows, tok, o).pairs[0].chosenIds).toHaveLength(16);
    expect(stats).toMatchObject({ rows: 2, truncated: 1, refineLength: 0 }); // no augmented prompt for SFT
    // An empty rejected response with noEos is no error for SFT (it is for a preference pair).
    const empty = [row('Q', ' a', '')];
    expect(tokenizePairs(empty, tok, { noEos: true, sft: true }).pairs[0].chosenIds).toEqual(chars(' a'));
    expect(() => tokenizePairs(empty, tok, { noEos: true })).toThrow(/rejected has no tokens/);
  });
});

describe('completions in context (inContext), with real tokenizers (shared data)', () => {
  const mistral = path.join(sharedData, 'mistral_v0.1_tokenizer.model');
  const pythia = path.join(sharedData, 'pythia-20b-tokenizer.json');
  const hh = path.join(sharedData, 'hh-rlhf_helpful-base_test.jsonl.gz');
  it.skipIf(!existsSync(mistral) || !existsSync(pythia) || !existsSync(hh))('inContext, Mistral\'s SentencePiece: " Hello" after "Assistant:" as the whole text has it; Pythia: the same ids as alone', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'srk-sp-'));
    try {
      copyFileSync(mistral, path.join(dir, 'tokenizer.model'));
      const sp = textTokenizer(await loadTokenizer(dir));
      const prompt = '\n\nHuman: Hi\n\nAssistant:';
      const { pairs } = tokenizePairs([{ prompt, chosen: ' Hello there', rejected: ' No' }], sp, { noEos: true, inContext: true });
      const whole = sp.encode(prompt + ' Hello there', { addSpecialTokens: true });
      expect([...pairs[0].promptIds, ...pairs[0].chosenIds]).toEqual(whole);
      expect(sp.encode(' Hello there', { addSpecialTokens: false }).length).toBe(pairs[0].chosenIds.length + 1); // alone: a lone "▁" first
      // Byte-level BPE splits at the spaces where HH's prompts and responses meet: nothing changes there.
      const bpe = hfTokenizer(pythia, '<|endoftext|>');
      const { rows } = await loadPreferenceRows(hh);
      const some = rows.slice(0, 300);
      const r = tokenizePairs(some, bpe, { noEos: true, maxLength: 100000, maxPromptLength: 99999, inContext: true });
      some.forEach((row, i) => expect(r.pairs[i].chosenIds).toEqual(bpe.encode(row.chosen, { addSpecialTokens: false })));
      expect(r.stats.completionsAlone).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Pythia tokenizer on HH-RLHF (shared data)', () => {
  const tokFile = path.join(sharedData, 'pythia-20b-tokenizer.json');
  const hhFile = path.join(sharedData, 'hh-rlhf_harmless-base_test.jsonl.gz');
  it.skipIf(!existsSync(tokFile) || !existsSync(hhFile))('harmless-base: limits hold, truncation counts match the untruncated lengths', async () => {
    const tok = hfTokenizer(tokFile, '<|endoftext|>');
    expect(tok.eosTokenId).toBe(0);
    const { rows } = await loadPreferenceRows(hhFile);
    const { pairs, stats } = tokenizePairs(rows, tok);
    // Independent count from the untruncated lengths (+1 for EOS).
    let expectTrunc = 0;
    let expectPromptCut = 0;
    let expectCompletionCut = 0;
    for (const r of rows) {
      const p = tok.encode(r.prompt, { addSpecialTokens: true }).length;
      const longest = Math.max(tok.encode(r.chosen, { addSpecialTokens: false }).length, tok.encode(r.rejected, { addSpecialTokens: false }).length) + 1;
      if (p + longest <= 512) continue;
      expectTrunc++;
      if (p > 256) expectPromptCut++;
      if (Math.min(p, 256) + longest > 512) expectCompletionCut++;
    }
    expect(stats.rows).toBe(rows.length);
    expect(stats.truncated).toBe(expectTrunc);
    expect(stats.promptTruncated).toBe(expectPromptCut);
    expect(stats.completionTruncated).toBe(expectCompletionCut);
    for (const p of pairs) {
      expect(p.promptIds.length + Math.max(p.chosenIds.length, p.rejectedIds.length)).toBeLessThanOrEqual(512);
      if (!p.truncated) expect(p.chosenIds[p.chosenIds.length - 1]).toBe(0);
    }
    console.log(`harmless-base, Pythia tokenizer: ${formatTokenizeStats(stats)}`);
  });
});
