// The CLI's flag helpers (src/cli/run.ts) that other checks build on: which flags were typed (a checkpoint's
// run settings fill in only the others), and --max-prompt-length below --max-length.
import { describe, expect, it } from 'vitest';
import { checkPromptBelowMaxLength, typedFlags } from '../../src/cli/run.js';

describe('typedFlags', () => {
  it('names each typed flag once, in any spelling; --no-X is X where X is the flag', () => {
    const known = new Set(['eos', 'max-length', 'packed']);
    expect(typedFlags(['--no-eos'], known)).toEqual(['eos']); // srk eval --no-eos: typed, so a run's --eos does not replace it
    expect(typedFlags(['--max-length=64', '--maxLength', '32', '--no-packed', '--', '--eos'], known)).toEqual(['max-length', 'packed']);
    expect(typedFlags(['--no-eos'], new Set(['no-eos']))).toEqual(['no-eos']); // a flag named no-eos is itself
  });
});

describe('checkPromptBelowMaxLength', () => {
  it('refuses a prompt length at or past the whole length (no room for a completion), naming both', () => {
    expect(() => checkPromptBelowMaxLength({ 'max-prompt-length': 63, 'max-length': 64 }, 256)).not.toThrow();
    expect(() => checkPromptBelowMaxLength({ 'max-prompt-length': 64, 'max-length': 64 }, 256)).toThrow(/--max-prompt-length \(64\) must be below --max-length \(64\)/);
    expect(() => checkPromptBelowMaxLength({ 'max-prompt-length': 256, 'max-length': 128 }, 256)).toThrow(/\(256, the default\) must be below --max-length \(128\)/);
  });
});
