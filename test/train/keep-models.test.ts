// --keep-models: every save also leaves its model as OUT/models/step-N, a Hugging Face directory without
// the optimizer's state, hard-linked to the checkpoint's files (no copy), and later saves leave it as it
// was. Its trainer_state.json stays: srk eval of a kept model scores with the run's settings.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, safetensorsNorm, tempDir, train } from './helpers.js';
import { loadOptimizerState, readTrainerState } from '../../src/train/checkpoint.js';
import { runSettings } from '../../src/cli/run-settings.js';

describe('--keep-models', () => {
  it('a model per save, linked to the checkpoint, unchanged by the saves after it', async () => {
    const out = tempDir();
    const r = await train([...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'dpo', '--optimizer', 'adamw', '--lr', '1e-2',
      '--warmup-steps', '0', '--max-steps', '3', '--save-every', '1', '--keep-models', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(readdirSync(path.join(out, 'models')).sort()).toEqual(['step-1', 'step-2', 'step-3']);
    const kept = (n: number, f = 'model.safetensors') => path.join(out, 'models', `step-${n}`, f);
    for (const n of [1, 2, 3]) {
      expect(existsSync(kept(n, 'config.json')) && existsSync(kept(n, 'tokenizer.json'))).toBe(true);
      expect(existsSync(kept(n, 'optimizer.safetensors'))).toBe(false);
      expect(readTrainerState(path.dirname(kept(n))).step).toBe(n);
    }
    // The run's scoring settings, as srk eval of the kept model takes them for the flags not given.
    const run = readTrainerState(path.join(out, 'checkpoint')).options;
    expect(runSettings(path.dirname(kept(2)), { 'max-length': 1, 'max-prompt-length': 1, eos: true }, []).values)
      .toEqual({ 'max-length': run.maxLength, 'max-prompt-length': run.maxPromptLength, eos: false }); // (the run had --no-eos)
    // A kept model is no state to resume from: said so, naming the missing file.
    await expect(loadOptimizerState(undefined as never, path.dirname(kept(1)), undefined as never, undefined as never))
      .rejects.toThrow(/step-1 has no optimizer\.safetensors: a model kept by --keep-models/);
    const last = path.join(out, 'checkpoint', 'model.safetensors');
    expect(statSync(kept(3)).ino).toBe(statSync(last).ino);
    expect(readFileSync(kept(3)).equals(readFileSync(last))).toBe(true);
    // Each step's weights as saved then: all different (lr 1e-2 moves them), none rewritten by a later save.
    const norms = [1, 2, 3].map((n) => safetensorsNorm(kept(n)));
    expect(new Set(norms).size).toBe(3);
    expect(statSync(kept(1)).ino).not.toBe(statSync(kept(2)).ino);
  }, 120_000);

  it('a run killed between a save and linking its model links it when resumed; a killed link\'s temp directory goes', async () => {
    const out = tempDir();
    const args = [...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'dpo', '--save-every', '1', '--keep-models', '--out', out];
    const r = await train([...args, '--max-steps', '2']);
    expect(r.code, describeRun(r)).toBe(0);
    // As a SIGKILL after the step-2 save's swap leaves it, with another process's link half made.
    rmSync(path.join(out, 'models', 'step-2'), { recursive: true });
    mkdirSync(path.join(out, 'models', '.step-2-tmp-999999'));
    const resumed = await train([...args, '--max-steps', '3', '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(readdirSync(path.join(out, 'models')).sort()).toEqual(['step-1', 'step-2', 'step-3']);
    expect(readTrainerState(path.join(out, 'models', 'step-2')).step).toBe(2);
  }, 120_000);
});
