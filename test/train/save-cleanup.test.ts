// A save is done once its checkpoint is in place: a previous checkpoint that cannot then be removed is a
// warning, not a failed save (it was reported as one, naming the older checkpoint as the one intact). The
// next save, which needs it gone, fails naming the checkpoint that is in place.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, readMetrics, root, tempDir, train } from './helpers.js';
import { readTrainerState } from '../../src/train/checkpoint.js';

describe('a previous checkpoint that cannot be removed', () => {
  it('is a warning after a save that succeeded; the next save says which checkpoint is in place', async () => {
    const out = join(tempDir('srk-save-cleanup-'), 'run');
    const r = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '2', '--max-steps', '3', '--save-every', '1', '--out', out],
      { NODE_OPTIONS: `--import ${resolve(root, 'test/helpers/undeletable.mjs')}`, TEST_UNDELETABLE: '\\.checkpoint-old$' });
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/warning: the previous checkpoint .*\.checkpoint-old could not be removed \(EACCES: permission denied.*\); the next save needs it gone/);
    expect(r.stderr).toMatch(/saving the checkpoint of step 3 in .* failed: .*EACCES.*; .*checkpoint \(step 2\) is intact/);
    expect(readTrainerState(join(out, 'checkpoint')).step).toBe(2);
    expect(readMetrics(out).length).toBeGreaterThanOrEqual(2);
  }, 120_000);
});

describe('a save a killed run left half written', () => {
  it('(OUT/.checkpoint-tmp-PID, another pid) goes at the next save; other names stay', async () => {
    const out = join(tempDir('srk-save-leftover-'), 'run');
    const left = join(out, '.checkpoint-tmp-4194301');
    mkdirSync(left, { recursive: true });
    writeFileSync(join(left, 'model.safetensors'), 'half a checkpoint');
    const mine = join(out, '.checkpoint-tmp-notes');
    writeFileSync(mine, 'not a save');
    // Names that only contain the pattern are the user's too.
    const near = [join(out, '.checkpoint-tmp-12x'), join(out, 'notes.checkpoint-tmp-5')];
    for (const n of near) mkdirSync(n);
    const r = await train([...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '2', '--max-steps', '1', '--out', out]);
    expect(r.code, describeRun(r)).toBe(0);
    expect(existsSync(left)).toBe(false);
    expect(existsSync(mine)).toBe(true);
    for (const n of near) expect(existsSync(n), n).toBe(true);
    expect(readTrainerState(join(out, 'checkpoint')).step).toBe(1);
  }, 120_000);
});
