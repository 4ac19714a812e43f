// A disk that fills up (injected: test/helpers/disk-full.mjs, loaded with node --import) is said with the
// file and what was being written; no temp file is left behind; what is only for later (the reference
// cache, the report) does not end a run; a metrics line cut short ends the run at its step, the last
// checkpoint intact, and --resume continues from it.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeRun, fixtureArgs, readMetrics, root, tempDir, train } from './helpers.js';
import { RUN_LOCK } from '../../src/train/run-lock.js';

const diskFull = (match: string, skip = 0) => ({
  NODE_OPTIONS: `--import ${resolve(root, 'test/helpers/disk-full.mjs')}`, TEST_DISK_FULL: match, TEST_DISK_FULL_SKIP: String(skip),
});
/** Files left by atomic writes that did not finish. */
const leftovers = (dir: string): string[] => (existsSync(dir) ? readdirSync(dir, { recursive: true }) as string[] : []).filter((f) => /\.tmp-\d+-/.test(f));

describe('a full disk', () => {
  const tmp = tempDir('srk-disk-full-');
  const settings = [...fixtureArgs('gpt-neox-tiny'), '--loss', 'dpo', '--batch-size', '2', '--max-steps', '3', '--save-every', '1'];

  it('while appending metrics: the step and the file named, the last checkpoint intact, and --resume goes on', async () => {
    const out = join(tmp, 'metrics');
    const r = await train([...settings, '--out', out], diskFull('metrics\\.jsonl$', 1));
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/srk: step 2: cannot write a line to .*metrics\.jsonl \(the disk is full: ENOSPC\); the last checkpoint, .*checkpoint, is intact: --resume continues from it/);
    const resumed = await train([...settings, '--out', out, '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    expect(readMetrics(out).map((m) => m.step)).toEqual([1, 2, 3]); // the half line dropped, step 2 trained again
  }, 120_000);

  it('for the reference cache and the report: a warning each, the run ends as it would, no temp file left', async () => {
    const out = join(tmp, 'later');
    const cache = join(tmp, 'cache');
    const r = await train([...settings, '--out', out, '--cache-dir', cache], diskFull('(ref-logps|report\\.html).*\\.tmp-'));
    expect(r.code, describeRun(r)).toBe(0);
    expect(r.stderr).toMatch(/warning: cannot write the reference log-probs to .*ref-logps-.*\.json \(the disk is full: ENOSPC\): the reference log-probs are not cached/);
    expect(r.stderr).toMatch(/warning: cannot write .*report\.html \(the disk is full: ENOSPC\): no report; srk report .* draws it/);
    expect(r.stderr).toMatch(/done: 3 steps; model in .*checkpoint; report \(not written\)/);
    expect([...leftovers(out), ...leftovers(cache)]).toEqual([]);
  }, 120_000);

  it('while taking the run\'s lock: said, and no empty lock left to hold off the next run', async () => {
    const out = join(tmp, 'lock');
    const r = await train([...settings, '--out', out], diskFull(`${RUN_LOCK.replace(/\./g, '\\.')}$`));
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/srk: cannot write the run's lock to .*\.srk-train\.lock \(the disk is full: ENOSPC\)/);
    expect(existsSync(join(out, RUN_LOCK))).toBe(false);
    const again = await train([...settings, '--out', out]);
    expect(again.code, describeRun(again)).toBe(0);
  }, 120_000);

  it('while writing an evaluation\'s samples: the run stops with its weights saved, and --resume takes that step\'s samples again', async () => {
    const out = join(tmp, 'samples');
    const data = resolve(root, 'test/fixtures/hf/gpt-neox-tiny/pairs.jsonl');
    const args = [...settings, '--eval-data', data, '--eval-every', '2', '--eval-samples', '3', '--eval-sample-tokens', '4', '--out', out];
    const r = await train(args, diskFull('samples\\.jsonl$', 1)); // step 0's samples written, step 2's cut short
    expect(r.code, describeRun(r)).toBe(1);
    expect(r.stderr).toMatch(/cannot write the samples to .*samples\.jsonl \(the disk is full: ENOSPC\)/);
    const resumed = await train([...args, '--resume']);
    expect(resumed.code, describeRun(resumed)).toBe(0);
    const samples = readFileSync(join(out, 'samples.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number });
    expect([0, 2, 3].map((s) => samples.filter((x) => x.step === s).length)).toEqual([3, 3, 3]);
  }, 120_000);
});
