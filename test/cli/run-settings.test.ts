// run-settings.ts: the settings a training checkpoint's run had, for the scoring flags not given.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runReference, runSettings } from '../../src/cli/run-settings.js';

function checkpoint(options: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'srk-run-settings-'));
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ step: 3, options }));
  return dir;
}
const evalArgs = { beta: 0.1, 'max-length': 512, 'max-prompt-length': 256, 'refine-prompt': 'p', eos: true, 'completions-in-context': false };

describe('runSettings', () => {
  it('an SFT run\'s beta too (its evaluations\' margins used it); flags given, and flags the command lacks, left alone', () => {
    const dir = checkpoint({ loss: 'sft', beta: 0.5, maxLength: 24, maxPromptLength: 8, refinePrompt: 'p', noEos: true });
    const all = runSettings(dir, evalArgs, []);
    expect(all.values).toEqual({ 'max-length': 24, 'max-prompt-length': 8, beta: 0.5, eos: false });
    expect(all.note).toMatch(/^--max-length 24, --max-prompt-length 8, --beta 0\.5, --no-eos: as the run that trained/);
    // --no-eos typed reads as eos (typedFlags); logprobs has no --beta.
    const { beta: _b, ...logprobsArgs } = evalArgs;
    expect(runSettings(dir, logprobsArgs, ['eos', 'max-length']).values).toEqual({ 'max-prompt-length': 8 });
  });

  it('a run saved before an option existed keeps the flag\'s value; no trainer_state.json, nothing', () => {
    expect(runSettings(checkpoint({ loss: 'dpo', beta: 0.1, maxLength: 512, maxPromptLength: 256, refinePrompt: 'p' }), evalArgs, []))
      .toEqual({ values: {} });
    expect(runSettings(mkdtempSync(join(tmpdir(), 'srk-no-state-')), evalArgs, [])).toEqual({ values: {} });
  });
});

describe('runReference', () => {
  it('names the run\'s --ref-model, else the model it started from, where that directory exists and is not the model scored', () => {
    const out = mkdtempSync(join(tmpdir(), 'srk-runref-'));
    const ckpt = join(out, 'checkpoint');
    const base = join(out, 'base');
    mkdirSync(ckpt); mkdirSync(base);
    writeFileSync(join(ckpt, 'trainer_state.json'), JSON.stringify({ step: 1, options: {} }));
    const config = (c: object) => writeFileSync(join(out, 'train_config.json'), JSON.stringify(c));
    config({ model: base });
    expect(runReference(ckpt)).toBe(base);
    config({ model: base, refModel: join(out, 'missing') });
    expect(runReference(ckpt)).toBeUndefined(); // moved or removed: no reference to name
    // A reference that is the model scored would give margins of 0 by construction: not named.
    config({ model: ckpt });
    expect(runReference(ckpt)).toBeUndefined();
    expect(runReference(base)).toBeUndefined(); // not a run's checkpoint
  });
});
