// `srk train` end to end on a Mistral checkpoint that ships a SentencePiece tokenizer.model and no
// tokenizer.json (Mistral v0.1's, ../shared/data; a tiny random Mistral with its 32000-id vocabulary):
// the log says the tokenizer was converted, Sr-DPO runs on HH-RLHF pairs (BOS-led prompts), and the
// checkpoint carries tokenizer.model.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, readMetrics, tempDir, train } from './helpers.js';
import { presetConfig } from '../../src/init/presets.js';
import { toHfConfigJson } from '../../src/model/config.js';
import { writeInitSafetensors } from '../../src/init/init-model.js';
import { sharedFile } from '../model/paths.js';

const MODEL = sharedFile('data/mistral_v0.1_tokenizer.model');
const HH = sharedFile('data/hh-rlhf_helpful-base_test.jsonl.gz');

describe.skipIf(!MODEL || !HH)('srk train with tokenizer.model only (Mistral v0.1 tokenizer)', () => {
  const tmp = tempDir();
  it('converts the tokenizer, trains Sr-DPO two steps, saves tokenizer.model with the weights', async () => {
    const dir = join(tmp, 'mistral'); mkdirSync(dir);
    const cfg = { ...presetConfig('mistral', 'tiny', { tokenizerVocab: 32000 }), bosTokenId: 1, eosTokenId: 2 };
    expect(cfg.vocabSize).toBe(32000);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(toHfConfigJson(cfg)));
    await writeInitSafetensors(join(dir, 'model.safetensors'), cfg, 3);
    copyFileSync(MODEL!, join(dir, 'tokenizer.model'));
    const rows = gunzipSync(readFileSync(HH!)).toString('utf8').split('\n').slice(0, 4).join('\n');
    const data = join(tmp, 'hh.jsonl'); writeFileSync(data, rows);
    const out = join(tmp, 'run');
    const r = await train(['--model', dir, '--data', data, '--loss', 'sr-dpo', '--batch-size', '2', '--max-steps', '2',
      '--max-length', '96', '--max-prompt-length', '48', '--lr', '1e-4', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/tokenizer: .*tokenizer\.model \(SentencePiece; no tokenizer\.json, converted as transformers does\)/);
    const m = readMetrics(out);
    expect(m.map((x) => x.step)).toEqual([1, 2]);
    expect(m.every((x) => Number.isFinite(x.loss))).toBe(true);
    expect(existsSync(join(out, 'checkpoint', 'tokenizer.model'))).toBe(true);
    expect(existsSync(join(out, 'checkpoint', 'tokenizer.json'))).toBe(false);
  }, 120_000);
});
