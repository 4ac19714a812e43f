// A step that fails on the GPU (a device error found at its readback) stops the run with the step, the
// error, and the last checkpoint, which is intact and which --resume continues from; before any save, it
// says none was saved. The failure is injected (test/helpers/fail-step.mjs, loaded with node --import).
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, readMetrics, root, tempDir, train } from './helpers.js';

const inject = (step: number) => ({ NODE_OPTIONS: `--import ${resolve(root, 'test/helpers/fail-step.mjs')}`, TEST_FAIL_STEP: String(step) });

describe('a step that fails on the GPU', () => {
  const tmp = tempDir('srk-step-error-');
  const settings = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '2', '--max-steps', '4', '--save-every', '1'];

  it('names the step and the last checkpoint, which --resume continues from', async () => {
    const out = join(tmp, 'a');
    const r = await train([...settings, '--out', out], inject(3));
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/srk: step \d: WebGPU error during read of 2 tensors \(last kernel rmsprop\): injected by the test; the last checkpoint, .*a[/\\]checkpoint, is intact: --resume continues from it/);
    const saved = readMetrics(out).length;
    expect(saved).toBeGreaterThanOrEqual(1);
    const resumed = await train([...settings, '--out', out, '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3, 4]);
  }, 120_000);

  it('before any save: says none was saved', async () => {
    const out = join(tmp, 'b');
    const r = await train([...settings, '--out', out], inject(1));
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/srk: step 1: WebGPU error .*injected by the test; no checkpoint was saved yet/);
    expect(existsSync(join(out, 'checkpoint'))).toBe(false);
  }, 60_000);
});
