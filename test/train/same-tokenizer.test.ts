// A reference scores the policy's token ids: a reference whose tokenizer reads text otherwise would give
// margins of nonsense, so train and eval refuse it (src/train/dataset.ts checkSameTokenizer).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkSameTokenizer } from '../../src/train/dataset.js';
import { describeRun, fixture, tempDir, train } from './helpers.js';

const pythiaTokenizer = resolve(import.meta.dirname, '../../../shared/data/pythia-20b-tokenizer.json');

describe('the reference must tokenize as the policy does', () => {
  const tmp = tempDir();

  it('the fixtures\' policy and reference agree; a reference with weights and config only is taken as sharing it', async () => {
    await expect(checkSameTokenizer(fixture('gpt-neox-tiny'), fixture('gpt-neox-tiny_ref'))).resolves.toBeUndefined();
    await expect(checkSameTokenizer(fixture('llama-tiny-tied'), fixture('llama-tiny-tied'))).resolves.toBeUndefined();
    const bare = join(tmp, 'bare');
    mkdirSync(bare, { recursive: true });
    copyFileSync(join(fixture('gpt-neox-tiny_ref'), 'config.json'), join(bare, 'config.json'));
    await expect(checkSameTokenizer(fixture('gpt-neox-tiny'), bare)).resolves.toBeUndefined();
  });

  it.skipIf(!existsSync(pythiaTokenizer))('another tokenizer is refused, naming both directories', async () => {
    const other = join(tmp, 'other');
    mkdirSync(other, { recursive: true });
    copyFileSync(join(fixture('gpt-neox-tiny_ref'), 'config.json'), join(other, 'config.json'));
    copyFileSync(pythiaTokenizer, join(other, 'tokenizer.json'));
    await expect(checkSameTokenizer(fixture('gpt-neox-tiny'), other))
      .rejects.toThrow(/the reference .*other tokenizes text differently from the policy .*gpt-neox-tiny \(a sample text differs from token \d+ on\)/);
    // SFT: the reference scores only --eval-data, and is checked there too.
    const data = join(fixture('gpt-neox-tiny'), 'pairs.jsonl');
    const r = await train(['--model', fixture('gpt-neox-tiny'), '--data', data, '--eval-data', data, '--ref-model', other, '--no-eos',
      '--loss', 'sft', '--max-steps', '1', '--out', join(tmp, 'sft-eval')]);
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/the reference .*other tokenizes text differently/);
  });
});
