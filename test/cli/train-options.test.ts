// `srk train`'s flags -> options: values a run cannot mean are refused by flag name, before anything
// loads (a negative learning rate would climb the loss; a negative lambda turns the refinement round).
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { DEMO_FLAGS, demoIgnoredFlags, trainFlags, trainOptionsFrom, unreadSettingNotes } from '../../src/cli/train.js';
import { typedFlags } from '../../src/cli/run.js';

const parse = (...args: string[]) => trainOptionsFrom(trainFlags(yargs(args)).parseSync() as Record<string, unknown>);

describe('srk train flags', () => {
  it('the defaults and ordinary values pass', () => {
    const o = parse('--model', 'm', '--data', 'd', '--lr', '0', '--lambda', '0', '--grad-clip', '0', '--warmup-steps', '0');
    expect(o).toMatchObject({ lr: 0, lambda: 0, gradClip: 0, warmupSteps: 0 });
    expect(parse('--model', 'm', '--data', 'd')).toMatchObject({ beta: 0.1, loss: expect.any(String), completionsInContext: false, saveEvery: 500 });
    expect(parse('--model', 'm', '--data', 'd', '--completions-in-context')).toMatchObject({ completionsInContext: true });
    expect(parse('--model', 'm', '--data', 'd')).toMatchObject({ labelSmoothing: 0 });
    expect(parse('--model', 'm', '--data', 'd', '--loss', 'dpo', '--label-smoothing', '0.1')).toMatchObject({ labelSmoothing: 0.1 });
    // No --weight-decay: the trainer takes torch's default of the optimizer (options.ts defaultWeightDecay).
    expect(parse('--model', 'm', '--data', 'd').weightDecay).toBeUndefined();
    expect(parse('--model', 'm', '--data', 'd', '--weight-decay', '0.1')).toMatchObject({ weightDecay: 0.1 });
    expect(parse('--model', 'm', '--data', 'd', '--eval-data', 'e', '--max-eval-pairs', '3')).toMatchObject({ maxEvalPairs: 3 });
    expect(parse('--model', 'm', '--data', 'd', '--eval-data', 'e').maxEvalPairs).toBeUndefined();
  });

  const bad: [string[], RegExp][] = [
    [['--lr', '-1'], /--lr must be a number >= 0 \(got -1\)/],
    [['--lr', 'abc'], /--lr must be a number >= 0/],
    [['--lambda', '-0.5'], /--lambda must be a number >= 0 \(0 is DPO \/ IPO\) \(got -0.5\)/],
    [['--grad-clip', '-1'], /--grad-clip must be a number >= 0 \(0: no clipping\)/],
    [['--beta', '0'], /--beta must be > 0/],
    [['--beta', 'Infinity'], /--beta must be > 0/],
    [['--warmup-steps', '-3'], /--warmup-steps must be an integer >= 0/],
    [['--eval-every', '1.5'], /--eval-every must be an integer >= 0/],
    [['--save-every', '-1'], /--save-every must be an integer >= 0/],
    [['--seed', '-2'], /--seed must be an integer >= 0/],
    [['--epochs', '0'], /--epochs must be a positive integer/],
    [['--batch-size', '0'], /--batch-size must be a positive integer/],
    [['--max-steps', '2.5'], /--max-steps must be a positive integer/],
    [['--weight-decay', '-0.01'], /--weight-decay must be a number >= 0 \(0: no decay\) \(got -0.01\)/],
    [['--weight-decay', 'x'], /--weight-decay must be a number >= 0/],
    [['--label-smoothing', '0.5'], /--label-smoothing must be at least 0 and below 0.5 \(got 0.5\)/],
    [['--label-smoothing', '-0.1'], /--label-smoothing must be at least 0/],
    [['--loss', 'ipo', '--label-smoothing', '0.1'], /--label-smoothing applies to dpo and sr-dpo \(cDPO\), not ipo/],
    [['--loss', 'sft', '--label-smoothing', '0.1'], /--label-smoothing applies to dpo and sr-dpo \(cDPO\), not sft/],
    [['--max-eval-pairs', '10'], /--max-eval-pairs limits the pairs of --eval-data: give --eval-data too/],
    [['--max-length', '64'], /--max-prompt-length \(256, the default\) must be below --max-length \(64\)/],
    [['--max-length', '64', '--max-prompt-length', '80'], /--max-prompt-length \(80\) must be below --max-length \(64\)/],
    [['--eval-data', 'e', '--max-eval-pairs', '0'], /--max-eval-pairs must be a positive integer/],
  ];
  for (const [args, re] of bad) {
    it(`refuses ${args.join(' ')}`, () => {
      expect(() => parse('--model', 'm', '--data', 'd', ...args)).toThrow(re);
    });
  }
});

describe('settings given that the run will not read', () => {
  it('a note each: lambda beside DPO, IPO or SFT, --eval-every without --eval-data, SFT\'s beta and reference without held-out pairs', () => {
    const notes = (...args: string[]) => unreadSettingNotes(parse('--model', 'm', '--data', 'd', ...args), typedFlags(args, new Set(['eval-sample-tokens'])));
    expect(notes('--loss', 'dpo', '--lambda', '0.3')).toEqual(['--lambda 0.3: not read by dpo (only sr-dpo and sr-ipo have the self-refinement term)']);
    expect(notes('--loss', 'sr-dpo', '--lambda', '0.3')).toEqual([]);
    expect(notes('--loss', 'ipo')).toEqual([]);
    expect(notes('--eval-every', '5')).toEqual(['--eval-every 5: nothing to evaluate without --eval-data']);
    expect(notes('--eval-every', '5', '--eval-data', 'e')).toEqual([]);
    expect(notes('--loss', 'sft', '--beta', '0.2', '--ref-model', 'r')).toEqual(['--beta 0.2, --ref-model r: not read by sft without --eval-data (they shape only held-out margins)']);
    expect(notes('--loss', 'sft', '--beta', '0.2', '--eval-data', 'e')).toEqual([]);
    expect(notes('--loss', 'sft', '--lambda', '0.3', '--eval-data', 'e')).toEqual(['--lambda 0.3: not read by sft (only sr-dpo and sr-ipo have the self-refinement term)']);
    // The refinement prompt: read by the Sr losses, and by held-out augmented accuracy under any loss.
    expect(notes('--loss', 'ipo', '--refine-prompt', 'Q:')).toEqual(['--refine-prompt: not read by ipo without --eval-data (it shapes only held-out augmented accuracy; a --resume of the run still expects the same one)']);
    expect(notes('--loss', 'dpo', '--refine-prompt', 'Q:', '--eval-data', 'e')).toEqual([]);
    expect(notes('--loss', 'sr-ipo', '--refine-prompt', 'Q:')).toEqual([]);
    // Sampling: the length of samples there are none of.
    expect(notes('--eval-sample-tokens', '10')).toEqual(['--eval-sample-tokens: nothing is sampled without --eval-samples']);
    expect(notes('--eval-sample-tokens=64')).toEqual(['--eval-sample-tokens: nothing is sampled without --eval-samples']); // (the default, typed)
    expect(notes('--eval-sample-tokens', '10', '--eval-samples', '2', '--eval-data', 'e')).toEqual([]);
    expect(notes()).toEqual([]);
  });
});

describe('the built-in demo (srk train without --model and --data)', () => {
  it('names the training flags it would not use, in any of yargs\' spellings; its own flags pass', () => {
    expect(demoIgnoredFlags(['--loss', 'dpo', '--out', 'x', '--maxSteps=3', '--no-eos', '--seed', '1', '--plain-progress', '--precision', 'f32']))
      .toEqual(['loss', 'max-steps', 'eos']);
    expect(demoIgnoredFlags(['--out=runs/d', '--adapter', 'llvmpipe', '--no-plain-progress'])).toEqual([]);
    // After "--" nothing is a flag; values and unknown words are not flags.
    expect(demoIgnoredFlags(['--seed', '3', '--', '--beta', '0.2'])).toEqual([]);
    expect(demoIgnoredFlags(['--lambda=0.1', '--lambda', '0.3', 'lambda'])).toEqual(['lambda']);
    for (const f of DEMO_FLAGS) expect(demoIgnoredFlags([`--${f}`])).toEqual([]);
  });
});
