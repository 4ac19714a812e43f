// --keep-models: every save also leaves its model as OUT/models/step-N, a Hugging Face directory without
// the resume state, hard-linked to the checkpoint's files (no copy), and later saves leave it as it was.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, safetensorsNorm, tempDir, train } from './helpers.js';

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
      expect(existsSync(kept(n, 'optimizer.safetensors')) || existsSync(kept(n, 'trainer_state.json'))).toBe(false);
    }
    const last = path.join(out, 'checkpoint', 'model.safetensors');
    expect(statSync(kept(3)).ino).toBe(statSync(last).ino);
    expect(readFileSync(kept(3)).equals(readFileSync(last))).toBe(true);
    // Each step's weights as saved then: all different (lr 1e-2 moves them), none rewritten by a later save.
    const norms = [1, 2, 3].map((n) => safetensorsNorm(kept(n)));
    expect(new Set(norms).size).toBe(3);
    expect(statSync(kept(1)).ino).not.toBe(statSync(kept(2)).ino);
  }, 120_000);
});
