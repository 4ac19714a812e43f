// `srk eval` and `srk logprobs --model RUN/checkpoint`: a checkpoint of srk train is scored with its run's settings (truncation,
// beta, EOS, refinement prompt; checkpoint/trainer_state.json) where no flag is given, so its numbers are the
// run's last evaluation's; a flag given is taken as given, and the note names what came from the run.
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, root, srk, tempDir, train } from '../train/helpers.js';

const run = (args: string[]) => spawnSync(process.execPath, [srk, ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });

describe('srk eval of a training checkpoint', () => {
  it('takes the run\'s settings for the flags not given, and says so; the run\'s last evaluation comes out', async () => {
    const model = fixture('gpt-neox-tiny');
    const data = join(model, 'pairs.jsonl');
    const out = join(tempDir('srk-eval-run-'), 'run');
    const r = await train(['--model', model, '--data', data, '--eval-data', data, '--loss', 'dpo', '--beta', '0.3', '--max-length', '24',
      '--max-prompt-length', '8', '--no-eos', '--completions-in-context', '--lr', '1e-3', '--warmup-steps', '0', '--batch-size', '3', '--max-steps', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    const last = readFileSync(join(out, 'eval.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    expect(last.step).toBe(2);

    const e = run(['eval', '--model', join(out, 'checkpoint'), '--ref-model', model, '--data', data, '--json']);
    expect(e.status, e.stderr).toBe(0);
    const j = JSON.parse(e.stdout);
    expect(j.notes.join(' ')).toMatch(/--max-length 24, --max-prompt-length 8, --beta 0\.3, --no-eos, --completions-in-context: as the run that trained .*checkpoint had them \(its trainer_state\.json\)/);
    expect([j.max_length, j.max_prompt_length, j.beta, j.no_eos, j.in_context]).toEqual([24, 8, 0.3, true, true]);
    for (const k of ['margin', 'accuracy', 'aug_accuracy', 'nll_chosen']) expect(Math.abs(j[k] - last[k]), k).toBeLessThan(1e-6);

    // Without --ref-model the checkpoint is its own reference (margins 0): the note names the run's reference.
    const own = run(['eval', '--model', join(out, 'checkpoint'), '--data', data, '--json']);
    expect(own.status, own.stderr).toBe(0);
    expect(JSON.parse(own.stdout).notes.join(' ')).toContain(`the run that trained ${join(out, 'checkpoint')} trained against ${model}: --ref-model ${model} scores its margins`);

    // A flag given is the user's: taken as given, and not in the note.
    const f = run(['eval', '--model', join(out, 'checkpoint'), '--ref-model', model, '--data', data, '--json', '--beta', '0.1', '--eos']);
    expect(f.status, f.stderr).toBe(0);
    const g = JSON.parse(f.stdout);
    expect([g.beta, g.no_eos, g.max_length]).toEqual([0.1, false, 24]);
    expect(g.notes.join(' ')).toMatch(/--max-length 24, --max-prompt-length 8, --completions-in-context: as the run/);

    // srk logprobs alike (it has no --beta): the lines of the same command with the run's flags written out.
    const l = run(['logprobs', '--model', join(out, 'checkpoint'), '--data', data]);
    expect(l.status, l.stderr).toBe(0);
    expect(l.stderr).toMatch(/note: --max-length 24, --max-prompt-length 8, --no-eos, --completions-in-context: as the run that trained .*checkpoint had them/);
    const written = run(['logprobs', '--model', join(out, 'checkpoint'), '--data', data, '--max-length', '24', '--max-prompt-length', '8', '--no-eos', '--completions-in-context']);
    expect(written.status, written.stderr).toBe(0);
    expect(written.stderr).not.toMatch(/as the run that trained/);
    expect(l.stdout).toBe(written.stdout);
    // (and not what the flags' defaults give)
    expect(l.stdout).not.toBe(run(['logprobs', '--model', join(out, 'checkpoint'), '--data', data, '--max-length', '512', '--max-prompt-length', '256', '--eos']).stdout);
  }, 120_000);

  it('--completions-in-context is pinned on --resume; a run saved before it was recorded resumes on its pairs\' hash', async () => {
    const model = fixture('gpt-neox-tiny');
    const data = join(model, 'pairs.jsonl');
    const out = join(tempDir('srk-in-context-'), 'run');
    const args = ['--model', model, '--data', data, '--ref-model', `${model}_ref`, '--loss', 'dpo', '--batch-size', '3', '--no-eos', '--out', out];
    const r = await train([...args, '--completions-in-context', '--max-steps', '1']);
    expect(r.code, r.stderr).toBe(0);
    const other = await train([...args, '--max-steps', '2', '--resume']);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/--resume: --completions-in-context is false but the run in .* used true/);
    // Not recorded (an older srk): the pairs' hash decides (the fixture's byte-level BPE gives the same ids either way).
    const stateFile = join(out, 'checkpoint', 'trainer_state.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8'));
    delete state.options.completionsInContext;
    writeFileSync(stateFile, JSON.stringify(state));
    const old = await train([...args, '--max-steps', '2', '--resume']);
    expect(old.code, old.stderr).toBe(0);
  }, 120_000);
});
