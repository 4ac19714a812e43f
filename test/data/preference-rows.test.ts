import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import {
  PreferenceNormalizer, detectShape, formatNormalizeStats, loadPreferenceRows, splitHH,
} from '../../src/data/preference-rows.js';
import { RowShapeError } from '../../src/data/read-jsonl.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const sharedData = path.resolve(repoRoot, '../shared/data');
const fixtures = path.join(repoRoot, 'test/fixtures/data');

const dir = mkdtempSync(path.join(tmpdir(), 'srk-pref-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function write(name: string, rows: unknown[]): string {
  const f = path.join(dir, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
}

// Hand-written templates (the shapes of ChatML and of Mistral's [INST] template).
const CHATML = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
  + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const INST = "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
  + "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% else %}{{ raise_exception('only user and assistant roles') }}{% endif %}{% endfor %}";
// The generation prompt is not a prefix of the full conversation here.
const ODD = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT>{% endif %}";

describe('text rows', () => {
  it('{prompt, chosen, rejected} pass through; scores (three spellings) at the top level or under metadata are kept', () => {
    const n = new PreferenceNormalizer();
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R' })).toEqual({ prompt: 'P', chosen: 'C', rejected: 'R' });
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', score_chosen: 9, score_rejected: 7.5 }))
      .toEqual({ prompt: 'P', chosen: 'C', rejected: 'R', scoreChosen: 9, scoreRejected: 7.5 });
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'C', metadata: { score_chosen: 6, score_rejected: 6 } }))
      .toEqual({ prompt: 'P', chosen: 'C', rejected: 'C', scoreChosen: 6, scoreRejected: 6 });
    // Argilla / distilabel's ratings, and the chosen_score spelling.
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', chosen_rating: 5, rejected_rating: 2.5 }))
      .toEqual({ prompt: 'P', chosen: 'C', rejected: 'R', scoreChosen: 5, scoreRejected: 2.5 });
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', metadata: { chosen_score: 3, rejected_score: 1 } }))
      .toEqual({ prompt: 'P', chosen: 'C', rejected: 'R', scoreChosen: 3, scoreRejected: 1 });
    expect(n.stats.total).toBe(5);
    expect(n.stats.byShape).toEqual({ text: 5, hh: 0, chat: 0 });
    expect(n.stats.withScores).toBe(4);
    expect(n.stats.identicalResponses).toBe(1);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', chosen_rating: 4 })).toThrow(/only one of chosen_rating \/ rejected_rating/);
  });

  it('mistyped and missing fields are errors', () => {
    const n = new PreferenceNormalizer();
    expect(() => n.normalize({ prompt: 'P', chosen: 'C' })).toThrow(/missing field "rejected"/);
    expect(() => n.normalize({ prompt: 3, chosen: 'C', rejected: 'R' })).toThrow(/"prompt" must be a string/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejected: [] })).toThrow(/both be strings or both message lists/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', score_chosen: 'high', score_rejected: 1 })).toThrow(/score_chosen/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R', score_chosen: 1 })).toThrow(/only one of/);
    expect(n.stats.total).toBe(0);
  });

  it('bad rows in a file name file:line, or are skipped and counted', async () => {
    const f = write('bad.jsonl', [{ prompt: 'P', chosen: 'C', rejected: 'R' }, { prompt: 'P', chosen: 'C' }, { chosen: 'no tag', rejected: 'x' }]);
    await expect(loadPreferenceRows(f)).rejects.toThrow(/bad\.jsonl:2: missing field "rejected"/);
    const r = await loadPreferenceRows(f, { skipBadRows: true });
    expect(r.rows).toHaveLength(1);
    expect(r.read.badRows).toBe(2);
    expect(r.read.badReasons[1]).toMatch(/bad\.jsonl:3: no field "prompt", and "chosen" is no HH-RLHF dialogue \(it has no "\\n\\nAssistant:"\): give the prompt in "prompt"/);
    expect(r.stats.total).toBe(1);
    expect(formatNormalizeStats(r.stats, r.read)).toContain('2 bad lines skipped');
  });
});

describe('HH rows', () => {
  it('split at the last "\\n\\nAssistant:" of chosen; rejected split at its own when it does not share the prompt', () => {
    const c = '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: good';
    expect(splitHH(c, '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad')).toEqual({
      prompt: '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:', chosen: ' good', rejected: ' bad', perSide: false, ownPromptDiffers: false,
    });
    expect(splitHH(c, '\n\nHuman: a\n\nAssistant: B\n\nHuman: c\n\nAssistant: bad')).toEqual({
      prompt: '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:', chosen: ' good', rejected: ' bad', perSide: true, ownPromptDiffers: true,
    });
    // Rejected starts with the prompt but its response has a further tag: the whole rest is kept.
    expect(splitHH(c, '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: bad\n\nAssistant: worse')).toEqual({
      prompt: '\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant:', chosen: ' good', rejected: ' bad\n\nAssistant: worse', perSide: false, ownPromptDiffers: true,
    });
    expect(detectShape({ chosen: c, rejected: c })).toBe('hh');
    expect(() => splitHH(c, 'no tag at all')).toThrow(/rejected/);
  });

  for (const name of ['harmless-base', 'helpful-base']) {
    const file = path.join(sharedData, `hh-rlhf_${name}_test.jsonl.gz`);
    it.skipIf(!existsSync(file))(`${name} test split: all rows load; counts match an independent count`, async () => {
      const r = await loadPreferenceRows(file);
      // Independent count: decompress whole, split on newlines, find the prompt by splitting on the tag.
      const TAG = '\n\nAssistant:';
      const raw = gunzipSync(readFileSync(file)).toString('utf8').split('\n').filter((l) => l.trim() !== '');
      let perSide = 0;
      let ownDiffers = 0;
      let empty = 0;
      const expected: { prompt: string; chosen: string; rejected: string }[] = [];
      for (const l of raw) {
        const o = JSON.parse(l) as { chosen: string; rejected: string };
        const parts = o.chosen.split(TAG);
        const chosenResp = parts.pop()!;
        const prompt = parts.join(TAG) + TAG;
        let rejectedResp: string;
        if (o.rejected.substring(0, prompt.length) === prompt) {
          rejectedResp = o.rejected.substring(prompt.length);
        } else {
          perSide++;
          rejectedResp = o.rejected.split(TAG).pop()!;
        }
        const rParts = o.rejected.split(TAG);
        rParts.pop();
        if (rParts.join(TAG) + TAG !== prompt) ownDiffers++;
        if (!/\S/.test(chosenResp) || !/\S/.test(rejectedResp)) empty++;
        expected.push({ prompt, chosen: chosenResp, rejected: rejectedResp });
      }
      expect(r.read.lines).toBe(raw.length);
      expect(r.rows).toHaveLength(raw.length);
      expect(r.stats.total).toBe(raw.length);
      expect(r.stats.byShape).toEqual({ text: 0, hh: raw.length, chat: 0 });
      expect(r.stats.hhPerSideSplit).toBe(perSide);
      expect(r.stats.hhOwnPromptDiffers).toBe(ownDiffers);
      expect(r.stats.emptyResponse).toBe(empty);
      expect(r.stats.withScores).toBe(0);
      expect(r.rows).toEqual(expected);
      expect(perSide).toBeGreaterThan(0);
      for (const row of r.rows) expect(row.prompt.endsWith(TAG)).toBe(true);
      console.log(`${name}: ${formatNormalizeStats(r.stats, r.read)}`);
    });
  }
});

describe('UltraFeedback rows', () => {
  for (const name of ['sample200_eval', 'sample1000_train']) {
    const file = path.join(sharedData, `ultrafeedback_binarized_trl-lib_${name}.jsonl`);
    it.skipIf(!existsSync(file))(`${name}: flattened text rows load with their GPT-4 scores`, async () => {
      const r = await loadPreferenceRows(file);
      const raw = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as { prompt: string; chosen: string; rejected: string; metadata: { score_chosen: number; score_rejected: number } });
      expect(r.rows).toHaveLength(raw.length);
      expect(r.stats.byShape).toEqual({ text: raw.length, hh: 0, chat: 0 });
      expect(r.stats.withScores).toBe(raw.length);
      raw.forEach((o, i) => {
        expect(r.rows[i]).toEqual({
          prompt: o.prompt, chosen: o.chosen, rejected: o.rejected,
          scoreChosen: o.metadata.score_chosen, scoreRejected: o.metadata.score_rejected,
        });
      });
      console.log(`${name}: ${formatNormalizeStats(r.stats, r.read)}`);
    });
  }
});

describe('chat rows', () => {
  const chatFile = path.join(fixtures, 'chat-rows.jsonl');

  it('ChatML template: prompt with the generation prompt, completion = the rest; all chat forms; scores kept', async () => {
    const r = await loadPreferenceRows(chatFile, { chatTemplate: CHATML });
    const u = (s: string): string => `<|im_start|>user\n${s}<|im_end|>\n`;
    const a = (s: string): string => `<|im_start|>assistant\n${s}<|im_end|>\n`;
    const gen = '<|im_start|>assistant\n';
    expect(r.rows[0]).toEqual({ prompt: u('What is 2+2?') + gen, chosen: '4<|im_end|>\n', rejected: '5<|im_end|>\n', templated: true, scoreChosen: 9, scoreRejected: 2.5 });
    expect(r.rows[1]).toEqual({
      prompt: u('Hi') + a('Hello!') + u('Name a colour.') + gen, chosen: 'Blue.<|im_end|>\n', rejected: 'No.<|im_end|>\n', templated: true, scoreChosen: 8, scoreRejected: 1,
    });
    expect(r.rows[2]).toEqual({ prompt: u('Say yes.') + gen, chosen: 'Yes.<|im_end|>\n', rejected: 'No.<|im_end|>\n', templated: true });
    expect(r.rows[3]).toEqual({ prompt: u('Capital of France?') + gen, chosen: 'Paris.<|im_end|>\n', rejected: 'Rome.<|im_end|>\n', templated: true, scoreChosen: 10, scoreRejected: 1 });
    expect(r.rows[4]).toEqual({ prompt: u('Count to two.') + gen, chosen: '1, 2.<|im_end|>\n', rejected: '2, 1.<|im_end|>\n', templated: true });
    // Rejected's own prefix differs: the prompt is taken from chosen.
    expect(r.rows[5]).toEqual({ prompt: u('Pick a number.') + gen, chosen: '7<|im_end|>\n', rejected: 'none<|im_end|>\n', templated: true });
    expect(r.stats.byShape).toEqual({ text: 0, hh: 0, chat: 6 });
    expect(r.stats.withScores).toBe(3);
    expect(r.stats.chatPrefixMismatch).toBe(1);
    expect(r.stats.chatPlainFallback).toBe(0);
  });

  it('[INST] template with bos/eos tokens', () => {
    const n = new PreferenceNormalizer({ chatTemplate: INST, bosToken: '<s>', eosToken: '</s>' });
    const row = n.normalize({
      chosen: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'bye' }, { role: 'assistant', content: 'ciao' }],
      rejected: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'bye' }, { role: 'assistant', content: 'no' }],
    });
    expect(row).toEqual({ prompt: '<s>[INST] hi [/INST]hello</s>[INST] bye [/INST]', chosen: 'ciao</s>', rejected: 'no</s>', templated: true });
    expect(() => n.normalize({ chosen: [{ role: 'system', content: 's' }, { role: 'assistant', content: 'x' }], rejected: [{ role: 'system', content: 's' }, { role: 'assistant', content: 'y' }] }))
      .toThrow(/chat template failed: only user and assistant roles/);
  });

  it('a refinement prompt: augPrompt renders p at the head of the first user message (after a system one); text rows get none', () => {
    const p = 'Rate 100. Query:';
    const sys = { role: 'system', content: 'Be brief.' };
    const conv = (last: string) => [sys, { role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }, { role: 'user', content: 'bye' },
      { role: 'assistant', content: last }];
    const n = new PreferenceNormalizer({ chatTemplate: CHATML, refinePrompt: p });
    const row = n.normalize({ chosen: conv('ciao'), rejected: conv('no') });
    const t = (role: string, c: string) => `<|im_start|>${role}\n${c}<|im_end|>\n`;
    const gen = '<|im_start|>assistant\n';
    expect(row.prompt).toBe(t('system', 'Be brief.') + t('user', 'hi') + t('assistant', 'hello') + t('user', 'bye') + gen);
    expect(row.augPrompt).toBe(t('system', 'Be brief.') + t('user', 'Rate 100. Query: hi') + t('assistant', 'hello') + t('user', 'bye') + gen);
    expect([row.chosen, row.rejected]).toEqual(['ciao<|im_end|>\n', 'no<|im_end|>\n']);
    // A prompt ending in whitespace is joined as it is; no template: "role: content" lines the same way.
    const lines = new PreferenceNormalizer({ refinePrompt: 'Rate 100.\n' }).normalize({ chosen: conv('a'), rejected: conv('b') });
    expect(lines.augPrompt).toBe('system: Be brief.\nuser: Rate 100.\nhi\nassistant: hello\nuser: bye\nassistant:');
    // No user message: no augPrompt (tokenize-pairs puts p before the prompt instead).
    const noUser = new PreferenceNormalizer({ chatTemplate: CHATML, refinePrompt: p })
      .normalize({ chosen: [sys, { role: 'assistant', content: 'x' }], rejected: [sys, { role: 'assistant', content: 'y' }] });
    expect(noUser.augPrompt).toBeUndefined();
    expect(new PreferenceNormalizer({ refinePrompt: p }).normalize({ prompt: 'Q', chosen: 'a', rejected: 'b' }).augPrompt).toBeUndefined();
    expect(new PreferenceNormalizer({ chatTemplate: CHATML }).normalize({ chosen: conv('a'), rejected: conv('b') }).augPrompt).toBeUndefined();
  });

  it('an empty response in a templated chat row counts as empty (its rendering wraps it in the turn\'s markers)', () => {
    const n = new PreferenceNormalizer({ chatTemplate: CHATML });
    n.normalize({ prompt: 'Hi', chosen: [{ role: 'assistant', content: 'Hello!' }], rejected: [{ role: 'assistant', content: ' ' }] });
    n.normalize({ prompt: 'Hi', chosen: [{ role: 'assistant', content: 'Hello!' }], rejected: [{ role: 'assistant', content: 'Go' }] });
    expect(n.stats.emptyResponse).toBe(1);
    const sft = new PreferenceNormalizer({ chatTemplate: CHATML, sft: true });
    sft.normalize({ messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: '' }] });
    expect(sft.stats.emptyResponse).toBe(1);
  });

  it('template whose generation prompt is not a prefix of the full rendering: the row refused, naming where they part (as TRL)', () => {
    const n = new PreferenceNormalizer({ chatTemplate: ODD });
    const row = {
      chosen: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'yes' }],
      rejected: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'no' }],
    };
    expect(() => n.normalize(row)).toThrow(RowShapeError);
    expect(() => n.normalize(row)).toThrow(/chat template: the conversation with its assistant response does not render as the prompt .* they part at character 8, "ASSISTANT>" in the prompt against "assistant: yes\\n"; no completion can be cut/);
    expect(n.stats.total).toBe(0);
  });

  it('no chat template: "role: content" lines by default, an error with chatFallback "error"', async () => {
    const r = await loadPreferenceRows(chatFile);
    expect(r.rows[1]).toEqual({
      prompt: 'user: Hi\nassistant: Hello!\nuser: Name a colour.\nassistant:', chosen: ' Blue.', rejected: ' No.', scoreChosen: 8, scoreRejected: 1,
    });
    expect(r.rows[2]).toEqual({ prompt: 'user: Say yes.\nassistant:', chosen: ' Yes.', rejected: ' No.' });
    expect(r.stats.chatPlainFallback).toBe(6);
    expect(formatNormalizeStats(r.stats)).toMatch(/warning: no chat template/);
    await expect(loadPreferenceRows(chatFile, { chatFallback: 'error' })).rejects.toThrow(/chat-rows\.jsonl:1: chat row, but the tokenizer has no chat template/);
  });

  it('a prompt that chosen / rejected already repeat is not added twice (message lists, whitespace, system first)', () => {
    const n = new PreferenceNormalizer({ chatTemplate: CHATML });
    const U = (c: string) => ({ role: 'user', content: c }); const A = (c: string) => ({ role: 'assistant', content: c });
    const S = { role: 'system', content: 'Be brief.' };
    const t = (role: string, c: string): string => `<|im_start|>${role}\n${c}<|im_end|>\n`;
    const once = t('user', 'hi') + '<|im_start|>assistant\n';
    // A message-list prompt, and chosen / rejected that start with it (or not: then it is prepended).
    expect(n.normalize({ prompt: [U('hi')], chosen: [U('hi'), A('Hello')], rejected: [U('hi'), A('No')] }).prompt).toBe(once);
    expect(n.normalize({ prompt: [U('hi')], chosen: [A('Hello')], rejected: [U('hi'), A('No')] }).prompt).toBe(once);
    // A string prompt repeated with other surrounding whitespace, or after a system message.
    expect(n.normalize({ prompt: 'hi ', chosen: [U('hi'), A('Hello')], rejected: [U('hi'), A('No')] }).prompt).toBe(once);
    expect(n.normalize({ prompt: 'hi', chosen: [S, U('hi'), A('Hello')], rejected: [S, U('hi'), A('No')] }).prompt)
      .toBe(t('system', 'Be brief.') + once);
    // A different first user message is a conversation that the prompt string starts.
    expect(n.normalize({ prompt: 'hi', chosen: [U('more'), A('Hello')], rejected: [U('more'), A('No')] }).prompt)
      .toBe(t('user', 'hi') + t('user', 'more') + '<|im_start|>assistant\n');
    expect(n.stats.chatPrefixMismatch).toBe(0);
  });

  it('malformed chat rows', () => {
    const n = new PreferenceNormalizer({ chatTemplate: CHATML });
    const ua = (x: string): unknown[] => [{ role: 'user', content: 'q' }, { role: 'assistant', content: x }];
    expect(() => n.normalize({ chosen: [{ role: 'user', content: 'q' }], rejected: ua('n') })).toThrow(/"chosen" must end with an assistant message/);
    expect(() => n.normalize({ chosen: [{ role: 'assistant', content: 'a' }], rejected: [{ role: 'assistant', content: 'b' }] })).toThrow(/no prompt/);
    expect(() => n.normalize({ chosen: [{ role: 'user', content: 3 }, { role: 'assistant', content: 'x' }], rejected: ua('n') })).toThrow(/chosen\[0\]\.content must be a string/);
    expect(() => n.normalize({ chosen: ['hi'], rejected: ua('n') })).toThrow(/chosen\[0\] must be an object/);
    expect(() => n.normalize({ prompt: 5, chosen: ua('y'), rejected: ua('n') })).toThrow(/"prompt" must be a string or a message list/);
    expect(n.stats.total).toBe(0);
  });
});

describe('SFT rows (NormalizeOptions.sft): a rejected response may be absent', () => {
  const U = (c: string) => ({ role: 'user', content: c }); const A = (c: string) => ({ role: 'assistant', content: c });
  const t = (role: string, c: string): string => `<|im_start|>${role}\n${c}<|im_end|>\n`;

  it('{prompt, completion}, {prompt, chosen}, HH {chosen}, {messages} and message-list prompt-completion rows; rejected is ""', () => {
    const n = new PreferenceNormalizer({ sft: true, chatTemplate: CHATML });
    expect(n.normalize({ prompt: 'P', completion: 'C' })).toEqual({ prompt: 'P', chosen: 'C', rejected: '' });
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: null })).toEqual({ prompt: 'P', chosen: 'C', rejected: '' });
    expect(n.normalize({ chosen: '\n\nHuman: hi\n\nAssistant: yo\n\nHuman: more\n\nAssistant: ok' }))
      .toEqual({ prompt: '\n\nHuman: hi\n\nAssistant: yo\n\nHuman: more\n\nAssistant:', chosen: ' ok', rejected: '' });
    const chat = n.normalize({ messages: [U('hi'), A('Hello'), U('more'), A('Sure')] });
    expect(chat).toEqual({ prompt: t('user', 'hi') + t('assistant', 'Hello') + t('user', 'more') + '<|im_start|>assistant\n',
      chosen: 'Sure<|im_end|>\n', rejected: '', templated: true });
    expect(n.normalize({ prompt: [U('hi')], completion: [A('Hello')] }).chosen).toBe('Hello<|im_end|>\n');
    // A preference row stays one: its rejected response is kept (SFT does not train on it).
    expect(n.normalize({ prompt: 'P', chosen: 'C', rejected: 'R' })).toEqual({ prompt: 'P', chosen: 'C', rejected: 'R' });
    expect(n.stats).toMatchObject({ total: 6, sftOnly: 5, identicalResponses: 0, byShape: { text: 3, hh: 1, chat: 2 } });
    expect(formatNormalizeStats(n.stats)).toMatch(/; 5 SFT rows without a rejected response/);
  });

  it('refuses {text}, two responses, a prompt beside messages, and names the field it read in errors', () => {
    const n = new PreferenceNormalizer({ sft: true, chatTemplate: CHATML });
    expect(() => n.normalize({ text: 'all of it' })).toThrow(/SFT row with "text" only: .*give \{prompt, completion\}/);
    expect(() => n.normalize({ prompt: 'P' })).toThrow(/missing field "chosen" \(an SFT row may give "completion" or "messages" instead\)/);
    expect(() => n.normalize({ prompt: 'P', completion: 'C', label: false })).toThrow(/a KTO row \(prompt, completion, boolean "label"\)/);
    // A response of the wrong type is named once, as the field it is (not as "chosen" and "rejected").
    expect(() => n.normalize({ prompt: 'P', chosen: 5 })).toThrow(/^field "chosen" must be a string or a message list, got a number$/);
    expect(() => n.normalize({ messages: 7 })).toThrow(/^field "messages" must be a message list, got a number$/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', completion: 'D' })).toThrow(/give one of .* not "chosen" and "completion"/);
    expect(() => n.normalize({ prompt: 'P', messages: [U('q'), A('a')] })).toThrow(/"messages" holds the whole conversation/);
    expect(() => n.normalize({ messages: [U('q')] })).toThrow(/"messages" must end with an assistant message/);
    expect(() => n.normalize({ messages: [U('q'), { role: 'assistant', content: 7 }] })).toThrow(/messages\[1\]\.content must be a string/);
    // A list of content parts (the multimodal spelling): said, with what to give instead.
    expect(() => n.normalize({ messages: [{ role: 'user', content: [{ type: 'text', text: 'q' }] }, { role: 'assistant', content: 'a' }] }))
      .toThrow(/messages\[0\]\.content must be a string, got .* \(content as a list of parts, e\.g\. \[\{"type": "text", "text": \.\.\.\}\], is not supported: give the text as a string\)/);
    expect(() => n.normalize({ prompt: 3, completion: 'C' })).toThrow(/"prompt" must be a string/);
    // A rejected response under another name is a pair with a misspelt field, not an SFT row (a judge's score
    // of the rejected response, read as such, is no response).
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejected_response: 'R' }))
      .toThrow(/^missing field "rejected" \(the row has "rejected_response", which srk does not read: it reads a rejected response from "rejected"\)$/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', Rejected: 'R' })).toThrow(/the row has "Rejected"/);
    expect(() => n.normalize({ prompt: 'P', chosen: 'C', rejeted: 'R' })).toThrow(/the row has "rejeted"/);
    // Metadata under such names is no response: an SFT row all the same.
    for (const meta of [{ is_rejected: false }, { rejection_reason: null }, { rejected_model: 'gpt-3.5' }, { 'rejected-rating': 2 }, { prejudice: 'none' }]) {
      expect(new PreferenceNormalizer({ sft: true }).normalize({ prompt: 'P', completion: 'C', ...meta }), JSON.stringify(meta)).toMatchObject({ chosen: 'C', rejected: '' });
    }
    expect(n.stats.total).toBe(0);
    expect(n.normalize({ prompt: 'P', chosen: 'C', score_chosen: 8, score_rejected: 2 })).toMatchObject({ chosen: 'C', rejected: '' });
    // Without sft such rows are refused as before, with a hint.
    expect(() => new PreferenceNormalizer().normalize({ prompt: 'P', completion: 'C' }))
      .toThrow(/^missing fields "chosen" and "rejected": a row with "completion" is an SFT row \(--loss sft trains on such rows/);
    expect(() => new PreferenceNormalizer().normalize({ messages: [] })).toThrow(/a row with "messages" is an SFT row/);
    expect(() => new PreferenceNormalizer().normalize({ prompt: 'P', chosen: 'C' })).toThrow(/missing field "rejected" \(rows without one are SFT rows: --loss sft trains on them, and srk eval or an SFT run's --eval-data score a file of only such rows\)/);
  });
});
