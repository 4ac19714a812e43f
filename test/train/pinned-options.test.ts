// --resume continues a run only with the settings its steps so far depended on: each one, changed on
// resume, is refused by its flag (a resumed --beta 0.5 run of a beta 0.1 one went on silently before
// beta was pinned; this walks every setting, so one dropped from the list fails here).
import { describe, expect, it } from 'vitest';
import { checkPinned, PINNED } from '../../src/train/trainer.js';
import { TRAIN_DEFAULTS, type TrainOptions } from '../../src/train/options.js';
import type { TrainerState } from '../../src/train/checkpoint.js';

const run: TrainOptions = {
  ...TRAIN_DEFAULTS, model: 'm', data: 'train.jsonl', out: 'runs/x', weightDecay: 0, dropLast: false, completionsInContext: false,
} as TrainOptions;
const state = (options: Record<string, unknown>): TrainerState =>
  ({ step: 3, pairsSeen: 12, epoch: 0, position: 12, seed: 0, options, savedAt: '' });

describe('checkPinned', () => {
  it('takes the same settings', () => {
    expect(() => checkPinned(run, state({ ...run }))).not.toThrow();
  });

  const changes: [keyof TrainOptions, unknown, string][] = [
    ['loss', 'dpo', '--loss'], ['beta', 0.5, '--beta'], ['lambda', 1, '--lambda'], ['labelSmoothing', 0.1, '--label-smoothing'],
    ['optimizer', 'adamw', '--optimizer'], ['weightDecay', 0.01, '--weight-decay'], ['lr', 1e-6, '--lr'], ['warmupSteps', 10, '--warmup-steps'],
    ['lrSchedule', 'cosine', '--lr-schedule'], ['gradClip', 1, '--grad-clip'], ['batchSize', 32, '--batch-size'], ['maxLength', 256, '--max-length'],
    ['maxPromptLength', 128, '--max-prompt-length'], ['seed', 1, '--seed'], ['refinePrompt', 'Be good. Query:', '--refine-prompt'],
    ['noEos', true, '--no-eos'], ['data', 'other.jsonl', '--data'], ['dropLast', true, '--drop-last'], ['completionsInContext', true, '--completions-in-context'],
  ];
  it('covers every pinned option with a flag', () => {
    expect(changes.map(([k]) => k).sort()).toEqual(PINNED.filter((k) => k !== 'sftPairTruncation').sort()); // (no flag: from the state)
  });
  for (const [k, v, flag] of changes) {
    it(`refuses another ${flag}`, () => {
      expect(() => checkPinned({ ...run, [k]: v } as TrainOptions, state({ ...run })))
        .toThrow(`--resume: ${flag} is ${JSON.stringify(v)} but the run in runs/x used ${JSON.stringify(run[k])}`);
    });
  }

  it('SFT: beta and lambda shape only held-out margins and may change; the data by its hash, not its path', () => {
    const sft = { ...run, loss: 'sft' as const, sftPairTruncation: false };
    expect(() => checkPinned({ ...sft, beta: 0.5, lambda: 1 }, state({ ...sft }))).not.toThrow();
    expect(() => checkPinned({ ...run, data: './train.jsonl' }, { ...state({ ...run }), dataHash: 'abc' })).not.toThrow();
  });
});
